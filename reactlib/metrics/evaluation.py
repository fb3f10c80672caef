"""One call from generated reactions to every number: REACT metrics, realism, smoothness.

:func:`evaluate` scores predictions ``(N, M, T, 58)`` (raw coefficients, the layout
``python -m reactlib generate`` writes) or ``(N, M, T, 25)`` (emotion) against a split of a
corpus, and ``python -m reactlib evaluate`` is its command line. It checks everything it is
handed before computing anything, and says in the result what it used: the convention, the space
the REACT metrics were computed in, the coefficient -> emotion map and its held-out R^2 when one
was needed, and where the appropriate-reaction sets came from (the corpus' neighbour matrix, or
which fallback when it has none).

- ``react2024`` scores emotion: coefficient predictions are mapped
  (:mod:`reactlib.metrics.emotion`); the ground truth is the corpus' emotion files, or, with
  ``gt_through_map``, the real coefficients through the same map.
- ``reactface`` scores the 58-d coefficients and needs coefficient predictions.
- ``clean`` scores whatever the predictions are: coefficients or emotion.

Realism (:func:`~reactlib.metrics.realism.realism_fd`) and smoothness
(:func:`~reactlib.metrics.realism.smoothness`) are computed on coefficient predictions, in raw
coefficient units (blendshape weights in [0, 1], radians, the renderer's length unit), which all
move on similar scales; z-scoring instead would let noise on a coefficient the real listeners
never move (``tongueOut``) dominate the distance.
"""

from __future__ import annotations

import numpy as np

from reactlib.data.corpus import Corpus
from reactlib.errors import DataError, UsageError
from reactlib.face import coeffs
from reactlib.metrics import emotion as emotion_maps
from reactlib.metrics import react, realism

SPACES = {coeffs.NUM_COEFFS: "coefficients", coeffs.NUM_EMOTION: "emotion"}


def check_predictions(pred, split, source: str = "predictions", items: int | None = None):
    """``pred`` as a float32 array, checked against ``split``: ``(N, M, T, D)`` with N the
    split's items (or its first ``items``), T its frames and D 58 or 25, and no NaN; ``source``
    names the file in errors."""
    pred = np.asarray(pred)
    n, frames = (len(split) if items is None else items), split.frames
    if pred.ndim != 4:
        raise DataError(
            f"{source}: predictions must be (N, M, T, D) = ({n}, M, {frames}, 58 or 25), got shape "
            f"{pred.shape}"
        )
    if pred.shape[0] != n:
        raise DataError(
            f"{source}: {pred.shape[0]} items but {n} expected (split {split.name!r} has "
            f"{len(split)}, pairs mirrored: {split.mirror}); shape {pred.shape}"
        )
    if pred.shape[2] != frames:
        raise DataError(
            f"{source}: {pred.shape[2]} frames per reaction but split {split.name!r} uses "
            f"{frames}; shape {pred.shape}"
        )
    if pred.shape[3] not in SPACES:
        raise DataError(
            f"{source}: {pred.shape[3]} values per frame; expected 58 coefficients or 25 emotion "
            f"values; shape {pred.shape}"
        )
    if pred.shape[1] < 1:
        raise DataError(f"{source}: no reactions (M = 0); shape {pred.shape}")
    if not np.issubdtype(pred.dtype, np.floating):
        raise DataError(f"{source}: predictions must be floating point, got {pred.dtype}")
    bad = ~np.isfinite(pred)
    if bad.any():
        item, reaction, frame, value = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} NaN or infinite values, first at item {item}, reaction "
            f"{reaction}, frame {frame}, value {value}"
        )
    return pred.astype(np.float32, copy=False)


