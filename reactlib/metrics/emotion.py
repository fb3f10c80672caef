"""From face coefficients to the 25-d emotion vector the REACT 2024 metrics score.

The challenge scores emotion (15 AU occurrences, valence and arousal, 8 expression
probabilities), but ReactDiff and most generators output 58-d coefficients. Something has to map
one to the other, and whatever does it sits between the generator and the numbers:

- **SynthReact**: the corpus writes its emotion files with
  :func:`reactlib.face.coeffs.emotion_from_coeffs`, so mapping generated coefficients with the same
  function is exact (:class:`ExactMap`).
- **Real data** (REACT 2024): the emotion files come from other extractors run on the video, and
  no exact map exists. :class:`FittedMap` is a ridge regression on the corpus' own (coefficient,
  emotion) frame pairs, fitted on one split and judged on another (its held-out R^2 is reported
  with every number it produces). Its features are the 52 expression coefficients, their squares
  and a constant (head pose does not change emotion). AU outputs are clipped to [0, 1], valence and
  arousal to [-1, 1], and the expression probabilities are clipped at 0 and renormalised to sum to
  1, so every output is a valid emotion vector.

A regressor's errors make generated and real emotion differ even for a perfect generator. To
compare like with like, :func:`reactlib.metrics.evaluation.evaluate` can pass the ground truth
through the same map (``gt_through_map``), so that both sides of every metric come from one
extractor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reactlib.errors import UsageError
from reactlib.face import coeffs

AU = slice(0, 15)
VALENCE_AROUSAL = slice(15, 17)
EXPRESSIONS = slice(17, 25)
BLOCKS = {"au": AU, "valence_arousal": VALENCE_AROUSAL, "expressions": EXPRESSIONS}


def _coefficients(x, what: str = "coefficients") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != coeffs.NUM_COEFFS:
        raise UsageError(f"{what} must end in {coeffs.NUM_COEFFS} values, got shape {x.shape}")
    return x


@dataclass(frozen=True)
class ExactMap:
    """SynthReact's own coefficient -> emotion map
    (:func:`reactlib.face.coeffs.emotion_from_coeffs`)."""

    name: str = "exact (SynthReact's emotion_from_coeffs)"

    def __call__(self, x) -> np.ndarray:
        return coeffs.emotion_from_coeffs(_coefficients(x)).astype(np.float32)

    def describe(self) -> dict:
        return {"map": self.name}


def _features(x: np.ndarray) -> np.ndarray:
    expression = x[..., coeffs.EXPRESSION]
    ones = np.ones(expression.shape[:-1] + (1,))
    return np.concatenate([ones, expression, expression**2], axis=-1)


def r2_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Coefficient of determination of ``predicted`` against ``truth`` (both ``(n, 25)``):
    ``overall`` pools every output (1 - total squared error / total variance about each output's
    mean); one entry per block (:data:`BLOCKS`) likewise over its outputs."""
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)

    def score(cut) -> float:
        t, p = truth[:, cut], predicted[:, cut]
        total = ((t - t.mean(axis=0)) ** 2).sum()
        return float(1 - ((t - p) ** 2).sum() / total) if total > 0 else float("nan")

    return {"overall": score(slice(None)), **{name: score(cut) for name, cut in BLOCKS.items()}}


