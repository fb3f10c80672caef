"""EDM preconditioning, noise schedules, training densities, and the samplers ReactDiff uses.

Notation (Karras et al. 2022, "EDM"): data ``x0``, noise level ``sigma``, noised ``x = x0 + sigma
eps``. A *denoiser* ``D(x; sigma)`` estimates ``x0``; the score is ``(D - x) / sigma**2``. Every
sampler takes ``model(x, sigma, **extra)`` returning the denoised estimate (the k-diffusion
calling convention), a decreasing schedule ``sigmas`` ending at 0, and starts from
``x = sigmas[0] * z``.

ReactDiff trains with the cosine (v-diffusion) sigma density on [1e-3, 1e3], sigma_data 0.5, and
samples with DPM-Solver++(2M) SDE (midpoint, eta 1, s_noise 1) on a Karras schedule of 50 steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

SIGMA_DATA = 0.5
"""Standard deviation of the (normalised) data the preconditioning assumes."""
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
"""EDM's sampling range and schedule exponent."""
DENSITIES = ("cosine", "lognormal", "loguniform")
WEIGHTINGS = ("karras", "snr", "soft_min_snr")
SOLVER_TYPES = ("midpoint", "heun")

Denoise = Callable[..., torch.Tensor]
Callback = Callable[[dict], None]


