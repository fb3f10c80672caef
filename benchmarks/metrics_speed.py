"""How long the REACT metrics take on a REACT-sized evaluation, and the DTW per pair.

    python -m reactlib bench metrics [--n 1124] [--m 10] [--frames 750] [--neighbours 50]
    python benchmarks/metrics_speed.py [same options]

Builds a synthetic evaluation the size of REACT 2024's test set (N = 1124 speaker items, M = 10
reactions of T = 750 frames, about 50 appropriate reactions per item) in the 25-d emotion layout
(15 binary AU occurrences from thresholded smooth noise, valence and arousal in [-1, 1], 8
expression probabilities from a softmax; predictions are an appropriate real reaction plus
smooth noise, so the nearest neighbour is not trivially the item itself), then:

* times the whole ``react2024`` suite (:func:`reactlib.metrics.react_metrics`) over all N items;
* times, on the same machine in the same run, one FRDist pair (the three weighted block DTWs of
  two 750-frame sequences, no pruning) with ``reactlib.metrics``' compiled kernel against a plain
  numpy reference (one row at a time, the moves from the row above vectorised and the move
  along the row as a running minimum of ``v - cumsum(cost)``), interleaved
  (``harness.paired_times``), after checking that both give the same distance;
* counts how many of the dynamic programs of the minimum over neighbours the pruning skipped
  or stopped early, from the per-item time against the unpruned per-pair time.

Writes ``benchmarks/results/metrics_speed.json``; nothing is asserted. The challenge code's
cost for comparison (reference notes, measured on this machine kind with tslearn): about 12 ms
per FRDist pair, 2.6 ms per CCC pair and 80 ms per FRSyn prediction, single process.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import paired_times, write_results

from reactlib.metrics import react

OFFICIAL_MS = {"frdist_pair": 12.0, "ccc_pair": 2.6, "frsyn_prediction": 80.0}
"""The challenge code's single-process costs on this machine kind (reference notes)."""


def smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed over time (axis -2)."""
    x = gaussian_filter1d(rng.standard_normal(shape), sigma, axis=-2)
    return x / x.std()


def emotion(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Emotion-25-shaped sequences ``shape + (T, 25)`` (module docstring)."""
    *lead, frames = shape
    aus = (smooth(rng, (*lead, frames, 15), 12) > 1.0).astype(np.float64)
    valence_arousal = np.tanh(0.6 * smooth(rng, (*lead, frames, 2), 20))
    logits = 1.5 * smooth(rng, (*lead, frames, 8), 15)
    expressions = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return np.concatenate([aus, valence_arousal, expressions], axis=-1)


def evaluation(n: int, m: int, frames: int, neighbours: int, seed: int = 0):
    """``pred (n, m, T, 25)``, ``listener`` and ``speaker`` ``(n, T, 25)``, ``neighbours``."""
    rng = np.random.default_rng(seed)
    listener = emotion(rng, (n, frames))
    speaker = emotion(rng, (n, frames))
    matrix = np.zeros((n, n), dtype=bool)
    for k in range(n):
        others = rng.choice(n, size=min(neighbours, n) - 1, replace=False)
        matrix[k, others] = True
        matrix[k, k] = True
    pred = np.empty((n, m, frames, 25))
    for k in range(n):
        chosen = rng.choice(np.flatnonzero(matrix[k]), size=m)
        pred[k] = listener[chosen] + 0.3 * smooth(rng, (m, frames, 25), 8)
    return pred, listener, speaker, matrix


def plain_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """The plain reference: the textbook dynamic program, one row at a time in numpy."""
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
    n, m = cost.shape
    prev = np.cumsum(cost[0])
    for i in range(1, n):
        row = cost[i]
        vertical = row + np.minimum(prev, np.concatenate([[np.inf], prev[:-1]]))
        # cur[j] = min over k <= j of vertical[k] + row[k+1] + ... + row[j]
        run = np.cumsum(row)
        prev = run + np.minimum.accumulate(vertical - run)
    return math.sqrt(max(prev[-1], 0.0))