def evaluate(
    pred,
    split,
    *,
    convention: str = "react2024",
    emotion_map=None,
    gt_through_map: bool = False,
    window: int = realism.SEAM_WINDOW,
    items: int | None = None,
    source: str = "predictions",
    progress=None,
) -> dict:
    """Every figure for ``pred`` against ``split`` (module docstring). ``emotion_map``: the
    coefficient -> emotion map for ``react2024`` (default: :func:`emotion.emotion_map` of the
    split's corpus, exact for SynthReact). Returns a JSON-ready dict: ``metrics`` (the six REACT
    numbers), ``realism_fd`` and ``smoothness`` (coefficient predictions only, else None), and
    what was used: ``convention``, ``space``, ``emotion_map``, ``gt_through_map``,
    ``neighbours`` and the sizes. ``items``: score only the split's first ``items`` items
    (predictions of ``generate --items``), with the appropriate-reaction sets cut to them."""
    react._check_convention(convention)
    if items is not None and not 1 <= items <= len(split):
        raise UsageError(f"items must be 1 to {len(split)} for split {split.name!r}, got {items}")
    count = len(split) if items is None else items
    pred = check_predictions(pred, split, source, count)
    space = SPACES[pred.shape[3]]
    if convention == "reactface" and space != "coefficients":
        raise UsageError(
            "the reactface convention scores 58-d coefficients; these predictions are 25-d "
            "emotion (use react2024 or clean)"
        )
    if gt_through_map and (space != "coefficients" or convention != "react2024"):
        raise UsageError("gt_through_map applies to coefficient predictions under react2024")
    used_map = None
    real_coeffs = split.stack("coeffs", "listener")[:count]
    real_speaker = split.stack("coeffs", "speaker")[:count]
    if convention == "react2024" or space == "emotion":
        scored_space = "emotion"
        if space == "coefficients":
            if emotion_map is None:
                emotion_map = emotion_maps.emotion_map(_corpus_of(split))
            used_map = emotion_map.describe()
            scored = emotion_map(pred)
        else:
            scored = pred
        if gt_through_map:
            listener = emotion_map(real_coeffs)
            speaker = emotion_map(real_speaker)
        else:
            listener = split.stack("emotion", "listener")[:count]
            speaker = split.stack("emotion", "speaker")[:count]
    else:
        scored_space = "coefficients"
        scored, listener, speaker = pred, real_coeffs, real_speaker
    neighbours = split.neighbours[:count, :count]
    metrics = react.react_metrics(
        scored, listener, speaker, neighbours, convention, progress=progress
    )
    fd = smooth = real_smooth = None
    if space == "coefficients":
        fd = realism.realism_fd(pred, real_coeffs)
        smooth = realism.smoothness(pred, window)
        real_smooth = realism.smoothness(real_coeffs, window)
    return {
        "convention": convention,
        "space": scored_space,
        "metrics": metrics,
        "realism_fd": fd,
        "smoothness": smooth,
        "smoothness_ground_truth": real_smooth,
        "emotion_map": used_map,
        "gt_through_map": bool(gt_through_map),
        "neighbours": split.neighbour_source,
        "split": split.name,
        "items": int(pred.shape[0]),
        "reactions": int(pred.shape[1]),
        "frames": int(pred.shape[2]),
    }


TABLE_COLUMNS = ("FRDvs", "FRVar", "FRDiv", "FD", "FRCorr", "FRDist", "FRSyn")
"""The columns of :func:`method_table`: ReactDiff's Table 1 order, FD (coefficient Frechet
distance) in FVD's place, and FRDist, which the paper does not print."""


