"""Tests for reactlib.diffusion: EDM preconditioning, the output-space loss (also under bfloat16
autocast) and its weights, guidance, schedules and ReactDiff's constants, training densities,
seeded noise sources (the Brownian tree against its per-item reference, bit for bit), explicit
noise, repeated levels, and the samplers, checked against closed forms on Gaussian data."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib import diffusion
from reactlib.diffusion import (
    BROWNIAN_CACHE_SIZE,
    REACTDIFF_RHO,
    REACTDIFF_SIGMA_MAX,
    REACTDIFF_SIGMA_MIN,
    REACTDIFF_STEPS,
    SIGMA_DATA,
    BrownianTreeNoise,
    Denoiser,
    ItemNoise,
    c_noise,
    guided,
    item_seeds,
    karras_sigmas,
    loss_weight,
    reactdiff_sigmas,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_euler,
    sample_sigmas,
    scalings,
    schedule_noise,
    target_weight,
)

SD = 0.5  # sigma_data
F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _per_item(sigma, x: torch.Tensor) -> torch.Tensor:
    """A scalar or per-item sigma shaped to broadcast against x."""
    return torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *[1] * (x.ndim - 1))


# --- Gaussian data: exact denoiser and exact probability-flow ODE ------------------------------
#
# Data x0 ~ N(mu, s^2) per coordinate; noised x = x0 + sigma eps ~ N(mu, s^2 + sigma^2). x0 and x
# are jointly Gaussian with Cov(x0, x) = s^2, so the optimal denoiser is the posterior mean
#     D(x; sigma) = E[x0 | x] = mu + s^2 / (s^2 + sigma^2) (x - mu).
# The probability-flow ODE dx/dsigma = (x - D) / sigma = sigma / (s^2 + sigma^2) (x - mu) keeps
# (x - mu) / sqrt(s^2 + sigma^2) constant, so starting from x_T at sigma_max
#     x(sigma) = mu + sqrt((s^2 + sigma^2) / (s^2 + sigma_max^2)) (x_T - mu).
# The samplers integrate down to sigma_min and then take the last step (sigma_min -> 0) by
# returning the denoised estimate, so their exact answer is D(x(sigma_min); sigma_min)
#     = mu + s^2 / sqrt((s^2 + sigma_min^2)(s^2 + sigma_max^2)) (x_T - mu).

MU, S = 0.3, 0.5


def gaussian_denoiser(mu: float = MU, s: float = S):
    def denoise(x, sigma):
        assert sigma.shape == (x.shape[0],)  # the samplers pass one sigma per item
        return mu + s**2 / (s**2 + _per_item(sigma, x) ** 2) * (x - mu)

    return denoise


def exact_final(x_T: torch.Tensor, sigmas: torch.Tensor, mu: float = MU, s: float = S):
    sigma_max, sigma_min = float(sigmas[0]), float(sigmas[-2])
    return mu + s**2 / math.sqrt((s**2 + sigma_min**2) * (s**2 + sigma_max**2)) * (x_T - mu)


def nonlinear_denoiser():
    """A fixed, non-trivial (nonlinear, sigma-dependent, feature-mixing) denoiser on (B, 3)."""
    w = torch.randn(3, 3, generator=_gen(11), dtype=F64) / 2

    def denoise(x, sigma):
        sigma = _per_item(sigma, x)
        return torch.tanh(x @ w) * sigma / (1 + sigma) + 0.3 * x / (1 + sigma**2)

    return denoise


ODE_SAMPLERS = {
    "euler": sample_euler,
    "2m": sample_dpmpp_2m,
    "2m_sde_midpoint_eta0": partial(
        sample_dpmpp_2m_sde, eta=0.0, solver_type="midpoint", noise_sampler=None
    ),
    "2m_sde_heun_eta0": partial(
        sample_dpmpp_2m_sde, eta=0.0, solver_type="heun", noise_sampler=None
    ),
}


def _ode_error(sampler, n: int, sigma_max: float = 80.0) -> float:
    """Mean absolute error of an ODE sampler against the exact answer on the Gaussian problem."""
    sigmas = karras_sigmas(n, 0.002, sigma_max)
    x_T = sigma_max * torch.randn(256, 2, generator=_gen(0), dtype=F64)
    out = sampler(gaussian_denoiser(), x_T, sigmas)
    return (out - exact_final(x_T, sigmas)).abs().mean().item()


# --- Preconditioning -----------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 1.0, 3.0, 80.0])
@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_scalings_match_edm_closed_forms(sigma, sigma_data):
    """c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2)."""
    c_skip, c_out, c_in = scalings(torch.tensor(sigma, dtype=F64), sigma_data)
    total = sigma**2 + sigma_data**2
    assert c_skip.item() == pytest.approx(sigma_data**2 / total, rel=1e-12)
    assert c_out.item() == pytest.approx(sigma * sigma_data / math.sqrt(total), rel=1e-12)
    assert c_in.item() == pytest.approx(1 / math.sqrt(total), rel=1e-12)
    # Identities: c_skip + c_out^2/sd^2 = 1, c_out^2 = c_skip sigma^2, c_in^2 (sigma^2 + sd^2) = 1.
    assert (c_skip + c_out**2 / sigma_data**2).item() == pytest.approx(1.0, rel=1e-12)
    assert c_out.item() ** 2 == pytest.approx(c_skip.item() * sigma**2, rel=1e-12)
    assert c_in.item() ** 2 * total == pytest.approx(1.0, rel=1e-12)


def test_scalings_golden_values():
    """At sigma = sigma_data: c_skip 1/2, c_out sd/sqrt2, c_in 1/(sd sqrt2); elementwise."""
    c_skip, c_out, c_in = scalings(torch.tensor([SD, 0.0], dtype=F64), SD)
    assert c_skip.tolist() == pytest.approx([0.5, 1.0])
    assert c_out.tolist() == pytest.approx([SD / math.sqrt(2), 0.0])
    assert c_in.tolist() == pytest.approx([1 / (SD * math.sqrt(2)), 1 / SD])
    # sigma = 0.5 with sigma_data = 1: c_skip = 1/1.25 = 0.8, c_out = 0.5/sqrt(1.25).
    c_skip, c_out, _ = scalings(0.5, 1.0)
    assert c_skip.item() == pytest.approx(0.8)
    assert c_out.item() == pytest.approx(0.5 / math.sqrt(1.25))


@pytest.mark.parametrize("sigma", [0.01, 0.5, 20.0])
def test_network_input_and_target_have_unit_variance(sigma):
    """For data of std sigma_data: Var[c_in x] = 1 and Var[(x0 - c_skip x) / c_out] = 1."""
    g = _gen(1)
    x0 = SD * torch.randn(200_000, generator=g, dtype=F64)
    x = x0 + sigma * torch.randn(200_000, generator=g, dtype=F64)
    c_skip, c_out, c_in = scalings(sigma, SD)
    target = (x0 - c_skip * x) / c_out
    assert target.var().item() == pytest.approx(1.0, rel=0.02)
    assert (c_in * x).var().item() == pytest.approx(1.0, rel=0.02)


def test_c_noise_is_quarter_log_sigma():
    sigma = torch.tensor([0.002, 0.5, 1.0, math.e**4, 80.0], dtype=F64)
    expected = [math.log(s) / 4 for s in sigma.tolist()]
    assert c_noise(sigma).tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert c_noise(1.0).item() == 0.0
    assert c_noise(math.e**4).item() == pytest.approx(1.0)


# --- Denoiser wrapper ----------------------------------------------------------------------------


class Zeros(torch.nn.Module):
    def forward(self, x, noise_level, **extra):
        return torch.zeros_like(x)


class Recorder(torch.nn.Module):
    """Returns zeros and records its inputs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, noise_level, **extra):
        self.calls.append({"x": x.clone(), "noise_level": noise_level.clone(), "extra": extra})
        return torch.zeros_like(x)


