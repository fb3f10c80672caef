"""Tests for reactlib.metrics.react: the REACT metrics (FRCorr, FRDist, FRDiv, FRVar, FRDvs, FRSyn)
in the three conventions ``react2024`` (the REACT 2024 challenge code on 25-d emotion),
``reactface`` (ReactFace's evaluation script on 58-d coefficients) and ``clean`` (means over the
M predictions, NaN-robust), and the exact DTW, CCC and TLCC they are built on.

What is tested, and against what:

- hand-computed tiny cases: DTW of short 1-d and 2-d sequences, CCC of three-frame sequences,
  FRSyn of pure l-frame shifts, the oracle (GT-copy) predictions;
- plain loop-by-loop reference functions written here from the definitions (slow, obviously
  correct) for DTW, CCC, TLCC and all six metrics in every convention, on random data;
- properties: DTW symmetry, dtw(a, a) == 0, DTW <= Euclidean distance; FRDiv = FRDvs = 0 (and
  never negative) for identical reactions; invariance under a consistent permutation of the
  speaker items and under adding one constant to every value;
- the float32 rounding the official code applies before DTW (react2024), and none under clean;
- FRDist exactness when most neighbours are far and two are nearly tied (a pruned or
  early-abandoned minimum must still be the exact one);
- constant channels: rho = 0 in the official CCC, the first-NaN rule of the official TLCC (CPU
  ``torch.argmax``), and the clean variant ignoring such channels;
- input checking (hypothesis): result keys and finiteness under ``clean`` for random shapes, and
  ``UsageError`` for NaN, shape mismatches, bad neighbour matrices, unknown conventions and the
  wrong feature size for ``react2024`` / ``reactface``;
- torch tensors give the same numbers as numpy arrays.

Every clip has T >= 51 frames: FRSyn's lags reach +-49, and the module refuses T <= 50 (the
overlap at lag 49 would hold fewer than 2 frames).

Tolerances. Random inputs are drawn in float64 and rounded to float32-representable values, so an
implementation that casts to float32 first (as the official code does before DTW) sees exactly
the same inputs as the float64 references here. FRCorr, FRDist and FRSyn are then compared at
``rtol=1e-9`` (float64 arithmetic in a different order differs by ~1e-15). FRDiv, FRVar and FRDvs
are compared at ``rtol=1e-6``: the official code computes them with torch on float32 tensors
(``torch.cdist`` / ``torch.var``), whose rounding (~1e-7 relative) an implementation may keep.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactlib import metrics
from reactlib.errors import UsageError

KEYS = ("FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "FRSyn")
MAX_LAG = 49
"""Lags -49..49: 2 s at 25 fps, as in the official TLCC."""
EXACT = 1e-9
"""Relative tolerance for float64-exact quantities (FRCorr, FRDist, FRSyn, CCC, DTW)."""
TORCH_F32 = 1e-6
"""Relative tolerance for FRDiv, FRVar, FRDvs (the official code computes them in float32 torch)."""
TOLERANCE = {
    "FRCorr": EXACT,
    "FRDist": EXACT,
    "FRSyn": EXACT,
    "FRDiv": TORCH_F32,
    "FRVar": TORCH_F32,
    "FRDvs": TORCH_F32,
}
EMOTION_BLOCKS = ((0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8))
"""FRDist blocks of the 25-d emotion vector: AUs, valence/arousal, expressions, with weights."""
NATIVE_D = {"react2024": 25, "reactface": 58, "clean": 6}
FEW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- Data ------------------------------------------------------------------------------------


def f32(x) -> np.ndarray:
    """``x`` as float64 holding float32-representable values (so a float32 cast is lossless)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def smooth_noise(rng: np.random.Generator, t: int, d: int, width: int = 5) -> np.ndarray:
    """A (t, d) moving average of white noise: smooth, non-constant in every channel."""
    z = rng.standard_normal((t + width - 1, d))
    kernel = np.ones(width) / width
    out = np.stack([np.convolve(z[:, c], kernel, mode="valid") for c in range(d)], axis=1)
    return f32(out)


def shifted_pair(rng: np.random.Generator, t: int, d: int, lag: int):
    """``(pred, speaker)``, each (t, d), with ``pred[u] == speaker[u - lag]`` on the overlap.

    So the official overlap at ``lag`` pairs identical frames: for lag > 0 ``pred[lag:]`` equals
    ``speaker[:-lag]``, for lag < 0 ``pred[:lag]`` equals ``speaker[-lag:]``.
    """
    a = abs(lag)
    z = smooth_noise(rng, t + a, d)
    if lag >= 0:
        return z[:t].copy(), z[a : a + t].copy()
    return z[a : a + t].copy(), z[:t].copy()


def random_neighbours(rng: np.random.Generator, n: int, p: float = 0.4) -> np.ndarray:
    """An asymmetric (n, n) bool matrix with random True entries and a True diagonal."""
    nb = rng.random((n, n)) < p
    np.fill_diagonal(nb, True)
    return nb


def random_case(seed: int, n: int, m: int, t: int, d: int):
    """``(pred, listener, speaker, neighbours)`` of smooth random data."""
    rng = np.random.default_rng(seed)
    pred = np.stack([np.stack([smooth_noise(rng, t, d) for _ in range(m)]) for _ in range(n)])
    listener = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    speaker = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    return pred, listener, speaker, random_neighbours(rng, n)


# --- Plain references, loop by loop from the definitions --------------------------------------


