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
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from reactlib import diffusion, rules
from reactlib.face import coeffs
from reactlib.models import losses

SCHEDULE_COLUMNS = ("step", "sigma", "sigma_next", "log_sigma", "h")


def _show(explorer, fig) -> None:
    """Put ``fig`` into an explorer's image widget as a PNG and keep it as ``explorer.figure``
    (closed, so a notebook does not draw it a second time)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    explorer.image.value = buffer.getvalue()
    explorer.figure = fig


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
        _show(self, fig)


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


# --- AU-pair constraints (ReactDiff eq 9, Table 17) ----------------------------------------------

AU_PAIR_BINS = 40
"""Bins per axis of the co-activation histograms of :func:`au_pair_figure_data`."""
AU_PAIR_TABLE_COLUMNS = (
    "a",
    "b",
    "corr_data",
    "both_active_data",
    "corr_generated",
    "both_active_generated",
    "l_fac",
)
ALL_PAIRS = "all"
"""The pair dropdown's value that selects every pair of the kind."""


def _coefficient_frames(name: str, x) -> np.ndarray:
    """``x`` as a float64 array ``(..., 58)`` of finite values, or a ``ValueError`` naming it."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != coeffs.NUM_COEFFS or x.size == 0:
        raise ValueError(
            f"{name} must be a non-empty (..., {coeffs.NUM_COEFFS}) array, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has NaN or infinite values")
    return x


def _finite_real(name: str, value, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return float(value)


def _as_pair(pair) -> tuple | None:
    """A pair given as any two-item sequence, as the tuple :func:`reactlib.face.coeffs.pairs` lists;
    anything else unchanged (it then matches no pair)."""
    return tuple(pair) if isinstance(pair, list | tuple) else pair


def _pooled(frames: np.ndarray, table: np.ndarray, threshold: float, edges: np.ndarray) -> dict:
    """Co-activation of the pairs ``table`` ``(P, 2)`` over ``frames`` ``(F, 58)``, every pair's
    values pooled: Pearson correlation of first against second coefficient (NaN when either is
    constant, as in :func:`reactlib.rules.pair_statistics`), the fraction of (frame, pair) points
    with both above ``threshold``, and the 2-D histogram as fractions of the points."""
    first, second = frames[:, table[:, 0]].ravel(), frames[:, table[:, 1]].ravel()
    constant = first.std() < 1e-9 or second.std() < 1e-9
    hist, _, _ = np.histogram2d(first, second, bins=[edges, edges])
    return {
        "corr": np.nan if constant else float(np.corrcoef(first, second)[0, 1]),
        "both_active": float(np.mean((first > threshold) & (second > threshold))),
        "frames": len(frames),
        "hist": hist / first.size,
    }


def au_pair_figure_data(
    data: np.ndarray,
    generated: np.ndarray | None,
    kind: str,
    pair: tuple[str, str] | None,
    fac_weight: float,
    threshold: float = rules.EXCLUSIVE_THRESHOLD,
) -> dict:
    """How the Table 17 pairs of one relation ``kind`` co-activate in real frames ``data`` and in
    ``generated`` frames (both ``(..., 58)`` coefficients), and ReactDiff's FAC term between them.

    ``pair`` picks one pair of the kind (as listed by :func:`reactlib.face.coeffs.pairs`); None
    takes every pair of the kind, their values pooled. Returned dict:

    - ``kind``, ``pair``, ``pairs`` (the selected pairs), ``fac_weight``, ``threshold``;
    - ``edges`` ``(AU_PAIR_BINS + 1,)`` and ``hist`` ``{"data": H, "generated": H or None}``: 2-D
      histograms of first coefficient (rows) against second (columns) as fractions of the
      (frame, pair) points; the edges span [0, 1] and every value of either array;
    - ``summary``: DataFrame indexed ``data``/``generated`` with the pooled Pearson ``corr``, the
      fraction ``both_active`` of points with both coefficients above ``threshold`` and the number
      of ``frames``;
    - ``table``: one row per pair of the kind (:data:`AU_PAIR_TABLE_COLUMNS`): correlation and
      both-active fraction in each array (:func:`reactlib.rules.pair_statistics`) and ``l_fac``,
      the pair's share of the FAC term (NaN without ``generated``);
    - ``l_fac`` and ``fac`` = ``fac_weight * l_fac`` (None without ``generated``).

    The FAC term is eq 9, :func:`reactlib.models.losses.fac_loss`, with the generated frames as the
    output and the real frames as the target: for each selected pair ``(a, b)``,
    ``|(g_a - g_b) - (d_a - d_b)|``, summed over the pairs and averaged over frames. In training
    eq 9 compares the network's output with its target on noised training windows; at inference
    there is no target, so here it measures how far the pair differences of generated reactions
    are from those of real reactions to the same speakers, at the scale ``fac_weight`` gives it in
    eq 10. ``generated`` must broadcast against ``data`` frame by frame: pass ``data`` as
    ``(N, 1, T, 58)`` for ``generated`` ``(N, M, T, 58)``, M reactions per real one.

    Raises ``ValueError`` for an unknown kind, a pair not of the kind, arrays that are not
    ``(..., 58)``, hold NaN or do not broadcast, a negative or non-finite ``fac_weight``, or a
    non-finite ``threshold``.
    """
    kind_pairs = coeffs.pairs(kind)  # raises ValueError naming the valid kinds
    if pair is not None:
        pair = _as_pair(pair)
        if pair not in kind_pairs:
            raise ValueError(
                f"{pair!r} is not a {kind} pair of Table 17; "
                f"see reactlib.face.coeffs.pairs({kind!r})"
            )
    fac_weight = _finite_real("fac_weight", fac_weight, minimum=0.0)
    threshold = _finite_real("threshold", threshold)
    data = _coefficient_frames("data", data)
    if generated is not None:
        generated = _coefficient_frames("generated", generated)
        try:
            shape = np.broadcast_shapes(data.shape, generated.shape)
        except ValueError:
            raise ValueError(
                f"generated {generated.shape} does not broadcast against data {data.shape}: "
                "pass data as (N, 1, T, 58) for generated (N, M, T, 58)"
            ) from None

    kind_table = coeffs.pair_indices(kind)
    chosen = kind_table if pair is None else kind_table[[kind_pairs.index(pair)]]
    sources = {"data": data.reshape(-1, coeffs.NUM_COEFFS)}
    if generated is not None:
        sources["generated"] = generated.reshape(-1, coeffs.NUM_COEFFS)
    values = np.concatenate([frames[:, chosen].ravel() for frames in sources.values()])
    edges = np.linspace(min(0.0, values.min()), max(1.0, values.max()), AU_PAIR_BINS + 1)
    pooled = {name: _pooled(frames, chosen, threshold, edges) for name, frames in sources.items()}

    table = pd.DataFrame(kind_pairs, columns=["a", "b"])
    for name in ("data", "generated"):
        stats = None
        if name in sources:
            stats = rules.pair_statistics(sources[name], threshold)
            stats = stats[stats.kind == kind].reset_index(drop=True)
        for column in ("corr", "both_active"):
            table[f"{column}_{name}"] = np.nan if stats is None else stats[column].to_numpy()
    table["l_fac"] = np.nan
    l_fac = None
    if generated is not None:
        output = np.broadcast_to(generated, shape).reshape(1, -1, coeffs.NUM_COEFFS)
        target = np.broadcast_to(data, shape).reshape(1, -1, coeffs.NUM_COEFFS)
        error = output[0] - target[0]
        table["l_fac"] = np.abs(error[:, kind_table[:, 0]] - error[:, kind_table[:, 1]]).mean(0)
        if pair is None:
            # torch.tensor copies: the broadcast views are read-only
            as_tensors = torch.tensor(output), torch.tensor(target)
            l_fac = float(losses.fac_loss(*as_tensors, kinds=(kind,))[0])
        else:
            l_fac = float(table.l_fac[kind_pairs.index(pair)])

    summary = pd.DataFrame(
        [{k: v for k, v in pooled[name].items() if k != "hist"} for name in pooled],
        index=list(pooled),
    ).reindex(["data", "generated"])
    return {
        "kind": kind,
        "pair": pair,
        "pairs": list(kind_pairs) if pair is None else [pair],
        "fac_weight": fac_weight,
        "threshold": threshold,
        "edges": edges,
        "hist": {name: pooled[name]["hist"] if name in pooled else None for name in summary.index},
        "summary": summary,
        "table": table,
        "l_fac": l_fac,
        "fac": None if l_fac is None else fac_weight * l_fac,
    }


def draw_au_pairs(fig_data: dict, axes=None):
    """Plot an :func:`au_pair_figure_data` result on three axes: the co-activation histogram of
    the real frames, that of the generated ones (a note when there are none), both with the line
    a = b and the both-active corner above the threshold, and per pair of the kind the
    correlation (symmetric, co-occurring) or both-active fraction (mutually exclusive) of each,
    the selected pair marked. Returns the axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    left, middle, right = axes
    edges, threshold, summary = fig_data["edges"], fig_data["threshold"], fig_data["summary"]
    pair = fig_data["pair"]
    first, second = pair if pair else ("first of each pair", "second of each pair")
    positive = [h[h > 0] for h in fig_data["hist"].values() if h is not None]
    norm = matplotlib.colors.LogNorm(min(p.min() for p in positive), max(p.max() for p in positive))
    for ax, name in ((left, "data"), (middle, "generated")):
        hist = fig_data["hist"][name]
        ax.set(xlabel=first, ylabel=second, aspect="equal")
        if hist is None:
            ax.text(0.5, 0.5, "no generated frames", ha="center", transform=ax.transAxes)
            ax.set_title(name, fontsize=9)
            continue
        shown = np.ma.masked_equal(hist.T, 0)  # rows of the image are the second coefficient
        ax.pcolormesh(edges, edges, shown, norm=norm, cmap="viridis")
        ax.plot(edges[[0, -1]], edges[[0, -1]], color="0.5", lw=0.8, ls=":")
        ax.plot([threshold, threshold, edges[-1]], [edges[-1], threshold, threshold], "r--", lw=0.8)
        row = summary.loc[name]
        both = f"both > {threshold:g}: {row['both_active']:.1%}"
        ax.set_title(f"{name}: r = {row['corr']:.2f}, {both}", fontsize=9)
    table = fig_data["table"]
    measure = "both_active" if fig_data["kind"] == "mutually_exclusive" else "corr"
    x = np.arange(len(table))
    for offset, name, colour in ((-0.2, "data", "0.55"), (0.2, "generated", "C1")):
        right.bar(x + offset, table[f"{measure}_{name}"], 0.4, color=colour, label=name)
    if pair:
        chosen = table.index[(table.a == pair[0]) & (table.b == pair[1])][0]
        right.axvspan(chosen - 0.5, chosen + 0.5, color="C0", alpha=0.15, label="selected")
    labels = [f"{a} / {b}" for a, b in zip(table.a, table.b, strict=True)]
    right.set_xticks(x, labels, rotation=90, fontsize=5 if len(table) > 30 else 7)
    fac = fig_data["fac"]
    weighted = "" if fac is None else f"; lambda L_fac = {fac:.3g}"
    right.set_ylabel(measure)
    right.set_title(f"{fig_data['kind']} pairs, per pair{weighted}", fontsize=9)
    right.legend(fontsize=7)
    return axes