class PerfectInner(torch.nn.Module):
    """Returns the exact target F* = (x0 - c_skip x) / c_out for a known x0, recovering sigma
    and x from its own inputs (c_noise(sigma) = ln(sigma)/4 and c_in x)."""

    def __init__(self, x0: torch.Tensor, sigma_data: float = SD):
        super().__init__()
        self.x0, self.sigma_data = x0, sigma_data

    def forward(self, x_in, noise_level, **extra):
        sigma = (4 * noise_level).exp()
        c_skip, c_out, c_in = (_per_item(c, x_in) for c in scalings(sigma, self.sigma_data))
        x = x_in / c_in
        return (self.x0 - c_skip * x) / c_out


def test_denoiser_with_zero_network_is_c_skip_x():
    x = torch.randn(3, 2, 4, generator=_gen(2), dtype=F64)
    denoiser = Denoiser(Zeros())
    # Scalar sigma: one c_skip everywhere.
    torch.testing.assert_close(denoiser(x, 0.7), SD**2 / (0.7**2 + SD**2) * x)
    # Per-item sigma: item i scaled by its own c_skip.
    sigma = torch.tensor([0.1, 0.5, 2.0], dtype=F64)
    c_skip, _, _ = scalings(sigma, SD)
    torch.testing.assert_close(denoiser(x, sigma), c_skip.reshape(3, 1, 1) * x)


@pytest.mark.parametrize("sigma_data", [0.5, 1.3])
def test_denoiser_with_exact_target_returns_x0(sigma_data):
    g = _gen(3)
    x0 = torch.randn(4, 5, generator=g, dtype=F64)
    sigma = torch.tensor([0.01, 0.4, 3.0, 60.0], dtype=F64)
    x = x0 + sigma[:, None] * torch.randn(4, 5, generator=g, dtype=F64)
    denoiser = Denoiser(PerfectInner(x0, sigma_data), sigma_data)
    torch.testing.assert_close(denoiser(x, sigma), x0)
    # Scalar sigma works too.
    x = x0 + 2.0 * torch.randn(4, 5, generator=g, dtype=F64)
    torch.testing.assert_close(denoiser(x, 2.0), x0)


def test_denoiser_feeds_preconditioned_input_and_passes_extra_through():
    inner = Recorder()
    x = torch.randn(2, 3, generator=_gen(4), dtype=F64)
    sigma = torch.tensor([0.3, 5.0], dtype=F64)
    cond = torch.tensor([1.0, 2.0])
    Denoiser(inner)(x, sigma, cond=cond, mask=None)
    (call,) = inner.calls
    _, _, c_in = scalings(sigma, SD)
    torch.testing.assert_close(call["x"], c_in[:, None] * x)
    torch.testing.assert_close(call["noise_level"], sigma.log() / 4)
    assert call["extra"].keys() == {"cond", "mask"}
    assert call["extra"]["cond"] is cond and call["extra"]["mask"] is None
    # A scalar sigma reaches the network as one noise level per item.
    Denoiser(inner)(x, 0.3)
    expected = torch.full((2,), math.log(0.3) / 4, dtype=F64)
    torch.testing.assert_close(inner.calls[-1]["noise_level"], expected)


def test_loss_is_zero_for_a_perfect_denoiser():
    g = _gen(5)
    x0 = torch.randn(4, 3, 2, generator=g, dtype=F64)
    sigma = torch.tensor([0.01, 0.5, 4.0, 70.0], dtype=F64)
    noise = torch.randn(4, 3, 2, generator=g, dtype=F64)
    loss = Denoiser(PerfectInner(x0)).loss(x0, sigma, noise)
    assert loss.shape == (4,)
    assert loss.abs().max().item() < 1e-20


@pytest.mark.parametrize("weighting", ["karras", "snr", "soft_min_snr"])
def test_loss_equals_weight_times_mse_by_hand(weighting):
    g = _gen(6)
    x0 = torch.randn(3, 4, 2, generator=g, dtype=F64)
    sigma = torch.tensor([0.05, 0.8, 9.0], dtype=F64)
    noise = torch.randn(3, 4, 2, generator=g, dtype=F64)
    inner = Recorder()
    loss = Denoiser(inner).loss(x0, sigma, noise, weighting=weighting, cond="c")
    assert inner.calls[0]["extra"] == {"cond": "c"}
    assert loss.shape == (3,)
    # Zero network: D = c_skip x with x = x0 + sigma noise.
    s = sigma[:, None, None]
    c_skip = SD**2 / (s**2 + SD**2)
    mse = ((c_skip * (x0 + s * noise) - x0) ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(loss, mse * loss_weight(sigma, weighting))
    if weighting == "karras":  # the network's own target, unit weighted: mean (F*)^2
        c_out = s * SD / (s**2 + SD**2).sqrt()
        target = (x0 - c_skip * (x0 + s * noise)) / c_out
        torch.testing.assert_close(loss, (target**2).mean(dim=(1, 2)))


def test_loss_with_scalar_sigma_and_default_noise():
    x0 = torch.randn(5, 3, generator=_gen(7))
    torch.manual_seed(0)
    loss = Denoiser(Zeros()).loss(x0, 0.5)
    assert loss.shape == (5,)
    assert torch.isfinite(loss).all() and (loss > 0).all()
    torch.manual_seed(0)
    torch.testing.assert_close(Denoiser(Zeros()).loss(x0, 0.5), loss)


class SmallNet(torch.nn.Module):
    """A seeded two-layer network F(c_in x, c_noise) on (B, dim): the coefficients and the noise
    level through a SiLU MLP, weights of unit-variance fan-in scale."""

    def __init__(self, dim: int = 8, hidden: int = 64, seed: int = 50):
        super().__init__()
        self.a = torch.nn.Linear(dim + 1, hidden)
        self.b = torch.nn.Linear(hidden, dim)
        g = _gen(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)

    def forward(self, x, noise_level):
        joined = torch.cat([x, noise_level[:, None].to(x.dtype)], dim=1)
        return self.b(torch.nn.functional.silu(self.a(joined)))


def denoised_space_loss(denoiser, x0, sigma, noise, weighting="karras"):
    """The plain denoised-space loss lambda(sigma) |D(x0 + sigma eps; sigma) - x0|^2, with the
    noising and D formed in the data's dtype (as a loss built on D does)."""
    level = sigma.to(x0.dtype)
    denoised = denoiser(x0 + noise * level[:, None], level)
    return (denoised - x0).pow(2).flatten(1).mean(1) * loss_weight(sigma, weighting)


@pytest.mark.parametrize("weighting", ["karras", "snr", "soft_min_snr"])
def test_output_space_loss_equals_the_denoised_space_loss_in_float64(weighting):
    """w(sigma) |F - (x0 - c_skip x) / c_out|^2 = lambda(sigma) |D - x0|^2, over six decades."""
    g = _gen(51)
    sigma = torch.logspace(-3, 3, 13, dtype=F64)
    x0 = SD * torch.randn(13, 8, generator=g, dtype=F64)
    noise = torch.randn(13, 8, generator=g, dtype=F64)
    denoiser = Denoiser(SmallNet().double())
    loss = denoiser.loss(x0, sigma, noise, weighting=weighting)
    assert loss.dtype == F64 and loss.shape == (13,) and (loss > 0).all()
    expected = denoised_space_loss(denoiser, x0, sigma, noise, weighting)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=0)


def test_output_space_loss_feeds_the_network_its_preconditioned_input():
    inner = Recorder()
    x0 = torch.randn(3, 4, generator=_gen(52), dtype=F64)
    noise = torch.randn(3, 4, generator=_gen(53), dtype=F64)
    sigma = torch.tensor([0.02, 0.5, 30.0], dtype=F64)
    loss = Denoiser(inner).loss(x0, sigma, noise, cond="c")
    (call,) = inner.calls
    _, _, c_in = scalings(sigma, SD)
    torch.testing.assert_close(call["x"], c_in[:, None] * (x0 + sigma[:, None] * noise))
    torch.testing.assert_close(call["noise_level"], sigma.log() / 4)
    assert call["extra"] == {"cond": "c"}
    # Zero output: the loss is the mean square of the target itself.
    c_skip, c_out, _ = scalings(sigma[:, None], SD)
    target = (x0 - c_skip * (x0 + sigma[:, None] * noise)) / c_out
    torch.testing.assert_close(loss, target.pow(2).mean(1))