def ref_dtw(a, b) -> float:
    """sqrt of the minimal sum of squared Euclidean frame costs over warping paths (no band)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cost = [((b - a[i]) ** 2).sum(axis=1).tolist() for i in range(len(a))]
    prev = [math.inf] * (len(b) + 1)
    prev[0] = 0.0
    for i in range(len(a)):
        cur = [math.inf] * (len(b) + 1)
        row = cost[i]
        left = math.inf
        for j in range(len(b)):
            # cur[j + 1] is cell (i, j): from (i-1, j-1), (i-1, j) or (i, j-1) (= left).
            best = prev[j]
            if prev[j + 1] < best:
                best = prev[j + 1]
            if left < best:
                best = left
            left = row[j] + best
            cur[j + 1] = left
        prev = cur
    return math.sqrt(prev[len(b)])


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``x`` and ``y`` (T, D) (or of two 1-d sequences), from the
    definition sum(xc yc) / sqrt(sum(xc^2) sum(yc^2)) with centred xc, yc: NaN (no warning) where
    either column is constant (its centred values are exactly 0 for the exactly representable
    constants used here) or shorter than 2 frames. Same values as ``np.corrcoef`` up to rounding."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return np.full(x.shape[1:], math.nan)
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    with np.errstate(all="ignore"):
        r = (xc * yc).sum(axis=0) / np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))
    return np.clip(r, -1.0, 1.0)


def ref_ccc(true, pred, convention: str) -> float:
    """CCC of two (T, D) sequences, per dimension (columns at once), then averaged over dims."""
    x = np.asarray(true, dtype=np.float64)
    y = np.asarray(pred, dtype=np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    vx, vy = x.var(axis=0), y.var(axis=0)  # population statistics
    if convention == "clean":
        cov = ((x - mx) * (y - my)).mean(axis=0)
        den = vx + vy + (mx - my) ** 2
        with np.errstate(all="ignore"):
            values = np.where(den > 0, 2 * cov / den, math.nan)
        finite = values[~np.isnan(values)]
        return float(finite.mean()) if finite.size else math.nan
    rho = np.clip(np.nan_to_num(pearson(x, y)), -1.0, 1.0)  # constant channel: rho = 0
    eps = 1e-8 if convention == "react2024" else 1e-50
    values = 2 * rho * x.std(axis=0) * y.std(axis=0) / (vx + vy + (mx - my) ** 2 + eps)
    return float(values.mean())


def ref_lag_r(p: np.ndarray, s: np.ndarray, lag: int, convention: str) -> float:
    """Mean over dims of the Pearson r on the official overlap at ``lag``."""
    if lag > 0:
        pp, ss = p[lag:], s[:-lag]
    elif lag < 0:
        pp, ss = p[:lag], s[-lag:]
    else:
        pp, ss = p, s
    rs = [float(r) for r in pearson(pp, ss)]  # one r per dim
    if convention == "clean":
        finite = [r for r in rs if not math.isnan(r)]
        return sum(finite) / len(finite) if finite else math.nan
    return sum(rs) / len(rs)  # NaN as soon as one channel is NaN


def ref_offset(p, s, convention: str) -> float:
    """|lag| at the peak of r over lags -49..49 (index order -49 first)."""
    p = np.asarray(p, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    rs = [ref_lag_r(p, s, lag, convention) for lag in range(-MAX_LAG, MAX_LAG + 1)]
    if convention == "clean":
        best, index = -math.inf, None
        for i, r in enumerate(rs):
            if not math.isnan(r) and r > best:
                best, index = r, i
        return math.nan if index is None else float(abs(MAX_LAG - index))
    for i, r in enumerate(rs):  # CPU torch.argmax: the first NaN wins
        if math.isnan(r):
            return float(abs(MAX_LAG - i))
    best, index = -math.inf, 0
    for i, r in enumerate(rs):
        if r > best:
            best, index = r, i
    return float(abs(MAX_LAG - index))


def ref_pair_distance(pred_ki, listener_j, convention: str) -> float:
    """The FRDist term for one (prediction, appropriate reaction) pair, before any x10."""
    d = pred_ki.shape[1]
    if convention == "react2024" or (convention == "clean" and d == 25):
        return sum(
            w * ref_dtw(pred_ki[:, lo:hi], listener_j[:, lo:hi]) for lo, hi, w in EMOTION_BLOCKS
        )
    return ref_dtw(pred_ki, listener_j)


def ref_metrics(pred, listener, speaker, neighbours, convention: str) -> dict[str, float]:
    """All six metrics, loop by loop."""
    pred = np.asarray(pred, dtype=np.float64)
    listener = np.asarray(listener, dtype=np.float64)
    speaker = np.asarray(speaker, dtype=np.float64)
    n, m, t, d = pred.shape
    scale = 10.0 if convention == "reactface" else 1.0
    corr, dist = [], []
    for k in range(n):
        appropriate = [j for j in range(n) if neighbours[k][j]]
        cs = [
            max(ref_ccc(listener[j], pred[k, i], convention) for j in appropriate) for i in range(m)
        ]
        ds = [
            min(ref_pair_distance(pred[k, i], listener[j], convention) for j in appropriate)
            for i in range(m)
        ]
        reduce = (lambda v: sum(v) / len(v)) if convention == "clean" else sum
        corr.append(reduce(cs))
        dist.append(reduce(ds))
    div = 0.0
    for k in range(n):
        if m > 1:
            total = sum(
                ((pred[k, i] - pred[k, i2]) ** 2).sum()
                for i in range(m)
                for i2 in range(m)
                if i != i2
            )
            div += total / (m * (m - 1) * t * d)
    dvs = 0.0
    for i in range(m):
        total = sum(
            ((pred[k, i] - pred[k2, i]) ** 2).sum() for k in range(n) for k2 in range(n) if k != k2
        )
        dvs += total / (n * (n - 1) * t * d)
    var = [np.var(pred[k, i, :, c], ddof=1) for k in range(n) for i in range(m) for c in range(d)]
    if convention == "clean":
        offsets = [ref_offset(pred[k, i], speaker[k], "clean") for k in range(n) for i in range(m)]
        finite = [o for o in offsets if not math.isnan(o)]
        syn = sum(finite) / len(finite) if finite else math.nan
    else:
        syn = sum(ref_offset(pred[k, 0], speaker[k], convention) for k in range(n)) / n
    return {
        "FRCorr": scale * sum(corr) / n,
        "FRDist": scale * sum(dist) / n,
        "FRDiv": div / n,
        "FRVar": float(sum(var) / len(var)),
        "FRDvs": dvs / m,
        "FRSyn": syn,
    }


def assert_metrics_close(got: dict, want: dict) -> None:
    assert set(got) >= set(KEYS)
    for key in KEYS:
        assert isinstance(got[key], float), (key, type(got[key]))
        assert got[key] == pytest.approx(want[key], rel=TOLERANCE[key], abs=1e-12), key


def shape_in(message: str, shape) -> bool:
    """Whether ``message`` spells ``shape`` (its sizes in order, any separators)."""
    pattern = r"(?<!\d)" + r"\D{1,4}".join(str(s) for s in shape) + r"(?!\d)"
    return re.search(pattern, message) is not None


# --- The references themselves, on hand values ------------------------------------------------


def test_references_agree_with_hand_values():
    """Guard the references: wrong references would make the parity tests meaningless."""
    assert ref_dtw([[0.0], [1.0], [2.0]], [[0.0], [2.0]]) == 1.0
    assert ref_ccc([[1.0], [2.0], [3.0]], [[2.0], [4.0], [6.0]], "clean") == pytest.approx(4 / 11)
    rng = np.random.default_rng(0)
    p, s = shifted_pair(rng, 100, 3, 5)
    assert ref_offset(p, s, "react2024") == 5.0
    assert ref_offset(p, s, "clean") == 5.0


# --- 1. Hand-computed tiny cases --------------------------------------------------------------


def col(*values: float) -> np.ndarray:
    """A (T, 1) sequence."""
    return np.array(values, dtype=np.float64)[:, None]


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        # cum costs: (0,0)=0, (1,0)=1, (1,1)=1+0, (2,1)=0+1 -> sqrt(1)
        (col(0, 1, 2), col(0, 2), 1.0),
        (col(0, 0, 1), col(0, 1), 0.0),  # warping absorbs the repeated frame
        (col(0, 3), col(1), math.sqrt(1 + 4)),  # one frame: every frame of the other is paired
        (col(1, 2, 3), col(1, 2, 3), 0.0),
        (col(0, 1), col(1, 0), math.sqrt(2.0)),  # every path holds (0,0) and (1,1), cost 1 each
        (col(5), col(2), 3.0),
    ],
)
def test_dtw_hand_1d(a, b, want):
    assert metrics.dtw(a, b) == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert metrics.dtw(b, a) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_dtw_hand_2d():
    # Squared Euclidean frame costs, summed, then one square root (not a sum of distances).
    a = np.array([[0.0, 0.0], [0.0, 0.0]])
    b = np.array([[3.0, 4.0], [3.0, 4.0]])
    assert metrics.dtw(a, b) == pytest.approx(math.sqrt(50.0), rel=1e-12)
    # The middle frame (1, 1) is 2 away (squared) from both (0, 0) and (2, 2).
    a = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    b = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert metrics.dtw(a, b) == pytest.approx(math.sqrt(2.0), rel=1e-12)
    # A repeated frame costs nothing.
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert metrics.dtw(a, b) == 0.0
    assert metrics.dtw(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(5.0)


def tile(seq: np.ndarray, d: int) -> np.ndarray:
    """A (T, 1) sequence repeated into d identical channels."""
    return np.repeat(seq, d, axis=1)


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_ccc_hand(convention):
    d = NATIVE_D[convention]
    t = col(1, 2, 3)
    # true [1,2,3], pred [2,4,6]: means 2 and 4, variances 2/3 and 8/3, cov 4/3, rho 1:
    # 2 * 4/3 / (2/3 + 8/3 + 2**2) = 4/11 (react2024 adds 1e-8 to the denominator).
    eps = {"react2024": 1e-8, "reactface": 1e-50, "clean": 0.0}[convention]
    want = (8 / 3) / (22 / 3 + eps)
    got = metrics.ccc(tile(t, d), tile(col(2, 4, 6), d), convention=convention)
    assert float(got) == pytest.approx(want, rel=1e-12)
    # Reversed: equal means and variances, cov -2/3 -> -1 (up to eps).
    got = metrics.ccc(tile(t, d), tile(col(3, 2, 1), d), convention=convention)
    assert float(got) == pytest.approx(-(4 / 3) / (4 / 3 + eps), rel=1e-12)
    # Offset by one: 2 var / (2 var + 1) = (4/3) / (4/3 + 1) = 4/7.
    got = metrics.ccc(tile(t, d), tile(col(2, 3, 4), d), convention=convention)
    assert float(got) == pytest.approx((4 / 3) / (7 / 3 + eps), rel=1e-12)


def test_ccc_hand_two_channels_clean():
    # Channel 0: 4/11 as above; channel 1 identical [0, 1, 0] (variance 2/9): 1. Mean 15/22.
    true = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    pred = np.array([[2.0, 0.0], [4.0, 1.0], [6.0, 0.0]])
    assert float(metrics.ccc(true, pred)) == pytest.approx(15 / 22, rel=1e-12)
    assert float(metrics.ccc(true, pred, convention="clean")) == pytest.approx(15 / 22, rel=1e-12)


def test_ccc_clean_constant_channel_rules():
    # Constant against varying: cov 0, denominator 2/3 -> 0 (not NaN).
    assert float(metrics.ccc(col(1, 1, 1), col(0, 1, 2))) == 0.0
    # Both constant and equal: 0/0 -> NaN, and NaN for the mean when every channel is NaN.
    assert math.isnan(float(metrics.ccc(col(0.5, 0.5, 0.5), col(0.5, 0.5, 0.5))))
    # Both constant but different means: 0 / (mu_t - mu_p)^2 = 0.
    assert float(metrics.ccc(col(0, 0, 0), col(1, 1, 1))) == 0.0


# --- 2. FRDiv = FRDvs = 0 for identical reactions ---------------------------------------------


def assert_no_diversity(value: float) -> None:
    """0 up to round-off: never negative (a mean of squared distances), at most 1e-12."""
    assert 0.0 <= value <= 1e-12, value


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_identical_reactions_have_no_diversity(convention):
    n, m, t, d = 4, 3, 52, NATIVE_D[convention]
    rng = np.random.default_rng(3)
    listener = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    speaker = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    nb = random_neighbours(rng, n)
    per_item = np.stack([smooth_noise(rng, t, d) for _ in range(n)])  # differs across k
    per_rank = np.stack([smooth_noise(rng, t, d) for _ in range(m)])  # differs across i

    # All M reactions of a speaker the same: FRDiv = 0, FRDvs > 0.
    pred = np.repeat(per_item[:, None], m, axis=1)
    got = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    assert_no_diversity(got["FRDiv"])
    assert got["FRDvs"] > 0.1

    # The i-th reaction the same for every speaker: FRDvs = 0, FRDiv > 0.
    pred = np.repeat(per_rank[None], n, axis=0)
    got = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    assert_no_diversity(got["FRDvs"])
    assert got["FRDiv"] > 0.1

    # Everything the same: both 0.
    pred = np.broadcast_to(per_rank[0], (n, m, t, d)).copy()
    got = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    assert_no_diversity(got["FRDiv"])
    assert_no_diversity(got["FRDvs"])


@pytest.mark.parametrize(("n", "m", "d"), [(2, 3, 2), (3, 3, 1), (4, 3, 6), (3, 10, 25)])
def test_constant_prediction_has_no_diversity(n, m, d):
    """B_MeanFr-like: one vector repeated over time, items and reactions (an exactly zero
    diversity that a sum-of-squares shortcut can turn slightly negative)."""
    t = 52
    rng = np.random.default_rng(4)
    listener = rng.standard_normal((n, t, d))
    got = metrics.react_metrics(
        np.full((n, m, t, d), 0.3), listener, listener, np.eye(n, dtype=bool)
    )
    assert_no_diversity(got["FRDiv"])
    assert_no_diversity(got["FRDvs"])
    assert got["FRVar"] == pytest.approx(0.0, abs=1e-20)  # round-off of the mean only


def test_metrics_are_translation_invariant():
    """Adding one constant to every prediction, listener and speaker value changes nothing."""
    pred, listener, speaker, nb = random_case(8, 4, 3, 56, 6)
    base = metrics.react_metrics(pred, listener, speaker, nb, convention="clean")
    c = 1000.0
    got = metrics.react_metrics(pred + c, listener + c, speaker + c, nb, convention="clean")
    for key in KEYS:
        assert got[key] == pytest.approx(base[key], rel=TOLERANCE[key]), key


def test_single_prediction_has_zero_frdiv():
    pred, listener, speaker, nb = random_case(5, 3, 1, 52, 4)
    assert metrics.react_metrics(pred, listener, speaker, nb)["FRDiv"] == 0.0


# --- 3. FRSyn of a pure shift -----------------------------------------------------------------


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
@pytest.mark.parametrize("lag", [0, 3, 7, 20])
def test_tlcc_offset_of_a_pure_shift(convention, lag):
    rng = np.random.default_rng(100 + lag)
    d = NATIVE_D[convention]
    for signed in {lag, -lag}:
        p, s = shifted_pair(rng, 100, d, signed)
        assert metrics.tlcc_offset(p, s, convention=convention) == float(lag)


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
@pytest.mark.parametrize("lag", [0, 3, 7, 20])
def test_frsyn_of_a_pure_shift(convention, lag):
    """Item 0 lags the speaker by +lag, item 1 leads it by lag; every prediction is shifted."""
    rng = np.random.default_rng(200 + lag)
    n, m, t, d = 2, 2, 100, NATIVE_D[convention]
    pred = np.empty((n, m, t, d))
    speaker = np.empty((n, t, d))
    for k, signed in enumerate((lag, -lag)):
        p, s = shifted_pair(rng, t, d, signed)
        pred[k] = p
        speaker[k] = s
    listener = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    nb = np.eye(n, dtype=bool)
    got = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    assert got["FRSyn"] == float(lag)


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_frsyn_official_scores_only_the_first_prediction(convention):
    """Prediction 0 is shifted by 3 frames, predictions 1 and 2 by 20."""
    rng = np.random.default_rng(7)
    n, m, t, d = 2, 3, 100, NATIVE_D[convention]
    pred = np.empty((n, m, t, d))
    speaker = np.empty((n, t, d))
    for k in range(n):
        z = smooth_noise(rng, t + 20, d)
        speaker[k] = z[20:]  # speaker[u] = z[u + 20]
        pred[k, 0] = z[17 : 17 + t]  # pred[u] = z[u + 17] = speaker[u - 3]
        pred[k, 1:] = z[:t]  # pred[u] = speaker[u - 20]
    listener = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    got = metrics.react_metrics(pred, listener, speaker, np.eye(n, dtype=bool), convention)
    want = (3 + 20 + 20) / 3 if convention == "clean" else 3.0
    assert got["FRSyn"] == pytest.approx(want, rel=1e-12)


# --- 4. CCC of identical sequences ------------------------------------------------------------


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_ccc_of_identical_sequences_is_one(convention):
    rng = np.random.default_rng(11)
    x = smooth_noise(rng, 50, NATIVE_D[convention])
    assert float(metrics.ccc(x, x.copy(), convention=convention)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("convention", "want"), [("react2024", 24 / 25), ("reactface", 57 / 58)])
def test_official_ccc_scores_a_copied_constant_channel_zero(convention, want):
    rng = np.random.default_rng(12)
    x = smooth_noise(rng, 50, NATIVE_D[convention])
    x[:, 4] = 1.0  # e.g. an AU that never fires: rho = nan_to_num(NaN) = 0
    assert float(metrics.ccc(x, x.copy(), convention=convention)) == pytest.approx(want, abs=1e-6)


def test_clean_ccc_ignores_a_copied_constant_channel():
    rng = np.random.default_rng(12)
    x = smooth_noise(rng, 50, 25)
    x[:, 4] = 1.0  # 0/0 -> NaN, left out of the mean
    assert float(metrics.ccc(x, x.copy(), convention="clean")) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_ccc_against_reference(convention):
    rng = np.random.default_rng(13)
    d = NATIVE_D[convention]
    for _ in range(3):
        a, b = smooth_noise(rng, 40, d), smooth_noise(rng, 40, d)
        b = f32(0.5 * a + b + 0.3)  # correlated, with a mean difference
        got = float(metrics.ccc(a, b, convention=convention))
        assert got == pytest.approx(ref_ccc(a, b, convention), rel=EXACT, abs=1e-15)


def test_ccc_broadcasts_over_leading_axes():
    rng = np.random.default_rng(14)
    a = np.stack([smooth_noise(rng, 30, 3) for _ in range(2)])[:, None]  # (2, 1, T, D)
    b = np.stack([smooth_noise(rng, 30, 3) for _ in range(4)])[None]  # (1, 4, T, D)
    got = np.asarray(metrics.ccc(a, b))
    assert got.shape == (2, 4)
    for i in range(2):
        for j in range(4):
            assert got[i, j] == pytest.approx(ref_ccc(a[i, 0], b[0, j], "clean"), rel=EXACT)
    got = np.asarray(metrics.ccc(a[:, 0], b[0, 0]))  # (2, T, D) with (T, D)
    assert got.shape == (2,)
    assert np.asarray(metrics.ccc(a[0, 0], b[0, 0])).shape == ()


# --- 5. Each convention against the plain reference on random data ----------------------------


@pytest.mark.parametrize(
    ("convention", "d"),
    [("react2024", 25), ("reactface", 58), ("clean", 25), ("clean", 6)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_react_metrics_against_reference(convention, d, seed):
    n = (4, 5, 6)[seed]
    t = (60, 52, 64)[seed]
    pred, listener, speaker, nb = random_case(seed, n, 3, t, d)
    got = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    assert_metrics_close(got, ref_metrics(pred, listener, speaker, nb, convention))


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_tlcc_offset_against_reference(convention):
    rng = np.random.default_rng(21)
    d = NATIVE_D[convention]
    for t in (60, 75):
        p, s = smooth_noise(rng, t, d), smooth_noise(rng, t, d)
        assert metrics.tlcc_offset(p, s, convention=convention) == ref_offset(p, s, convention)


def test_oracle_predictions_hand_values():
    """Every prediction a copy of the paired listener reaction, the diagonal the only neighbour:
    CCC = 1 (up to eps), DTW = 0, no diversity within a speaker."""
    rng = np.random.default_rng(22)
    n, m, t = 3, 2, 52
    for convention, scale_corr in (("react2024", m), ("reactface", 10 * m), ("clean", 1)):
        d = NATIVE_D[convention]
        listener = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
        speaker = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
        pred = np.repeat(listener[:, None], m, axis=1)
        got = metrics.react_metrics(pred, listener, speaker, np.eye(n, dtype=bool), convention)
        assert got["FRCorr"] == pytest.approx(scale_corr, rel=1e-6), convention
        assert got["FRDist"] == 0.0, convention
        assert got["FRDiv"] == pytest.approx(0.0, abs=1e-9), convention
        want_var = np.mean([np.var(listener[k, :, c], ddof=1) for k in range(n) for c in range(d)])
        assert got["FRVar"] == pytest.approx(want_var, rel=TORCH_F32), convention


# --- 6. DTW against the reference dynamic program, and its properties -------------------------


@pytest.mark.parametrize(
    ("t1", "t2", "d"),
    [(1, 1, 1), (1, 6, 2), (7, 3, 3), (20, 33, 4), (40, 40, 25), (17, 50, 58)],
)
def test_dtw_against_reference(t1, t2, d):
    rng = np.random.default_rng(t1 * 100 + t2)
    a = f32(rng.standard_normal((t1, d)))
    b = f32(rng.standard_normal((t2, d)) + 0.3)
    want = ref_dtw(a, b)
    assert metrics.dtw(a, b) == pytest.approx(want, rel=EXACT)
    assert metrics.dtw(b, a) == pytest.approx(metrics.dtw(a, b), rel=1e-12)
    assert metrics.dtw(a, a.copy()) == 0.0
    assert metrics.dtw(b, b.copy()) == 0.0


def test_dtw_single_frame_pairs_every_frame():
    rng = np.random.default_rng(31)
    a = rng.standard_normal((1, 3))
    b = rng.standard_normal((9, 3))
    want = math.sqrt(((b - a) ** 2).sum())
    assert metrics.dtw(a, b) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_dtw_at_most_the_euclidean_distance(seed):
    """The diagonal is one warping path, so DTW <= ||a - b|| for equal lengths."""
    rng = np.random.default_rng(seed)
    t, d = 30, 3
    a, b = smooth_noise(rng, t, d), smooth_noise(rng, t, d)
    euclid = math.sqrt(((a - b) ** 2).sum())
    got = metrics.dtw(a, b)
    assert 0.0 < got <= euclid * (1 + 1e-12)
    # A pure shift of a smooth signal warps to well under the frame-by-frame distance.
    p, s = shifted_pair(rng, t, d, 2)
    assert metrics.dtw(p, s) < 0.9 * math.sqrt(((p - s) ** 2).sum())


# --- 7. FRDist exactness under pruning --------------------------------------------------------


@pytest.mark.parametrize(
    ("convention", "d"), [("react2024", 25), ("reactface", 58), ("clean", 25), ("clean", 4)]
)
def test_frdist_minimum_is_exact_with_far_and_nearly_tied_neighbours(convention, d):
    """Speaker 0 has 12 appropriate reactions: most far, some decoys whose first and last frames
    match exactly (lower bounds on the ends say 0), and two near-ties. Every other speaker's
    predictions are copies of its own listener reaction (its only neighbour), so it adds 0."""
    rng = np.random.default_rng(41)
    n, m, t = 12, 2, 52
    base = [smooth_noise(rng, t, d) for _ in range(m)]
    close_dir = smooth_noise(rng, t, d)
    pred = np.empty((n, m, t, d))
    listener = np.empty((n, t, d))
    pred[0] = np.stack(base)
    # Candidates for prediction i = 0; prediction 1 is also compared against all of them.
    listener[1] = f32(base[0] + 0.05 * close_dir)  # the closest for prediction 0
    listener[2] = f32(base[0] + 0.05 * (1 + 1e-6) * close_dir)  # nearly tied, after the best
    listener[3] = f32(base[1] + 0.05 * (1 + 1e-6) * close_dir)  # nearly tied, before the best
    listener[4] = f32(base[1] + 0.05 * close_dir)  # the closest for prediction 1
    for j in range(5, n):
        far = f32(base[j % 2] + 3.0 + smooth_noise(rng, t, d))
        if j % 3 == 0:  # decoy: identical ends, far in the middle
            far[0], far[-1] = base[j % 2][0], base[j % 2][-1]
        listener[j] = far
    listener[0] = f32(base[0] + 5.0)
    for k in range(1, n):
        pred[k] = listener[k]
    nb = np.eye(n, dtype=bool)
    nb[0] = True

    # The design holds: for each prediction the minimum is unique but only 1e-6-ish ahead.
    minima = []
    for i, best in ((0, 1), (1, 4)):
        dists = sorted(
            (ref_pair_distance(pred[0, i], listener[j], convention), j) for j in range(n)
        )
        assert dists[0][1] == best
        assert 0 < dists[1][0] - dists[0][0] < 1e-4 * dists[0][0]
        assert dists[2][0] > 10 * dists[0][0]
        minima.append(dists[0][0])

    # Every other speaker adds 0 (its predictions copy its only appropriate reaction).
    reduce = sum(minima) / m if convention == "clean" else sum(minima)
    want = (10.0 if convention == "reactface" else 1.0) * reduce / n
    got = metrics.react_metrics(pred, listener, listener.copy(), nb, convention=convention)
    assert got["FRDist"] == pytest.approx(want, rel=1e-11)


def test_frdist_rounds_to_float32_only_in_the_official_conventions():
    """The official code hands tslearn float32 arrays; clean keeps float64. With inputs off the
    float32 grid the two differ by ~1e-8 relative, far above round-off (rtol 1e-11 here)."""
    rng = np.random.default_rng(43)
    n, m, t, d = 2, 1, 52, 25
    pred = rng.random((n, m, t, d)) + 0.3
    listener = rng.random((n, t, d)) + 0.3
    nb = np.ones((n, n), dtype=bool)

    def frdist(p, lst, convention):
        return (
            sum(
                min(ref_pair_distance(p[k, 0], lst[j], convention) for j in range(n))
                for k in range(n)
            )
            / n
        )

    exact = frdist(pred, listener, "clean")
    rounded = frdist(f32(pred), f32(listener), "react2024")
    assert abs(rounded - exact) > 1e-9 * exact  # the design: the rounding shows
    got = metrics.react_metrics(pred, listener, listener, nb, convention="react2024")
    assert got["FRDist"] == pytest.approx(rounded, rel=1e-11)
    got = metrics.react_metrics(pred, listener, listener, nb, convention="clean")
    assert got["FRDist"] == pytest.approx(exact, rel=1e-11)


# --- 8. Shapes and bad input (hypothesis) -----------------------------------------------------


@FEW
@given(
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    t=st.integers(51, 64),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_clean_metrics_are_finite_floats_for_any_small_shape(n, m, t, d, seed):
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal((n, m, t, d))
    listener = rng.standard_normal((n, t, d))
    speaker = rng.standard_normal((n, t, d))
    nb = random_neighbours(rng, n)
    got = metrics.react_metrics(pred, listener, speaker, nb, convention="clean")
    assert set(got) == set(KEYS)
    for key in KEYS:
        assert isinstance(got[key], float) and math.isfinite(got[key]), (key, got[key])
    assert -1.0 - 1e-12 <= got["FRCorr"] <= 1.0 + 1e-12
    assert got["FRDist"] >= 0.0 and got["FRVar"] > 0.0 and got["FRDvs"] > 0.0
    assert 0.0 <= got["FRSyn"] <= MAX_LAG
    if m == 1:
        assert got["FRDiv"] == 0.0
    else:
        assert got["FRDiv"] > 0.0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    convention=st.sampled_from(["react2024", "reactface", "clean"]),
    seed=st.integers(0, 2**16),
)
def test_metrics_invariant_under_a_consistent_permutation_of_items(convention, seed):
    rng = np.random.default_rng(seed)
    n, m, t, d = 4, 2, 52, NATIVE_D[convention]
    pred, listener, speaker, nb = random_case(seed, n, m, t, d)
    perm = rng.permutation(n)
    a = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    b = metrics.react_metrics(
        pred[perm], listener[perm], speaker[perm], nb[np.ix_(perm, perm)], convention=convention
    )
    for key in KEYS:
        assert b[key] == pytest.approx(a[key], rel=TOLERANCE[key]), key


def valid_case(n=3, m=2, t=52, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, m, t, d)),
        rng.standard_normal((n, t, d)),
        rng.standard_normal((n, t, d)),
        random_neighbours(rng, n),
    )


@pytest.mark.parametrize("where", ["pred", "listener", "speaker"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_input_is_refused(where, bad):
    pred, listener, speaker, nb = valid_case()
    {"pred": pred, "listener": listener, "speaker": speaker}[where][1, ..., 5, 2] = bad
    with pytest.raises(UsageError) as info:
        metrics.react_metrics(pred, listener, speaker, nb, convention="clean")
    message = str(info.value).lower()
    assert where in message
    assert ("nan" in message) or ("finite" in message) or ("inf" in message)


@FEW
@given(
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    t=st.integers(51, 60),
    d=st.integers(1, 5),
    which=st.sampled_from(["listener", "speaker"]),
    axis=st.integers(0, 2),
    delta=st.sampled_from([-1, 1, 2]),
)
def test_shape_mismatch_is_refused_naming_the_shapes(n, m, t, d, which, axis, delta):
    pred, listener, speaker, nb = valid_case(n, m, t, d)
    arrays = {"listener": listener, "speaker": speaker}
    shape = list(arrays[which].shape)
    shape[axis] += delta
    if shape[axis] < 1:
        shape[axis] = (n, t, d)[axis] + 1
    arrays[which] = np.zeros(shape) + np.arange(shape[1])[:, None]  # finite, non-constant
    with pytest.raises(UsageError) as info:
        metrics.react_metrics(pred, arrays["listener"], arrays["speaker"], nb, convention="clean")
    message = str(info.value)
    assert shape_in(message, shape), message
    assert shape_in(message, pred.shape), message


@pytest.mark.parametrize("shape", ["4d_pred_missing", "pred_5d", "listener_2d"])
def test_wrong_number_of_axes_is_refused(shape):
    pred, listener, speaker, nb = valid_case()
    if shape == "4d_pred_missing":
        pred = pred[:, 0]
    elif shape == "pred_5d":
        pred = pred[None]
    else:
        listener = listener[0]
    with pytest.raises(UsageError):
        metrics.react_metrics(pred, listener, speaker, nb, convention="clean")


@FEW
@given(n=st.integers(2, 4), rows=st.integers(-1, 2), cols=st.integers(-1, 2))
def test_neighbours_must_be_n_by_n(n, rows, cols):
    if rows == 0 and cols == 0:
        rows = 1
    pred, listener, speaker, _ = valid_case(n=n)
    nb = np.ones((n + rows, n + cols), dtype=bool)
    with pytest.raises(UsageError) as info:
        metrics.react_metrics(pred, listener, speaker, nb, convention="clean")
    assert shape_in(str(info.value), nb.shape), str(info.value)


def test_neighbours_must_be_two_dimensional():
    pred, listener, speaker, _ = valid_case(n=3)
    with pytest.raises(UsageError):
        metrics.react_metrics(pred, listener, speaker, np.ones(3, dtype=bool))
    with pytest.raises(UsageError):
        metrics.react_metrics(pred, listener, speaker, np.ones((3, 3, 1), dtype=bool))


@pytest.mark.parametrize("row", [0, 2])
def test_neighbour_row_without_any_true_is_refused(row):
    pred, listener, speaker, nb = valid_case(n=3)
    nb[row] = False
    with pytest.raises(UsageError) as info:
        metrics.react_metrics(pred, listener, speaker, nb, convention="clean")
    assert str(row) in str(info.value)


def test_unknown_convention_is_refused():
    pred, listener, speaker, nb = valid_case()
    assert metrics.CONVENTIONS == ("react2024", "reactface", "clean")
    for call in (
        lambda: metrics.react_metrics(pred, listener, speaker, nb, convention="official"),
        lambda: metrics.ccc(listener[0], speaker[0], convention="official"),
        lambda: metrics.tlcc_offset(pred[0, 0], speaker[0], convention="official"),
    ):
        with pytest.raises(UsageError) as info:
            call()
        assert "official" in str(info.value) or "react2024" in str(info.value)


@pytest.mark.parametrize(
    ("convention", "d", "needed"),
    [("react2024", 24, 25), ("react2024", 58, 25), ("reactface", 25, 58), ("reactface", 57, 58)],
)
def test_official_conventions_need_their_feature_size(convention, d, needed):
    pred, listener, speaker, nb = valid_case(d=d)
    with pytest.raises(UsageError) as info:
        metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    assert str(needed) in str(info.value)


# --- 9. Constant channels in TLCC -------------------------------------------------------------


@pytest.mark.parametrize("side", ["pred", "speaker"])
def test_constant_channel_official_tlcc_is_49_clean_recovers_the_shift(side):
    rng = np.random.default_rng(51)
    t, lag = 100, 3
    p, s = shifted_pair(rng, t, 25, lag)
    (p if side == "pred" else s)[:, 7] = 0.5  # e.g. an AU that never fires
    # Every lag has a NaN channel -> every r(lag) is NaN -> argmax = 0 -> |49 - 0| = 49.
    assert metrics.tlcc_offset(p, s, convention="react2024") == 49.0
    p58, s58 = shifted_pair(rng, t, 58, lag)
    (p58 if side == "pred" else s58)[:, 40] = 0.0
    assert metrics.tlcc_offset(p58, s58, convention="reactface") == 49.0
    # clean: the constant channel is left out; the other channels still peak at the shift.
    assert metrics.tlcc_offset(p, s, convention="clean") == float(lag)
    assert ref_offset(p, s, "clean") == float(lag)

    # The same through react_metrics.
    pred = np.stack([np.stack([p, p])] * 2)
    speaker = np.stack([s, s])
    listener = np.stack([smooth_noise(rng, t, 25) for _ in range(2)])
    nb = np.eye(2, dtype=bool)
    assert metrics.react_metrics(pred, listener, speaker, nb, "react2024")["FRSyn"] == 49.0
    assert metrics.react_metrics(pred, listener, speaker, nb, "clean")["FRSyn"] == float(lag)


def test_official_tlcc_first_nan_lag_wins_when_only_some_lags_are_nan():
    """The speaker's channel 0 is constant over its first 60 of 100 frames. For lag l > 0 the
    overlap is speaker[:100 - l], constant iff l >= 40: lags 40..49 (indices 89..98) are NaN,
    all others defined. The first NaN index is 89, so |offset| = |49 - 89| = 40, whatever the
    true shift (3 here). clean ignores the NaN channel and finds 3."""
    rng = np.random.default_rng(52)
    p, s = shifted_pair(rng, 100, 25, 3)
    s[:60, 0] = 0.5
    assert ref_offset(p, s, "react2024") == 40.0
    assert metrics.tlcc_offset(p, s, convention="react2024") == 40.0
    assert ref_offset(p, s, "clean") == 3.0
    assert metrics.tlcc_offset(p, s, convention="clean") == 3.0


def test_clean_tlcc_is_nan_when_no_lag_is_defined():
    rng = np.random.default_rng(53)
    p = np.full((60, 3), 0.5)
    s = smooth_noise(rng, 60, 3)
    assert math.isnan(metrics.tlcc_offset(p, s, convention="clean"))
    assert metrics.tlcc_offset(np.full((60, 25), 0.5), smooth_noise(rng, 60, 25), "react2024") == 49


def test_clean_frsyn_skips_predictions_without_any_defined_lag():
    """One prediction entirely constant: its offset is NaN and left out of the mean."""
    rng = np.random.default_rng(54)
    n, m, t, d = 2, 2, 80, 5
    pred = np.empty((n, m, t, d))
    speaker = np.empty((n, t, d))
    for k in range(n):
        p, s = shifted_pair(rng, t, d, 4)
        pred[k] = p
        speaker[k] = s
    pred[1, 1] = 0.5
    listener = np.stack([smooth_noise(rng, t, d) for _ in range(n)])
    got = metrics.react_metrics(pred, listener, speaker, np.eye(n, dtype=bool), "clean")
    assert got["FRSyn"] == 4.0


# --- 10. torch tensors -------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["react2024", "clean"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_tensors_give_the_same_numbers(convention, dtype):
    pred, listener, speaker, nb = random_case(61, 3, 2, 55, NATIVE_D[convention])
    # Off the float32 grid, so a silent float32 round trip of tensors would show.
    rng = np.random.default_rng(62)
    pred, listener, speaker = (
        (x + 1e-9 * rng.standard_normal(x.shape)).astype(dtype) for x in (pred, listener, speaker)
    )
    kept = pred.copy()
    want = metrics.react_metrics(pred, listener, speaker, nb, convention=convention)
    got = metrics.react_metrics(
        torch.tensor(pred, requires_grad=True),  # a tensor that needs .detach()
        torch.from_numpy(listener),
        torch.from_numpy(speaker),
        torch.from_numpy(nb),
        convention=convention,
    )
    for key in KEYS:
        assert isinstance(got[key], float)
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
    np.testing.assert_array_equal(pred, kept)  # inputs are not modified

    a, b = listener[0], speaker[0]
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert metrics.dtw(ta, tb) == pytest.approx(metrics.dtw(a, b), rel=1e-12)
    assert float(metrics.ccc(ta, tb, convention=convention)) == pytest.approx(
        float(metrics.ccc(a, b, convention=convention)), rel=1e-12
    )
    assert metrics.tlcc_offset(ta, tb, convention=convention) == metrics.tlcc_offset(
        a, b, convention=convention
    )
