"""Tests for reactlib.metrics.realism: the Frechet distance against closed forms, window features
by hand, the coefficient FD separating degraded reactions from held-out real ones, and the
smoothness figures against known seams, polynomials, an inline loop and rule_figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import hadamard
from scipy.ndimage import gaussian_filter1d

from reactlib import online, rules
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.metrics import realism

# --- frechet_distance -----------------------------------------------------------------------------


def test_identical_sets_are_at_distance_zero():
    x = np.random.default_rng(0).standard_normal((300, 12)) @ np.diag(np.arange(1, 13))
    assert realism.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # The same rows in another order fit the same Gaussian.
    assert realism.frechet_distance(x, x[::-1]) == pytest.approx(0.0, abs=1e-6)
    # Rounding puts the formula a little below zero for most identical sets; never reported.
    for seed in range(5):
        y = np.random.default_rng(seed).standard_normal((20, 8))
        assert realism.frechet_distance(y, y) >= 0.0


def test_one_dimensional_gaussians_follow_the_closed_form_with_sample_std():
    """In 1-d the distance is (m1 - m2)^2 + (s1 - s2)^2 with s the sample standard deviation
    (ddof=1, np.cov's default, as pytorch-fid); the population one gives another number."""
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 2.0, (40, 1))
    b = rng.normal(-1.0, 0.7, (25, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    population = (a.mean() - b.mean()) ** 2 + (a.std() - b.std()) ** 2
    got = realism.frechet_distance(a, b)
    assert got == pytest.approx(expected, rel=1e-9)
    assert got != pytest.approx(population, rel=1e-3)


def test_diagonal_covariances_follow_the_closed_form():
    """Hadamard columns are centred and orthogonal, so scaled copies have exactly diagonal sample
    covariances: the distance is |mu1 - mu2|^2 + sum_d (s1_d - s2_d)^2."""
    columns = hadamard(16)[:, 1:6].astype(float)  # 16 samples, 5 centred orthogonal features
    a = columns * [0.5, 1.0, 2.0, 3.0, 0.1] + [1.0, 0.0, -2.0, 0.5, 0.0]
    b = columns[::-1] * [1.5, 1.0, 0.5, 3.0, 2.0] + [0.0, 0.3, -2.0, 0.0, 1.0]
    for x in (a, b):
        covariance = np.cov(x, rowvar=False)
        np.testing.assert_allclose(covariance, np.diag(np.diag(covariance)), atol=1e-12)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(
        (a.std(axis=0, ddof=1) - b.std(axis=0, ddof=1)) ** 2
    )
    assert realism.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def _frechet_by_eigenvalues(mu1, s1, mu2, s2) -> float:
    """The Frechet distance with tr((S1 S2)^(1/2)) as the sum of the square roots of the
    eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2): a route that shares nothing with sqrtm."""
    values, vectors = np.linalg.eigh(s1)
    root1 = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * trace_root)


def test_full_covariances_match_an_eigenvalue_computation():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((150, 6)) @ rng.standard_normal((6, 6)) + 0.4
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = _frechet_by_eigenvalues(a.mean(0), s1, b.mean(0), s2)
    assert realism.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_the_distance_is_symmetric():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((80, 7))
    b = rng.standard_normal((60, 7)) * 1.7 + 0.2
    assert realism.frechet_distance(a, b) == pytest.approx(realism.frechet_distance(b, a), 1e-9)


def test_the_distance_grows_with_a_mean_shift_as_its_square():
    """Shifting every row by c leaves the covariance as it was, so the distance is |c|^2."""
    x = np.random.default_rng(4).standard_normal((100, 5))
    direction = np.array([1.0, -2.0, 0.0, 0.5, 1.0])
    distances = [realism.frechet_distance(x, x + k * direction) for k in (0.1, 0.5, 1.0, 3.0)]
    assert distances == pytest.approx([k**2 * direction @ direction for k in (0.1, 0.5, 1, 3)])
    assert np.all(np.diff(distances) > 0)


@pytest.mark.parametrize("case", ["fewer rows than features", "a constant feature"])
def test_rank_deficient_covariances_give_a_finite_distance(case):
    rng = np.random.default_rng(5)
    if case == "fewer rows than features":
        a, b = rng.standard_normal((5, 20)), rng.standard_normal((7, 20)) + 0.1
    else:
        a, b = rng.standard_normal((50, 4)), rng.standard_normal((40, 4))
        a[:, 2] = b[:, 2] = 1.0
        b[:, 0] += 1.0
    distance = realism.frechet_distance(a, b)
    assert math.isfinite(distance) and distance > 0
    assert realism.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    if case == "a constant feature":  # the constant feature adds nothing; the rest is as before
        kept = [0, 1, 3]
        assert distance == pytest.approx(realism.frechet_distance(a[:, kept], b[:, kept]), 1e-4)


def _patch_sqrtm(monkeypatch, wrong, times: int = 1) -> list[np.ndarray]:
    """Make scipy.linalg.sqrtm return ``wrong(product, true_root)`` on its first ``times`` calls
    and the true root afterwards; returns the list of the products it is called with."""
    import scipy.linalg

    true_sqrtm, calls = scipy.linalg.sqrtm, []

    def sqrtm(product):
        calls.append(product)
        root = true_sqrtm(product)
        return wrong(product, root) if len(calls) <= times else root

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm)
    return calls


