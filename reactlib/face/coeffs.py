"""The 58-d face-coefficient vector, the 25-d emotion vector, and their normalisation.

A REACT 2024 frame is 58 FaceVerse-v2 coefficients::

    [0:52]   expression: the 52 ARKit blendshapes, in alphabetical order
    [52:55]  rotation: pitch, yaw, roll (radians)
    [55:58]  translation: x, y, z (z is the distance from the camera)

The blendshape order is the one the official ReactDiff code indexes its AU pairs with (alphabetical
ARKit); check it against ``exp_name_list`` of FaceVerse if you have the model file. The AU pairs are
the ReactDiff paper's Table 17 as the official code indexes them: 20 symmetric, 30 co-occurring and
58 mutually exclusive pairs. ``(mouthFrownLeft, mouthFrownRight)`` is listed both as symmetric and
as mutually exclusive there; we keep both, as the paper's constraint does.

Pose conventions differ between sources. In ReactLab's camera convention (SynthReact and
:mod:`reactlib.face.render`) zero rotation is a frontal face and ``z`` is the camera distance in the
renderer's units (:data:`NEUTRAL_DISTANCE` for the neutral face). FaceVerse data stores pitch near
pi instead; :func:`faceverse_to_camera` converts.

The emotion vector is 15 AU occurrences, valence and arousal, and 8 expression probabilities.
:func:`emotion_from_coeffs` is the one deterministic map from coefficients to emotion: SynthReact
writes its emotion files with it, and it is the map to score generated reactions with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reactlib.errors import UsageError

FPS = 25
"""Frames per second of every REACT 2024 and SynthReact clip."""

EXPRESSION_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut",
)  # fmt: skip
ROTATION_NAMES: tuple[str, ...] = ("pitch", "yaw", "roll")
TRANSLATION_NAMES: tuple[str, ...] = ("tx", "ty", "tz")
COEFF_NAMES: tuple[str, ...] = EXPRESSION_NAMES + ROTATION_NAMES + TRANSLATION_NAMES

NUM_EXPRESSION = 52
NUM_COEFFS = 58
EXPRESSION = slice(0, 52)
ROTATION = slice(52, 55)
TRANSLATION = slice(55, 58)
POSE = slice(52, 58)
"""The six head-pose dimensions PosNet works on."""

NEUTRAL_DISTANCE = 1.84
"""Camera distance of the neutral face in ReactLab's camera convention (about the REACT data's
mean translation z)."""

_INDEX = {name: i for i, name in enumerate(COEFF_NAMES)}


def index(name: str) -> int:
    """Position of a coefficient by name (``"jawOpen"`` -> 24, ``"yaw"`` -> 53)."""
    try:
        return _INDEX[name]
    except KeyError:
        raise KeyError(
            f"unknown coefficient {name!r}; valid names: {', '.join(COEFF_NAMES)}"
        ) from None


def neutral(frames: int | None = None) -> np.ndarray:
    """The neutral frontal face at :data:`NEUTRAL_DISTANCE`: ``(58,)``, or ``(frames, 58)``."""
    x = np.zeros(NUM_COEFFS, dtype=np.float32)
    x[index("tz")] = NEUTRAL_DISTANCE
    return x if frames is None else np.tile(x, (frames, 1))


def faceverse_to_camera(x: np.ndarray) -> np.ndarray:
    """FaceVerse-stored pose (pitch near pi) to ReactLab's camera convention (pitch near 0).

    Pitch is wrapped to ``(-pi, pi]`` after removing the pi offset; nothing else changes. The
    translation scale of a FaceVerse fit is close to ours (mean z 1.84), so it is kept.
    """
    y = np.array(x, dtype=np.float32, copy=True)
    pitch = y[..., index("pitch")] - np.pi
    y[..., index("pitch")] = np.angle(np.exp(1j * pitch))
    return y


# --- AU pairs (ReactDiff Table 17, as indexed by the official code) -----------------------

SYMMETRIC_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (f"{stem}Left", f"{stem}Right")
    for stem in (
        "browDown", "browOuterUp", "cheekSquint", "eyeBlink", "eyeLookDown", "eyeLookIn",
        "eyeLookOut", "eyeLookUp", "eyeSquint", "eyeWide", "jaw", "mouthDimple", "mouthFrown",
        "mouth", "mouthLowerDown", "mouthPress", "mouthSmile", "mouthStretch", "mouthUpperUp",
        "noseSneer",
    )
)  # fmt: skip


def _sided(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Expand ``("browOuterUp*", "eyeLookUp*")`` into its Left and Right pairs, in that order."""
    out = []
    for a, b in pairs:
        if "*" in a or "*" in b:
            out += [(a.replace("*", s), b.replace("*", s)) for s in ("Left", "Right")]
        else:
            out.append((a, b))
    return tuple(out)


