"""EDM preconditioning, noise schedules, training densities, and the samplers ReactDiff uses.

Notation (Karras et al. 2022, "EDM"): data ``x0``, noise level ``sigma``, noised ``x = x0 + sigma
eps``. A *denoiser* ``D(x; sigma)`` estimates ``x0``; the score is ``(D - x) / sigma**2``. Every
sampler takes ``model(x, sigma, **extra)`` returning the denoised estimate (the k-diffusion
calling convention), a decreasing schedule ``sigmas`` ending at 0, and starts from
``x = sigmas[0] * z``.

ReactDiff trains with the cosine (v-diffusion) sigma density on [1e-3, 1e3], sigma_data 0.5, and
the loss in the network's output space with unit weight; it samples with DPM-Solver++(2M) SDE
(midpoint, eta 1, s_noise 1, Brownian-tree noise) on a Karras schedule of 50 steps from 80 to
0.01 with rho 7. Those settings are the ``REACTDIFF_*`` constants below and
:func:`reactdiff_sigmas`. The stochastic sampler's noise is always explicit: it takes a noise
source or a seed and never draws from torch's global generator.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch

SIGMA_DATA = 0.5
"""Standard deviation of the (normalised) data the preconditioning assumes (EDM's, ReactDiff's)."""
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
"""EDM's sampling range and schedule exponent: the defaults of :func:`karras_sigmas`."""

REACTDIFF_SIGMA_MIN = 0.01
"""Lowest noise level of ReactDiff's sampling schedule (its configuration; EDM's is 0.002)."""
REACTDIFF_SIGMA_MAX = 80.0
"""Highest noise level of ReactDiff's sampling schedule, where sampling starts."""
REACTDIFF_RHO = 7.0
"""Exponent of ReactDiff's Karras schedule."""
REACTDIFF_STEPS = 50
"""Network evaluations per sampled window in ReactDiff (then a final level 0)."""
REACTDIFF_TRAIN_SIGMA_MIN, REACTDIFF_TRAIN_SIGMA_MAX = 1e-3, 1e3
"""Range of ReactDiff's cosine training density (sampling uses the narrower range above)."""

DENSITIES = ("cosine", "lognormal", "loguniform")
WEIGHTINGS = ("karras", "snr", "soft_min_snr")
SOLVER_TYPES = ("midpoint", "heun")

BROWNIAN_CACHE_SIZE = 128
"""Default bound on the intervals a :class:`BrownianTreeNoise` keeps, least recently used evicted
first. A query walks ``ceil(log2((sigma_max - sigma_min) / tol))`` levels (27 for ReactDiff's
range at the default ``tol``); 128 intervals keep the last few walks, so a 50-step schedule draws
0.5 % more nodes than an unbounded cache would (1015 against 1010 for ReactDiff's schedule)."""