class AUPairExplorer(ipywidgets.VBox):
    """Dropdowns for the relation kind and the pair, and a log slider for lambda, over the
    :func:`draw_au_pairs` figure of ``data`` against ``generated``.

    After every change, :meth:`update` stores the new :func:`au_pair_figure_data` result in
    ``result`` (None when the selection or the arrays are invalid, with the reason in ``error``)
    and the figure it drew in ``figure``. Changing the kind resets the pair to all pairs.
    """

    def __init__(
        self,
        data: np.ndarray,
        generated: np.ndarray | None = None,
        *,
        kind: str = "symmetric",
        pair: tuple[str, str] | None = None,
        fac_weight: float = losses.LAMBDA_FAC,
        threshold: float = rules.EXCLUSIVE_THRESHOLD,
    ):
        self.data, self.generated, self.threshold = data, generated, threshold
        self.controls = {
            "kind": ipywidgets.Dropdown(
                options=coeffs.PAIR_KINDS,
                value=kind if kind in coeffs.PAIR_KINDS else None,
                description="kind",
            ),
            "pair": ipywidgets.Dropdown(description="pair", layout={"width": "28em"}),
            "fac_weight": ipywidgets.FloatLogSlider(
                value=fac_weight, base=10, min=-6, max=0, step=0.5, description="lambda"
            ),
        }
        self._set_pair_options(kind, pair)
        # PNG image rather than an Output widget: see ScheduleExplorer.
        self.image = ipywidgets.Image(format="png")
        self.message = ipywidgets.HTML()
        self.result: dict | None = None
        self.error: str | None = None
        self.figure = None
        super().__init__([ipywidgets.HBox(list(self.controls.values())), self.message, self.image])
        self.controls["kind"].observe(self._kind_changed, names="value")
        self.controls["pair"].observe(self.update, names="value")
        self.controls["fac_weight"].observe(self.update, names="value")
        # The first drawing uses the arguments as given, so that a bad kind or pair is reported
        # by name rather than shown as an empty dropdown.
        self._compute(kind=kind, pair=pair, fac_weight=fac_weight)

    def _set_pair_options(self, kind: str | None, pair=None) -> None:
        """Fill the pair dropdown with the pairs of ``kind`` and select ``pair`` if it is one."""
        listed = coeffs.pairs(kind) if kind in coeffs.PAIR_KINDS else ()
        control = self.controls["pair"]
        control.options = [("all pairs of the kind", ALL_PAIRS)] + [
            (f"{a} / {b}", (a, b)) for a, b in listed
        ]
        control.value = _as_pair(pair) if _as_pair(pair) in listed else ALL_PAIRS

    def values(self) -> dict:
        """The controls' current values, as keyword arguments of :func:`au_pair_figure_data`."""
        pair = self.controls["pair"].value
        return {
            "kind": self.controls["kind"].value,
            "pair": None if pair == ALL_PAIRS else pair,
            "fac_weight": self.controls["fac_weight"].value,
        }

    def _kind_changed(self, change=None) -> dict | None:
        """Observer of the kind dropdown: list the new kind's pairs (all selected), then redraw
        once (the pair dropdown's own observer is held off while its options change)."""
        pair = self.controls["pair"]
        pair.unobserve(self.update, names="value")
        try:
            self._set_pair_options(self.controls["kind"].value)
        finally:
            pair.observe(self.update, names="value")
        return self.update()

    def update(self, change=None) -> dict | None:
        """Recompute and redraw from the controls (the observer callback); returns the result."""
        return self._compute(**self.values())

    def _compute(self, **values) -> dict | None:
        try:
            result = au_pair_figure_data(
                self.data, self.generated, threshold=self.threshold, **values
            )
            self.result, self.error = result, None
        except ValueError as err:
            self.result, self.error = None, str(err)
        self._draw()
        return self.result

    def _draw(self) -> None:
        self.figure = None
        if self.result is None:
            self.message.value = f"<b>invalid selection:</b> {html.escape(self.error or '')}"
            return
        fac = self.result["fac"]
        self.message.value = (
            "" if fac is None else f"lambda L_fac = {fac:.4g} (L_fac = {self.result['l_fac']:.4g})"
        )
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.6]})
        draw_au_pairs(self.result, axes)
        _show(self, fig)


def au_pair_explorer(
    data: np.ndarray,
    generated: np.ndarray | None = None,
    *,
    kind: str = "symmetric",
    pair: tuple[str, str] | None = None,
    fac_weight: float = losses.LAMBDA_FAC,
    threshold: float = rules.EXCLUSIVE_THRESHOLD,
) -> AUPairExplorer:
    """The AU-pair explorer widget over real frames ``data`` and ``generated`` frames (``(..., 58)``
    each, broadcasting frame by frame as :func:`au_pair_figure_data` asks), started at ``kind``,
    ``pair`` (None: every pair of the kind) and lambda = ``fac_weight`` (the paper's 1e-4 by
    default). Display it as a cell's last expression. It never raises for a bad selection or bad
    arrays: the reason is shown, and kept in ``error``."""
    return AUPairExplorer(
        data, generated, kind=kind, pair=pair, fac_weight=fac_weight, threshold=threshold
    )
