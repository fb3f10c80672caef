"""How good are generated reactions? The REACT metrics in three conventions, realism and smoothness.

- :mod:`reactlib.metrics.react`: FRCorr, FRDist, FRDiv, FRVar, FRDvs and FRSyn
  (:func:`react_metrics`), exactly as the REACT 2024 challenge code computes them (``react2024``),
  as ReactFace's evaluation script does (``reactface``), or a documented ``clean`` variant; with
  the exact DTW, CCC and TLCC they are built on.
- :mod:`reactlib.metrics.realism`: the coefficient Frechet distance (a realism score in
  coefficient space; not FVD) and smoothness (seam jump, velocity, jerk).
- :mod:`reactlib.metrics.emotion`: coefficients to emotion-25 (SynthReact's exact map, or a
  ridge regression fitted on a corpus).
- :mod:`reactlib.metrics.evaluation`: a prediction file scored against a split.
- :mod:`reactlib.metrics.video`: VBench's video metrics on rendered reactions, each with a
  weight-free CPU substitute for its learned part (``*_cpu``).
- :mod:`reactlib.metrics.paper`: both papers' tables as printed, to show beside ours.

The most used names of :mod:`reactlib.metrics.react` are also here (``rl.metrics.dtw``).
"""

from reactlib._lazy import exports

__getattr__, __dir__ = exports(
    __name__,
    {
        name: f"reactlib.metrics.react:{name}"
        for name in ("CONVENTIONS", "EMOTION_BLOCKS", "ccc", "dtw", "react_metrics", "tlcc_offset")
    },
)