LOW_PRECISION_TOLERANCE = 5e-3
"""Mean relative error allowed of a loss computed under bfloat16 autocast, against float64."""


def _relative_loss_error(loss, reference):
    return ((loss.double() - reference) / reference).abs().mean().item()


@pytest.mark.parametrize("data_dtype", [torch.bfloat16, torch.float32])
def test_output_space_loss_is_accurate_under_bfloat16_autocast(data_dtype):
    """Under bfloat16 autocast the output-space loss stays within 5e-3 (mean relative error) of the
    float64 loss at every sigma: only the network's own rounding remains (measured 1.3e-3 to
    1.7e-3). The denoised-space loss on the same bfloat16 batch forms D - x0 ~ sigma by
    cancellation of O(1) bfloat16 numbers and multiplies it by 1 / c_out**2: measured 0.40 at
    sigma 1e-3, 0.052 at 1e-2, 0.010 at 0.1 and 2.9e-3 at sigma >= 1. With float32 data D is
    formed in float32 and the two losses measure the same (1.4e-3 to 1.7e-3)."""
    g = _gen(54)
    batch = 256
    x0 = (SD * torch.randn(batch, 8, generator=g)).to(data_dtype)
    noise = torch.randn(batch, 8, generator=g).to(data_dtype)
    net = SmallNet()
    exact = Denoiser(copy.deepcopy(net).double())
    for level in (1e-3, 1e-2, 1.0, 100.0):
        sigma = torch.full((batch,), level)
        reference = exact.loss(x0.double(), sigma.double(), noise.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = Denoiser(net).loss(x0, sigma, noise)
            old = denoised_space_loss(Denoiser(net), x0, sigma, noise)
        assert loss.dtype == torch.float32
        assert _relative_loss_error(loss, reference) < LOW_PRECISION_TOLERANCE, level
        if data_dtype == torch.bfloat16 and level <= 1e-2:
            assert _relative_loss_error(old, reference) > LOW_PRECISION_TOLERANCE, level
        if data_dtype == torch.bfloat16 and level == 1e-3:
            assert _relative_loss_error(old, reference) > 10 * LOW_PRECISION_TOLERANCE


# --- Loss weights --------------------------------------------------------------------------------


def test_loss_weight_closed_forms():
    """karras = 1/c_out^2; snr = 1/sigma^2; soft_min_snr = 1/(sigma^2 + sigma_data^2)."""
    sigma = torch.tensor([0.002, 0.1, 0.5, 2.0, 80.0], dtype=F64)
    _, c_out, _ = scalings(sigma, SD)
    torch.testing.assert_close(loss_weight(sigma, "karras"), 1 / c_out**2)
    torch.testing.assert_close(loss_weight(sigma), (sigma**2 + SD**2) / (sigma * SD) ** 2)
    torch.testing.assert_close(loss_weight(sigma, "snr"), 1 / sigma**2)
    torch.testing.assert_close(loss_weight(sigma, "soft_min_snr"), 1 / (sigma**2 + SD**2))
    # Another sigma_data, scalar input.
    assert loss_weight(2.0, "soft_min_snr", 1.0).item() == pytest.approx(1 / 5)
    assert loss_weight(2.0, "karras", 1.0).item() == pytest.approx(5 / 4)
    assert loss_weight(2.0, "snr", 1.0).item() == pytest.approx(1 / 4)


def test_loss_weight_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"'bogus'.*karras, snr, soft_min_snr"):
        loss_weight(1.0, "bogus")


@pytest.mark.parametrize("weighting", ["karras", "snr", "soft_min_snr"])
def test_target_weight_is_loss_weight_times_c_out_squared(weighting):
    sigma = torch.logspace(-3, 3, 25, dtype=F64)
    _, c_out, _ = scalings(sigma, SD)
    torch.testing.assert_close(
        target_weight(sigma, weighting),
        loss_weight(sigma, weighting) * c_out**2,
        rtol=1e-12,
        atol=0,
    )


def test_target_weight_closed_forms():
    """karras (EDM's, ReactDiff's) 1; snr c_skip; soft_min_snr c_skip c_out^2 / sigma_data^2."""
    sigma = torch.tensor([0.001, 0.5, 2.0, 1000.0], dtype=F64)
    c_skip, c_out, _ = scalings(sigma, SD)
    assert target_weight(sigma).tolist() == [1.0] * 4
    torch.testing.assert_close(target_weight(sigma, "snr"), c_skip)
    torch.testing.assert_close(target_weight(sigma, "soft_min_snr"), c_skip * c_out**2 / SD**2)
    assert target_weight(2.0, "snr", 1.0).item() == pytest.approx(1 / 5)
    assert target_weight(2.0, "soft_min_snr", 1.0).item() == pytest.approx(4 / 25)
    with pytest.raises(ValueError, match=r"'bogus'.*karras, snr, soft_min_snr"):
        target_weight(1.0, "bogus")


# --- Classifier-free guidance --------------------------------------------------------------------


def _conditional_model(calls):
    def model(x, sigma, *, label, offset):
        calls.append(label)
        return x * label + offset

    return model


@pytest.mark.parametrize(
    ("scale", "expected"),
    [(1.0, 3.0), (0.0, 1.0), (2.0, 5.0), (0.5, 2.0), (4.0, 9.0)],
)
def test_guided_interpolates_and_extrapolates(scale, expected):
    """c = 3x + 10 and u = x + 10 (uncond overrides the label, keeps offset): u + scale (c - u)."""
    x = torch.tensor([[1.0, 2.0], [-3.0, 4.0]], dtype=F64)
    calls = []
    model = guided(_conditional_model(calls), scale, {"label": 1.0})
    out = model(x, torch.ones(2), label=3.0, offset=10.0)
    assert torch.equal(out, expected * x + 10.0)
    assert calls == ([3.0] if scale == 1 else [3.0, 1.0])


# --- Schedules -----------------------------------------------------------------------------------


def test_karras_sigmas_shape_endpoints_and_spacing():
    sigmas = karras_sigmas(10)
    assert sigmas.dtype == F64 and sigmas.shape == (11,)
    assert sigmas[0].item() == 80.0 and sigmas[-2].item() == 0.002 and sigmas[-1].item() == 0.0
    assert (sigmas.diff() < 0).all()
    # Evenly spaced in sigma^(1/rho).
    steps = (sigmas[:-1] ** (1 / 7)).diff()
    torch.testing.assert_close(steps, torch.full_like(steps, steps.mean().item()))
    # Golden: sqrt-spacing from 16 to 1 in 3 levels is 4, 2.5, 1 -> 16, 6.25, 1.
    assert karras_sigmas(3, 1.0, 16.0, rho=2.0).tolist() == pytest.approx([16, 6.25, 1, 0])


def test_karras_sigmas_rho_one_is_linear():
    sigmas = karras_sigmas(7, 0.5, 20.0, rho=1.0)
    expected = torch.cat([torch.linspace(20.0, 0.5, 7, dtype=F64), torch.zeros(1, dtype=F64)])
    torch.testing.assert_close(sigmas, expected)


def test_karras_sigmas_single_step_starts_at_sigma_max():
    assert karras_sigmas(1, 0.002, 80.0).tolist() == [80.0, 0.0]
    assert karras_sigmas(2, 0.002, 80.0).tolist() == [80.0, 0.002, 0.0]