Denoise = Callable[..., torch.Tensor]
Callback = Callable[[dict], None]
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
        _, c_skip, c_out, output = self._network(x, sigma, **extra)
        return c_skip * x + c_out * output

    def _network(self, x: torch.Tensor, sigma, **extra):
        """The preconditioned network call shared by :meth:`forward` and :meth:`loss`:
        ``(sigma, c_skip, c_out, F(c_in x, c_noise(sigma)))``, with ``sigma`` one level per item
        in ``x``'s dtype and the scalings broadcast against ``x``."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        c_skip, c_out, c_in = (_expand(c, x) for c in scalings(sigma, self.sigma_data))
        return sigma, c_skip, c_out, self.inner(c_in * x, c_noise(sigma), **extra)

    def loss(
        self,
        x0: torch.Tensor,
        sigma: torch.Tensor,
        noise: torch.Tensor | None = None,
        weighting: str = "karras",
        **extra,
    ) -> torch.Tensor:
        """Per-item weighted loss in the network's output space,
        ``w(sigma) |F(c_in x, c_noise(sigma)) - (x0 - c_skip x) / c_out|^2`` with
        ``x = x0 + sigma eps`` (mean over all but the batch dimension), where ``w`` is
        :func:`target_weight`.

        Since ``D - x0 = c_out (F - target)``, this equals the denoised-space loss
        ``lambda(sigma) |D - x0|^2`` with ``lambda`` = :func:`loss_weight` in exact arithmetic. It
        is computed this way because forming ``D`` first and then multiplying by
        ``1 / c_out**2`` (about ``1 / sigma**2`` at low noise) amplifies every rounding error in
        ``D``; here the network's output is compared with a target of unit scale directly. The
        noising, the target and the error are computed in ``x0``'s dtype or float32, whichever is
        wider, so low-precision data (bfloat16) and autocast only round the network itself.
        ``noise`` defaults to ``torch.randn_like(x0)`` (the global generator, as in training).
        """
        output, target, sigma = self.output_and_target(x0, sigma, noise, **extra)
        error = (output - target).pow(2).flatten(1).mean(1)
        return error * target_weight(sigma, weighting, self.sigma_data)

    def output_and_target(
        self, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor | None = None, **extra
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The network's output ``F(c_in x, c_noise(sigma))`` on ``x = x0 + sigma noise`` and its
        target ``(x0 - c_skip x) / c_out``, both in the working dtype (``x0``'s or float32,
        whichever is wider), and ``sigma`` per item: what :meth:`loss` compares, and what the
        ReactDiff constraints (:mod:`reactlib.models.losses`) compare frame to frame."""
        work = torch.promote_types(x0.dtype, torch.float32)
        x0 = x0.to(work)
        noise = torch.randn_like(x0) if noise is None else noise.to(work)
        x = x0 + noise * _expand(torch.as_tensor(sigma, dtype=work, device=x0.device), x0)
        sigma, c_skip, c_out, output = self._network(x, sigma, **extra)
        return output.to(work), (x0 - c_skip * x) / c_out, sigma


def _weighting_factor(sigma: torch.Tensor, weighting: str, sigma_data: float) -> torch.Tensor:
    """The weighting's factor on top of EDM's ``1 / c_out**2``: 1, ``c_skip``, or
    ``c_skip c_out**2 / sigma_data**2``."""
    total = sigma**2 + sigma_data**2
    if weighting == "karras":
        return torch.ones_like(sigma)
    if weighting == "snr":
        return sigma_data**2 / total
    if weighting == "soft_min_snr":
        return (sigma * sigma_data) ** 2 / total**2
    raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")


def loss_weight(sigma, weighting: str = "karras", sigma_data: float = SIGMA_DATA):
    """Weight ``lambda(sigma)`` of the squared *denoised* error ``|D - x0|^2``.

    ``karras`` is EDM's ``1 / c_out**2``, which makes the network's own target unit-weighted;
    ``snr`` and ``soft_min_snr`` multiply that by ``sigma_data**2 / (sigma**2 + sigma_data**2)`` and
    by ``(sigma sigma_data)**2 / (sigma**2 + sigma_data**2)**2``, as k-diffusion defines them.
    :meth:`Denoiser.loss` uses the equivalent :func:`target_weight` on the network's output.
    """
    sigma = torch.as_tensor(sigma)
    _, c_out, _ = scalings(sigma, sigma_data)
    return _weighting_factor(sigma, weighting, sigma_data) / c_out**2


def target_weight(sigma, weighting: str = "karras", sigma_data: float = SIGMA_DATA):
    """Weight ``w(sigma) = lambda(sigma) c_out(sigma)**2`` of the squared error of the network's
    output ``F`` against its target ``(x0 - c_skip x) / c_out`` (:meth:`Denoiser.loss`).

    As ``lambda`` (:func:`loss_weight`) is a factor over ``1 / c_out**2``, ``w`` is that factor,
    written in closed form so that no ``c_out`` is divided out: ``karras`` (EDM's, ReactDiff's) 1,
    ``snr`` ``sigma_data**2 / (sigma**2 + sigma_data**2)``, ``soft_min_snr``
    ``(sigma sigma_data)**2 / (sigma**2 + sigma_data**2)**2``.
    """
    return _weighting_factor(torch.as_tensor(sigma), weighting, sigma_data)


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


