"""The REACT metrics, exact and fast, in the three conventions the literature uses.

Six numbers judge M generated reactions ``pred (N, M, T, D)`` to N speaker clips, given the
ground-truth listeners ``listener (N, T, D)``, the speakers ``speaker (N, T, D)`` and the
appropriateness matrix ``neighbours (N, N)`` (row k: the items j whose real listener reaction
``listener[j]`` is an appropriate reaction to speaker k; the REACT challenge ships it):

============  ================================================================================
FRCorr        appropriateness: for each reaction, the best concordance (CCC, averaged over the
              D channels) with any appropriate real reaction
FRDist        appropriateness: for each reaction, the smallest DTW distance to any appropriate
              real reaction
FRDiv         diversity of the M reactions to one speaker: mean squared distance between pairs
FRVar         diversity over time: the variance of each channel over the frames
FRDvs         diversity across speakers: reaction i to speaker k against reaction i to speaker k'
FRSyn         synchrony: the lag (frames) of the peak of the speaker-reaction cross-correlation
============  ================================================================================

The conventions (:data:`CONVENTIONS`) differ in ways that change the numbers:

- ``react2024``: the REACT 2024 challenge code, quirks included, on the 25-d emotion vectors
  (15 AU occurrences, valence and arousal, 8 expression probabilities). FRCorr and FRDist are
  *sums* over the M reactions (FRCorr up to M, not 1). FRDist weighs the DTW of the three
  blocks by 1/15, 1 and 1/8 (:data:`EMOTION_BLOCKS`). CCC uses a Pearson correlation set to 0
  on a constant channel, so a perfect copy of a clip in which some AU never fires scores below 1,
  and an epsilon of 1e-8. FRSyn scores only the *first* of the M reactions (the challenge's
  multiprocessing worker returns inside its loop), and a NaN correlation at any lag (a channel
  constant over the overlap) wins the argmax, as ``torch.argmax`` on CPU returns the first NaN.
- ``reactface``: ReactFace's evaluation script (written by ReactDiff's authors) on the 58-d
  coefficients: as ``react2024`` but FRCorr and FRDist are multiplied by 10, CCC's epsilon is
  1e-50, and FRDist is one DTW over all D channels. FRDvs divides by ``N (N - 1) M``, which is
  the challenge's ``1 / M`` average written out.
- ``clean``: means over the M reactions (FRCorr in [-1, 1]), FRSyn over all M reactions, and
  NaN-robust: a channel whose CCC or correlation is undefined (0 / 0: constant on both sides) is
  left out of the mean over channels instead of counted as 0 or as the worst lag. FRDist uses the
  emotion blocks when D = 25 and one DTW over all channels otherwise.

FRDiv, FRVar (the unbiased variance over time, as ``torch.var``) and FRDvs are the same in every
convention.

How it is fast (the challenge code takes about 100 CPU-minutes on a REACT-sized test set):

- **DTW** is the exact dynamic program, compiled with numba: the local cost is the squared
  Euclidean distance between frames, steps (1, 0), (0, 1) and (1, 1), no band, and the result is
  the square root of the minimal path sum (what ``tslearn.metrics.dtw`` returns). Neither
  tslearn (6 to 7 ms a pair, plus 6 s of JIT in every process) nor dtaidistance (9 ms for a
  15-d pair of 750 frames; it computes the multivariate cost inside its inner loop) was faster
  than the kernel here, which also prunes (below); both are used only as definitions.
- **The minimum over appropriate reactions is pruned exactly.** For one generated reaction the
  candidates are visited in order of their Euclidean distance (the diagonal warping path, so an
  upper bound of their DTW), and the smallest of those bounds is the first best-so-far. Each
  block's dynamic program stops as soon as every cell of a row already costs more than what is
  left of the best so far: every warping path crosses every row, costs only add up, and the
  weights and the square root are increasing, so that candidate cannot be strictly better. The
  minimum is therefore the one an exhaustive search finds, bit for bit.
- **CCC** against all appropriate reactions of a speaker at once from per-channel moments.
- **FRSyn**'s 99 lagged correlations per channel from one FFT cross-correlation and prefix sums,
  with constant overlaps found exactly (from the first and last frame where a channel changes), so
  the NaN rules of the official code hold without computing 99 x D ``corrcoef`` calls.
- FRDiv and FRDvs from squared deviations about the mean (``sum_{i != j} |a_i - a_j|^2 =
  2 M sum_i |a_i - mean|^2``, exact, never negative, stable under a large offset), FRDvs with
  Welford's running mean over items, so memory does not grow with N.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numba
import numpy as np

from reactlib.errors import UsageError

CONVENTIONS = ("react2024", "reactface", "clean")
"""The metric conventions :func:`react_metrics` computes (module docstring)."""

METRIC_NAMES = ("FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "FRSyn")

EMOTION_DIMS = 25
COEFF_DIMS = 58
EMOTION_BLOCKS = ((0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8))
"""FRDist's blocks of the 25-d emotion vector ``(start, stop, weight)``: the 15 AU occurrences,
valence and arousal, the 8 expression probabilities; each block's DTW is weighted so that every
block counts about the same."""

MAX_LAG = 49
"""FRSyn's lags run from -49 to 49 frames (2 s at 25 fps, minus one)."""