@pytest.mark.parametrize(
    "args",
    [(0, 0.002, 80.0, 7.0), (5, 0.0, 80.0, 7.0), (5, 1.0, 1.0, 7.0), (5, 2.0, 1.0, 7.0)]
    + [(5, 0.002, 80.0, 0.0), (5, 0.002, 80.0, -1.0), (5, -1.0, 80.0, 7.0)],
)
def test_karras_sigmas_rejects_bad_arguments(args):
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(*args)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 80),
    sigma_min=st.floats(1e-4, 1.0),
    ratio=st.floats(1.05, 1e5),
    rho=st.floats(0.5, 10.0),
)
def test_karras_sigmas_property(n, sigma_min, ratio, rho):
    sigma_max = sigma_min * ratio
    sigmas = karras_sigmas(n, sigma_min, sigma_max, rho)
    assert sigmas.shape == (n + 1,)
    assert sigmas[0].item() == sigma_max and sigmas[-1].item() == 0.0
    if n > 1:
        assert sigmas[-2].item() == sigma_min
    assert (sigmas.diff() < 0).all()


# --- Training densities --------------------------------------------------------------------------


def test_cosine_density_median_bounds_and_cdf():
    sigma = sample_sigmas(200_000, "cosine", generator=_gen(8)).double()
    assert sigma.shape == (200_000,)
    assert sigma.median().item() == pytest.approx(SD, rel=0.02)
    assert sigma.min().item() >= 1e-3 and sigma.max().item() <= 1e3
    # CDF: P(sigma <= t) = (atan(t/sd) - atan(min/sd)) / (atan(max/sd) - atan(min/sd)).
    lo, hi = math.atan(1e-3 / SD), math.atan(1e3 / SD)
    for t in (0.05, 0.2, 1.0, 5.0):
        cdf = (math.atan(t / SD) - lo) / (hi - lo)
        assert (sigma <= t).double().mean().item() == pytest.approx(cdf, abs=0.01)
    # Tight custom bounds are respected.
    tight = sample_sigmas(20_000, "cosine", sigma_min=0.2, sigma_max=0.3, generator=_gen(9))
    assert tight.min().item() >= 0.2 - 1e-6 and tight.max().item() <= 0.3 + 1e-6
    assert tight.max().item() - tight.min().item() > 0.09


@pytest.mark.parametrize(("loc", "scale"), [(-1.2, 1.2), (0.5, 0.3)])
def test_lognormal_density_moments(loc, scale):
    log_sigma = sample_sigmas(100_000, "lognormal", loc=loc, scale=scale, generator=_gen(10)).log()
    assert log_sigma.mean().item() == pytest.approx(loc, abs=0.02)
    assert log_sigma.std().item() == pytest.approx(scale, rel=0.02)


@pytest.mark.parametrize(("sigma_min", "sigma_max"), [(1e-3, 1e3), (0.1, 100.0)])
def test_loguniform_density(sigma_min, sigma_max):
    sigma = sample_sigmas(
        100_000, "loguniform", sigma_min=sigma_min, sigma_max=sigma_max, generator=_gen(12)
    )
    log_sigma = sigma.double().log()
    a, b = math.log(sigma_min), math.log(sigma_max)
    assert log_sigma.min().item() >= a - 1e-6 and log_sigma.max().item() <= b + 1e-6
    assert log_sigma.mean().item() == pytest.approx((a + b) / 2, abs=0.03 * (b - a))
    assert log_sigma.std().item() == pytest.approx((b - a) / math.sqrt(12), rel=0.02)
    # Uniform in ln sigma: each quarter of the log range holds a quarter of the draws.
    counts = torch.histc(log_sigma, bins=4, min=a, max=b) / len(log_sigma)
    assert counts.tolist() == pytest.approx([0.25] * 4, abs=0.01)


@pytest.mark.parametrize("density", ["cosine", "lognormal", "loguniform"])
def test_sample_sigmas_generator_is_deterministic(density):
    a = sample_sigmas(50, density, generator=_gen(13))
    b = sample_sigmas(50, density, generator=_gen(13))
    c = sample_sigmas(50, density, generator=_gen(14))
    assert a.shape == (50,) and (a > 0).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_sigmas_unknown_density():
    with pytest.raises(ValueError, match=r"'gamma'.*cosine, lognormal, loguniform"):
        sample_sigmas(4, "gamma")


# --- Samplers: oracle denoiser -------------------------------------------------------------------


def _noise(kind: str, batch: int, shape, sigmas, seed: int = 20):
    seeds = item_seeds(seed, batch)
    if kind == "item":
        return ItemNoise(seeds, shape, dtype=F64)
    return BrownianTreeNoise(seeds, shape, float(sigmas[-2]), float(sigmas[0]), dtype=F64)


SDE_CASES = [
    (1.0, "midpoint", "item"),
    (1.0, "heun", "item"),
    (1.0, "midpoint", "brownian"),
    (0.5, "heun", "brownian"),
    (0.5, "midpoint", "item"),
]


@pytest.mark.parametrize("name", list(ODE_SAMPLERS))
def test_ode_samplers_with_oracle_follow_the_straight_line(name):
    """D = x0 always: the ODE solution is x(sigma) = x0 + sigma / sigma_max (x_T - x0), which Euler
    and the exponential integrators follow exactly; the output is x0."""
    sigmas = karras_sigmas(12)
    g = _gen(15)
    x0 = torch.randn(4, 3, generator=g, dtype=F64)
    x_T = sigmas[0] * torch.randn(4, 3, generator=g, dtype=F64)
    records = []
    out = ODE_SAMPLERS[name](lambda x, sigma: x0, x_T, sigmas, callback=records.append)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-10)
    for r in records:
        expected = x0 + r["sigma"] / sigmas[0] * (x_T - x0)
        torch.testing.assert_close(r["x"], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("eta", "solver_type", "noise_kind"), SDE_CASES)
def test_sde_samplers_with_oracle_keep_the_noise_marginal(eta, solver_type, noise_kind):
    """D = x0 always and x_T = x0 + sigma_max z: each SDE step keeps x - x0 ~ N(0, sigma^2)
    (shrink by (sigma_next/sigma)^(1+eta), add sigma_next sqrt(1 - (sigma_next/sigma)^(2 eta)) z),
    so (x_i - x0) / sigma_i has unit std at every step, and the output is x0."""
    sigmas = karras_sigmas(15)
    shape = (2000,)
    x0 = torch.randn(4, *shape, generator=_gen(16), dtype=F64)
    x_T = x0 + sigmas[0] * ItemNoise(item_seeds(17, 4), shape, dtype=F64).randn()
    records = []
    out = sample_dpmpp_2m_sde(
        lambda x, sigma: x0,
        x_T,
        sigmas,
        callback=records.append,
        eta=eta,
        solver_type=solver_type,
        noise_sampler=_noise(noise_kind, 4, shape, sigmas),
    )
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-12)
    assert len(records) == 15
    for r in records:
        z = (r["x"] - x0) / r["sigma"]
        assert z.std().item() == pytest.approx(1.0, abs=0.05), r["i"]
        assert abs(z.mean().item()) < 0.05


def test_sde_with_zero_eta_midpoint_equals_2m_step_for_step():
    sigmas = karras_sigmas(20)
    x_T = sigmas[0] * torch.randn(6, 3, generator=_gen(18), dtype=F64)
    model = nonlinear_denoiser()
    rec_2m, rec_sde = [], []

    def no_noise(sigma, sigma_next):
        raise AssertionError("eta = 0 must not draw noise")

    out_2m = sample_dpmpp_2m(model, x_T, sigmas, callback=rec_2m.append)
    out_sde = sample_dpmpp_2m_sde(
        model,
        x_T,
        sigmas,
        callback=rec_sde.append,
        eta=0.0,
        solver_type="midpoint",
        noise_sampler=no_noise,
    )
    assert torch.equal(out_2m, out_sde)
    assert len(rec_2m) == len(rec_sde) == 20
    for a, b in zip(rec_2m, rec_sde, strict=True):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["denoised"], b["denoised"])
    # Non-trivial: the multistep term matters (2M differs from Euler's first-order result).
    assert (out_2m - sample_euler(model, x_T, sigmas)).abs().max().item() > 1e-3


