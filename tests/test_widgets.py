"""Tests for reactlib.suite.widgets: the explorers' pure functions and their widget wiring."""

from __future__ import annotations

import math

import ipywidgets
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from reactlib import diffusion, rules
from reactlib.face import coeffs
from reactlib.models import losses
from reactlib.suite.widgets import (
    AU_PAIR_TABLE_COLUMNS,
    SCHEDULE_COLUMNS,
    AUPairExplorer,
    ScheduleExplorer,
    au_pair_explorer,
    au_pair_figure_data,
    draw_au_pairs,
    draw_schedule,
    schedule_explorer,
    schedule_figure_data,
)

matplotlib.use("Agg")


def _karras(n, sigma_min, sigma_max, rho):
    """EDM's eq. 5, written out independently of the package."""
    i = np.arange(n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + i / max(n - 1, 1) * (lo - hi)) ** rho


# --- schedule_figure_data ------------------------------------------------------------------------


def test_table_has_one_row_per_network_call_and_the_documented_columns():
    data = schedule_figure_data(12)
    assert isinstance(data, pd.DataFrame)
    assert tuple(data.columns) == SCHEDULE_COLUMNS
    assert len(data) == 12
    assert data.step.tolist() == list(range(12))


@pytest.mark.parametrize(
    ("n", "sigma_min", "sigma_max", "rho"),
    [(50, 0.01, 80.0, 7.0), (10, 0.002, 80.0, 3.0), (2, 0.1, 5.0, 1.0), (7, 1e-4, 1000.0, 12.5)],
)
def test_values_follow_the_karras_formula_with_exact_endpoints(n, sigma_min, sigma_max, rho):
    data = schedule_figure_data(n, sigma_min, sigma_max, rho)
    assert data.sigma.iloc[0] == sigma_max
    assert data.sigma.iloc[-1] == sigma_min
    assert data.sigma_next.iloc[-1] == 0
    np.testing.assert_allclose(data.sigma, _karras(n, sigma_min, sigma_max, rho), rtol=1e-12)
    np.testing.assert_array_equal(data.sigma_next.iloc[:-1], data.sigma.iloc[1:])
    np.testing.assert_allclose(data.log_sigma, np.log(data.sigma), rtol=1e-15)


def test_reactdiff_schedule_starts_and_ends_where_the_official_one_does():
    sigma = schedule_figure_data(50, 0.01, 80.0, 7.0).sigma
    np.testing.assert_allclose(sigma.iloc[:3], [80.0, 72.1, 64.9], atol=0.05)
    np.testing.assert_allclose(sigma.iloc[-2:], [0.0144, 0.0100], atol=5e-5)


def test_sigma_decreases_and_h_is_the_log_ratio():
    data = schedule_figure_data(30, 0.002, 80.0, 7.0)
    assert (np.diff(data.sigma) < 0).all()
    finite = data.h.iloc[:-1]
    assert (finite > 0).all()
    np.testing.assert_allclose(finite, np.log(data.sigma.iloc[:-1] / data.sigma_next.iloc[:-1]))
    assert math.isinf(data.h.iloc[-1]), "the last step, to sigma 0, is infinite in lambda"
    np.testing.assert_allclose(finite.sum(), math.log(80.0 / 0.002), rtol=1e-12)


def test_one_step_goes_from_sigma_max_straight_to_zero():
    data = schedule_figure_data(1, 0.01, 80.0, 7.0)
    assert data.sigma.tolist() == [80.0]
    assert data.sigma_next.tolist() == [0.0]


def test_rho_moves_the_steps_toward_low_noise():
    medians = [schedule_figure_data(40, 0.002, 80.0, rho).sigma.median() for rho in (1, 3, 7, 15)]
    assert all(a > b for a, b in zip(medians, medians[1:], strict=False)), medians


