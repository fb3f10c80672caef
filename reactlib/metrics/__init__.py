"""How good are generated reactions? The REACT metrics in three conventions, realism and smoothness.

- :mod:`reactlib.metrics.react`: FRCorr, FRDist, FRDiv, FRVar, FRDvs and FRSyn
  (:func:`react_metrics`), exactly as the REACT 2024 challenge code computes them (``react2024``),
  as ReactFace's evaluation script does (``reactface``), or a documented ``clean`` variant; with
  the exact DTW, CCC and TLCC they are built on.
- :mod:`reactlib.metrics.realism`: the coefficient Frechet distance (a realism score in
  coefficient space; not FVD) and smoothness (seam jump, velocity, jerk).
- :mod:`reactlib.metrics.video`: VBench's video metrics on rendered reactions, each with a
  weight-free CPU substitute for its learned part (``*_cpu``).
"""

from reactlib.metrics import emotion, evaluation, paper, react, realism, video
from reactlib.metrics.react import (
    CONVENTIONS,
    EMOTION_BLOCKS,
    ccc,
    dtw,
    react_metrics,
    tlcc_offset,
)

__all__ = [
    "CONVENTIONS",
    "EMOTION_BLOCKS",
    "ccc",
    "dtw",
    "emotion",
    "evaluation",
    "paper",
    "react",
    "react_metrics",
    "realism",
    "tlcc_offset",
    "video",
]