def test_sde_rejects_unknown_solver_type():
    with pytest.raises(ValueError, match=r"'rk4'.*midpoint, heun"):
        sample_dpmpp_2m_sde(
            lambda x, s: x, torch.zeros(1, 1), karras_sigmas(3), solver_type="rk4", noise_sampler=0
        )


# --- Samplers: Gaussian data ---------------------------------------------------------------------


def test_ode_and_sde_samples_match_the_data_distribution():
    """50 steps from x_T = sigma_max z: 20000 scalars have mean mu and std s (up to tolerances far
    above the sampling error: about 0.004 for the mean, 0.5% for the std)."""
    sigmas = karras_sigmas(50)
    shape = (2000,)
    x_T = sigmas[0] * ItemNoise(item_seeds(21, 10), shape, dtype=F64).randn()
    ode = sample_dpmpp_2m(gaussian_denoiser(), x_T, sigmas)
    sde = sample_dpmpp_2m_sde(
        gaussian_denoiser(),
        x_T,
        sigmas,
        noise_sampler=ItemNoise(item_seeds(22, 10), shape, dtype=F64),
    )
    for out in (ode, sde):
        assert abs(out.mean().item() - MU) < 0.03
        assert out.std().item() == pytest.approx(S, rel=0.05)
    # The SDE really is stochastic: its samples are not the ODE's.
    assert (ode - sde).abs().mean().item() > 0.1


def test_2m_beats_euler_against_the_exact_ode_answer():
    """Measured (sigma_max 80): Euler 1.07e-1 / 5.50e-2 / 2.23e-2 at 10 / 20 / 50 steps, 2M
    6.29e-2 / 1.95e-2 / 2.55e-3."""
    euler = {n: _ode_error(sample_euler, n) for n in (10, 20, 50)}
    dpm = {n: _ode_error(sample_dpmpp_2m, n) for n in (10, 20, 50)}
    assert dpm[10] < 0.75 * euler[10]
    assert dpm[20] < 0.5 * euler[20]
    assert dpm[50] < 0.2 * euler[50]
    assert dpm[50] < 0.1 * dpm[10]
    assert dpm[50] < 5e-3


@pytest.mark.parametrize("sigma_max", [80.0, 10.0])
def test_empirical_convergence_orders(sigma_max):
    """Doubling the steps halves Euler's error (first order) and quarters 2M's (second order).
    Measured error ratios n -> 2n: Euler 1.94 / 1.98 (sigma_max 80) and 2.00 / 2.00 (10) for
    n = 10 / 20; 2M 3.2 / 4.7 (80) and 4.7 / 4.6 (10)."""
    euler = [_ode_error(sample_euler, n, sigma_max) for n in (10, 20, 40)]
    dpm = [_ode_error(sample_dpmpp_2m, n, sigma_max) for n in (10, 20, 40)]
    for coarse, fine in zip(euler, euler[1:], strict=False):
        assert 1.8 < coarse / fine < 2.2
    assert dpm[0] / dpm[1] > 2.5
    assert dpm[1] / dpm[2] > 3.5


def test_heun_and_midpoint_differ_but_both_converge():
    """Measured at 50 steps (sigma_max 80): midpoint 2.55e-3, heun 3.68e-3, Euler 2.23e-2."""
    sigmas = karras_sigmas(50)
    x_T = sigmas[0] * torch.randn(256, 2, generator=_gen(0), dtype=F64)
    model = gaussian_denoiser()
    mid = ODE_SAMPLERS["2m_sde_midpoint_eta0"](model, x_T, sigmas)
    heun = ODE_SAMPLERS["2m_sde_heun_eta0"](model, x_T, sigmas)
    assert (mid - heun).abs().max().item() > 1e-5
    euler_error = _ode_error(sample_euler, 50)
    for name in ("2m_sde_midpoint_eta0", "2m_sde_heun_eta0"):
        error = _ode_error(ODE_SAMPLERS[name], 50)
        assert error < 6e-3 and error < euler_error / 3, name
    heun_ratio = _ode_error(ODE_SAMPLERS["2m_sde_heun_eta0"], 20) / _ode_error(
        ODE_SAMPLERS["2m_sde_heun_eta0"], 40
    )
    assert heun_ratio > 3.5


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_heun_multistep_is_exact_for_denoised_linear_in_log_sigma(eta):
    """With lambda = -ln sigma and k = 1 + eta, the SDE's mean follows dx/dlambda = k (D - x).
    For D = A + B lambda (independent of x) one step of length h from x_s is exactly
        x_t = e^{-k h} x_s + D_s (1 - e^{-k h}) + B (h - (1 - e^{-k h}) / k),
    and the heun form's linear extrapolation of D in lambda reproduces it at every multistep step;
    the first step is first order (D held at D_0) and the midpoint form is not exact."""
    sigmas = karras_sigmas(12)
    g = _gen(27)
    a, b = torch.randn(3, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64)
    x_T = sigmas[0] * torch.randn(2, 3, generator=g, dtype=F64)
    k = 1 + eta

    def model(x, sigma):
        return (a + b * -_per_item(sigma, x).log()).expand_as(x)

    def zeros(sigma, sigma_next):
        return torch.zeros_like(x_T)

    def run(solver_type):
        records = []
        sample_dpmpp_2m_sde(
            model,
            x_T,
            sigmas,
            eta=eta,
            s_noise=0.0,
            noise_sampler=zeros,
            solver_type=solver_type,
            callback=records.append,
        )
        return records

    def exact_step(x, sigma, sigma_next):
        h = math.log(sigma / sigma_next)
        decay = math.exp(-k * h)
        d = a + b * -math.log(sigma)
        return decay * x + d * (1 - decay) + b * (h - (1 - decay) / k)

    heun, midpoint = run("heun"), run("midpoint")
    s = sigmas.tolist()
    first = math.exp(-k * math.log(s[0] / s[1]))
    expected_first = first * x_T + (1 - first) * (a + b * -math.log(s[0]))
    torch.testing.assert_close(heun[1]["x"], expected_first, rtol=1e-12, atol=1e-12)
    for i in range(1, len(s) - 2):
        expected = exact_step(heun[i]["x"], s[i], s[i + 1])
        torch.testing.assert_close(heun[i + 1]["x"], expected, rtol=1e-10, atol=1e-10)
    gaps = [
        (midpoint[i + 1]["x"] - exact_step(midpoint[i]["x"], s[i], s[i + 1])).abs().max().item()
        for i in range(1, len(s) - 2)
    ]
    assert max(gaps) > 1e-3


# --- Callback ------------------------------------------------------------------------------------


def _run_sampler(name: str, model, x_T, sigmas, callback=None):
    if name in ODE_SAMPLERS:
        return ODE_SAMPLERS[name](model, x_T, sigmas, callback=callback)
    noise = ItemNoise(item_seeds(23, x_T.shape[0]), x_T.shape[1:], dtype=x_T.dtype)
    return sample_dpmpp_2m_sde(model, x_T, sigmas, callback=callback, noise_sampler=noise)


@pytest.mark.parametrize("name", [*ODE_SAMPLERS, "2m_sde"])
def test_callback_records_every_step(name):
    sigmas = karras_sigmas(8)
    x_T = sigmas[0] * torch.randn(3, 3, generator=_gen(24), dtype=F64)
    model = nonlinear_denoiser()
    records = []
    out = _run_sampler(name, model, x_T, sigmas, records.append)
    assert [r["i"] for r in records] == list(range(8))
    for r in records:
        assert r.keys() == {"i", "x", "sigma", "sigma_next", "denoised"}
        assert r["sigma"] == sigmas[r["i"]] and r["sigma_next"] == sigmas[r["i"] + 1]
        torch.testing.assert_close(r["denoised"], model(r["x"], r["sigma"].expand(3)))
    assert torch.equal(records[0]["x"], x_T)
    torch.testing.assert_close(out, records[-1]["denoised"])  # the last step lands on D
    assert torch.equal(out, _run_sampler(name, model, x_T, sigmas))