def test_rho_one_is_linear_in_sigma_and_large_rho_is_geometric():
    linear = schedule_figure_data(20, 0.002, 80.0, 1.0)
    np.testing.assert_allclose(np.diff(linear.sigma), np.diff(linear.sigma)[0], rtol=1e-9)
    geometric = schedule_figure_data(20, 0.002, 80.0, 1e5).h.iloc[:-1]
    assert geometric.std() / geometric.mean() < 1e-3
    karras = schedule_figure_data(20, 0.002, 80.0, 7.0).h.iloc[:-1]
    assert karras.is_monotonic_increasing, "rho 7 takes ever larger lambda steps toward sigma_min"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": -3},
        {"n": 2.5},
        {"n": True},
        {"n": "10"},
        {"n": 10, "sigma_min": 0.0},
        {"n": 10, "sigma_min": -1.0},
        {"n": 10, "sigma_min": 5.0, "sigma_max": 5.0},
        {"n": 10, "sigma_min": 10.0, "sigma_max": 5.0},
        {"n": 10, "rho": 0.0},
        {"n": 10, "rho": -7.0},
        {"n": 10, "sigma_max": math.inf},
        {"n": 10, "rho": math.nan},
        {"n": 10, "sigma_min": None},
    ],
)
def test_bad_input_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        schedule_figure_data(**kwargs)


def test_numpy_integers_and_floats_are_accepted():
    data = schedule_figure_data(np.int64(5), np.float64(0.01), np.float32(80.0), np.int32(7))
    assert len(data) == 5 and data.sigma.iloc[0] == 80.0


def test_draw_schedule_plots_the_table_values():
    data = schedule_figure_data(9, 0.01, 80.0, 7.0)
    left, right = draw_schedule(data, label="rho 7")
    np.testing.assert_array_equal(left.lines[0].get_ydata(), data.sigma)
    np.testing.assert_array_equal(right.lines[0].get_ydata(), data.h.iloc[:-1])
    assert left.get_yscale() == "log"
    matplotlib.pyplot.close(left.figure)


# --- the explorer widget -------------------------------------------------------------------------


def test_builder_returns_a_widget_holding_the_initial_table():
    explorer = schedule_explorer(n=20, sigma_min=0.01, sigma_max=80.0, rho=7.0)
    assert isinstance(explorer, ipywidgets.Widget) and isinstance(explorer, ScheduleExplorer)
    assert explorer.error is None
    pd.testing.assert_frame_equal(explorer.data, schedule_figure_data(20, 0.01, 80.0, 7.0))
    assert set(explorer.controls) == {"n", "rho", "sigma_min", "sigma_max"}
    assert all(c in explorer.children[0].children for c in explorer.controls.values())


def test_moving_a_slider_recomputes_the_table_and_the_figure():
    explorer = schedule_explorer(n=20, sigma_min=0.01, sigma_max=80.0, rho=7.0)
    before = explorer.data
    explorer.controls["rho"].value = 3.0  # fires the observer, as a slider drag does
    assert explorer.data is not before
    pd.testing.assert_frame_equal(explorer.data, schedule_figure_data(20, 0.01, 80.0, 3.0))
    current = explorer.figure.axes[0].lines[-1]
    np.testing.assert_allclose(current.get_ydata(), explorer.data.sigma)
    reference = explorer.figure.axes[0].lines[0]
    np.testing.assert_allclose(reference.get_ydata(), schedule_figure_data(20, 0.01, 80.0, 7).sigma)


def test_the_figure_is_shown_as_a_png_image_and_errors_as_a_message():
    explorer = schedule_explorer(n=12)
    first = explorer.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and explorer.message.value == ""
    explorer.controls["rho"].value = 2.0
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n" and explorer.image.value != first
    explorer.controls["sigma_min"].value = 1.0
    explorer.controls["sigma_max"].value = 1.0
    assert "invalid settings" in explorer.message.value
    assert "sigma_min &lt; sigma_max" in explorer.message.value