def plain_frdist_pair(a: np.ndarray, b: np.ndarray) -> float:
    return sum(w * plain_dtw(a[:, s:e], b[:, s:e]) for s, e, w in react.EMOTION_BLOCKS)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1124, help="speaker items (default 1124)")
    parser.add_argument("--m", type=int, default=10, help="reactions per item (default 10)")
    parser.add_argument("--frames", type=int, default=750, help="frames per clip (default 750)")
    parser.add_argument("--neighbours", type=int, default=50, help="per item (default 50)")
    parser.add_argument("--repeats", type=int, default=5, help="per-pair repetitions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if min(args.n, args.m, args.neighbours, args.repeats) < 1 or args.frames <= react.MAX_LAG + 1:
        parser.error("--n, --m, --neighbours, --repeats must be >= 1 and --frames > 50")

    started = time.perf_counter()
    pred, listener, speaker, matrix = evaluation(
        args.n, args.m, args.frames, args.neighbours, args.seed
    )
    built_s = time.perf_counter() - started
    pairs = int(matrix.sum()) * args.m

    # Compile once outside the timings (numba caches the machine code on disk after that).
    started = time.perf_counter()
    react.react_metrics(pred[:2], listener[:2], speaker[:2], matrix[:2, :2], "react2024")
    compile_s = time.perf_counter() - started

    a, b = pred[0, 0], listener[1]
    starts, stops, weights = react._blocks("react2024", 25)
    b_t = np.ascontiguousarray(b.T)
    ours_value = react._weighted_dtw(a, b_t, starts, stops, weights, np.inf)
    plain_value = plain_frdist_pair(a, b)
    paired = paired_times(
        lambda: react._weighted_dtw(a, b_t, starts, stops, weights, np.inf),
        lambda: plain_frdist_pair(a, b),
        args.repeats,
    )

    progress = None
    if not args.quiet:
        from tqdm import tqdm

        def progress(items):
            return tqdm(items, desc="react2024 suite", unit="item")

    started = time.perf_counter()
    figures = react.react_metrics(pred, listener, speaker, matrix, "react2024", progress=progress)
    suite_s = time.perf_counter() - started
    per_pair_unpruned = paired.ours_median
    result = {
        "suite_s": suite_s,
        "suite_minutes": suite_s / 60,
        "pairs": pairs,
        "suite_s_per_pair": suite_s / pairs,
        "frdist_pair_ours_s": per_pair_unpruned,
        "frdist_pair_plain_s": paired.reference_median,
        "frdist_pair_speedup": 1 / paired.ratio,
        "frdist_pair": paired.summary(),
        "pair_values_agree": bool(abs(ours_value - plain_value) <= 1e-9 * plain_value),
        "pair_value": ours_value,
        "official_ms": OFFICIAL_MS,
        "official_estimate_cpu_s": pairs * OFFICIAL_MS["frdist_pair"] / 1000
        + pairs * OFFICIAL_MS["ccc_pair"] / 1000
        + args.n * OFFICIAL_MS["frsyn_prediction"] / 1000,
        "build_s": built_s,
        "compile_s": compile_s,
        "threads": react.default_threads(),
        "metrics": figures,
    }
    settings = {k: getattr(args, k) for k in ("n", "m", "frames", "neighbours", "repeats", "seed")}
    path = write_results("metrics_speed", settings, result, results_dir=args.out)
    print(
        f"react2024 suite on N={args.n}, M={args.m}, T={args.frames}, {pairs} (reaction, "
        f"neighbour) pairs: {suite_s:.1f} s ({suite_s / 60:.2f} min, {react.default_threads()} "
        f"threads); official code estimate {result['official_estimate_cpu_s'] / 60:.0f} CPU-min"
    )
    print(
        f"one FRDist pair, unpruned: {per_pair_unpruned * 1e3:.2f} ms ours, "
        f"{paired.reference_median * 1e3:.1f} ms plain numpy ({result['frdist_pair_speedup']:.1f}x)"
        f"; values agree: {result['pair_values_agree']}"
    )
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