# --- Seeded noise --------------------------------------------------------------------------------


def test_item_seeds_are_a_prefix_and_distinct():
    assert item_seeds(5, 2) == item_seeds(5, 5)[:2]
    assert len(set(item_seeds(5, 50))) == 50
    assert item_seeds(5, 3) != item_seeds(6, 3)


def test_item_noise_is_seeded_per_item():
    a = ItemNoise(item_seeds(1, 2), (3, 4))
    b = ItemNoise(item_seeds(1, 5), (3, 4))
    first_a, first_b = a.randn(), b()
    assert first_a.shape == (2, 3, 4) and first_b.shape == (5, 3, 4)
    assert first_a.dtype == torch.get_default_dtype()
    assert torch.equal(first_a, first_b[:2])
    assert torch.equal(a(1.0, 0.5), b.randn()[:2])  # later draws too; call arguments ignored
    assert not torch.equal(first_a[0], first_a[1])
    again = ItemNoise(item_seeds(1, 2), (3, 4))
    assert torch.equal(again.randn(), first_a)
    assert not torch.equal(ItemNoise(item_seeds(2, 2), (3, 4)).randn(), first_a)
    assert ItemNoise([0], (2,), dtype=F64).randn().dtype == F64


def test_item_noise_is_standard_normal():
    draws = ItemNoise(item_seeds(3, 20), (1000,), dtype=F64).randn()
    assert abs(draws.mean().item()) < 0.03
    assert draws.std().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("noise_kind", ["item", "brownian"])
def test_sde_sample_is_batch_size_independent(noise_kind):
    """Item i's full sample depends only on its seeds, not on the batch it runs in."""
    sigmas = karras_sigmas(20)

    def sample(batch):
        x_T = sigmas[0] * ItemNoise(item_seeds(25, batch), (6,), dtype=F64).randn()
        noise = _noise(noise_kind, batch, (6,), sigmas, seed=26)
        return sample_dpmpp_2m_sde(gaussian_denoiser(), x_T, sigmas, noise_sampler=noise)

    small, large = sample(2), sample(5)
    torch.testing.assert_close(small, large[:2], rtol=1e-12, atol=1e-12)
    assert (small[0] - small[1]).abs().max().item() > 0.1


# --- Brownian tree -------------------------------------------------------------------------------


def test_brownian_tree_is_deterministic_and_seeded():
    tree = BrownianTreeNoise([1, 2], (3,), 0.002, 80.0, dtype=F64)
    same = BrownianTreeNoise([1, 2], (3,), 0.002, 80.0, dtype=F64)
    other = BrownianTreeNoise([3, 4], (3,), 0.002, 80.0, dtype=F64)
    a = tree(10.0, 5.0)
    assert a.shape == (2, 3) and a.dtype == F64
    assert torch.equal(a, same(10.0, 5.0))
    assert torch.equal(a, tree(10.0, 5.0))
    assert not torch.equal(a, other(10.0, 5.0))
    assert not torch.equal(a[0], a[1])
    assert BrownianTreeNoise([1], (3,), 0.002, 80.0).w(1.0).dtype == F64
    assert BrownianTreeNoise([1], (3,), 0.002, 80.0)(1.0, 0.5).dtype == torch.get_default_dtype()


def test_brownian_tree_increments_come_from_one_path():
    """W(c) - W(a) = (W(b) - W(a)) + (W(c) - W(b)), also when a fresh tree is queried in another
    order (nodes are seeded by position, not by query order); reversing a step flips the sign."""
    points = [(0.002, 0.3, 80.0), (1.5, 2.7, 13.0), (0.01, 0.0105, 0.011), (40.0, 60.0, 79.9)]
    for a, b, c in points:
        first = BrownianTreeNoise(item_seeds(30, 3), (4,), 0.002, 80.0, dtype=F64)
        fresh = BrownianTreeNoise(item_seeds(30, 3), (4,), 0.002, 80.0, dtype=F64)
        parts = first(a, b) * math.sqrt(b - a) + first(b, c) * math.sqrt(c - b)
        whole = fresh(a, c) * math.sqrt(c - a)
        torch.testing.assert_close(whole, parts, rtol=0, atol=1e-6)
        torch.testing.assert_close(fresh(c, a), -fresh(a, c), rtol=0, atol=1e-12)
    # W(sigma_min) = 0 and the path is continuous at the tolerance scale.
    tree = BrownianTreeNoise([7], (4,), 0.002, 80.0, dtype=F64)
    assert torch.equal(tree.w(0.002), torch.zeros(1, 4, dtype=F64))
    assert (tree.w(3.0) - tree.w(3.0 + 1e-9)).abs().max().item() < 1e-4


def test_brownian_tree_increments_are_independent_standard_normals():
    """Normalised increments over a few intervals, pooled over 200 seeds x 5 coordinates."""
    tree = BrownianTreeNoise(item_seeds(31, 200), (5,), 0.002, 80.0, dtype=F64)
    intervals = [(80.0, 40.0), (40.0, 3.0), (3.0, 0.5), (0.02, 0.01)]
    draws = torch.stack([tree(s, s_next).flatten() for s, s_next in intervals])
    for row in draws:
        assert abs(row.mean().item()) < 0.15
        assert row.std().item() == pytest.approx(1.0, abs=0.1)
    assert abs(draws.mean().item()) < 0.07
    assert draws.std().item() == pytest.approx(1.0, abs=0.05)
    # Disjoint intervals: uncorrelated increments.
    corr = torch.corrcoef(draws)
    assert (corr - torch.eye(4, dtype=F64)).abs().max().item() < 0.12
    # Overlapping intervals share their common part: corr = overlap / sqrt(len1 len2).
    whole, half = tree(80.0, 0.002).flatten(), tree(80.0, 40.0).flatten()
    expected = 40.0 / math.sqrt(79.998 * 40.0)
    assert torch.corrcoef(torch.stack([whole, half]))[0, 1].item() == pytest.approx(
        expected, abs=0.1
    )


def test_brownian_tree_is_batch_independent_and_checks_bounds():
    small = BrownianTreeNoise(item_seeds(32, 2), (3,), 0.002, 80.0, dtype=F64)
    large = BrownianTreeNoise(item_seeds(32, 5), (3,), 0.002, 80.0, dtype=F64)
    for s, s_next in [(80.0, 20.0), (20.0, 0.1), (0.1, 0.002)]:
        assert torch.equal(small(s, s_next), large(s, s_next)[:2])
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        BrownianTreeNoise([0], (1,), 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        BrownianTreeNoise([0], (1,), -1.0, 1.0)


def test_brownian_sde_samples_are_consistent_across_step_counts():
    """With one Brownian path, 25 and 50 steps give nearly the same sample (measured mean gap
    0.054), while other seeds, or fresh per-step noise at a different step count, give unrelated
    ones (0.54 and 0.51)."""
    batch, shape = 8, (16,)

    def sample(n, seed, noise_kind):
        sigmas = karras_sigmas(n)
        x_T = sigmas[0] * ItemNoise(item_seeds(seed, batch), shape, dtype=F64).randn()
        noise = _noise(noise_kind, batch, shape, sigmas, seed=seed + 1000)
        return sample_dpmpp_2m_sde(gaussian_denoiser(), x_T, sigmas, noise_sampler=noise)

    b25, b50 = sample(25, 1, "brownian"), sample(50, 1, "brownian")
    other_seed = sample(50, 2, "brownian")
    i25, i50 = sample(25, 1, "item"), sample(50, 1, "item")
    step_gap = (b25 - b50).abs().mean().item()
    assert step_gap < 0.25 * (b50 - other_seed).abs().mean().item()
    assert step_gap < 0.25 * (i25 - i50).abs().mean().item()


# --- Property tests ------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 4),
    dims=st.lists(st.integers(1, 3), max_size=2),
    steps=st.integers(1, 8),
    name=st.sampled_from([*ODE_SAMPLERS, "2m_sde"]),
    dtype=st.sampled_from([torch.float32, F64]),
)
def test_samplers_keep_shape_and_stay_finite(batch, dims, steps, name, dtype):
    sigmas = karras_sigmas(steps)
    x_T = sigmas[0] * torch.randn(batch, *dims, generator=_gen(40), dtype=dtype)
    out = _run_sampler(name, gaussian_denoiser(), x_T, sigmas)
    assert out.shape == x_T.shape and out.dtype == dtype
    assert torch.isfinite(out).all()
    # Samples land near the data N(mu, s^2), far inside the sigma_max = 80 scale of x_T.
    assert (out - MU).abs().max().item() < 10 * S