def test_calling_the_callback_directly_returns_and_stores_the_new_table():
    explorer = schedule_explorer(n=8)
    explorer.controls["n"].value = 33
    result = explorer.update({"name": "value", "new": 33})
    assert result is explorer.data
    assert len(result) == 33
    assert result.sigma.iloc[0] == explorer.controls["sigma_max"].value


def test_invalid_slider_values_are_stored_as_an_error_not_raised():
    explorer = schedule_explorer(n=10, sigma_min=0.01, sigma_max=80.0)
    explorer.controls["sigma_min"].value = 1.0
    explorer.controls["sigma_max"].value = 1.0
    assert explorer.data is None
    assert explorer.figure is None
    assert "sigma_min < sigma_max" in explorer.error
    explorer.controls["sigma_max"].value = 10.0  # valid again: the error clears
    assert explorer.error is None
    assert explorer.data.sigma.iloc[0] == pytest.approx(10.0)
    assert explorer.data.sigma.iloc[-1] == pytest.approx(1.0)


def test_default_explorer_is_reactdiffs_schedule():
    explorer = schedule_explorer()
    pd.testing.assert_frame_equal(
        explorer.data, schedule_figure_data(50, 0.01, diffusion.SIGMA_MAX, diffusion.RHO)
    )


# --- au_pair_figure_data -------------------------------------------------------------------------

SMILE = ("mouthSmileLeft", "mouthSmileRight")
"""A symmetric pair; the left smile takes part in 2 co-occurring and 5 exclusive pairs, and so
does the right one (Table 17)."""


def _frames(shape=(2, 12), seed=0):
    """Random coefficients in [0, 1] of the given leading shape, ``(*shape, 58)``."""
    return np.random.default_rng(seed).uniform(0, 1, (*shape, coeffs.NUM_COEFFS))


def _smiles(left, right, frames=6):
    """``(frames, 58)`` zeros with the left and right smile set."""
    x = np.zeros((frames, coeffs.NUM_COEFFS))
    x[:, coeffs.index(SMILE[0])], x[:, coeffs.index(SMILE[1])] = left, right
    return x


@pytest.mark.parametrize("kind", coeffs.PAIR_KINDS)
def test_identical_frames_have_no_fac_gap_and_equal_statistics(kind):
    data = _frames()
    result = au_pair_figure_data(data, data.copy(), kind, None, 0.01)
    assert result["l_fac"] == 0 and result["fac"] == 0
    summary, table = result["summary"], result["table"]
    assert summary.loc["data", "corr"] == pytest.approx(summary.loc["generated", "corr"])
    assert summary.loc["data", "both_active"] == summary.loc["generated", "both_active"]
    np.testing.assert_array_equal(result["hist"]["data"], result["hist"]["generated"])
    np.testing.assert_allclose(table.corr_data, table.corr_generated)
    assert (table.l_fac == 0).all()


@pytest.mark.parametrize(
    ("kind", "pair", "pairs_touched"),
    [
        ("symmetric", SMILE, 1),  # the pair itself
        ("symmetric", None, 1),  # no other symmetric pair has a smile in it
        ("co_occurring", None, 4),  # cheekSquint* and browOuterUp* with each side's smile
        ("mutually_exclusive", None, 10),  # frown, funnel, lowerDown, stretch, upperUp
    ],
)
def test_a_swapped_smile_costs_the_hand_computed_fac(kind, pair, pairs_touched):
    # Real: left 0.8, right 0.2; generated: the sides swapped. Per frame, the smile pair's gap is
    # |(0.2 - 0.8) - (0.8 - 0.2)| = 1.2; a pair of one smile with a coefficient that is 0 in both
    # arrays has gap |(0.2 - 0) - (0.8 - 0)| = 0.6.
    data, generated = _smiles(0.8, 0.2), _smiles(0.2, 0.8)
    expected = 1.2 if kind == "symmetric" else 0.6 * pairs_touched
    result = au_pair_figure_data(data, generated, kind, pair, fac_weight=0.01)
    assert result["l_fac"] == pytest.approx(expected)
    assert result["fac"] == pytest.approx(0.01 * expected)
    assert (result["table"].l_fac > 0).sum() == pairs_touched