def test_a_failed_square_root_is_retried_with_eps_on_the_diagonals(monkeypatch):
    """scipy's square root of the covariance product rarely fails (none in 300 random rank-
    deficient sets tried); when it does, the distance is that between the Gaussians with
    e = EPS * (mean variance) added to both covariances' diagonals (pytorch-fid's remedy)."""
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((60, 4)), rng.standard_normal((50, 4)) * 2 + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    e = realism.EPS * np.trace(s1 + s2) / 8 * np.eye(4)
    expected = _frechet_by_eigenvalues(a.mean(0), s1 + e, b.mean(0), s2 + e)
    calls = _patch_sqrtm(monkeypatch, lambda product, root: np.full_like(root, np.nan))
    assert realism.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + e) @ (s2 + e), rtol=1e-12)
    monkeypatch.undo()
    calls = _patch_sqrtm(monkeypatch, lambda product, root: np.full_like(root, np.nan))
    assert realism.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)  # still 0 for a, a
    assert len(calls) == 2


def test_a_root_that_does_not_square_back_is_retried(monkeypatch):
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((60, 4)), rng.standard_normal((50, 4)) * 2
    expected = realism.frechet_distance(a, b)
    calls = _patch_sqrtm(monkeypatch, lambda product, root: 1.01 * root)
    assert realism.frechet_distance(a, b) == pytest.approx(expected, abs=1e-5)
    assert len(calls) == 2


def test_only_a_tiny_imaginary_part_of_the_square_root_is_dropped(monkeypatch):
    """An imaginary diagonal of 1e-9 is rounding (dropped); one of 5e-3 times the mean variance
    is not, and sends the distance to the remedy, which gets the true root here."""
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((60, 4)), rng.standard_normal((50, 4))
    expected = realism.frechet_distance(a, b)
    calls = _patch_sqrtm(monkeypatch, lambda product, root: root + 1e-9j * np.eye(4))
    assert realism.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert len(calls) == 1
    monkeypatch.undo()
    variance = np.trace(np.cov(a, rowvar=False) + np.cov(b, rowvar=False)) / 8
    calls = _patch_sqrtm(monkeypatch, lambda product, root: root + 5e-3j * variance * np.eye(4))
    assert realism.frechet_distance(a, b) == pytest.approx(expected, abs=1e-5)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("wrong", "why"),
    [
        (lambda product, root: np.full_like(root, np.inf), "not finite"),
        (lambda product, root: 1.01 * root, "relative error of 0.0201"),
        (lambda product, root: root + 0.1j * np.eye(len(root)), "imaginary diagonal part of 0.1"),
    ],
)
def test_a_square_root_that_fails_twice_is_an_error(monkeypatch, wrong, why):
    a = np.random.default_rng(13).standard_normal((30, 3))
    _patch_sqrtm(monkeypatch, wrong, times=2)
    with pytest.raises(FloatingPointError, match=f"also with .* added .*: .*{why}"):
        realism.frechet_distance(a, a + 1)