def _expand(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """``sigma`` as a tensor broadcastable against ``like``: a scalar, or one value per item."""
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return sigma.reshape(-1, *[1] * (like.ndim - 1)) if sigma.ndim else sigma


# --- Preconditioning -------------------------------------------------------------------------


def scalings(sigma, sigma_data: float = SIGMA_DATA):
    """EDM's ``c_skip, c_out, c_in`` (Table 1): unit-variance network input and target for every
    sigma, and ``D = c_skip x + c_out F`` passes ``x`` through where it is already clean."""
    sigma = torch.as_tensor(sigma)
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt()


def c_noise(sigma) -> torch.Tensor:
    """The network's noise-level input, ``ln(sigma) / 4``."""
    return torch.as_tensor(sigma).log() / 4


class Denoiser(torch.nn.Module):
    """``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise(sigma), **extra)`` around any inner
    network ``F``; extra keyword arguments (conditioning) pass straight through."""

    def __init__(self, inner: torch.nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.inner = inner
        self.sigma_data = sigma_data

    def forward(self, x: torch.Tensor, sigma, **extra) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in = (_expand(c, x) for c in scalings(sigma, self.sigma_data))
        return c_skip * x + c_out * self.inner(c_in * x, c_noise(sigma), **extra)

    def loss(
        self,
        x0: torch.Tensor,
        sigma: torch.Tensor,
        noise: torch.Tensor | None = None,
        weighting: str = "karras",
        **extra,
    ) -> torch.Tensor:
        """Per-item weighted denoising loss ``lambda(sigma) |D(x0 + sigma eps) - x0|^2`` (mean
        over all but the batch dimension); see :func:`loss_weight`."""
        noise = torch.randn_like(x0) if noise is None else noise
        denoised = self(x0 + noise * _expand(sigma, x0), sigma, **extra)
        error = (denoised - x0).pow(2).flatten(1).mean(1)
        return error * loss_weight(sigma, weighting, self.sigma_data)


def loss_weight(sigma, weighting: str = "karras", sigma_data: float = SIGMA_DATA):
    """Weight ``lambda(sigma)`` of the squared *denoised* error.

    ``karras`` is EDM's ``1 / c_out**2``, which makes the network's own target unit-weighted;
    ``snr`` and ``soft_min_snr`` multiply that by ``sigma_data**2 / (sigma**2 + sigma_data**2)`` and
    by ``(sigma sigma_data)**2 / (sigma**2 + sigma_data**2)**2``, as k-diffusion defines them.
    """
    sigma = torch.as_tensor(sigma)
    _, c_out, _ = scalings(sigma, sigma_data)
    total = sigma**2 + sigma_data**2
    factor = {
        "karras": torch.ones_like(sigma),
        "snr": sigma_data**2 / total,
        "soft_min_snr": (sigma * sigma_data) ** 2 / total**2,
    }
    if weighting not in factor:
        raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    return factor[weighting] / c_out**2


def guided(model: Denoise, scale: float, uncond: dict) -> Denoise:
    """Classifier-free guidance: ``D_u + scale (D_c - D_u)``, where ``D_u`` is the model with the
    conditioning replaced by ``uncond`` (e.g. ``{"cond_mask": zeros}``). ``scale`` 1 is the plain
    conditional model, 0 the unconditional one."""

    def denoise(x, sigma, **extra):
        conditional = model(x, sigma, **extra)
        if scale == 1:
            return conditional
        unconditional = model(x, sigma, **{**extra, **uncond})
        return unconditional + scale * (conditional - unconditional)

    return denoise


# --- Schedules and training densities ------------------------------------------------------------


def karras_sigmas(
    n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> torch.Tensor:
    """EDM's schedule: ``n`` levels from sigma_max to sigma_min, evenly spaced in
    ``sigma**(1/rho)``, then a final 0 (``n + 1`` values, float64 for exact endpoints)."""
    if n < 1 or not 0 < sigma_min < sigma_max or rho <= 0:
        raise ValueError(
            f"need n >= 1, 0 < sigma_min < sigma_max and rho > 0; got n={n}, "
            f"sigma_min={sigma_min}, sigma_max={sigma_max}, rho={rho}"
        )
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    # exact endpoints, free of rounding; sigma_max last so that n = 1 starts from sigma_max
    sigmas[-1], sigmas[0] = sigma_min, sigma_max
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def sample_sigmas(
    n: int,
    density: str = "cosine",
    *,
    sigma_data: float = SIGMA_DATA,
    sigma_min: float = 1e-3,
    sigma_max: float = 1e3,
    loc: float = -1.2,
    scale: float = 1.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` training noise levels from a density:

    - ``cosine`` (v-diffusion, ReactDiff's): ``sigma = sigma_data tan(pi u / 2)`` with ``u``
      uniform between the values that map to ``sigma_min`` and ``sigma_max``; its median over an
      unbounded range is ``sigma_data``;
    - ``lognormal`` (EDM's): ``ln sigma ~ N(loc, scale**2)``;
    - ``loguniform``: ``ln sigma`` uniform on ``[ln sigma_min, ln sigma_max]``.
    """
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    if density == "cosine":
        lo = math.atan(sigma_min / sigma_data) * 2 / math.pi
        hi = math.atan(sigma_max / sigma_data) * 2 / math.pi
        sigma = sigma_data * torch.tan((lo + u * (hi - lo)) * math.pi / 2)
    elif density == "lognormal":
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        sigma = (loc + scale * z).exp()
    elif density == "loguniform":
        sigma = (math.log(sigma_min) + u * (math.log(sigma_max) - math.log(sigma_min))).exp()
    else:
        raise ValueError(f"unknown density {density!r}; valid: {', '.join(DENSITIES)}")
    return sigma.float()


# --- Noise sources -------------------------------------------------------------------------------


def item_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent per-item seeds derived from one seed (item i's seed never depends on n)."""
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(n)]


class ItemNoise:
    """Standard normal noise with one seeded generator per batch item, so that item i's sample
    is the same whatever the batch size or the other items are.

    ``randn()`` gives ``(len(seeds), *shape)``; calling it as ``noise(sigma, sigma_next)`` makes it
    a noise sampler for the SDE samplers.
    """

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], *, device="cpu", dtype=None):
        self.shape = tuple(shape)
        self.device = torch.device(device)
        self.dtype = dtype or torch.get_default_dtype()
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def randn(self) -> torch.Tensor:
        draws = [torch.randn(self.shape, generator=g, dtype=self.dtype) for g in self.generators]
        return torch.stack(draws).to(self.device)

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        return self.randn()


_MASK64 = (1 << 64) - 1


def _mix(z: int) -> int:
    """splitmix64's finaliser: a well-mixed 64-bit hash of an integer."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class BrownianTreeNoise:
    """Normalised increments of one Brownian path ``W(sigma)`` per item, built lazily by
    bisection (a Brownian bridge at every node), so the noise of a step depends only on the
    step's endpoints: halving the step size splits each increment instead of redrawing it.

    ``noise(sigma, sigma_next) = (W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|)``.
    Nodes are seeded per item from ``(seed, depth, index)``, so paths are batch-independent too.
    Queries are resolved to ``tol``; between resolved nodes the bridge mean is used.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        shape: Sequence[int],
        sigma_min: float,
        sigma_max: float,
        *,
        tol: float = 1e-6,
        device="cpu",
        dtype=None,
    ):
        if not 0 <= sigma_min < sigma_max:
            raise ValueError(f"need 0 <= sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.seeds = [int(s) for s in seeds]
        self.shape = tuple(shape)
        self.lo, self.hi = float(sigma_min), float(sigma_max)
        self.depth = max(1, math.ceil(math.log2((self.hi - self.lo) / tol)))
        self.device = torch.device(device)
        self.dtype = dtype or torch.get_default_dtype()
        self._nodes: dict[tuple[int, int], torch.Tensor] = {}
        self._generator = torch.Generator()
        self._last: tuple[float, torch.Tensor] | None = None

    def _normal(self, depth: int, index: int) -> torch.Tensor:
        key = (depth, index)
        if key not in self._nodes:
            out = torch.empty(len(self.seeds), *self.shape, dtype=torch.float64)
            for k, seed in enumerate(self.seeds):
                # A cheap keyed hash per (item, node) and one reused generator: seeding dominates
                # the cost of a node, and SeedSequence or a fresh Generator each time is 5x slower.
                self._generator.manual_seed(_mix(_mix(_mix(seed) ^ depth) ^ index) >> 1)
                torch.randn(self.shape, generator=self._generator, out=out[k])
            self._nodes[key] = out
        return self._nodes[key]

    def w(self, t: float) -> torch.Tensor:
        """``W(t)`` with ``W(sigma_min) = 0``, float64 on the CPU."""
        t = min(max(float(t), self.lo), self.hi)
        if self._last is not None and self._last[0] == t:  # a step starts where the last ended
            return self._last[1]
        left, right = self.lo, self.hi
        w_left = torch.zeros(len(self.seeds), *self.shape, dtype=torch.float64)
        w_right = math.sqrt(right - left) * self._normal(0, 0)
        index = 0
        for depth in range(1, self.depth + 1):
            mid = 0.5 * (left + right)
            w_mid = 0.5 * (w_left + w_right) + 0.5 * math.sqrt(right - left) * self._normal(
                depth, index
            )
            if t < mid:
                right, w_right, index = mid, w_mid, 2 * index
            else:
                left, w_left, index = mid, w_mid, 2 * index + 1
        frac = 0.0 if right == left else (t - left) / (right - left)
        value = w_left + frac * (w_right - w_left)
        self._last = (t, value)
        return value

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        s, s_next = float(sigma), float(sigma_next)
        start = self.w(s)  # first, so the next step's start is the cached end of this one
        increment = (self.w(s_next) - start) / math.sqrt(abs(s_next - s))
        return increment.to(device=self.device, dtype=self.dtype)


# --- Samplers ------------------------------------------------------------------------------------


def _report(callback: Callback | None, i: int, x, sigma, sigma_next, denoised) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})


def _sigma_batch(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.to(x.dtype) * x.new_ones(x.shape[0])


@torch.no_grad()
def sample_euler(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, extra=None, callback=None
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma``."""
    extra = extra or {}
    for i in range(len(sigmas) - 1):
        denoised = model(x, _sigma_batch(sigmas[i], x), **extra)
        _report(callback, i, x, sigmas[i], sigmas[i + 1], denoised)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model: Denoise, x: torch.Tensor, sigmas: torch.Tensor, *, extra=None, callback=None
) -> torch.Tensor:
    """DPM-Solver++(2M), ReactDiff's Algorithm 1. With ``t = -ln sigma`` and ``h = t_next - t``:
    ``x <- (sigma_next / sigma) x + (1 - e^{-h}) D_i``, where ``D_i`` is the denoised estimate
    extrapolated with the previous one: ``D + (D - D_prev) / (2 r)``, ``r = h_prev / h``.
    The first step is first order and the last (to sigma 0) returns the denoised estimate."""
    extra = extra or {}
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _sigma_batch(sigma, x), **extra)
        _report(callback, i, x, sigma, sigma_next, denoised)
        if sigma_next == 0:
            x = denoised
        else:
            h = sigma.log() - sigma_next.log()
            phi = -torch.expm1(-h)
            x = sigma_next / sigma * x + phi * denoised
            if old_denoised is not None:
                r = h_last / h
                x = x + 0.5 * phi * (1 / r) * (denoised - old_denoised)
            h_last = h
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra=None,
    callback=None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_sampler=None,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE, ReactDiff's Algorithm 2 (its default sampler). Each step shrinks
    ``x`` by ``e^{-eta h}`` more than the ODE, moves further toward the denoised estimate, and
    adds back fresh noise ``sigma_next sqrt(1 - e^{-2 eta h}) s_noise z``. ``eta = 0`` is the ODE
    solver: with ``midpoint`` it equals :func:`sample_dpmpp_2m` step for step; ``heun`` uses the
    other second-order correction of the multistep term."""
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"unknown solver_type {solver_type!r}; valid: {', '.join(SOLVER_TYPES)}")
    extra = extra or {}
    if noise_sampler is None:
        noise_sampler = lambda sigma, sigma_next: torch.randn_like(x)  # noqa: E731
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _sigma_batch(sigma, x), **extra)
        _report(callback, i, x, sigma, sigma_next, denoised)
        if sigma_next == 0:
            x = denoised
        else:
            h = sigma.log() - sigma_next.log()
            eta_h = eta * h
            phi = -torch.expm1(-h - eta_h)
            x = sigma_next / sigma * torch.exp(-eta_h) * x + phi * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "midpoint":
                    x = x + 0.5 * phi * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + (1 - phi / (h + eta_h)) * (1 / r) * (denoised - old_denoised)
            if eta:
                z = noise_sampler(sigma, sigma_next)
                x = x + z * sigma_next * (-torch.expm1(-2 * eta_h)).sqrt() * s_noise
            h_last = h
        old_denoised = denoised
    return x