@dataclass(frozen=True)
class FittedMap:
    """A ridge regression from coefficients to emotion (module docstring); build it with
    :meth:`fit`."""

    weights: np.ndarray
    """``(1 + 2 * 52, 25)``: constant, expression coefficients, their squares."""
    alpha: float
    heldout_r2: dict[str, float] = field(default_factory=dict)
    """R^2 on the held-out frames (:func:`r2_scores`), measured on raw outputs before clipping."""
    fitted_on: str = ""
    name: str = "ridge regression on the corpus' (coefficient, emotion) pairs"

    @classmethod
    def fit(
        cls,
        x,
        emotion,
        heldout_x,
        heldout_emotion,
        *,
        alphas=(1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
        fitted_on: str = "",
    ) -> FittedMap:
        """Fit on frames ``x (n, 58)`` -> ``emotion (n, 25)``; choose the ridge strength among
        ``alphas`` by R^2 on the held-out frames, and keep that R^2."""
        x, heldout_x = _coefficients(x), _coefficients(heldout_x, "heldout coefficients")
        emotion = np.asarray(emotion, dtype=np.float64)
        heldout_emotion = np.asarray(heldout_emotion, dtype=np.float64)
        for name, a, b in (
            ("training", x, emotion),
            ("held-out", heldout_x, heldout_emotion),
        ):
            if a.ndim != 2 or b.shape != (a.shape[0], coeffs.NUM_EMOTION) or len(a) < 2:
                raise UsageError(
                    f"{name} frames must be (n, 58) and (n, 25) with n >= 2, got {a.shape} and "
                    f"{b.shape}"
                )
            if not (np.isfinite(a).all() and np.isfinite(b).all()):
                raise UsageError(f"{name} frames hold NaN or infinite values")
        features = _features(x)
        gram = features.T @ features / len(x)
        moment = features.T @ emotion / len(x)
        penalty = np.eye(len(gram))
        penalty[0, 0] = 0.0  # the constant is not shrunk
        best = None
        for alpha in alphas:
            weights = np.linalg.solve(gram + alpha * penalty, moment)
            scores = r2_scores(heldout_emotion, _features(heldout_x) @ weights)
            if best is None or scores["overall"] > best[2]["overall"]:
                best = (weights, float(alpha), scores)
        weights, alpha, scores = best
        return cls(weights=weights, alpha=alpha, heldout_r2=scores, fitted_on=fitted_on)

    def raw(self, x) -> np.ndarray:
        """The regression's unclipped outputs ``(..., 25)``."""
        return _features(_coefficients(x)) @ self.weights

    def __call__(self, x) -> np.ndarray:
        y = self.raw(x)
        y[..., AU] = np.clip(y[..., AU], 0.0, 1.0)
        y[..., VALENCE_AROUSAL] = np.clip(y[..., VALENCE_AROUSAL], -1.0, 1.0)
        expressions = np.clip(y[..., EXPRESSIONS], 0.0, None)
        total = expressions.sum(axis=-1, keepdims=True)
        uniform = np.full_like(expressions, 1.0 / expressions.shape[-1])
        y[..., EXPRESSIONS] = np.where(
            total > 0, expressions / np.where(total > 0, total, 1), uniform
        )
        return y.astype(np.float32)

    def describe(self) -> dict:
        return {
            "map": self.name,
            "fitted_on": self.fitted_on,
            "alpha": self.alpha,
            "heldout_r2": dict(self.heldout_r2),
        }


def split_frames(
    split, *, stride: int = 5, role: str = "listener"
) -> tuple[np.ndarray, np.ndarray]:
    """Every ``stride``-th frame's ``(coefficients (n, 58), emotion (n, 25))`` of the clips of a
    split's items in ``role`` (each clip once)."""
    if stride < 1:
        raise UsageError(f"stride must be >= 1, got {stride}")
    clips = list(dict.fromkeys(getattr(item, role) for item in split.items))
    x = np.concatenate([split.coeffs(c)[::stride] for c in clips])
    e = np.concatenate([split.emotion(c)[::stride] for c in clips])
    return x, e


def emotion_map(
    corpus, *, kind: str = "auto", fit_split: str = "train", heldout_split: str = "val"
):
    """The map to score a corpus' reactions with: ``exact`` (SynthReact's own), ``fitted`` (a
    :class:`FittedMap` fitted on ``fit_split``'s speaker and listener frames, judged on
    ``heldout_split``'s), or ``auto``: exact for SynthReact, fitted otherwise."""
    if kind not in ("auto", "exact", "fitted"):
        raise UsageError(f"emotion map must be auto, exact or fitted, got {kind!r}")
    if kind == "exact" or (kind == "auto" and corpus.meta is not None):
        return ExactMap()
    fit, heldout = corpus.split(fit_split), corpus.split(heldout_split)
    speakers, listeners = split_frames(fit, role="speaker"), split_frames(fit, role="listener")
    x = np.concatenate([speakers[0], listeners[0]])
    e = np.concatenate([speakers[1], listeners[1]])
    hx, he = split_frames(heldout)
    return FittedMap.fit(x, e, hx, he, fitted_on=f"{fit_split} (held out: {heldout_split})")