CO_OCCURRING_PAIRS: tuple[tuple[str, str], ...] = _sided(
    [
        ("browOuterUp*", "eyeLookUp*"), ("eyeLookDown*", "browDown*"), ("eyeBlink*", "browDown*"),
        ("eyeWide*", "browOuterUp*"), ("eyeWide*", "browInnerUp"), ("cheekSquint*", "mouth*"),
        ("cheekSquint*", "mouthSmile*"), ("cheekSquint*", "mouthFrown*"),
        ("cheekSquint*", "mouthDimple*"), ("cheekSquint*", "mouthUpperUp*"),
        ("cheekSquint*", "mouthPress*"), ("browOuterUp*", "mouthSmile*"),
        ("noseSneer*", "cheekSquint*"), ("mouthFrown*", "browDown*"),
        ("mouthUpperUp*", "browDown*"),
    ]
)  # fmt: skip

MUTUALLY_EXCLUSIVE_PAIRS: tuple[tuple[str, str], ...] = _sided(
    [
        ("browDown*", "browOuterUp*"), ("browDown*", "eyeLookUp*"), ("browDown*", "eyeWide*"),
        ("browInnerUp", "eyeBlink*"), ("eyeLookDown*", "eyeLookUp*"), ("eyeLookIn*", "eyeLookOut*"),
        ("eyeLookIn*", "eyeSquint*"), ("eyeWide*", "eyeBlink*"), ("jawOpen", "mouthClose"),
        ("mouthClose", "mouthUpperUp*"), ("mouthClose", "tongueOut"),
        ("mouthClose", "mouthLowerDown*"), ("mouthFrown*", "mouthSmile*"),
        ("mouthFrown*", "mouthUpperUp*"), ("mouthFrown*", "mouthFunnel"),
        ("mouthFrownLeft", "mouthFrownRight"), ("mouthFunnel", "mouthLowerDown*"),
        ("mouthFunnel", "mouthRollLower"), ("mouthFunnel", "mouthSmile*"),
        ("mouthFunnel", "tongueOut"), ("mouthLowerDown*", "mouthPress*"),
        ("mouthLowerDown*", "mouthUpperUp*"), ("mouthLowerDown*", "mouthSmile*"),
        ("mouthPress*", "mouthStretch*"), ("mouthPress*", "mouthUpperUp*"),
        ("mouthPucker", "jawOpen"), ("mouthFunnel", "jawOpen"), ("mouthPucker", "mouthUpperUp*"),
        ("mouthPucker", "mouthLowerDown*"), ("mouthRollLower", "mouthRollUpper"),
        ("mouthShrugLower", "mouthShrugUpper"), ("mouthShrugLower", "tongueOut"),
        ("mouthSmile*", "mouthStretch*"), ("mouthSmile*", "mouthUpperUp*"),
    ]
)  # fmt: skip

PAIR_KINDS = ("symmetric", "co_occurring", "mutually_exclusive")


def pairs(kind: str) -> tuple[tuple[str, str], ...]:
    """The Table 17 pairs of one kind, by name."""
    table = {
        "symmetric": SYMMETRIC_PAIRS,
        "co_occurring": CO_OCCURRING_PAIRS,
        "mutually_exclusive": MUTUALLY_EXCLUSIVE_PAIRS,
    }
    if kind not in table:
        raise ValueError(f"unknown pair kind {kind!r}; valid kinds: {', '.join(PAIR_KINDS)}")
    return table[kind]


def pair_indices(kind: str) -> np.ndarray:
    """The Table 17 pairs of one kind as an ``(P, 2)`` int array of coefficient positions."""
    return np.array([(index(a), index(b)) for a, b in pairs(kind)], dtype=np.int64)


# --- Emotion-25 ----------------------------------------------------------------------------

AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23",
    "AU24", "AU25", "AU26",
)  # fmt: skip
AFFECT_NAMES: tuple[str, ...] = ("valence", "arousal")
EXPRESSION_CLASSES: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)  # fmt: skip
EMOTION_NAMES: tuple[str, ...] = AU_NAMES + AFFECT_NAMES + EXPRESSION_CLASSES
NUM_EMOTION = 25
EMOTION_BLOCKS: dict[str, slice] = {
    "au": slice(0, 15),
    "affect": slice(15, 17),
    "expression": slice(17, 25),
}
"""The three blocks FRDist computes its DTW over separately."""

AU_SOURCES: dict[str, tuple[str, ...]] = {
    "AU1": ("browInnerUp",),
    "AU2": ("browOuterUpLeft", "browOuterUpRight"),
    "AU4": ("browDownLeft", "browDownRight"),
    "AU6": ("cheekSquintLeft", "cheekSquintRight"),
    "AU7": ("eyeSquintLeft", "eyeSquintRight"),
    "AU9": ("noseSneerLeft", "noseSneerRight"),
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),
    "AU17": ("mouthShrugLower",),
    "AU23": ("mouthRollLower", "mouthRollUpper"),
    "AU24": ("mouthPressLeft", "mouthPressRight"),
    "AU25": ("mouthLowerDownLeft", "mouthLowerDownRight"),
    "AU26": ("jawOpen",),
}
"""FACS action unit -> the ARKit blendshapes whose mean is its intensity."""

AU_THRESHOLD = 0.2
"""Intensity at which an AU counts as half present."""
AU_SHARPNESS = 20.0
"""Slope of the logistic that turns an AU intensity into an occurrence in (0, 1)."""

_AU_SOURCE_INDEX = [np.array([index(n) for n in AU_SOURCES[au]]) for au in AU_NAMES]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def au_intensities(x: np.ndarray) -> np.ndarray:
    """``(..., 58)`` -> ``(..., 15)`` AU intensities: the mean of each AU's blendshapes."""
    x = np.asarray(x, dtype=np.float64)
    return np.stack([x[..., idx].mean(axis=-1) for idx in _AU_SOURCE_INDEX], axis=-1)


def emotion_from_coeffs(x: np.ndarray) -> np.ndarray:
    """The deterministic coefficient -> emotion-25 map, frame by frame: ``(..., 58) -> (..., 25)``.

    - **AU occurrence** (15): ``sigmoid(AU_SHARPNESS * (a - AU_THRESHOLD))`` of the AU intensity
      ``a`` (:data:`AU_SOURCES`), so values are near 0 or 1, like the REACT labels, yet smooth.
    - **Valence** = ``tanh(2 (AU12 + 0.5 AU6 - AU15 - 0.7 AU4 - 0.7 AU9))``, in (-1, 1).
    - **Arousal** = ``tanh(2 (AU1 + AU2 + eyeWide + 0.6 AU26 + 0.5 AU12 + 0.5 AU4 - 0.3))``: calm
      faces are slightly negative, wide eyes, raised brows and open mouths raise it.
    - **Expression probabilities** (8): a softmax over linear scores of the intensities; the
      neutral score is a constant 2.0 and every other score is 0 on a relaxed face, so the
      neutral face is mostly "Neutral" (0.51, against 0.07 for each of the seven others).

    The map uses only the expression block; head pose does not change emotion. SynthReact writes
    its emotion files with it (so they are exact); scoring generated reactions with the same map
    keeps their emotion exact too, with no regressor's error in between.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != NUM_COEFFS:
        raise ValueError(f"expected (..., {NUM_COEFFS}) coefficients, got shape {x.shape}")
    a = au_intensities(x)
    au = dict(zip(AU_NAMES, np.moveaxis(a, -1, 0), strict=True))
    wide = x[..., [index("eyeWideLeft"), index("eyeWideRight")]].mean(axis=-1)
    stretch = x[..., [index("mouthStretchLeft"), index("mouthStretchRight")]].mean(axis=-1)
    smile_asym = np.abs(x[..., index("mouthSmileLeft")] - x[..., index("mouthSmileRight")])

    occurrence = _sigmoid(AU_SHARPNESS * (a - AU_THRESHOLD))
    valence = np.tanh(2.0 * (au["AU12"] + 0.5 * au["AU6"] - au["AU15"] - 0.7 * au["AU4"]
                             - 0.7 * au["AU9"]))  # fmt: skip
    arousal = np.tanh(2.0 * (au["AU1"] + au["AU2"] + wide + 0.6 * au["AU26"] + 0.5 * au["AU12"]
                             + 0.5 * au["AU4"] - 0.3))  # fmt: skip
    scores = np.stack(
        [
            np.full_like(au["AU12"], 2.0),  # Neutral
            6.0 * au["AU12"] + 2.0 * au["AU6"],  # Happy
            6.0 * au["AU15"] + 2.0 * au["AU1"] * (1.0 - au["AU12"]),  # Sad
            4.0 * wide + 3.0 * au["AU2"] + 2.0 * au["AU26"],  # Surprise
            4.0 * wide * au["AU1"] + 4.0 * stretch,  # Fear
            6.0 * au["AU9"] + 3.0 * au["AU10"],  # Disgust
            6.0 * au["AU4"] + 2.0 * au["AU24"],  # Anger
            8.0 * smile_asym + 2.0 * au["AU14"],  # Contempt
        ],
        axis=-1,
    )
    scores -= scores.max(axis=-1, keepdims=True)
    expression = np.exp(scores)
    expression /= expression.sum(axis=-1, keepdims=True)
    out = np.concatenate([occurrence, valence[..., None], arousal[..., None], expression], axis=-1)
    return out.astype(np.float32)


# --- Normalisation -------------------------------------------------------------------------


def mean_frame(frames) -> np.ndarray:
    """The mean frame ``(58,)`` float64 over every frame of ``frames (..., 58)`` (REACT's
    mean-frame baseline, ``B_MeanFr``, shows it at every frame)."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim < 1 or frames.shape[-1] != NUM_COEFFS:
        raise UsageError(
            f"frames must be (..., {NUM_COEFFS}) coefficients, got shape {frames.shape}"
        )
    if frames.size == 0:
        raise UsageError("no frames to average")
    return frames.reshape(-1, NUM_COEFFS).mean(axis=0)