# --- ReactDiff's constants -----------------------------------------------------------------------


def test_reactdiff_schedule_constants_and_golden_values():
    """ReactDiff samples 50 Karras levels from 80 to 0.01 with rho 7 (first 80, 72.1, 64.9;
    last 0.0144, 0.01; then 0), with sigma_data 0.5; it trains on the cosine density over
    [1e-3, 1e3]."""
    assert (REACTDIFF_SIGMA_MIN, REACTDIFF_SIGMA_MAX, REACTDIFF_RHO) == (0.01, 80.0, 7.0)
    assert REACTDIFF_STEPS == 50 and SIGMA_DATA == 0.5
    sigmas = reactdiff_sigmas()
    assert sigmas.shape == (51,) and sigmas.dtype == F64
    assert sigmas[:3].tolist() == pytest.approx([80.0, 72.09, 64.87], abs=0.005)
    assert sigmas[-3:].tolist() == pytest.approx([0.0144, 0.01, 0.0], abs=5e-5)
    assert torch.equal(sigmas, karras_sigmas(50, 0.01, 80.0, 7.0))
    assert torch.equal(reactdiff_sigmas(7), karras_sigmas(7, 0.01, 80.0, 7.0))
    # The training density's range: a draw never leaves [1e-3, 1e3].
    draws = sample_sigmas(50_000, generator=_gen(60)).double()
    assert draws.min().item() >= 1e-3 * (1 - 1e-6) and draws.max().item() <= 1e3 * (1 + 1e-6)
    assert (diffusion.REACTDIFF_TRAIN_SIGMA_MIN, diffusion.REACTDIFF_TRAIN_SIGMA_MAX) == (1e-3, 1e3)


# --- Explicit noise ------------------------------------------------------------------------------


def test_sde_sampler_requires_an_explicit_noise_source():
    sigmas = karras_sigmas(4)
    x_T = sigmas[0] * torch.randn(2, 3, generator=_gen(61), dtype=F64)
    model = gaussian_denoiser()
    with pytest.raises(TypeError, match="noise_sampler"):
        sample_dpmpp_2m_sde(model, x_T, sigmas)
    with pytest.raises(ValueError, match=r"eta=1\.0.*noise_sampler"):
        sample_dpmpp_2m_sde(model, x_T, sigmas, noise_sampler=None)
    for bad in ("seed", 1.5, True):
        with pytest.raises(TypeError, match="callable, an int seed or None"):
            sample_dpmpp_2m_sde(model, x_T, sigmas, noise_sampler=bad)
    # None is fine where nothing is drawn: eta 0 (the ODE) or s_noise 0.
    ode = sample_dpmpp_2m(model, x_T, sigmas)
    assert torch.equal(sample_dpmpp_2m_sde(model, x_T, sigmas, eta=0.0, noise_sampler=None), ode)
    quiet = sample_dpmpp_2m_sde(model, x_T, sigmas, s_noise=0.0, noise_sampler=None)
    assert torch.isfinite(quiet).all()


def test_sde_seed_builds_reactdiffs_brownian_tree_and_ignores_the_global_generator():
    """An int seed means BrownianTreeNoise over the schedule's positive range with per-item seeds
    item_seeds(seed, B): the same sample as passing that tree, whatever torch's global state."""
    sigmas = reactdiff_sigmas(12)
    x_T = sigmas[0] * torch.randn(4, 3, generator=_gen(62), dtype=F64)
    model = nonlinear_denoiser()
    torch.manual_seed(0)
    seeded = sample_dpmpp_2m_sde(model, x_T, sigmas, noise_sampler=7)
    torch.manual_seed(12345)
    torch.randn(100)
    again = sample_dpmpp_2m_sde(model, x_T, sigmas, noise_sampler=7)
    tree = BrownianTreeNoise(item_seeds(7, 4), (3,), 0.01, 80.0, dtype=F64)
    explicit = sample_dpmpp_2m_sde(model, x_T, sigmas, noise_sampler=tree)
    assert torch.equal(seeded, again) and torch.equal(seeded, explicit)
    assert not torch.equal(seeded, sample_dpmpp_2m_sde(model, x_T, sigmas, noise_sampler=8))
    # Item 0 alone, with the same seed, is item 0 of the batch.
    alone = sample_dpmpp_2m_sde(model, x_T[:1], sigmas, noise_sampler=7)
    torch.testing.assert_close(alone, seeded[:1], rtol=0, atol=1e-12)
    built = schedule_noise(7, x_T, sigmas)
    assert (built.lo, built.hi, built.seeds, built.shape) == (0.01, 80.0, item_seeds(7, 4), (3,))
    with pytest.raises(ValueError, match="two different positive levels"):
        schedule_noise(7, x_T, torch.tensor([1.0, 0.0], dtype=F64))


# --- Brownian tree: range, cache, reference implementation ---------------------------------------


def test_brownian_tree_rejects_levels_outside_its_range_and_empty_steps():
    tree = BrownianTreeNoise([1, 2], (3,), 0.002, 80.0, dtype=F64)
    for bad in (0.001, 0.0, 80.5, -1.0, math.nan, math.inf):
        with pytest.raises(
            ValueError, match=r"outside this Brownian tree's range \[0\.002, 80\.0\]"
        ):
            tree(bad, 1.0)
        with pytest.raises(ValueError, match=r"\[0\.002, 80\.0\]"):
            tree.w(bad)
    with pytest.raises(ValueError, match="two different levels"):
        tree(5.0, 5.0)
    with pytest.raises(ValueError, match="cache_size"):
        BrownianTreeNoise([1], (3,), 0.002, 80.0, cache_size=0)
    # Both ends are inside the range.
    assert torch.isfinite(tree(80.0, 0.002)).all()


def test_brownian_tree_cache_is_bounded_and_eviction_keeps_the_values():
    sigmas = reactdiff_sigmas(200)
    small = BrownianTreeNoise(item_seeds(63, 3), (4,), 0.01, 80.0, dtype=F64, cache_size=5)
    default = BrownianTreeNoise(item_seeds(63, 3), (4,), 0.01, 80.0, dtype=F64)
    unbounded = BrownianTreeNoise(item_seeds(63, 3), (4,), 0.01, 80.0, dtype=F64, cache_size=10**9)
    assert default.cache_size == BROWNIAN_CACHE_SIZE
    largest = 0
    for s, s_next in zip(sigmas[:-2].tolist(), sigmas[1:-1].tolist(), strict=True):
        a, b, c = small(s, s_next), default(s, s_next), unbounded(s, s_next)
        assert torch.equal(a, c) and torch.equal(b, c)
        assert small.cache_len() <= 5 and default.cache_len() <= BROWNIAN_CACHE_SIZE
        largest = max(largest, default.cache_len())
    assert largest == BROWNIAN_CACHE_SIZE  # the bound is reached, and held
    assert unbounded.cache_len() > 10 * BROWNIAN_CACHE_SIZE  # what the bound saves
    # Without eviction every node is drawn once, as the reference (which keeps all) draws them;
    # the bounds redraw a few.
    reference = ReferenceBrownianTree(item_seeds(63, 3), (4,), 0.01, 80.0, dtype=F64)
    for s, s_next in zip(sigmas[:-2].tolist(), sigmas[1:-1].tolist(), strict=True):
        reference(s, s_next)
    assert unbounded.nodes_drawn == len(reference._nodes)
    assert unbounded.nodes_drawn <= default.nodes_drawn < small.nodes_drawn


