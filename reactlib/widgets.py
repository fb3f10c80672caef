"""Interactive explorers for the notebooks.

Each explorer is three layers: a pure function that computes what to plot (tested in pytest), a
drawing function that plots it onto matplotlib axes (also used for the static figure a headless run
keeps), and a thin ipywidgets builder that wires sliders to both. Jupyter swallows exceptions raised
in widget callbacks, so a builder never lets one escape: it stores the result, or the error message,
on the explorer, where tests can assert on it and students can read it.
"""

from __future__ import annotations

import html
import io
import math
import numbers

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reactlib import diffusion

SCHEDULE_COLUMNS = ("step", "sigma", "sigma_next", "log_sigma", "h")


def schedule_figure_data(
    n: int,
    sigma_min: float = diffusion.SIGMA_MIN,
    sigma_max: float = diffusion.SIGMA_MAX,
    rho: float = diffusion.RHO,
) -> pd.DataFrame:
    """The Karras schedule of ``n`` steps as a table, one row per network evaluation.

    Columns: ``step`` i (0 .. n-1); ``sigma`` the level the model sees; ``sigma_next`` the level
    the step lands on (0 for the last); ``log_sigma`` = ln sigma; ``h`` = ln(sigma / sigma_next),
    the step size in lambda = -ln sigma that DPM-Solver++ takes (``inf`` for the last step, to 0).
    Raises ``ValueError`` for a non-integer or non-positive ``n``, non-finite numbers,
    ``sigma_min >= sigma_max`` or ``rho <= 0``.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    values = {"sigma_min": sigma_min, "sigma_max": sigma_max, "rho": rho}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    sigmas = diffusion.karras_sigmas(int(n), float(sigma_min), float(sigma_max), float(rho))
    sigmas = sigmas.numpy()
    sigma, sigma_next = sigmas[:-1], sigmas[1:]
    with np.errstate(divide="ignore"):
        h = np.log(sigma) - np.log(sigma_next)  # the last step, to sigma 0, is infinite in lambda
    return pd.DataFrame(
        {
            "step": np.arange(int(n)),
            "sigma": sigma,
            "sigma_next": sigma_next,
            "log_sigma": np.log(sigma),
            "h": h,
        }
    )


def draw_schedule(data: pd.DataFrame, axes=None, *, label: str | None = None, **line_kwargs):
    """Plot a :func:`schedule_figure_data` table: sigma per step (log scale) on the first axes, the
    step size h in lambda on the second (the infinite last step left out). Returns the axes."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    left, right = axes
    left.plot(data.step, data.sigma, ".-", label=label, **line_kwargs)
    left.set(yscale="log", xlabel="step i", ylabel="sigma_i", title="noise level per step")
    finite = np.isfinite(data.h)
    right.plot(data.step[finite], data.h[finite], ".-", label=label, **line_kwargs)
    right.set(xlabel="step i", ylabel="h_i = ln(sigma_i / sigma_i+1)", title="step size in lambda")
    return axes


class ScheduleExplorer(ipywidgets.VBox):
    """Sliders for ``n``, ``rho``, ``sigma_min`` and ``sigma_max`` over the Karras schedule plot,
    with a grey reference curve at ``reference_rho``.

    After every change, :meth:`update` stores the new table in ``data`` (None when the values are
    invalid, with the reason in ``error``) and the figure it drew in ``figure``.
    """

    def __init__(
        self,
        n: int = diffusion.REACTDIFF_STEPS,
        sigma_min: float = diffusion.REACTDIFF_SIGMA_MIN,
        sigma_max: float = diffusion.REACTDIFF_SIGMA_MAX,
        rho: float = diffusion.REACTDIFF_RHO,
        reference_rho: float = diffusion.REACTDIFF_RHO,
    ):
        self.reference_rho = reference_rho
        self.controls = {
            "n": ipywidgets.IntSlider(value=n, min=1, max=200, description="steps n"),
            "rho": ipywidgets.FloatSlider(
                value=rho, min=0.5, max=20.0, step=0.5, description="rho"
            ),
            "sigma_min": ipywidgets.FloatLogSlider(
                value=sigma_min, base=10, min=-4, max=0, step=0.1, description="sigma_min"
            ),
            "sigma_max": ipywidgets.FloatLogSlider(
                value=sigma_max, base=10, min=0, max=3, step=0.1, description="sigma_max"
            ),
        }
        # The figure is shown as a PNG image widget rather than drawn into an Output widget:
        # an Output widget captures display messages through the kernel's comm channel, which
        # headless executors (papermill, nbval) handle differently and can stall on.
        self.image = ipywidgets.Image(format="png")
        self.message = ipywidgets.HTML()
        self.data: pd.DataFrame | None = None
        self.error: str | None = None
        self.figure = None
        super().__init__([ipywidgets.HBox(list(self.controls.values())), self.message, self.image])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def values(self) -> dict[str, float]:
        """The sliders' current values, as keyword arguments of :func:`schedule_figure_data`."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self, change=None) -> pd.DataFrame | None:
        """Recompute and redraw from the sliders (the observer callback); returns the new table."""
        values = self.values()
        try:
            self.data, self.error = schedule_figure_data(**values), None
        except ValueError as err:
            self.data, self.error = None, str(err)
        self._draw(values)
        return self.data

    def _draw(self, values: dict[str, float]) -> None:
        self.figure = None
        if self.data is None:
            self.message.value = f"<b>invalid settings:</b> {html.escape(self.error or '')}"
            return
        self.message.value = ""
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        reference = {**values, "rho": self.reference_rho}
        draw_schedule(
            schedule_figure_data(**reference),
            axes,
            label=f"rho = {self.reference_rho:g}",
            color="0.7",
        )
        draw_schedule(self.data, axes, label=f"rho = {values['rho']:g}", color="C0")
        below = float((self.data.sigma < 1).mean())
        title = f"{len(self.data)} steps; {below:.0%} of the network calls at sigma < 1"
        fig.suptitle(title, y=1.02)
        axes[0].legend()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        self.image.value = buffer.getvalue()
        self.figure = fig


def schedule_explorer(
    n: int = diffusion.REACTDIFF_STEPS,
    sigma_min: float = diffusion.REACTDIFF_SIGMA_MIN,
    sigma_max: float = diffusion.REACTDIFF_SIGMA_MAX,
    rho: float = diffusion.REACTDIFF_RHO,
    reference_rho: float = diffusion.REACTDIFF_RHO,
) -> ScheduleExplorer:
    """The Karras-schedule explorer widget, started at the given values (ReactDiff's by default:
    50 steps from 80 to 0.01, rho 7). Display it as a cell's last expression."""
    return ScheduleExplorer(n, sigma_min, sigma_max, rho, reference_rho)
