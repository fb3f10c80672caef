"""Tests for reactlib.models: the ReactDiff denoiser network.

Shapes and sizes per profile, the configuration's validation and round trip, the causal mask by
hand, causality of the whole network (a listener frame never depends on later speaker frames;
padding and speaker frames later than the window have no effect), and that every condition
enters: the speaker (unless ``cond_mask`` drops it), the past frame, the noise level and the
timestamps. The output projections are zero-initialised, so these tests use networks whose
zero-initialised layers are re-drawn with :func:`randomise`."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.models.reactdiff_net import (
    AdaGN,
    CausalConv,
    CausalCrossAttention,
    CoefficientFilter,
    CoefficientPath,
    ReactDiffConfig,
    ReactDiffNet,
    causal_mask,
    profile_config,
    timestamp_features,
)
from reactlib.runtime import parameter_count

torch.set_num_threads(1)

D = coeffs.NUM_COEFFS
AUDIO = 8
"""Audio feature width of the test networks (small, to keep them fast)."""
FIRST = 100
"""Global index of the first listener frame of the test window."""
W = 16
LOOKBACK = 16


def randomise(net: ReactDiffNet, seed: int, std: float = 0.1) -> ReactDiffNet:
    """Re-draw the zero-initialised layers (the output projection, every cross-attention output,
    every adaptive-norm projection, the coefficient filter and path) with small Gaussian weights, so
    that every condition reaches the output of an untrained network."""
    g = torch.Generator().manual_seed(seed)
    layers = [net.proj_out]
    layers += [m.out for m in net.modules() if isinstance(m, CausalCrossAttention)]
    layers += [m.project for m in net.modules() if isinstance(m, AdaGN)]
    filters = [m for m in net.modules() if isinstance(m, CoefficientFilter)]
    layers += [layer for f in filters for layer in (f.weights, f.past_scale)]
    paths = [m for m in net.modules() if isinstance(m, CoefficientPath)]
    layers += [layer for p in paths for layer in (p.film, p.gate, p.past_scale)]
    with torch.no_grad():
        for p in paths:
            p.w_out.copy_(torch.randn(p.w_out.shape, generator=g) * std)
        for layer in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * std)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * std)
        for basis in (b for f in filters for b in (f.into, f.back) if b is not None):
            basis.weight.add_(torch.randn(basis.weight.shape, generator=g) * std)
    return net


def make_net(context: str = "lookback", seed: int = 0, **overrides) -> ReactDiffNet:
    """A randomised ``ci``-sized network in eval mode."""
    lookback = LOOKBACK if context == "lookback" else 0
    torch.manual_seed(seed)
    config = profile_config(
        "ci", speaker_context=context, lookback=lookback, audio_dim=AUDIO, **overrides
    )
    return randomise(ReactDiffNet(config), seed + 1).eval()


def make_inputs(context: str = "lookback", batch: int = 1, seed: int = 0) -> dict:
    """One window of listener frames ``FIRST .. FIRST + W - 1`` and its speaker context (the
    window's frames, and ``LOOKBACK`` frames before it for ``lookback``)."""
    g = torch.Generator().manual_seed(seed)
    context_frames = LOOKBACK if context == "lookback" else 0
    s = W + context_frames
    return {
        "x": torch.randn(batch, W, D, generator=g),
        "c_noise": torch.full((batch,), -0.3),
        "past": torch.randn(batch, D, generator=g),
        "speaker": torch.randn(batch, s, D, generator=g),
        "audio": torch.randn(batch, s, AUDIO, generator=g),
        "h": torch.arange(FIRST, FIRST + W).expand(batch, -1),
        "speaker_h": torch.arange(FIRST - context_frames, FIRST + W).expand(batch, -1),
    }


@torch.no_grad()
def run(net: ReactDiffNet, inputs: dict) -> torch.Tensor:
    rest = {k: v for k, v in inputs.items() if k not in ("x", "c_noise")}
    return net(inputs["x"], inputs["c_noise"], **rest)


def with_changed(inputs: dict, name: str, frames, seed: int = 7) -> dict:
    """``inputs`` with fresh random values in ``inputs[name][:, frames]``."""
    changed = dict(inputs)
    g = torch.Generator().manual_seed(seed)
    value = inputs[name].clone()
    value[:, frames] = torch.randn(value[:, frames].shape, generator=g) * 3
    changed[name] = value
    return changed


def frame_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest absolute difference per listener frame, over items and coefficients: ``(T,)``."""
    return (a - b).abs().amax(dim=(0, 2))


# --- Configuration and size ------------------------------------------------------------------


@pytest.mark.parametrize("context", ["window", "lookback"])
def test_output_shape(context):
    out = run(make_net(context), make_inputs(context, batch=3))
    assert out.shape == (3, W, D)
    assert torch.isfinite(out).all()


def test_parameter_counts_grow_with_profile():
    counts = {}
    for profile in ("ci", "lab", "full"):
        with torch.device("meta"):  # sizes only: no memory, no initialisation
            counts[profile] = parameter_count(ReactDiffNet(profile_config(profile)))
    assert 0 < counts["ci"] < counts["lab"] < counts["full"]


def test_full_profile_is_the_official_layout():
    config = profile_config("full")
    assert config.channels == (128, 256, 512)
    assert config.depths == (2, 4, 4)


def test_profile_config_overrides_and_unknown_profile():
    assert profile_config("ci", window=8).window == 8
    with pytest.raises(UsageError, match="nope"):
        profile_config("nope")


@pytest.mark.parametrize(
    "fields",
    [
        dict(channels=(32, 64), depths=(1,)),
        dict(channels=(), depths=()),
        dict(channels=(0,), depths=(1,)),
        dict(channels=(32,), depths=(0,)),
        dict(speaker_context="future"),
        dict(speaker_context="window", lookback=4),
        dict(speaker_context="lookback", lookback=-1),
        dict(window=0),
        dict(dropout=1.0),
        dict(cond_dropout=-0.1),
        dict(coeff_filter=-1),
        dict(coeff_path=-1),
        dict(path_kernel=0),
    ],
)
def test_config_rejects_bad_settings(fields):
    with pytest.raises(UsageError):
        ReactDiffConfig(**fields)


def test_context_frames():
    assert profile_config("ci").context_frames == 0
    assert profile_config("ci", speaker_context="lookback", lookback=12).context_frames == 12
    assert profile_config("ci", speaker_context="lookback").context_frames == 0


def test_config_dict_round_trip_through_json():
    config = profile_config("lab", speaker_context="lookback", lookback=8, audio_dim=32)
    assert ReactDiffConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config


# --- The causal mask -----------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_causal_conv_is_the_convolution_with_zeros_before_the_window(kernel):
    """The stacked-frames product equals ``conv1d`` over the window padded with ``kernel - 1``
    zero frames in front: output frame t sees input frames t - kernel + 1 .. t."""
    g = torch.Generator().manual_seed(kernel)
    conv = CausalConv(6, 4, kernel)
    x = torch.randn(3, 9, 6, generator=g)
    padded = torch.nn.functional.pad(x.transpose(1, 2), (kernel - 1, 0))
    expected = torch.nn.functional.conv1d(padded, conv.conv.weight, conv.conv.bias)
    torch.testing.assert_close(conv(x), expected.transpose(1, 2))


def test_causal_mask_by_hand():
    h = torch.tensor([[2, 3], [0, 1]])
    speaker_h = torch.tensor([[-1, 0, 2, 3, 4], [-1, -1, 0, 1, 2]])
    t, f = True, False
    expected = torch.tensor(
        [
            [[f, t, t, f, f], [f, t, t, t, f]],
            [[f, f, t, f, f], [f, f, t, t, f]],
        ]
    )
    assert torch.equal(causal_mask(h, speaker_h), expected)
    dropped = causal_mask(h, speaker_h, torch.tensor([True, False]))
    assert torch.equal(dropped[0], expected[0])
    assert not dropped[1].any()


def test_causal_mask_sees_nothing_before_the_first_speaker_frame():
    # A listener frame earlier than every real speaker frame may attend to none.
    mask = causal_mask(torch.tensor([[0, 5]]), torch.tensor([[-1, 3, 4]]))
    assert torch.equal(mask, torch.tensor([[[False, False, False], [False, True, True]]]))


# --- Causality -----------------------------------------------------------------------------------


@pytest.mark.parametrize("context", ["window", "lookback"])
@pytest.mark.parametrize("name", ["speaker", "audio"])
def test_later_speaker_frames_leave_earlier_output_unchanged(context, name, atol=1e-6):
    net, inputs = make_net(context), make_inputs(context)
    base = run(net, inputs)
    first_speaker = int(inputs["speaker_h"][0, 0])
    for t in (FIRST + 2, FIRST + 8, FIRST + W - 2):
        changed = with_changed(inputs, name, slice(t + 1 - first_speaker, None))
        change = frame_change(base, run(net, changed))
        assert change[: t + 1 - FIRST].max() <= atol, f"frames <= {t} moved"


@pytest.mark.parametrize("context", ["window", "lookback"])
@pytest.mark.parametrize("name", ["speaker", "audio"])
def test_a_speaker_frame_changes_every_listener_frame_from_its_time(context, name, atol=1e-4):
    net, inputs = make_net(context), make_inputs(context)
    base = run(net, inputs)
    first_speaker = int(inputs["speaker_h"][0, 0])
    for k in (FIRST + 3, FIRST + W - 1):
        change = frame_change(base, run(net, with_changed(inputs, name, [k - first_speaker])))
        assert (change[k - FIRST :] > atol).all(), f"a frame >= {k} ignored speaker frame {k}"


@pytest.mark.parametrize("name", ["speaker", "audio"])
@pytest.mark.parametrize("unseen", ["padding", "after the window"])
def test_speaker_frames_no_listener_frame_may_see_have_no_effect(name, unseen):
    """Padding (``speaker_h = -1``) and frames later than the window's last frame are masked for
    every listener frame, whatever their values."""
    net = make_net("lookback")
    inputs = make_inputs("lookback", batch=2)
    hidden = slice(0, 5)
    speaker_h = inputs["speaker_h"].clone()
    speaker_h[:, hidden] = -1 if unseen == "padding" else FIRST + W + torch.arange(5)
    inputs["speaker_h"] = speaker_h
    base = run(net, inputs)
    g = torch.Generator().manual_seed(9)
    for scale in (1.0, 1e4):
        changed = dict(inputs)
        changed[name] = inputs[name].clone()
        changed[name][:, hidden] = torch.randn(changed[name][:, hidden].shape, generator=g) * scale
        assert torch.equal(run(net, changed), base)


def test_nan_padding_has_no_effect():
    net = make_net("lookback")
    inputs = make_inputs("lookback")
    inputs["speaker_h"] = inputs["speaker_h"].clone()
    inputs["speaker_h"][:, :4] = -1
    base = run(net, inputs)
    changed = dict(inputs)
    changed["speaker"] = inputs["speaker"].clone()
    changed["speaker"][:, :4] = float("nan")
    assert torch.equal(run(net, changed), base)


# --- Conditions ----------------------------------------------------------------------------------


def test_dropped_speaker_is_ignored_entirely(atol=1e-4):
    net, inputs = make_net(), make_inputs(batch=2)
    conditioned = run(net, inputs)
    inputs["cond_mask"] = torch.tensor([False, True])
    masked = run(net, inputs)
    changed = with_changed(with_changed(inputs, "speaker", slice(None)), "audio", slice(None), 8)
    again = run(net, changed)
    assert torch.equal(again[0], masked[0])  # item 0 sees no speaker: nothing changes
    assert (again[1] - masked[1]).abs().max() > atol  # item 1 still does
    assert torch.equal(masked[1], conditioned[1])  # items do not mix
    assert (masked[0] - conditioned[0]).abs().max() > atol


def test_past_frame_enters(atol=1e-4):
    net, inputs = make_net(), make_inputs()
    changed = with_changed(inputs, "past", slice(None))
    assert frame_change(run(net, inputs), run(net, changed)).min() > atol


@pytest.mark.parametrize("levels", [(-0.5, -0.3), (-0.9, -0.1), (0.5, 0.8)])
def test_noise_level_enters_continuously(levels, atol=1e-4):
    """Two noise levels that the official ``floor(c_noise / 50)`` maps to the same value still
    give different outputs."""
    net, inputs = make_net(), make_inputs()
    a, b = (run(net, {**inputs, "c_noise": torch.tensor([c])}) for c in levels)
    assert (a - b).abs().max() > atol


def test_timestamps_enter(atol=1e-4):
    # Shift listener and speaker times alike: the causal mask is the same, only h differs.
    net, inputs = make_net(), make_inputs()
    shift = 300
    later = {**inputs, "h": inputs["h"] + shift, "speaker_h": inputs["speaker_h"] + shift}
    assert frame_change(run(net, inputs), run(net, later)).min() > atol


def test_without_timestamps_the_time_in_the_conversation_has_no_effect(atol=1e-6):
    """``timestamp=False`` (the "w/o h" and "Diffusion model" rows): the same shift that
    changes every frame above changes nothing, while the causal mask still holds."""
    net, inputs = make_net(timestamp=False), make_inputs()
    later = {**inputs, "h": inputs["h"] + 300, "speaker_h": inputs["speaker_h"] + 300}
    torch.testing.assert_close(run(net, inputs), run(net, later), atol=atol, rtol=0)
    changed = with_changed(inputs, "speaker", slice(-1, None))
    assert frame_change(run(net, inputs), run(net, changed))[:-1].abs().max() < atol


def test_settings_added_later_keep_old_identities():
    """A new setting at its default is left out of ``as_dict``, so models trained before it keep
    their identity (and their cached checkpoints); any other value is written and read back."""
    config = profile_config("ci")
    assert "timestamp" not in config.as_dict()
    off = dataclasses.replace(config, timestamp=False)
    assert off.as_dict()["timestamp"] is False
    assert ReactDiffConfig.from_dict(json.loads(json.dumps(off.as_dict()))) == off
    assert ReactDiffConfig.from_dict(config.as_dict()) == config


@pytest.mark.parametrize("h", [0, 100, 740, 5000])
def test_timestamp_features_are_smooth(h):
    f = timestamp_features(torch.tensor([h, h + 1, h + 300]), 64, 750.0)
    assert f.shape == (3, 64)
    near, far = (f[0] - f[1]).norm(), (f[0] - f[2]).norm()
    assert 0 < near < far


def test_dropout_only_in_training(atol=1e-4):
    net, inputs = make_net(dropout=0.5), make_inputs()
    assert torch.equal(run(net, inputs), run(net, inputs))
    net.train()
    torch.manual_seed(3)
    first = run(net, inputs)
    second = run(net, inputs)
    assert (first - second).abs().max() > atol


@functools.cache
def shared_lookback_net() -> ReactDiffNet:
    """One network for all examples of the property test (building it is the slow part)."""
    return make_net("lookback")


@settings(max_examples=6, deadline=None)
@given(
    batch=st.integers(1, 3),
    frames=st.integers(1, 20),
    extra=st.integers(0, 12),
    start=st.integers(0, 800),
)
def test_output_shape_and_finiteness_over_shapes(batch, frames, extra, start):
    """Any window length T and any number S = T + extra of speaker frames (the extra ones before
    the window, some of them padding when the window starts near 0)."""
    net = shared_lookback_net()
    g = torch.Generator().manual_seed(batch * 1000 + frames * 10 + extra)
    s = frames + extra
    speaker_h = torch.arange(start - extra, start + frames).clamp(min=-1).expand(batch, -1)
    out = run(
        net,
        {
            "x": torch.randn(batch, frames, D, generator=g),
            "c_noise": torch.randn(batch, generator=g),
            "past": torch.randn(batch, D, generator=g),
            "speaker": torch.randn(batch, s, D, generator=g),
            "audio": torch.randn(batch, s, AUDIO, generator=g),
            "h": torch.arange(start, start + frames).expand(batch, -1),
            "speaker_h": speaker_h,
        },
    )
    assert out.shape == (batch, frames, D)
    assert torch.isfinite(out).all()


# --- The per-coefficient filter ------------------------------------------------------------------


def _filter_with(taps: torch.Tensor, past_scale: float = 1.0) -> CoefficientFilter:
    """A :class:`CoefficientFilter` whose taps are ``taps (taps,)`` for every coefficient and
    noise level (zero weights, the taps in the bias) and whose history is ``past_scale * past``."""
    f = CoefficientFilter(embed=4, taps=len(taps))
    with torch.no_grad():
        f.weights.bias.copy_(taps.repeat(D))
        f.past_scale.bias.fill_(past_scale)
    return f


def test_coefficient_filter_by_hand():
    """``y[t] = sum_k w_k x[t - k]``: the last tap weighs the current frame, the frames before the
    window are the (scaled) previous frame."""
    f = _filter_with(torch.tensor([0.25, 0.5, 1.0]), past_scale=2.0)
    g = torch.Generator().manual_seed(0)
    x, past = torch.randn(2, 5, D, generator=g), torch.randn(2, D, generator=g)
    noise = torch.randn(2, 4, generator=g)
    padded = torch.cat([2 * past[:, None], 2 * past[:, None], x], dim=1)
    expected = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 1.0 * padded[:, 2:]
    torch.testing.assert_close(f(x, noise, past), expected)


def _drawn(module: torch.nn.Module, seed: int, std: float = 1.0) -> torch.nn.Module:
    """``module`` with every parameter drawn from a normal of deviation ``std`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def test_coefficient_filter_keeps_coefficients_apart_and_is_causal():
    f = _drawn(CoefficientFilter(embed=4, taps=4), 1)
    g = torch.Generator().manual_seed(2)
    x, past, noise = torch.randn(1, 10, D, generator=g), torch.randn(1, D), torch.randn(1, 4)
    base = f(x, noise, past)
    later = x.clone()
    later[:, 6:] += 5
    assert torch.equal(f(later, noise, past)[:, :6], base[:, :6])
    other = x.clone()
    other[..., 3] += 5
    changed = (f(other, noise, past) - base).abs().amax(dim=(0, 1))
    assert changed[3] > 0 and torch.count_nonzero(changed) == 1


def test_coefficient_filter_taps_follow_the_noise_level():
    g = torch.Generator().manual_seed(2)
    f = CoefficientFilter(embed=4, taps=3)
    with torch.no_grad():
        f.weights.weight.copy_(torch.randn(f.weights.weight.shape, generator=g))
    x, past = torch.randn(1, 6, D, generator=g), torch.randn(1, D, generator=g)
    low, high = (f(x, torch.full((1, 4), v), past) for v in (-1.0, 1.0))
    assert (low - high).abs().max() > 1e-3


def test_filter_basis_starts_at_the_identity():
    """Freshly made, the basis maps are the identity: the same taps filter the same way."""
    plain = _drawn(CoefficientFilter(embed=4, taps=3), 3)
    based = CoefficientFilter(embed=4, taps=3, basis=True)
    based.load_state_dict(plain.state_dict(), strict=False)
    g = torch.Generator().manual_seed(4)
    x, past, noise = torch.randn(2, 7, D, generator=g), torch.randn(2, D), torch.randn(2, 4)
    torch.testing.assert_close(based(x, noise, past), plain(x, noise, past))


def test_filter_basis_by_hand():
    """With a basis, ``y = back(filter(into x))``, the history ``into(past)`` scaled: the taps
    act on the mapped coefficients, so a pair that moves together can be filtered as one."""
    based = _drawn(CoefficientFilter(embed=4, taps=3, basis=True), 5)
    plain = CoefficientFilter(embed=4, taps=3)
    plain.load_state_dict(based.state_dict(), strict=False)
    g = torch.Generator().manual_seed(6)
    x, past, noise = torch.randn(2, 7, D, generator=g), torch.randn(2, D), torch.randn(2, 4)
    into, back = based.into.weight, based.back.weight
    expected = plain(x @ into.T, noise, past @ into.T) @ back.T
    torch.testing.assert_close(based(x, noise, past), expected)
    later = x.clone()
    later[:, 4:] += 5
    assert torch.equal(based(later, noise, past)[:, :4], based(x, noise, past)[:, :4])


def test_without_the_filter_and_path_the_network_is_the_papers():
    both = ReactDiffNet(profile_config("ci", audio_dim=AUDIO))
    without = ReactDiffNet(profile_config("ci", audio_dim=AUDIO, coeff_filter=0, coeff_path=0))
    assert without.coeff_filter is None and isinstance(both.coeff_filter, CoefficientFilter)
    assert without.coeff_path is None and isinstance(both.coeff_path, CoefficientPath)
    added = parameter_count(both.coeff_filter) + parameter_count(both.coeff_path)
    assert parameter_count(both) - parameter_count(without) == added


def test_a_config_written_before_the_filter_loads_without_it():
    stored = profile_config("ci").as_dict()
    del stored["coeff_filter"], stored["filter_basis"]
    old = ReactDiffConfig.from_dict(stored)
    assert old.coeff_filter == 0 and not old.filter_basis


def test_a_config_written_before_the_filter_basis_filters_coefficient_by_coefficient():
    stored = profile_config("ci").as_dict()
    del stored["filter_basis"]
    old = ReactDiffConfig.from_dict(stored)
    assert old.coeff_filter == 8 and not old.filter_basis
    assert ReactDiffNet(dataclasses.replace(old, audio_dim=AUDIO)).coeff_filter.into is None


# --- The coefficient path ------------------------------------------------------------------------


def _path_by_grouped_convolutions(p: CoefficientPath, x, noise, past, features):
    """The path written with grouped ``conv1d`` (one group per coefficient), from its docstring."""
    n, k, hidden = D, p.kernel, p.hidden
    b, t, _ = x.shape
    history = (past * p.past_scale(noise))[:, :, None].expand(b, n, 2 * (k - 1))
    z = torch.cat([history, x.transpose(1, 2)], dim=2)
    w1 = p.w1.permute(0, 2, 1).reshape(n * hidden, 1, k)
    y = torch.nn.functional.conv1d(z, w1, p.b1.reshape(-1), groups=n)
    scale, shift = p.film(noise).view(b, 2, n * hidden, 1).unbind(1)
    y = torch.nn.functional.silu(y * (1 + scale) + shift)
    w2 = p.w2.view(n, k, hidden, hidden).permute(0, 3, 2, 1).reshape(n * hidden, hidden, k)
    y = torch.nn.functional.conv1d(y, w2, p.b2.reshape(-1), groups=n)
    y = torch.nn.functional.silu(y + p.gate(features).transpose(1, 2))
    out = torch.nn.functional.conv1d(y, p.w_out.reshape(n, hidden, 1), groups=n)
    return out.transpose(1, 2)


def _drawn_path(seed: int, hidden: int = 3, kernel: int = 4) -> CoefficientPath:
    return _drawn(CoefficientPath(embed=4, hidden=hidden, kernel=kernel, features=5), seed, 0.5)


def _path_inputs(seed: int, batch: int = 2, frames: int = 9):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, frames, D, generator=g),
        torch.randn(batch, 4, generator=g),
        torch.randn(batch, D, generator=g),
        torch.randn(batch, frames, 5, generator=g),
    )


def test_coefficient_path_is_grouped_causal_convolutions():
    """The batched matrix products compute per-coefficient causal convolutions, the frames
    before the window being the scaled previous frame."""
    p = _drawn_path(0)
    inputs = _path_inputs(1)
    torch.testing.assert_close(p(*inputs), _path_by_grouped_convolutions(p, *inputs))


def test_coefficient_path_keeps_coefficients_apart_and_is_causal():
    p = _drawn_path(2)
    x, noise, past, features = _path_inputs(3, batch=1)
    base = p(x, noise, past, features)
    later = x.clone()
    later[:, 5:] += 3
    assert torch.equal(p(later, noise, past, features)[:, :5], base[:, :5])
    other = x.clone()
    other[..., 7] += 3
    changed = (p(other, noise, past, features) - base).abs().amax(dim=(0, 1))
    assert changed[7] > 0 and torch.count_nonzero(changed) == 1
    gated = features.clone()
    gated[:, 6:] += 3  # the trunk's features of a frame reach that frame and no earlier one
    moved = (p(x, noise, past, gated) - base).abs().amax(dim=(0, 2))
    assert (moved[:6] == 0).all() and (moved[6:] > 0).all()


def test_coefficient_path_starts_silent():
    """Its output weights start at zero: a fresh network's output is the path-less network's."""
    p = CoefficientPath(embed=4, hidden=3, kernel=4, features=5)
    assert torch.equal(p(*_path_inputs(4)), torch.zeros(2, 9, D))


def test_network_is_causal_in_the_listener_frames():
    """Listener frame t of the output depends on the noisy listener frames up to t only (the
    trunk, the filter and the path are all causal)."""
    net = make_net("window", coeff_path=3)
    inputs = make_inputs("window", batch=2)
    base = run(net, inputs)
    for t in (3, 10):
        change = frame_change(base, run(net, with_changed(inputs, "x", slice(t + 1, None))))
        assert change[: t + 1].max() == 0 and change[t + 1 :].min() > 0


def test_a_config_written_before_the_path_loads_without_it():
    stored = profile_config("ci").as_dict()
    del stored["coeff_path"], stored["path_kernel"]
    old = ReactDiffConfig.from_dict(stored)
    assert old.coeff_path == 0 and ReactDiffNet(old).coeff_path is None


@pytest.mark.parametrize("guided", [False, True])
def test_prepared_conditions_give_the_same_output(guided):
    """``prepare`` (what the sampler computes once per window) changes nothing, with the
    speaker kept or dropped for guidance."""
    net, inputs = make_net("lookback"), make_inputs("lookback", batch=3)
    rest = {k: v for k, v in inputs.items() if k not in ("x", "c_noise")}
    if guided:
        rest["cond_mask"] = torch.tensor([True, False, True])
    with torch.no_grad():
        prepared = net.prepare(**rest)
        for level in (-1.0, 0.5):
            c_noise = torch.full((3,), level)
            plain = net(inputs["x"], c_noise, **rest)
            assert torch.equal(net(inputs["x"], c_noise, prepared=prepared, **rest), plain)