def method_table(
    methods, split, *, convention: str = "react2024", dims=None, items: int | None = None, **kwargs
):
    """One row per method (``{name: pred (N, M, T, 58)}``, in order) of :data:`TABLE_COLUMNS`,
    each from :func:`evaluate` with the same settings. ``dims`` (e.g.
    :data:`reactlib.face.coeffs.EXPRESSION` or :data:`~reactlib.face.coeffs.POSE`) scores only those
    coefficients, as the paper's Tables 8 and 9 do; that is a coefficient-space score, so it needs
    the ``clean`` convention. FD is left empty for emotion predictions."""
    import pandas as pd

    if not methods:
        raise UsageError("method_table needs at least one method")
    rows = {}
    for name, pred in methods.items():
        pred = np.asarray(pred)
        if dims is not None:
            if convention != "clean":
                raise UsageError("scoring a subset of coefficients (dims) needs convention='clean'")
            result = _subset_scores(pred, split, dims, items)
        else:
            result = evaluate(pred, split, convention=convention, items=items, **kwargs)
        rows[name] = {**result["metrics"], "FD": result["realism_fd"]}
    table = pd.DataFrame.from_dict(rows, orient="index")[list(TABLE_COLUMNS)]
    table.index.name = "method"
    return table


def speaker_changes(base, other, split, *, items: int | None = None, **kwargs):
    """Per speaker, the change of every :func:`method_table` column from ``base`` to ``other``
    (both ``(N, M, T, 58)`` on the same speakers) that speaker alone makes: ``N (row(base with
    speaker k's reactions from other) - row(base))``, a DataFrame (speaker x
    :data:`TABLE_COLUMNS`). For the columns that are means over speakers (FRCorr, FRDist, FRDiv,
    FRVar; FRSyn nearly) the mean over speakers is the whole change exactly; FRDvs and FD pool the
    speakers, so theirs is the change speaker k makes, scaled alike. ``kwargs`` go to
    :func:`method_table` (``convention``...). N + 1 evaluations."""
    import pandas as pd

    base, other = np.asarray(base), np.asarray(other)
    count = len(base) if items is None else items
    if base.shape != other.shape:
        raise UsageError(f"base and other must have one shape, got {base.shape}, {other.shape}")
    if not 1 <= count <= len(base):
        raise UsageError(f"items must be 1 to {len(base)}, got {items}")
    base = base[:count]
    hybrids = {"base": base}
    for k in range(count):
        hybrid = base.copy()
        hybrid[k] = other[k]
        hybrids[k] = hybrid
    table = method_table(hybrids, split, items=count, **kwargs)
    changes = count * (table.drop(index="base") - table.loc["base"])
    changes.index = pd.Index(range(count), name="speaker")
    return changes


def bootstrap_over_speakers(per_speaker, *, draws: int = 2000, level: float = 0.95, seed=0):
    """The mean over speakers of ``per_speaker`` (a DataFrame, one row per speaker) and its
    percentile bootstrap interval (speakers drawn with replacement, ``draws`` times): a
    DataFrame with rows ``mean``, ``low`` and ``high``. With few speakers the interval is as
    wide as they differ (two speakers: about their range)."""
    import pandas as pd

    values = np.asarray(per_speaker, dtype=float)
    if values.ndim != 2 or len(values) < 1:
        raise UsageError(f"need one row per speaker, got shape {values.shape}")
    if not 0 < level < 1:
        raise UsageError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    means = values[picks].mean(axis=1)
    tail = (1 - level) / 2
    rows = {
        "mean": values.mean(axis=0),
        "low": np.quantile(means, tail, axis=0),
        "high": np.quantile(means, 1 - tail, axis=0),
    }
    return pd.DataFrame(rows, index=getattr(per_speaker, "columns", None)).T


def _subset_scores(pred, split, dims, items):
    count = len(split) if items is None else items
    pred = check_predictions(pred, split, items=count)
    if pred.shape[3] != coeffs.NUM_COEFFS:
        raise UsageError("scoring a subset of coefficients needs coefficient predictions")
    listener = split.stack("coeffs", "listener")[:count]
    speaker = split.stack("coeffs", "speaker")[:count]
    cut = (Ellipsis, dims)
    metrics = react.react_metrics(
        pred[cut], listener[cut], speaker[cut], split.neighbours[:count, :count], "clean"
    )
    return {"metrics": metrics, "realism_fd": realism.realism_fd(pred[cut], listener[cut])}


def _corpus_of(split):
    return Corpus(split.root)