class ReferenceBrownianTree:
    """The per-item Brownian tree ReactLab shipped first, kept verbatim as the reference: every
    item's node drawn with its own seeded torch.randn, the walk in torch, nodes cached forever."""

    MASK64 = (1 << 64) - 1

    @classmethod
    def _mix(cls, z: int) -> int:
        z = (z + 0x9E3779B97F4A7C15) & cls.MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & cls.MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & cls.MASK64
        return z ^ (z >> 31)

    def __init__(self, seeds, shape, sigma_min, sigma_max, *, tol=1e-6, dtype=None):
        self.seeds = [int(s) for s in seeds]
        self.shape = tuple(shape)
        self.lo, self.hi = float(sigma_min), float(sigma_max)
        self.depth = max(1, math.ceil(math.log2((self.hi - self.lo) / tol)))
        self.dtype = dtype or torch.get_default_dtype()
        self._nodes = {}
        self._generator = torch.Generator()
        self._last = None

    def _normal(self, depth, index):
        key = (depth, index)
        if key not in self._nodes:
            out = torch.empty(len(self.seeds), *self.shape, dtype=torch.float64)
            for k, seed in enumerate(self.seeds):
                mixed = self._mix(self._mix(self._mix(seed) ^ depth) ^ index) >> 1
                self._generator.manual_seed(mixed)
                torch.randn(self.shape, generator=self._generator, out=out[k])
            self._nodes[key] = out
        return self._nodes[key]

    def w(self, t):
        t = min(max(float(t), self.lo), self.hi)
        if self._last is not None and self._last[0] == t:
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

    def __call__(self, sigma, sigma_next):
        s, s_next = float(sigma), float(sigma_next)
        start = self.w(s)
        increment = (self.w(s_next) - start) / math.sqrt(abs(s_next - s))
        return increment.to(dtype=self.dtype)


@pytest.mark.parametrize(
    ("seed", "items", "shape", "steps"),
    [
        (0, 10, (16, 58), 50),
        (1, 3, (3,), 20),
        (2, 4, (5, 7), 30),
        (3, 2, (), 12),
        (4, 1, (17,), 50),
    ],
)
def test_brownian_tree_matches_the_per_item_reference_bit_for_bit(seed, items, shape, steps):
    """Same increments as the per-item implementation, to the last bit: along ReactDiff's schedule,
    then for queries in a scattered order, for shapes on every path of torch's normal draw (fewer
    than 16 values, a multiple of 16, neither), in float64 and in the float32 the samplers use."""
    seeds = item_seeds(100 + seed, items)
    sigmas = reactdiff_sigmas(steps)
    for dtype in (F64, torch.float32):
        ours = BrownianTreeNoise(seeds, shape, 0.01, 80.0, dtype=dtype, cache_size=16)
        reference = ReferenceBrownianTree(seeds, shape, 0.01, 80.0, dtype=dtype)
        for s, s_next in zip(sigmas[:-2], sigmas[1:-1], strict=True):
            a, b = ours(s, s_next), reference(s, s_next)
            assert a.dtype == dtype and a.shape == (items, *shape)
            assert torch.equal(a, b)
        scattered = torch.rand(12, 2, generator=_gen(seed), dtype=F64) * 79.99 + 0.01
        for s, s_next in scattered.tolist():
            assert torch.equal(ours(s, s_next), reference(s, s_next))
        assert torch.equal(ours.w(33.3), reference.w(33.3))


def test_brownian_tree_item_does_not_depend_on_its_batch():
    """Item k's increments are those of a tree of item k alone, bit for bit."""
    seeds = item_seeds(64, 5)
    batch = BrownianTreeNoise(seeds, (6,), 0.01, 80.0, dtype=F64)
    alone = [BrownianTreeNoise([s], (6,), 0.01, 80.0, dtype=F64) for s in seeds]
    sigmas = reactdiff_sigmas(15)
    for s, s_next in zip(sigmas[:-2], sigmas[1:-1], strict=True):
        together = batch(s, s_next)
        for k, tree in enumerate(alone):
            assert torch.equal(together[k : k + 1], tree(s, s_next))


# --- Repeated levels -----------------------------------------------------------------------------


def _with_repeats(sigmas: torch.Tensor) -> torch.Tensor:
    """The schedule with its first level, a middle level and the final 0 each given twice."""
    middle = len(sigmas) // 2
    return torch.cat([sigmas[:1], sigmas[: middle + 1], sigmas[middle:], sigmas[-1:]])


@pytest.mark.parametrize(
    "name", [*ODE_SAMPLERS, "2m_sde_item", "2m_sde_brownian", "2m_sde_heun_seed"]
)
def test_a_repeated_level_is_a_no_op_step(name):
    """A schedule that repeats a level gives finite output equal, bit for bit, to the schedule
    without the repeat: the repeated step calls no network and changes neither x nor the
    multistep history."""
    sigmas = karras_sigmas(10)
    repeated = _with_repeats(sigmas)
    assert len(repeated) == len(sigmas) + 3 and (repeated.diff() <= 0).all()
    x_T = sigmas[0] * torch.randn(4, 3, generator=_gen(65), dtype=F64)
    model = nonlinear_denoiser()

    def run(schedule):
        calls = []

        def counted(x, sigma):
            calls.append(sigma[0].item())
            return model(x, sigma)

        if name in ODE_SAMPLERS:
            return ODE_SAMPLERS[name](counted, x_T, schedule), calls
        if name == "2m_sde_item":
            noise = ItemNoise(item_seeds(66, 4), (3,), dtype=F64)
        elif name == "2m_sde_brownian":
            noise = BrownianTreeNoise(item_seeds(66, 4), (3,), 0.002, 80.0, dtype=F64)
        else:
            noise = 66
        solver = "heun" if name == "2m_sde_heun_seed" else "midpoint"
        out = sample_dpmpp_2m_sde(counted, x_T, schedule, noise_sampler=noise, solver_type=solver)
        return out, calls

    plain, plain_calls = run(sigmas)
    out, calls = run(repeated)
    assert torch.isfinite(out).all()
    assert torch.equal(out, plain)
    assert calls == plain_calls and len(calls) == 10


@settings(max_examples=25, deadline=None)
@given(
    items=st.integers(1, 4),
    shape=st.lists(st.integers(1, 9), max_size=2),
    lo=st.floats(0.0, 1.0),
    width=st.floats(0.01, 100.0),
    queries=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6),
    cache_size=st.integers(1, 40),
)
def test_brownian_tree_property_matches_the_reference(items, shape, lo, width, queries, cache_size):
    """Any batch, shape, range, cache bound and query order: the reference's values, bit for bit
    (queries at fractions of the range; equal ends are refused)."""
    hi = lo + width
    seeds = item_seeds(items + len(shape), items)
    ours = BrownianTreeNoise(seeds, shape, lo, hi, dtype=F64, cache_size=cache_size)
    reference = ReferenceBrownianTree(seeds, shape, lo, hi, dtype=F64)
    for a, b in queries:
        s, s_next = lo + a * width, lo + b * width
        s, s_next = min(max(s, lo), hi), min(max(s_next, lo), hi)
        if s == s_next:
            with pytest.raises(ValueError, match="two different levels"):
                ours(s, s_next)
            continue
        assert torch.equal(ours(s, s_next), reference(s, s_next))
        assert ours.cache_len() <= cache_size