NORMALISATION_MODES = ("mean", "zscore")
STD_FLOOR = 1e-3
"""Smallest standard deviation used when z-scoring, so constant coefficients stay finite."""


@dataclass(frozen=True)
class Normalizer:
    """Per-coefficient normalisation: ``mean`` subtracts the mean (the REACT baselines and
    PFLPosNet), ``zscore`` also divides by the standard deviation (ReactDiff)."""

    mean: np.ndarray
    std: np.ndarray
    mode: str = "zscore"

    def __post_init__(self):
        if self.mode not in NORMALISATION_MODES:
            raise ValueError(
                f"unknown normalisation mode {self.mode!r}; valid: {', '.join(NORMALISATION_MODES)}"
            )
        for name in ("mean", "std"):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            if value.ndim != 1 or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"Normalizer.{name} must be a finite 1-d vector, got {value.shape}"
                )
            object.__setattr__(self, name, value)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} differ in shape")
        if np.any(self.std <= 0):
            raise ValueError("Normalizer.std must be positive")

    @classmethod
    def fit(cls, x: np.ndarray, mode: str = "zscore") -> Normalizer:
        """Statistics over every frame of ``x`` (``(..., D)``); std is floored at STD_FLOOR."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot fit a Normalizer on data with NaN or infinite values")
        return cls(x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR), mode)

    def _scale(self):
        return self.std if self.mode == "zscore" else np.ones_like(self.std)

    def normalize(self, x):
        """Works on numpy arrays and torch tensors of shape ``(..., D)``."""
        mean, scale = self._as(x, self.mean), self._as(x, self._scale())
        return (x - mean) / scale

    def denormalize(self, x):
        mean, scale = self._as(x, self.mean), self._as(x, self._scale())
        return x * scale + mean

    @staticmethod
    def _as(like, value: np.ndarray):
        if isinstance(like, np.ndarray):
            return value.astype(like.dtype if like.dtype.kind == "f" else np.float32)
        import torch

        if isinstance(like, torch.Tensor):
            return torch.as_tensor(value, dtype=like.dtype, device=like.device)
        return value

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        # Through a file object: np.savez would append ".npz" to a bare name, and the returned
        # path would not exist.
        with path.open("wb") as f:
            np.savez(f, mean=self.mean, std=self.std, mode=np.array(self.mode))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        with np.load(path) as f:
            return cls(f["mean"], f["std"], str(f["mode"]))