_CCC_EPSILON = {"react2024": 1e-8, "reactface": 1e-50}
_SCALE = {"react2024": 1.0, "reactface": 10.0, "clean": 1.0}


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise UsageError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def _as_float64(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise UsageError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x.astype(np.float64, copy=False)


# --- CCC ------------------------------------------------------------------------------------


def _ccc_from_moments(mean_a, var_a, mean_b, var_b, cov, constant, convention):
    """CCC per channel from population moments (broadcast arrays); ``constant`` marks channels
    that are constant in either sequence (exactly)."""
    denominator = var_a + var_b + (mean_a - mean_b) ** 2
    if convention == "clean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                denominator > 0, 2 * cov / np.where(denominator > 0, denominator, 1), np.nan
            )
    sd = np.sqrt(var_a * var_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(constant, 0.0, cov / np.where(constant, 1.0, sd))
    rho = np.clip(rho, -1.0, 1.0)
    return 2 * rho * sd / (denominator + _CCC_EPSILON[convention])


def _channel_moments(x: np.ndarray):
    """Population mean and variance over time (axis -2) and whether each channel is constant."""
    mean = x.mean(axis=-2)
    var = x.var(axis=-2)
    constant = x.max(axis=-2) == x.min(axis=-2)
    return mean, var, constant


def ccc(a, b, convention: str = "clean") -> np.ndarray:
    """Concordance correlation ``(...)`` between sequences ``a`` and ``b`` (broadcastable
    ``(..., T, D)``), averaged over the D channels as the convention says: ``react2024`` and
    ``reactface`` count a channel constant in either sequence as 0 (the Pearson factor is zeroed)
    with their epsilons; ``clean`` is ``2 cov / (var_a + var_b + (mean_a - mean_b)^2)`` per
    channel, NaN where that is 0 / 0, and the mean over the channels where it is defined."""
    _check_convention(convention)
    a, b = _as_float64(a, "a"), _as_float64(b, "b")
    a, b = np.broadcast_arrays(a, b)
    if a.ndim < 2 or a.shape[-2] < 1:
        raise UsageError(f"ccc needs (..., T, D) sequences, got shape {a.shape}")
    mean_a, var_a, const_a = _channel_moments(a)
    mean_b, var_b, const_b = _channel_moments(b)
    cov = ((a - mean_a[..., None, :]) * (b - mean_b[..., None, :])).mean(axis=-2)
    per_channel = _ccc_from_moments(
        mean_a, var_a, mean_b, var_b, cov, const_a | const_b, convention
    )
    return _mean_channels(per_channel, convention)


def _mean_channels(values: np.ndarray, convention: str) -> np.ndarray:
    if convention != "clean":
        return values.mean(axis=-1)
    defined = np.isfinite(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ccc_against(pred: np.ndarray, cands: np.ndarray, convention: str) -> np.ndarray:
    """CCC ``(M, J)`` of every reaction ``pred (M, T, D)`` with every candidate ``(J, T, D)``."""
    t = pred.shape[1]
    mean_p, var_p, const_p = _channel_moments(pred)
    mean_c, var_c, const_c = _channel_moments(cands)
    centred_p = pred - mean_p[:, None]
    centred_c = cands - mean_c[:, None]
    cov = np.einsum("mtd,jtd->mjd", centred_p, centred_c, optimize=True) / t
    per_channel = _ccc_from_moments(
        mean_p[:, None],
        var_p[:, None],
        mean_c[None],
        var_c[None],
        cov,
        const_p[:, None] | const_c[None],
        convention,
    )
    return _mean_channels(per_channel, convention)


# --- DTW ------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _cost_row(a, i, b_t, start, stop, row):
    """``row[j] = |a[i, start:stop] - b[j, start:stop]|^2`` for every frame j of ``b``, given
    transposed (``b_t (D, m)``), so that the loop over j is contiguous and vectorises. Channels
    are taken four at a time, so that the row is loaded and stored once per four channels."""
    m = row.shape[0]
    d = start
    if stop - start < 4:
        row[:] = 0.0
    while d + 4 <= stop:
        a0, a1, a2, a3 = a[i, d], a[i, d + 1], a[i, d + 2], a[i, d + 3]
        c0, c1, c2, c3 = b_t[d], b_t[d + 1], b_t[d + 2], b_t[d + 3]
        if d == start:
            for j in range(m):
                e0, e1, e2, e3 = a0 - c0[j], a1 - c1[j], a2 - c2[j], a3 - c3[j]
                row[j] = (e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)
        else:
            for j in range(m):
                e0, e1, e2, e3 = a0 - c0[j], a1 - c1[j], a2 - c2[j], a3 - c3[j]
                row[j] += (e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3)
        d += 4
    while d < stop:
        ad, c0 = a[i, d], b_t[d]
        for j in range(m):
            e0 = ad - c0[j]
            row[j] += e0 * e0
        d += 1


@numba.njit(cache=True, nogil=True)
def _first_row(cost, cur):
    """Row 0 of the dynamic program: ``D[0, j] = cost[0] + ... + cost[j]``; returns its minimum."""
    total = cost[0]
    cur[0] = total
    low = total
    for j in range(1, cost.shape[0]):
        total += cost[j]
        cur[j] = total
        low = total if total < low else low
    return low


@numba.njit(cache=True, nogil=True)
def _next_row(c0, q0, u0):
    """Row i of one block's dynamic program from row i - 1 (``q0``) into ``u0``:
    ``D[i, j] = cost[j] + min(D[i-1, j], D[i-1, j-1], D[i, j-1])``; returns the row's minimum.
    The move along the row is a sequential chain, so ``D[i, j-1]`` is carried in a register
    (not reloaded from memory) and the minima are selects, not branches."""
    p0 = c0[0] + q0[0]
    u0[0] = p0
    low0 = p0
    for j in range(1, c0.shape[0]):
        s0 = q0[j] if q0[j] < q0[j - 1] else q0[j - 1]
        s0 = s0 if s0 < p0 else p0
        p0 = c0[j] + s0
        u0[j] = p0
        low0 = p0 if p0 < low0 else low0
    return low0


@numba.njit(cache=True, nogil=True)
def _next_row3(c0, q0, u0, c1, q1, u1, c2, q2, u2, weights):
    """:func:`_next_row` for three blocks in one loop (their three independent chains overlap in
    the processor); returns the weighted bound ``sum_k weights[k] * sqrt(min_j D_k[i, j])``."""
    p0, p1, p2 = c0[0] + q0[0], c1[0] + q1[0], c2[0] + q2[0]
    u0[0], u1[0], u2[0] = p0, p1, p2
    low0, low1, low2 = p0, p1, p2
    for j in range(1, c0.shape[0]):
        s0 = q0[j] if q0[j] < q0[j - 1] else q0[j - 1]
        s1 = q1[j] if q1[j] < q1[j - 1] else q1[j - 1]
        s2 = q2[j] if q2[j] < q2[j - 1] else q2[j - 1]
        s0 = s0 if s0 < p0 else p0
        s1 = s1 if s1 < p1 else p1
        s2 = s2 if s2 < p2 else p2
        p0, p1, p2 = c0[j] + s0, c1[j] + s1, c2[j] + s2
        u0[j], u1[j], u2[j] = p0, p1, p2
        low0 = p0 if p0 < low0 else low0
        low1 = p1 if p1 < low1 else low1
        low2 = p2 if p2 < low2 else low2
    return (
        weights[0] * math.sqrt(low0) + weights[1] * math.sqrt(low1) + weights[2] * math.sqrt(low2)
    )


@numba.njit(cache=True, nogil=True)
def _weighted_dtw(a, b_t, starts, stops, weights, budget):
    """``sum_k weights[k] * sqrt(S_k)``, where ``S_k`` is the minimal warping-path sum of squared
    Euclidean costs between channels ``starts[k]:stops[k]`` of ``a (n, D)`` and of ``b``
    (given transposed, ``b_t (D, m)``), or ``inf`` as soon as the sum must exceed ``budget``.

    The blocks' dynamic programs run side by side, row by row: the cost row is computed for all
    columns at once (vectorised), then one pass per row takes the three moves, in which the
    blocks' independent chains overlap. After each row, every path still has to leave it from
    some cell, so ``sum_k weights[k] * sqrt(min_j D_k)`` is a lower bound of the result; past
    the budget the candidate cannot win."""
    n, m, blocks = a.shape[0], b_t.shape[1], starts.shape[0]
    prev = np.empty((blocks, m))
    cur = np.empty((blocks, m))
    cost = np.empty((blocks, m))
    for i in range(n):
        for k in range(blocks):
            _cost_row(a, i, b_t, starts[k], stops[k], cost[k])
        if i == 0:
            bound = 0.0
            for k in range(blocks):
                bound += weights[k] * math.sqrt(_first_row(cost[k], cur[k]))
        elif blocks == 3:
            bound = _next_row3(
                cost[0],
                prev[0],
                cur[0],
                cost[1],
                prev[1],
                cur[1],
                cost[2],
                prev[2],
                cur[2],
                weights,
            )
        else:
            bound = 0.0
            for k in range(blocks):
                bound += weights[k] * math.sqrt(_next_row(cost[k], prev[k], cur[k]))
        if bound > budget:
            return np.inf
        prev, cur = cur, prev
    total = 0.0
    for k in range(blocks):
        total += weights[k] * math.sqrt(prev[k, m - 1])
    return total


@numba.njit(cache=True, nogil=True)
def _min_dtw_one(p, cands, cands_t, starts, stops, weights):
    """The smallest weighted DTW between ``p (T, D)`` and any candidate ``(J, T2, D)``, exact;
    ``cands_t`` holds the candidates transposed, ``(J, D, T2)``."""
    j_count = cands.shape[0]
    bounds = np.empty(j_count)
    same_length = p.shape[0] == cands.shape[1]
    for j in range(j_count):
        if same_length:  # the diagonal path: an upper bound of the candidate's DTW
            total = 0.0
            for k in range(starts.shape[0]):
                s = 0.0
                for t in range(p.shape[0]):
                    for d in range(starts[k], stops[k]):
                        diff = p[t, d] - cands[j, t, d]
                        s += diff * diff
                total += weights[k] * math.sqrt(s)
            bounds[j] = total
        else:
            bounds[j] = np.inf
    order = np.argsort(bounds)
    limit = bounds[order[0]]  # the minimum is at most the smallest diagonal-path bound
    best = np.inf
    for j in order:
        # Only a strictly better candidate changes the minimum. The budget is raised by one
        # part in 1e12 so that round-off (the bound and the dynamic program add in different
        # orders) never prunes the candidate that attains it.
        budget = min(best, limit) * (1 + 1e-12)
        value = _weighted_dtw(p, cands_t[j], starts, stops, weights, budget)
        if value < best:
            best = value
    return best


@numba.njit(cache=True, nogil=True, parallel=True)
def _min_dtw_many(preds, cands, starts, stops, weights):
    cands_t = np.ascontiguousarray(cands.transpose(0, 2, 1))
    out = np.empty(preds.shape[0])
    for i in numba.prange(preds.shape[0]):
        out[i] = _min_dtw_one(preds[i], cands, cands_t, starts, stops, weights)
    return out


def dtw(a, b) -> float:
    """The exact DTW distance between ``a (T1, D)`` and ``b (T2, D)`` (1-d arrays are one
    channel): the square root of the minimal sum, over warping paths from the first frames to
    the last with steps (1, 0), (0, 1) and (1, 1) and no band, of squared Euclidean frame costs."""
    a, b = _as_float64(a, "a"), _as_float64(b, "b")
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or 0 in a.shape or 0 in b.shape:
        raise UsageError(f"dtw needs (T1, D) and (T2, D) sequences, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise UsageError("dtw got NaN or infinite values")
    one = np.zeros(1, dtype=np.int64)
    return _weighted_dtw(
        np.ascontiguousarray(a),
        np.ascontiguousarray(b.T),
        one,
        one + a.shape[1],
        np.ones(1),
        np.inf,
    )


def _blocks(convention: str, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if convention == "react2024" or (convention == "clean" and dims == EMOTION_DIMS):
        spec = EMOTION_BLOCKS
    else:
        spec = ((0, dims, 1.0),)
    starts = np.array([s for s, _, _ in spec], dtype=np.int64)
    stops = np.array([e for _, e, _ in spec], dtype=np.int64)
    weights = np.array([w for _, _, w in spec], dtype=np.float64)
    return starts, stops, weights


def min_dtw(preds, cands, convention: str = "clean") -> np.ndarray:
    """For each reaction ``preds (M, T, D)``, the smallest FRDist distance (the convention's
    block-weighted DTW) to any candidate ``cands (J, T2, D)``: exact, pruned (module docstring),
    in parallel over the reactions."""
    _check_convention(convention)
    preds = np.ascontiguousarray(_as_float64(preds, "preds"))
    cands = np.ascontiguousarray(_as_float64(cands, "cands"))
    if convention != "clean":  # the official code hands tslearn float32 arrays
        preds = preds.astype(np.float32).astype(np.float64)
        cands = cands.astype(np.float32).astype(np.float64)
    if preds.ndim != 3 or cands.ndim != 3 or preds.shape[2] != cands.shape[2] or not len(cands):
        raise UsageError(
            f"min_dtw needs (M, T, D) and (J, T2, D) with J >= 1, got {preds.shape} and "
            f"{cands.shape}"
        )
    return _min_dtw_many(preds, cands, *_blocks(convention, preds.shape[2]))


# --- TLCC (FRSyn) ---------------------------------------------------------------------------


def _lagged_pearson(pred: np.ndarray, speaker: np.ndarray) -> np.ndarray:
    """Pearson correlation ``(..., 2 * MAX_LAG + 1, D)`` of ``pred (..., T, D)`` with
    ``speaker (T, D)`` at lags -49..49 (index 0 is lag -49): at lag l > 0 the pairs
    ``(pred[l:], speaker[:-l])``, at l < 0 ``(pred[:l], speaker[-l:])``; NaN where either
    overlap is constant, found exactly."""
    t = pred.shape[-2]
    lags = np.arange(-MAX_LAG, MAX_LAG + 1)
    if t <= MAX_LAG + 1:
        raise UsageError(f"FRSyn needs more than {MAX_LAG + 1} frames, got {t}")
    # Correlation does not change with a shift of either sequence: centre for round-off.
    x = pred - pred.mean(axis=-2, keepdims=True)
    y = speaker - speaker.mean(axis=-2, keepdims=True)
    size = 1 << int(math.ceil(math.log2(2 * t)))
    # cross[l] = sum_t x[t] y[t - l], for l in -(T-1)..(T-1) (circular index l mod size).
    cross = np.fft.irfft(
        np.fft.rfft(x, size, axis=-2) * np.conj(np.fft.rfft(y, size, axis=-2)), size, axis=-2
    )
    sxy = np.take(cross, lags % size, axis=-2)
    n = (t - np.abs(lags)).astype(np.float64)[:, None]
    zeros_x = np.zeros(x.shape[:-2] + (1,) + x.shape[-1:])
    px = np.concatenate([zeros_x, np.cumsum(x, axis=-2)], axis=-2)
    pxx = np.concatenate([zeros_x, np.cumsum(x * x, axis=-2)], axis=-2)
    zeros_y = np.zeros((1, y.shape[-1]))
    py = np.concatenate([zeros_y, np.cumsum(y, axis=0)], axis=0)
    pyy = np.concatenate([zeros_y, np.cumsum(y * y, axis=0)], axis=0)
    # pred's overlap is [max(l, 0), T + min(l, 0)), the speaker's [max(-l, 0), T - max(l, 0)).
    x_lo, x_hi = np.maximum(lags, 0), t + np.minimum(lags, 0)
    y_lo, y_hi = np.maximum(-lags, 0), t - np.maximum(lags, 0)
    sx = np.take(px, x_hi, axis=-2) - np.take(px, x_lo, axis=-2)
    sxx = np.take(pxx, x_hi, axis=-2) - np.take(pxx, x_lo, axis=-2)
    sy = py[y_hi] - py[y_lo]
    syy = pyy[y_hi] - pyy[y_lo]
    cov = sxy - sx * sy / n
    var_x = np.maximum(sxx - sx * sx / n, 0.0)
    var_y = np.maximum(syy - sy * sy / n, 0.0)
    constant = _constant_overlap(pred, x_lo, x_hi) | _constant_overlap(speaker, y_lo, y_hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_x * var_y)
    r = np.clip(r, -1.0, 1.0)
    return np.where(constant, np.nan, r)


def _constant_overlap(seq: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether ``seq[..., lo:hi, d]`` is constant, for every overlap ``(lo, hi)`` and channel:
    a stretch is constant exactly when no frame inside it differs from the one before."""
    changes = np.diff(seq, axis=-2) != 0  # changes[t]: frame t + 1 differs from frame t
    zeros = np.zeros(changes.shape[:-2] + (1,) + changes.shape[-1:], dtype=np.int64)
    count = np.concatenate([zeros, np.cumsum(changes, axis=-2)], axis=-2)
    # changes inside [lo, hi): indices lo .. hi - 2 of `changes`.
    inside = np.take(count, hi - 1, axis=-2) - np.take(count, lo, axis=-2)
    return inside == 0


def _offsets(r: np.ndarray, convention: str) -> np.ndarray:
    """|lag| at the peak of the channel-mean correlation, for ``r (..., lags, D)``."""
    if convention == "clean":
        mean = _mean_channels(r, "clean")  # (..., lags)
        defined = np.isfinite(mean).any(axis=-1)
        index = np.argmax(np.where(np.isfinite(mean), mean, -np.inf), axis=-1)
        return np.where(defined, np.abs(MAX_LAG - index), np.nan).astype(np.float64)
    mean = r.mean(axis=-1)  # NaN if any channel is NaN at that lag
    has_nan = np.isnan(mean)
    first_nan = np.argmax(has_nan, axis=-1)
    index = np.where(
        has_nan.any(axis=-1), first_nan, np.argmax(np.nan_to_num(mean, nan=-np.inf), axis=-1)
    )
    return np.abs(MAX_LAG - index).astype(np.float64)


def tlcc_offset(pred, speaker, convention: str = "clean") -> float:
    """FRSyn of one reaction ``pred (T, D)`` to ``speaker (T, D)``: the |lag| in frames at the
    peak of the channel-mean Pearson cross-correlation over lags -49..49 (ties: the most
    negative lag, as ``argmax`` takes the first). ``react2024`` and ``reactface``: a lag where any
    channel's overlap is constant has a NaN mean, and the first such lag wins (``torch.argmax``'s
    behaviour on CPU; a channel constant over the whole clip gives 49, the worst). ``clean``:
    such channels are left out of that lag's mean; NaN when no lag has any defined channel."""
    _check_convention(convention)
    pred, speaker = _as_float64(pred, "pred"), _as_float64(speaker, "speaker")
    if pred.ndim != 2 or pred.shape != speaker.shape:
        raise UsageError(
            f"tlcc_offset needs pred and speaker of one shape (T, D), got {pred.shape} and "
            f"{speaker.shape}"
        )
    return float(_offsets(_lagged_pearson(pred, speaker), convention))


# --- The six metrics ------------------------------------------------------------------------


def _checked_inputs(pred, listener, speaker, neighbours, convention):
    _check_convention(convention)
    pred = _as_float64(pred, "pred")
    listener = _as_float64(listener, "listener")
    speaker = _as_float64(speaker, "speaker")
    if pred.ndim != 4:
        raise UsageError(f"pred must be (N, M, T, D), got shape {pred.shape}")
    n, m, t, d = pred.shape
    if n < 1 or m < 1 or t < 2 or d < 1:
        raise UsageError(f"pred must have N, M, D >= 1 and T >= 2, got shape {pred.shape}")
    for name, array in (("listener", listener), ("speaker", speaker)):
        if array.shape != (n, t, d):
            raise UsageError(
                f"{name} must be (N, T, D) = {(n, t, d)} to match pred {pred.shape}, got "
                f"{array.shape}"
            )
    for name, array in (("pred", pred), ("listener", listener), ("speaker", speaker)):
        bad = ~np.isfinite(array)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise UsageError(
                f"{name} holds {int(bad.sum())} NaN or infinite values (first at index {where})"
            )
    if convention == "react2024" and d != EMOTION_DIMS:
        raise UsageError(
            f"the react2024 convention scores {EMOTION_DIMS}-d emotion vectors, got D = {d}; "
            "map coefficients to emotion first, or use the reactface or clean convention"
        )
    if convention == "reactface" and d != COEFF_DIMS:
        raise UsageError(
            f"the reactface convention scores {COEFF_DIMS}-d coefficients, got D = {d}; use "
            "react2024 for emotion vectors or clean for anything else"
        )
    if hasattr(neighbours, "detach"):
        neighbours = neighbours.detach().cpu().numpy()
    neighbours = np.asarray(neighbours)
    if neighbours.shape != (n, n):
        raise UsageError(
            f"neighbours must be an (N, N) = {(n, n)} matrix for {n} items, got {neighbours.shape}"
        )
    if neighbours.dtype != bool:
        if not np.isin(neighbours, (0, 1)).all():
            raise UsageError("neighbours must be boolean (or 0/1)")
        neighbours = neighbours.astype(bool)
    empty = np.flatnonzero(~neighbours.any(axis=1))
    if len(empty):
        raise UsageError(
            f"{len(empty)} rows of neighbours have no appropriate reaction (first: item "
            f"{int(empty[0])}); every speaker needs at least one"
        )
    return pred, listener, speaker, neighbours


def react_metrics(
    pred,
    listener,
    speaker,
    neighbours,
    convention: str = "clean",
    *,
    progress: Callable | None = None,
) -> dict[str, float]:
    """FRCorr, FRDist, FRDiv, FRVar, FRDvs and FRSyn (module docstring) of ``pred (N, M, T, D)``
    against ``listener (N, T, D)``, ``speaker (N, T, D)`` and ``neighbours (N, N)`` in one of
    :data:`CONVENTIONS`. numpy arrays or torch tensors; streams over the items, so memory is that
    of the inputs plus one item's work. ``progress``: an optional ``tqdm``-like wrapper of the
    item loop. Raises :class:`~reactlib.errors.UsageError` on a shape mismatch, NaN, an empty
    neighbour row or a convention that does not fit D."""
    pred, listener, speaker, neighbours = _checked_inputs(
        pred, listener, speaker, neighbours, convention
    )
    n, m, t, d = pred.shape
    scale = _SCALE[convention]
    blocks = _blocks(convention, d)
    # The official code hands tslearn float32 arrays.
    dtw_pred = pred if convention == "clean" else pred.astype(np.float32).astype(np.float64)
    dtw_listener = (
        listener if convention == "clean" else listener.astype(np.float32).astype(np.float64)
    )
    frcorr = frdist = frdiv = frsyn_sum = 0.0
    frsyn_count = 0
    mean_by_reaction = np.zeros((m, t * d))  # for FRDvs: running mean over items of reaction i
    squares_by_reaction = np.zeros(m)  # and the sum of squared deviations from it
    variance = 0.0
    items = range(n) if progress is None else progress(range(n))
    for k in items:
        p = pred[k]
        cands = np.flatnonzero(neighbours[k])
        corr = _ccc_against(p, listener[cands], convention)  # (M, J)
        best_corr = corr.max(axis=1) if convention != "clean" else _nanmax(corr)
        dist = _min_dtw_many(
            np.ascontiguousarray(dtw_pred[k]), np.ascontiguousarray(dtw_listener[cands]), *blocks
        )
        if convention == "clean":
            frcorr += np.nanmean(best_corr) if np.isfinite(best_corr).any() else np.nan
            frdist += dist.mean()
        else:
            frcorr += best_corr.sum()
            frdist += dist.sum()
        flat = p.reshape(m, -1)
        if m > 1:  # sum over ordered pairs i != j of |a_i - a_j|^2 = 2 M sum_i |a_i - mean|^2
            centred = flat - flat.mean(axis=0)
            frdiv += 2 * m * np.einsum("ij,ij->", centred, centred) / (m * (m - 1) * t * d)
        # FRDvs likewise over items, per reaction: Welford's running mean and sum of squared
        # deviations (stable, never negative, one item at a time).
        delta = flat - mean_by_reaction
        mean_by_reaction += delta / (k + 1)
        squares_by_reaction += np.einsum("ij,ij->i", delta, flat - mean_by_reaction)
        variance += p.var(axis=1, ddof=1).sum() if t > 1 else 0.0
        scored = p if convention == "clean" else p[:1]
        offsets = _offsets(_lagged_pearson(scored, speaker[k]), convention)
        frsyn_sum += np.nansum(offsets)
        frsyn_count += int(np.isfinite(offsets).sum())
    # sum over ordered pairs k != k' of |a_k - a_k'|^2 = 2 N sum_k |a_k - mean|^2
    pairs_total = 2 * n * squares_by_reaction.sum()
    frdvs = float(pairs_total / (n * (n - 1) * m * t * d)) if n > 1 else 0.0
    return {
        "FRCorr": float(scale * frcorr / n),
        "FRDist": float(scale * frdist / n),
        "FRDiv": float(frdiv / n),
        "FRVar": float(variance / (n * m * d)),
        "FRDvs": frdvs,
        "FRSyn": float(frsyn_sum / frsyn_count) if frsyn_count else math.nan,
    }


def _nanmax(values: np.ndarray) -> np.ndarray:
    """Max over the last axis ignoring NaN; NaN where every value is NaN (no warning)."""
    defined = np.isfinite(values).any(axis=-1)
    return np.where(defined, np.where(np.isfinite(values), values, -np.inf).max(axis=-1), np.nan)


def default_threads() -> int:
    """Threads numba's parallel loops use (``NUMBA_NUM_THREADS``, default: every core)."""
    return int(os.environ.get("NUMBA_NUM_THREADS", numba.config.NUMBA_NUM_THREADS))