def test_fac_is_linear_in_lambda():
    data, generated = _frames(seed=1), _frames(seed=2)
    base = au_pair_figure_data(data, generated, "co_occurring", None, 1.0)
    assert base["l_fac"] > 0
    for weight in (0.0, 1e-4, 0.01, 0.37, 2.0):
        result = au_pair_figure_data(data, generated, "co_occurring", None, weight)
        assert result["l_fac"] == pytest.approx(base["l_fac"])
        assert result["fac"] == pytest.approx(weight * base["l_fac"], rel=1e-12, abs=0)


@pytest.mark.parametrize("kind", coeffs.PAIR_KINDS)
def test_the_kinds_fac_is_eq_9_and_the_sum_of_its_pairs(kind):
    data, generated = _frames(seed=3), _frames(seed=4)
    result = au_pair_figure_data(data, generated, kind, None, 1.0)
    index = coeffs.pair_indices(kind)
    error = (generated - data).reshape(-1, coeffs.NUM_COEFFS)
    by_hand = np.abs(error[:, index[:, 0]] - error[:, index[:, 1]]).sum(axis=1).mean()
    assert result["l_fac"] == pytest.approx(by_hand, rel=1e-9)
    assert result["table"].l_fac.sum() == pytest.approx(by_hand, rel=1e-9)
    output, target = (torch.from_numpy(x) for x in (generated, data))
    per_item = losses.fac_loss(output, target, (kind,))  # items of equal length: mean of means
    assert result["l_fac"] == pytest.approx(float(per_item.mean()), rel=1e-9)


def test_a_chosen_pair_is_filtered_out_of_its_kind():
    data, generated = _frames(seed=5), _frames(seed=6)
    whole = au_pair_figure_data(data, generated, "mutually_exclusive", None, 1.0)
    assert whole["pairs"] == list(coeffs.pairs("mutually_exclusive"))
    pair = ("jawOpen", "mouthClose")
    one = au_pair_figure_data(data, generated, "mutually_exclusive", list(pair), 1.0)
    assert one["pair"] == pair and one["pairs"] == [pair]
    row = one["table"].set_index(["a", "b"]).loc[pair]
    assert one["l_fac"] == pytest.approx(row.l_fac)
    assert len(one["table"]) == len(whole["table"]) == 58, "the table always lists the kind"
    stats = rules.pair_statistics(data).set_index(["kind", "a", "b"])
    expected = stats.loc[("mutually_exclusive", *pair)]
    assert one["summary"].loc["data", "corr"] == pytest.approx(expected["corr"])
    assert one["summary"].loc["data", "both_active"] == pytest.approx(expected.both_active)


def test_pooled_statistics_of_a_hand_made_pair():
    # jawOpen / mouthClose over four frames: both above 0.3 in the first and last.
    data = np.zeros((4, coeffs.NUM_COEFFS))
    data[:, coeffs.index("jawOpen")] = [0.5, 0.5, 0.0, 0.4]
    data[:, coeffs.index("mouthClose")] = [0.5, 0.0, 0.5, 0.4]
    result = au_pair_figure_data(data, None, "mutually_exclusive", ("jawOpen", "mouthClose"), 0.1)
    row = result["summary"].loc["data"]
    assert row.both_active == 0.5
    assert row["corr"] == pytest.approx(
        -8 / 17
    )  # deviations (.15,.15,-.35,.05), (.15,-.35,.15,.05)
    assert row.frames == 4
    stricter = au_pair_figure_data(
        data, None, "mutually_exclusive", ("jawOpen", "mouthClose"), 0.1, threshold=0.45
    )
    assert stricter["summary"].loc["data", "both_active"] == 0.25


