"""Tests for reactlib.widgets: the schedule explorer's pure function and its widget wiring."""

from __future__ import annotations

import math

import ipywidgets
import matplotlib
import numpy as np
import pandas as pd
import pytest

from reactlib import diffusion
from reactlib.widgets import (
    SCHEDULE_COLUMNS,
    ScheduleExplorer,
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