@pytest.mark.parametrize(
    ("real", "fake", "match"),
    [
        (np.zeros((1, 3)), np.zeros((5, 3)), "real has 1 row"),
        (np.zeros((5, 3)), np.zeros((1, 3)), "fake has 1 row"),
        (np.zeros((5, 3)), np.zeros((5, 4)), "same number of features"),
        (np.zeros(5), np.zeros((5, 1)), "2-d"),
        (np.full((5, 3), np.nan), np.zeros((5, 3)), "non-finite"),
        (np.zeros((5, 3)), np.full((5, 3), np.inf), "fake holds 15 non-finite"),
    ],
)
def test_frechet_distance_rejects_bad_input(real, fake, match):
    with pytest.raises(UsageError, match=match):
        realism.frechet_distance(real, fake)


# --- window_features ------------------------------------------------------------------------------


def test_window_features_have_one_row_per_window():
    seqs = np.zeros((3, 2, 100, 5))
    features = realism.window_features(seqs, window=32, stride=16)
    # Windows start at 0, 16, 32, 48, 64 (80 would end past frame 99): 5 per sequence.
    assert features.shape == (3 * 2 * 5, 20)
    assert realism.window_features(np.zeros((100, 5)), 100, 7).shape == (1, 20)


def test_a_constant_sequence_has_zero_spread_and_motion():
    seqs = np.broadcast_to(np.array([0.3, -1.0, 2.0]), (2, 64, 3))
    features = realism.window_features(seqs)
    np.testing.assert_allclose(features[:, :3], np.tile([0.3, -1.0, 2.0], (len(features), 1)))
    assert np.all(features[:, 3:] == 0)


def test_window_features_by_hand():
    """x = 0, 1, 3, 6 (and its negative), windows of 3 frames with stride 1:
    [0, 1, 3] has mean 4/3, std sqrt(14)/3, steps 1, 2 and second difference 1;
    [1, 3, 6] has mean 10/3, std sqrt(38)/3, steps 2, 3 and second difference 1."""
    x = np.array([0.0, 1.0, 3.0, 6.0])
    features = realism.window_features(np.stack([x, -x], axis=-1), window=3, stride=1)
    expected = [
        [4 / 3, -4 / 3, math.sqrt(14) / 3, math.sqrt(14) / 3, 1.5, 1.5, 1.0, 1.0],
        [10 / 3, -10 / 3, math.sqrt(38) / 3, math.sqrt(38) / 3, 2.5, 2.5, 1.0, 1.0],
    ]
    np.testing.assert_allclose(features, expected, rtol=1e-12)


def test_window_features_read_only_their_window():
    """A jump in frame 40 changes the windows that contain frames 39-40 and no other."""
    x = np.zeros((100, 2))
    x[40:] = 1.0
    features = realism.window_features(x, window=32, stride=16)
    starts = np.arange(0, 100 - 32 + 1, 16)
    touched = (starts <= 39) & (starts + 32 > 40)
    moving = features[:, 4:].any(axis=1)  # std, velocity or acceleration nonzero
    np.testing.assert_array_equal(moving, touched)


# --- realism_fd -----------------------------------------------------------------------------------