def test_histograms_cover_every_value_and_sum_to_one():
    data, generated = _frames(seed=7), _frames(seed=8) * 1.5 - 0.2  # generated leaves [0, 1]
    result = au_pair_figure_data(data, generated, "symmetric", None, 1e-4)
    edges = result["edges"]
    chosen = coeffs.pair_indices("symmetric")
    assert edges[0] == pytest.approx(min(0.0, generated[..., chosen].min()))
    assert edges[-1] == pytest.approx(max(1.0, generated[..., chosen].max()))
    for name in ("data", "generated"):
        hist = result["hist"][name]
        assert hist.shape == (len(edges) - 1, len(edges) - 1)
        assert hist.sum() == pytest.approx(1.0)


def test_without_generated_frames_only_the_data_is_described():
    result = au_pair_figure_data(_frames(), None, "co_occurring", None, 0.01)
    assert result["fac"] is None and result["l_fac"] is None
    assert result["hist"]["generated"] is None
    assert tuple(result["table"].columns) == AU_PAIR_TABLE_COLUMNS
    assert result["table"][["corr_generated", "both_active_generated", "l_fac"]].isna().all().all()
    assert result["summary"].loc["generated"].isna().all()
    assert result["summary"].loc["data", "frames"] == 24


def test_m_reactions_are_compared_with_their_item_frame_by_frame():
    n, m, t = 2, 3, 5
    data, generated = _frames((n, t), seed=9), _frames((n, m, t), seed=10)
    result = au_pair_figure_data(data[:, None], generated, "symmetric", None, 1.0)
    per_reaction = [
        au_pair_figure_data(data, generated[:, j], "symmetric", None, 1.0)["l_fac"]
        for j in range(m)
    ]
    assert result["l_fac"] == pytest.approx(np.mean(per_reaction), rel=1e-12)
    assert result["summary"].loc["data", "frames"] == n * t, "each real frame counted once"
    assert result["summary"].loc["generated", "frames"] == n * m * t


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "sideways"}, "unknown pair kind"),
        ({"kind": None}, "unknown pair kind"),
        ({"pair": ("jawOpen", "mouthClose")}, "not a symmetric pair"),
        ({"pair": SMILE[::-1]}, "not a symmetric pair"),
        ({"pair": "mouthSmileLeft"}, "not a symmetric pair"),
        ({"data": np.zeros((4, 52))}, "data must be"),
        ({"data": np.zeros((0, 58))}, "data must be"),
        ({"generated": np.full((4, 58), np.nan)}, "NaN"),
        ({"generated": np.zeros((3, 58))}, "does not broadcast"),
        ({"fac_weight": -1e-4}, "fac_weight"),
        ({"fac_weight": math.nan}, "fac_weight"),
        ({"fac_weight": True}, "fac_weight"),
        ({"threshold": math.inf}, "threshold"),
    ],
)
def test_bad_au_pair_input_raises_value_error(changes, message):
    arguments = {
        "data": np.zeros((4, 58)),
        "generated": np.zeros((4, 58)),
        "kind": "symmetric",
        "pair": None,
        "fac_weight": 1e-4,
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        au_pair_figure_data(**arguments)


def test_draw_au_pairs_plots_the_table_and_marks_the_pair():
    data, generated = _frames(seed=11), _frames(seed=12)
    result = au_pair_figure_data(data, generated, "symmetric", SMILE, 1e-4)
    left, middle, right = draw_au_pairs(result)
    table = result["table"]
    data_bars, generated_bars = ([bar.get_height() for bar in c] for c in right.containers)
    np.testing.assert_allclose(data_bars, table.corr_data)
    np.testing.assert_allclose(generated_bars, table.corr_generated)
    assert len(right.patches) == 2 * len(table) + 1, "one band marks the selected pair"
    assert "lambda L_fac" in right.get_title()
    assert left.collections and middle.collections, "both histograms drawn"
    matplotlib.pyplot.close(left.figure)
    exclusive = au_pair_figure_data(data, None, "mutually_exclusive", None, 1e-4)
    left, middle, right = draw_au_pairs(exclusive)
    heights = [bar.get_height() for bar in right.containers[0]]
    np.testing.assert_allclose(heights, exclusive["table"].both_active_data)
    assert not middle.collections and "no generated frames" in middle.texts[0].get_text()
    matplotlib.pyplot.close(left.figure)


# --- the AU-pair explorer widget -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_arrays():
    data = _frames((2, 10), seed=13)
    return data[:, None], _frames((2, 2, 10), seed=14)


def test_au_pair_builder_holds_the_pure_functions_result(pair_arrays):
    data, generated = pair_arrays
    explorer = au_pair_explorer(data, generated, kind="co_occurring", fac_weight=0.01)
    assert isinstance(explorer, ipywidgets.Widget) and isinstance(explorer, AUPairExplorer)
    assert explorer.error is None
    expected = au_pair_figure_data(data, generated, "co_occurring", None, 0.01)
    assert explorer.result["fac"] == pytest.approx(expected["fac"])
    pd.testing.assert_frame_equal(explorer.result["table"], expected["table"])
    assert set(explorer.controls) == {"kind", "pair", "fac_weight"}
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lambda L_fac" in explorer.message.value


def test_changing_the_kind_lists_its_pairs_and_selects_all_of_them(pair_arrays):
    explorer = au_pair_explorer(*pair_arrays, kind="symmetric", pair=SMILE)
    assert explorer.result["pair"] == SMILE and explorer.controls["pair"].value == SMILE
    explorer.controls["kind"].value = "mutually_exclusive"
    assert explorer.result["kind"] == "mutually_exclusive" and explorer.result["pair"] is None
    options = [value for _, value in explorer.controls["pair"].options]
    assert options[1:] == list(coeffs.pairs("mutually_exclusive"))
    explorer.controls["pair"].value = ("jawOpen", "mouthClose")
    assert explorer.result["pairs"] == [("jawOpen", "mouthClose")]
    assert explorer.figure is not None


def test_the_lambda_slider_scales_fac_linearly(pair_arrays):
    explorer = au_pair_explorer(*pair_arrays, kind="symmetric", fac_weight=1e-4)
    at_paper = explorer.result["fac"]
    explorer.controls["fac_weight"].value = 1e-2
    assert explorer.result["fac"] == pytest.approx(100 * at_paper, rel=1e-9)
    assert explorer.result["l_fac"] == pytest.approx(at_paper / 1e-4, rel=1e-9)


def test_a_bad_kind_or_pair_is_stored_as_an_error_not_raised(pair_arrays):
    data, generated = pair_arrays
    explorer = au_pair_explorer(data, generated, kind="sideways")
    assert explorer.result is None and explorer.figure is None
    assert "unknown pair kind 'sideways'" in explorer.error
    assert "invalid selection" in explorer.message.value
    explorer.controls["kind"].value = "symmetric"  # a valid choice clears the error
    assert explorer.error is None and explorer.result["kind"] == "symmetric"

    wrong = au_pair_explorer(data, generated, kind="symmetric", pair=("jawOpen", "mouthClose"))
    assert "not a symmetric pair" in wrong.error

    # Through the callbacks: no kind selected, then a pair of another kind offered and chosen.
    explorer.controls["kind"].value = None
    assert explorer.result is None and "unknown pair kind" in explorer.error
    explorer.controls["kind"].value = "symmetric"
    explorer.controls["pair"].options = [("odd", ("jawOpen", "mouthClose"))]
    explorer.update()
    assert explorer.result is None and "not a symmetric pair" in explorer.error


def test_bad_arrays_are_reported_by_the_explorer(pair_arrays):
    explorer = au_pair_explorer(np.zeros((3, 52)), None)
    assert explorer.result is None and "data must be" in explorer.error
    mismatched = au_pair_explorer(pair_arrays[0], np.zeros((5, 7, 58)))
    assert "does not broadcast" in mismatched.error