def reactdiff_sigmas(n: int = REACTDIFF_STEPS) -> torch.Tensor:
    """ReactDiff's sampling schedule: :func:`karras_sigmas` from ``REACTDIFF_SIGMA_MAX`` (80) to
    ``REACTDIFF_SIGMA_MIN`` (0.01) with ``REACTDIFF_RHO`` (7), ``n`` levels then 0."""
    return karras_sigmas(n, REACTDIFF_SIGMA_MIN, REACTDIFF_SIGMA_MAX, REACTDIFF_RHO)


def sample_sigmas(
    n: int,
    density: str = "cosine",
    *,
    sigma_data: float = SIGMA_DATA,
    sigma_min: float = REACTDIFF_TRAIN_SIGMA_MIN,
    sigma_max: float = REACTDIFF_TRAIN_SIGMA_MAX,
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
_U64 = np.uint64


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 arrays: a well-mixed 64-bit hash (numpy
    arrays wrap modulo 2**64, which is the arithmetic the hash is defined in)."""
    z = z + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


class BrownianTreeNoise:
    """Normalised increments of one Brownian path ``W(sigma)`` per item, built lazily by
    bisection (a Brownian bridge at every node), so the noise of a step depends only on the
    step's endpoints: halving the step size splits each increment instead of redrawing it.

    ``noise(sigma, sigma_next) = (W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|)``.
    The normal draw of node ``(depth, index)`` for an item comes from a torch generator seeded
    with a hash of ``(item seed, depth, index)``, so each item's path depends on its own seed
    only, never on the batch it is in or on the order of the queries. Queries are resolved to
    ``tol``; between resolved nodes the bridge mean is used. A query outside
    ``[sigma_min, sigma_max]``, or a step between equal levels, raises ``ValueError``.

    The batch is handled at once: the nodes a query needs are found from its position alone,
    their seeds hashed for every item in one array operation, and the bisection runs on
    ``(items, ...)`` arrays. What remains per item and node is torch's seeded normal draw itself,
    which is what makes the values bit-identical to drawing each item separately.

    The walked intervals are kept in a least-recently-used cache of at most ``cache_size``
    entries (:data:`BROWNIAN_CACHE_SIZE` by default), each holding ``W`` at the interval's two
    ends and, once split, its midpoint: at most three ``(items, *shape)`` float64 arrays per
    entry, shared with its neighbours, so memory stays bounded however many steps are taken. An
    evicted interval is recomputed identically when needed again.
    """

    def __init__(
        self,
        seeds: Sequence[int],
        shape: Sequence[int],
        sigma_min: float,
        sigma_max: float,
        *,
        tol: float = 1e-6,
        cache_size: int = BROWNIAN_CACHE_SIZE,
        device="cpu",
        dtype=None,
    ):
        if not 0 <= sigma_min < sigma_max:
            raise ValueError(f"need 0 <= sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.seeds = [int(s) for s in seeds]
        self.shape = tuple(shape)
        self.lo, self.hi = float(sigma_min), float(sigma_max)
        self.depth = max(1, math.ceil(math.log2((self.hi - self.lo) / tol)))
        self.cache_size = int(cache_size)
        self.device = torch.device(device)
        self.dtype = dtype or torch.get_default_dtype()
        self._numel = math.prod(self.shape)
        self._item_keys = _mix(np.array([s & _MASK64 for s in self.seeds], dtype=_U64))
        self._intervals: OrderedDict[tuple[int, int], list] = OrderedDict()
        self._generator = torch.Generator()
        self._last: tuple[float, np.ndarray] | None = None
        self.nodes_drawn = 0
        """Tree nodes drawn so far (each one normal draw per item); a node is drawn again only
        after its interval left the cache."""

    def cache_len(self) -> int:
        """How many intervals the cache holds now (never more than ``cache_size``)."""
        return len(self._intervals)

    def _normals(self, nodes: list[tuple[int, int]]) -> np.ndarray:
        """Standard normal draws ``(len(nodes), items, numel)`` of the given ``(depth, index)``
        nodes for every item."""
        if not nodes:
            return np.empty((0, len(self.seeds), self._numel))
        self.nodes_drawn += len(nodes)
        depth = np.array([d for d, _ in nodes], dtype=_U64)[:, None]
        index = np.array([i for _, i in nodes], dtype=_U64)[:, None]
        seeds = (_mix(_mix(self._item_keys[None, :] ^ depth) ^ index) >> _U64(1)).ravel()
        out = torch.empty(len(nodes), len(self.seeds), self._numel, dtype=torch.float64)
        generator = self._generator
        # One reused generator, reseeded per item and node: seeding is cheap, a new Generator
        # object is not. normal_ on a contiguous row draws what torch.randn would.
        for seed, row in zip(seeds.tolist(), out.view(-1, self._numel).unbind(0), strict=True):
            generator.manual_seed(seed)
            row.normal_(generator=generator)
        return out.numpy()

    def _check(self, t: float) -> float:
        t = float(t)
        if not self.lo <= t <= self.hi:
            raise ValueError(
                f"sigma {t!r} is outside this Brownian tree's range [{self.lo}, {self.hi}]; "
                "build the tree from the schedule's own levels (see schedule_noise)"
            )
        return t

    def _w(self, t: float) -> np.ndarray:
        """``W(t)`` as a float64 ``(items, numel)`` array (``t`` already checked)."""
        if self._last is not None and self._last[0] == t:  # a step starts where the last ended
            return self._last[1]
        # The interval holding t at every level, from the positions alone.
        path = [(self.lo, self.hi, 0)]
        for _ in range(self.depth):
            left, right, index = path[-1]
            mid = 0.5 * (left + right)
            path.append((left, mid, 2 * index) if t < mid else (mid, right, 2 * index + 1))
        # Resume from the deepest cached interval on the path, then descend without drawing
        # while the interval's midpoint value is already known (an earlier walk split it).
        level = next((d for d in range(self.depth, -1, -1) if self._cached((d, path[d][2]))), None)
        if level is None:
            entry = None
            level = 0
        else:
            entry = self._intervals[(level, path[level][2])]
            while level < self.depth and entry[2] is not None:
                w_left, w_right, w_mid = entry
                level += 1
                child = (level, path[level][2])
                known = self._intervals.get(child)
                if known is None:
                    bounds = (w_left, w_mid) if child[1] % 2 == 0 else (w_mid, w_right)
                    known = self._store(child, *bounds)
                entry = known
        # Every level below needs its node drawn, for all items at once.
        nodes = [(d, path[d - 1][2]) for d in range(level + 1, self.depth + 1)]
        normals = self._normals(([(0, 0)] if entry is None else []) + nodes)
        if entry is None:
            root = math.sqrt(self.hi - self.lo) * normals[0]
            entry = self._store((0, 0), np.zeros_like(root), root)
            normals = normals[1:]
        for node, (depth, _) in zip(normals, nodes, strict=True):
            w_left, w_right, _ = entry
            left, right, _ = path[depth - 1]
            w_mid = 0.5 * (w_left + w_right) + 0.5 * math.sqrt(right - left) * node
            entry[2] = w_mid
            child = (depth, path[depth][2])
            bounds = (w_left, w_mid) if child[1] % 2 == 0 else (w_mid, w_right)
            entry = self._store(child, *bounds)
        w_left, w_right, _ = entry
        left, right, _ = path[-1]
        frac = 0.0 if right == left else (t - left) / (right - left)
        value = w_left + frac * (w_right - w_left)
        self._last = (t, value)
        return value

    def _cached(self, key: tuple[int, int]) -> bool:
        """Whether an interval is cached; a hit becomes the most recently used."""
        if key in self._intervals:
            self._intervals.move_to_end(key)
            return True
        return False

    def _store(self, key: tuple[int, int], w_left: np.ndarray, w_right: np.ndarray) -> list:
        """Cache an interval as ``[W(left), W(right), W(mid) or None]``, evicting the least
        recently used beyond ``cache_size``; returns the entry."""
        entry = [w_left, w_right, None]
        self._intervals[key] = entry
        while len(self._intervals) > self.cache_size:
            self._intervals.popitem(last=False)
        return entry

    def w(self, t: float) -> torch.Tensor:
        """``W(t)`` with ``W(sigma_min) = 0``, float64 on the CPU, ``(items, *shape)``."""
        value = self._w(self._check(t))
        return torch.from_numpy(value.copy()).reshape(len(self.seeds), *self.shape)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        s, s_next = self._check(sigma), self._check(sigma_next)
        if s == s_next:
            raise ValueError(f"a Brownian increment needs two different levels, got {s} twice")
        start = self._w(s)  # first, so the next step's start is the cached end of this one
        increment = (self._w(s_next) - start) / math.sqrt(abs(s_next - s))
        increment = torch.from_numpy(increment).reshape(len(self.seeds), *self.shape)
        return increment.to(device=self.device, dtype=self.dtype)


# --- Samplers ------------------------------------------------------------------------------------
#
# A schedule may repeat a level (sigma_next == sigma): such a step is skipped, with no network
# call and no callback, so x and the multistep history are unchanged and nothing divides by the
# zero step size h = ln(sigma / sigma_next).


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
        if sigmas[i + 1] == sigmas[i]:
            continue
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
        if sigma_next == sigma:
            continue
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


def schedule_noise(seed: int, x: torch.Tensor, sigmas: torch.Tensor) -> BrownianTreeNoise:
    """ReactDiff's noise source for sampling ``x`` (a batch) on ``sigmas``: a
    :class:`BrownianTreeNoise` over the schedule's positive range, item ``i`` seeded with
    ``item_seeds(seed, len(x))[i]``, on ``x``'s device and dtype."""
    positive = sigmas[sigmas > 0]
    if len(positive) < 2:
        raise ValueError(
            f"a Brownian tree needs two different positive levels; the schedule has {sigmas}"
        )
    return BrownianTreeNoise(
        item_seeds(seed, x.shape[0]),
        x.shape[1:],
        float(positive.min()),
        float(positive.max()),
        device=x.device,
        dtype=x.dtype,
    )


@torch.no_grad()
def sample_dpmpp_2m_sde(
    model: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    noise_sampler: NoiseSampler | int | None,
    extra=None,
    callback=None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE, ReactDiff's Algorithm 2 (its default sampler). Each step shrinks
    ``x`` by ``e^{-eta h}`` more than the ODE, moves further toward the denoised estimate, and
    adds back fresh noise ``sigma_next sqrt(1 - e^{-2 eta h}) s_noise z``. ``eta = 0`` is the ODE
    solver: with ``midpoint`` it equals :func:`sample_dpmpp_2m` step for step; ``heun`` uses the
    other second-order correction of the multistep term.

    ``noise_sampler`` is required, so that where ``z`` comes from is always written down: a
    callable ``(sigma, sigma_next) -> z`` shaped like ``x`` (:class:`ItemNoise`,
    :class:`BrownianTreeNoise`), an ``int`` seed, which builds ReactDiff's Brownian tree with
    :func:`schedule_noise`, or ``None``, accepted only where no noise is drawn (``eta`` or
    ``s_noise`` 0). Nothing is drawn from torch's global generator."""
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"unknown solver_type {solver_type!r}; valid: {', '.join(SOLVER_TYPES)}")
    noisy = bool(eta) and bool(s_noise)
    if noise_sampler is None and noisy:
        raise ValueError(
            f"eta={eta} and s_noise={s_noise} add noise: pass noise_sampler (an ItemNoise, a "
            "BrownianTreeNoise, or an int seed for ReactDiff's Brownian tree)"
        )
    seeded = isinstance(noise_sampler, numbers.Integral) and not isinstance(noise_sampler, bool)
    if not (noise_sampler is None or seeded or callable(noise_sampler)):
        raise TypeError(
            f"noise_sampler must be a callable, an int seed or None, not {noise_sampler!r}"
        )
    if seeded and noisy:
        noise_sampler = schedule_noise(int(noise_sampler), x, sigmas)
    extra = extra or {}
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if sigma_next == sigma:
            continue
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
            if noisy:
                z = noise_sampler(sigma, sigma_next)
                x = x + z * sigma_next * (-torch.expm1(-2 * eta_h)).sqrt() * s_noise
            h_last = h
        old_denoised = denoised
    return x