def _smooth_reactions(seed: int, n: int = 40, frames: int = 200, dims: int = 4) -> np.ndarray:
    """``(n, frames, dims)`` smooth random signals: white noise through a Gaussian filter (sigma 3
    frames), unit standard deviation, plus an offset per sequence (a listener's resting face)."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter1d(rng.standard_normal((n, frames, dims)), 3.0, axis=1)
    return x / x.std() + rng.normal(0.0, 0.5, (n, 1, dims))


@pytest.mark.parametrize("seed", [0, 1])
def test_realism_fd_separates_degraded_reactions_from_held_out_real_ones(seed):
    """Half of a set of smooth signals is the real set, the other half the held-out predictions.
    Over-smoothing, jitter and freezing the held-out half each move it at least 3 times as far
    from the real half as it was (measured 4.8-35 times over seeds 0-4)."""
    x = _smooth_reactions(seed)
    real, held_out = x[:20], x[20:]
    baseline = realism.realism_fd(held_out, real)
    noise = np.random.default_rng(99).standard_normal(held_out.shape)
    degraded = {
        "smoothed": gaussian_filter1d(held_out, 8.0, axis=1),
        "jittered": held_out + 0.3 * noise,
        "frozen": np.repeat(held_out[:, :1], held_out.shape[1], axis=1),
    }
    for name, pred in degraded.items():
        distance = realism.realism_fd(pred, real)
        assert distance > 3 * baseline, (name, distance, baseline)


def test_realism_fd_pools_the_m_reactions_of_each_item():
    x = _smooth_reactions(2, n=24)
    real, pred = x[:12], x[12:]
    pooled = realism.realism_fd(pred.reshape(4, 3, *pred.shape[1:]), real)
    assert pooled == realism.realism_fd(pred, real)
    expected = realism.frechet_distance(
        realism.window_features(real), realism.window_features(pred)
    )
    assert pooled == expected


@pytest.mark.parametrize(
    ("pred", "real", "match"),
    [
        (np.zeros((2, 64)), np.zeros((2, 64, 3)), "pred must be"),
        (np.zeros((2, 64, 3)), np.zeros((2, 2, 64, 3)), "real must be"),
        (np.zeros((2, 64, 3)), np.zeros((2, 64, 4)), "same coefficients"),
        (np.zeros((2, 64, 3)), np.zeros((2, 20, 3)), "real: seqs of 20 frames are too short"),
        (np.zeros((1, 32, 3)), np.zeros((2, 64, 3)), "pred .* gives 1 window"),
    ],
)
def test_realism_fd_rejects_bad_input(pred, real, match):
    with pytest.raises(UsageError, match=match):
        realism.realism_fd(pred, real)


# --- smoothness -----------------------------------------------------------------------------------


def _ramp_with_jumps(frames: int, window: int, slope: float, jump: float) -> np.ndarray:
    """``(frames,)``: a ramp that jumps by ``jump`` where each online window but the first
    starts (the last window absorbs the remainder, so no jump after its start)."""
    start = np.minimum(np.arange(frames) // window, frames // window - 1)
    return slope * np.arange(frames) + jump * start


@pytest.mark.parametrize(("frames", "window"), [(192, 16), (200, 16), (100, 10), (47, 16)])
def test_jumps_at_the_seams_give_the_known_seam_jump(frames, window):
    slope, jump = 0.25, 2.0  # exact in binary, so the means are exact
    x = np.broadcast_to(_ramp_with_jumps(frames, window, slope, jump)[:, None], (3, 2, frames, 5))
    figures = realism.smoothness(x, window)
    assert figures["seam_jump"] == slope + jump
    assert figures["velocity"] == slope
    assert figures["seam_ratio"] == (slope + jump) / slope


def test_dims_restrict_the_figures_to_some_coefficients():
    frames = 160
    x = np.zeros((2, frames, coeffs.NUM_COEFFS))
    x[:, :, coeffs.POSE] = _ramp_with_jumps(frames, 16, 0.25, 2.0)[:, None]
    pose = realism.smoothness(x, dims=coeffs.POSE)
    assert (pose["seam_jump"], pose["velocity"]) == (2.25, 0.25)
    expression = realism.smoothness(x, dims=coeffs.EXPRESSION)
    assert (expression["seam_jump"], expression["velocity"]) == (0.0, 0.0)
    assert math.isnan(expression["seam_ratio"])  # 0 / 0
    # The same coefficients as indices, as a mask, and all of them averaged in.
    indices = np.arange(52, 58)
    assert realism.smoothness(x, dims=indices) == pose
    assert realism.smoothness(x, dims=np.isin(np.arange(58), indices)) == pose
    assert realism.smoothness(x)["seam_jump"] == pytest.approx(2.25 * 6 / 58)


def test_a_seamless_ramp_has_seam_ratio_one_and_no_jerk():
    x = 0.01 * np.arange(200)[:, None] * np.arange(1, 4)
    figures = realism.smoothness(x)
    assert figures["seam_ratio"] == pytest.approx(1.0, rel=1e-9)
    assert figures["jerk"] == pytest.approx(0.0, abs=1e-12)


def test_jerk_of_a_quadratic_is_zero_and_of_a_cubic_six_times_its_coefficient():
    t = np.arange(40.0)
    quadratic = (0.25 * t**2 - 3 * t + 1)[:, None]
    cubic = np.stack([0.125 * t**3, -0.5 * t**3 + t**2], axis=-1)  # third differences 0.75, 3
    assert realism.smoothness(quadratic)["jerk"] == 0.0
    assert realism.smoothness(cubic)["jerk"] == (0.75 + 3.0) / 2


def test_steps_only_at_the_seams_have_an_infinite_ratio():
    x = np.repeat(np.arange(4.0), 16)[:, None]  # constant within each window of 16
    figures = realism.smoothness(x)
    assert (figures["seam_jump"], figures["velocity"]) == (1.0, 0.0)
    assert figures["seam_ratio"] == math.inf


def test_one_window_has_no_seam():
    figures = realism.smoothness(np.random.default_rng(6).standard_normal((31, 3)), window=16)
    assert math.isnan(figures["seam_jump"]) and math.isnan(figures["seam_ratio"])
    assert figures["velocity"] > 0


def _inline_smoothness(x: np.ndarray, window: int) -> dict[str, float]:
    """The figures by a loop over frames, with the seams where reactlib.online.windows starts
    its windows: a reference that shares no code with realism.smoothness."""
    seams = {start for start, _ in online.windows(x.shape[-2], window)[1:]}
    at_seams, elsewhere = [], []
    for t in range(1, x.shape[-2]):
        steps = np.abs(x[..., t, :] - x[..., t - 1, :]).ravel()
        (at_seams if t in seams else elsewhere).extend(steps)
    jerk = [
        np.abs(x[..., t, :] - 3 * x[..., t - 1, :] + 3 * x[..., t - 2, :] - x[..., t - 3, :])
        for t in range(3, x.shape[-2])
    ]
    return {
        "seam_jump": float(np.mean(at_seams)),
        "velocity": float(np.mean(elsewhere)),
        "jerk": float(np.mean(jerk)),
    }


@pytest.mark.parametrize(("frames", "window"), [(120, 16), (130, 16), (75, 7)])
def test_smoothness_matches_an_inline_loop_and_rule_figures(frames, window):
    rng = np.random.default_rng(7)
    n, m = 3, 2
    x = np.cumsum(rng.standard_normal((n, m, frames, coeffs.NUM_COEFFS)), axis=2)
    x[:, :, window::window] += 0.5  # the frames where windows start move a little further
    figures = realism.smoothness(x.astype(np.float32), window)
    reference = _inline_smoothness(x.astype(np.float32).astype(np.float64), window)
    for key, value in reference.items():
        assert figures[key] == pytest.approx(value, rel=1e-9), key
    assert figures["seam_ratio"] == pytest.approx(reference["seam_jump"] / reference["velocity"])

    speaker = np.zeros((n, frames, coeffs.NUM_COEFFS))
    speaker[:, :, coeffs.index("tz")] = np.arange(n)[:, None]
    voiced = np.broadcast_to(np.arange(frames) % 50 < 25, (n, frames))
    ruled = rules.rule_figures(x, speaker, voiced, window=window)
    assert ruled["seam_step"] == pytest.approx(figures["seam_jump"], rel=1e-6)
    assert ruled["within_step"] == pytest.approx(figures["velocity"], rel=1e-6)
    assert ruled["seam_ratio"] == pytest.approx(figures["seam_ratio"], rel=1e-6)


def test_more_items_of_the_same_reactions_change_no_figure():
    """The figures are means over items, reactions and coefficients: repeating the items leaves
    them as they were (rule_figures once summed over items and divided by reactions only)."""
    rng = np.random.default_rng(8)
    one = np.cumsum(rng.standard_normal((1, 2, 100, coeffs.NUM_COEFFS)), axis=2)
    four = np.repeat(one, 4, axis=0)
    assert realism.smoothness(four) == pytest.approx(realism.smoothness(one), rel=1e-12)
    speaker = rng.standard_normal((4, 100, coeffs.NUM_COEFFS))
    voiced = np.ones((4, 100), dtype=bool)
    ruled_one = rules.rule_figures(one, speaker[:1], voiced[:1])
    ruled_four = rules.rule_figures(four, speaker, voiced)
    for key in ("seam_step", "within_step", "seam_ratio"):
        assert ruled_four[key] == pytest.approx(ruled_one[key], rel=1e-12), key


def test_nan_policy_propagate_lets_nan_through_to_the_figures_it_touches():
    x = np.cumsum(np.random.default_rng(9).standard_normal((2, 64, 3)), axis=1)
    x[0, 20, 1] = np.nan  # frame 20 is no seam and not next to one (seams at 16, 32, 48)
    with pytest.raises(UsageError, match="non-finite"):
        realism.smoothness(x)
    figures = realism.smoothness(x, nan_policy="propagate")
    assert math.isfinite(figures["seam_jump"])
    assert math.isnan(figures["velocity"]) and math.isnan(figures["jerk"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"window": 2.0}, "window must be an integer"),
        ({"dims": slice(60, 70)}, "selects none"),
        ({"dims": [3, 58]}, "out of range"),
        ({"dims": np.ones(3, dtype=bool)}, "one entry per coefficient"),
        ({"dims": 0.5}, "dims must be"),
        ({"nan_policy": "omit"}, "nan_policy"),
    ],
)
def test_smoothness_rejects_bad_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        realism.smoothness(np.zeros((2, 40, 58)), **kwargs)


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    frames=st.integers(3, 80),
    dims=st.integers(1, 6),
    window=st.integers(3, 40),
    stride=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_window_features_shape_and_values(lead, frames, dims, window, stride, seed):
    """Any long enough finite input gives ((T - window) // stride + 1) rows per sequence of 4 D
    finite features, spread and motion never negative; a shorter one is refused by name."""
    x = np.random.default_rng(seed).standard_normal((*lead, frames, dims))
    if frames < window:
        with pytest.raises(UsageError, match=f"{frames} frames are too short for one window"):
            realism.window_features(x, window, stride)
        return
    features = realism.window_features(x, window, stride)
    per_sequence = (frames - window) // stride + 1
    assert features.shape == (math.prod(lead) * per_sequence, 4 * dims)
    assert np.isfinite(features).all() and (features[:, dims:] >= 0).all()


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(40, 80), st.integers(1, 5)),
    where=st.integers(0, 10**6),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_non_finite_input_is_refused_by_every_measure(shape, where, bad):
    x = np.random.default_rng(where).standard_normal(shape)
    x.flat[where % x.size] = bad
    for measure in (
        lambda: realism.window_features(x),
        lambda: realism.smoothness(x),
        lambda: realism.realism_fd(x, np.zeros((2, 64, shape[-1]))),
        lambda: realism.realism_fd(np.zeros((2, 64, shape[-1])), x),
        lambda: realism.frechet_distance(x.reshape(-1, shape[-1]), np.zeros((4, shape[-1]))),
    ):
        with pytest.raises(UsageError, match="non-finite"):
            measure()


@settings(max_examples=25, deadline=None)
@given(window=st.integers(-5, 2), stride=st.integers(-5, 0), frames=st.integers(0, 1))
def test_bad_windows_and_too_short_input_are_refused_by_name(window, stride, frames):
    x = np.zeros((2, 40, 3))
    with pytest.raises(UsageError, match=f"window must be >= 3 .*got {window}"):
        realism.window_features(x, window=window)
    with pytest.raises(UsageError, match=f"stride must be >= 1, got {stride}"):
        realism.window_features(x, stride=stride)
    if window < 1:
        with pytest.raises(UsageError, match=f"window must be >= 1, got {window}"):
            realism.smoothness(x, window=window)
    with pytest.raises(UsageError, match=f"{frames} frame.* too short"):
        realism.smoothness(np.zeros((2, frames, 3)))
    with pytest.raises(UsageError, match="too short for one window of 32"):
        realism.realism_fd(x[:, :31], x)
