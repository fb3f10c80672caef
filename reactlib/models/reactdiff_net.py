"""The ReactDiff denoiser (paper section 4.1 and appendix A.1, Fig. 7), in one file.

``ReactDiffNet`` is the inner network ``F`` that :class:`reactlib.diffusion.Denoiser` wraps with
EDM preconditioning, so the denoiser is ``D = c_skip x + c_out F(c_in x, c_noise(sigma), ...)``.
One call denoises one window of ``w`` listener frames ``(B, w, 58)``. What it is conditioned on,
and where each condition enters:

- the noise level: random Fourier features of ``c_noise = ln(sigma) / 4`` -> a two-layer mapping
  -> adaptive group norm (a scale and shift per channel) in every residual block;
- the global timestamp ``h`` of every listener frame (its index in the conversation): sinusoidal
  features of ``h`` -> a mapping -> a *per-frame* adaptive group norm in every block;
- the speaker's face coefficients and audio features: cross-attention from listener frames
  (queries) to speaker frames (keys and values), after every block, with a causal mask: the
  listener frame at time ``h`` sees speaker frames at times ``<= h`` only;
- the listener's previous frame (the last frame of the previous window): the initial hidden
  state of the LSTMs before and after the U-Net;
- ``cond_mask``: items whose mask is False see no speaker at all. Training drops the speaker with
  probability ``cond_dropout``; sampling with a guidance scale combines the two predictions
  (classifier-free guidance, :func:`reactlib.diffusion.guided`).

Where this departs from the official code (and why), as the notebook explains:

- the noise level enters through real Fourier features of ``c_noise``; the official
  ``TemporalFeatures`` floors ``c_noise / 50``, so its network sees a binary noise flag;
- the cross-attention is causal, as the paper says (the official code passes no mask, so every
  listener frame sees the whole window of speaker frames, up to ``w - 1`` frames of future);
- group norm normalises each frame on its own: the official one normalises over all frames of the
  window too, so an early frame's output depends on later frames (and on the speaker frames they
  attend to), which would undo the causal mask;
- the speaker's face and audio are one set of keys and values per speaker frame, as appendix A.1
  describes (the official code runs two cross-attentions, audio then face, after every block);
- attention dropout is active in training only (the official code also drops in evaluation);
- classifier-free guidance exists (condition dropout + a guidance scale); the official code has
  neither;
- ``h`` enters through deterministic sinusoids of ``h / h_scale``; the official Gaussian Fourier
  features of the raw integer index alias (``cos(2 pi h w)`` of an integer ``h`` with random ``w``
  is a hash of ``h``, not a smooth position);
- there are no LSTMs inside the residual blocks (the paper names one LSTM before and one after;
  the official code adds one wherever a block changes width); instead each block's first layer is
  a causal temporal convolution over the frame and the ``kernel - 1`` before it (``kernel = 1`` is
  the official per-frame Linear);
- two additions beside the trunk, each zero at ``0`` (both ``0``: the paper's network): a linear
  causal filter over each coefficient's own frames (:class:`CoefficientFilter`) and a small
  nonlinear causal network over them (:class:`CoefficientPath`), both added to the output.

The conditions' share of every call (the causal mask, the timestamp modulations, the speaker's keys
and values) can be computed once per window with :meth:`ReactDiffNet.prepare` and passed back as
``prepared``, which a sampler's 50 calls per window do.

The speaker context (which speaker frames a window may attend to) is chosen by the caller: the
paper's ``window`` context is the window's own frames; a causal look-back of ``L`` frames adds the
``L`` speaker frames before the window. The network itself only needs each speaker frame's time
``speaker_h`` (negative for padding) to build the causal mask.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reactlib import config
from reactlib.errors import UsageError
from reactlib.face import coeffs

SPEAKER_CONTEXTS = ("window", "lookback")

PAPER_PARAMETERS_M = 83.95
"""ReactDiff's parameter count in millions, as its Table 16 reports."""
OFFICIAL_CODE_PARAMETERS_M = 47.0
"""The official code's parameter count in millions (its released configuration, wav2vec2 not
counted), as counted from its layer definitions."""


@dataclass(frozen=True, kw_only=True)
class ReactDiffConfig:
    """The denoiser's architecture and conditioning. ``full`` follows the official layout
    (channels 128, 256, 512 and 2, 4, 4 blocks per level); :func:`profile_config` gives the
    smaller ``ci`` and ``lab`` sizes."""

    channels: tuple[int, ...] = (128, 256, 512)
    """Width of each U-Net level (no temporal down-sampling: every level sees all frames)."""
    depths: tuple[int, ...] = (2, 4, 4)
    """Residual blocks per level on the way down (and again on the way up)."""
    embed: int = 256
    """Width of the noise-level and timestamp embeddings."""
    kernel: int = 3
    """Frames each block's first layer sees (causal: the frame and the ``kernel - 1`` before
    it). 1 is the official code's per-frame Linear, where only LSTMs mix frames."""
    head_dim: int = 64
    """Channels per attention head (heads = width // head_dim, at least 1)."""
    dropout: float = 0.05
    cond_dropout: float = 0.1
    """Probability that training drops the speaker (for classifier-free guidance)."""
    audio_dim: int = 78
    """Width of the per-frame audio features (MFCC-78 by default)."""
    window: int = 16
    """Frames per window w."""
    speaker_context: str = "window"
    """``window`` (the paper: the window's own speaker frames) or ``lookback``."""
    lookback: int = 0
    """Speaker frames before the window that a ``lookback`` context adds (L)."""
    h_scale: float = 750.0
    """Frames over which the slowest timestamp sinusoid turns by one radian (30 s at 25 fps)."""
    coeff_filter: int = 8
    """Taps of the per-coefficient causal filter added to the output (0: none; with
    ``coeff_path=0`` too, the paper's network). See :class:`CoefficientFilter`."""
    filter_basis: bool = True
    """Filter in a learned basis of the coefficients (a 58 x 58 map in and its own map out,
    both starting at the identity) instead of coefficient by coefficient."""
    coeff_path: int = 8
    """Channels per coefficient of the nonlinear causal network over each coefficient's own
    frames that is added to the output (0: none, the paper's network). See
    :class:`CoefficientPath`."""
    path_kernel: int = 5
    """Frames each of the path's two causal convolutions sees."""
    timestamp: bool = True
    """Condition on the global timestamp h (False: every frame's embedding is that of h = 0, so
    the network does not know where in the conversation it is: the "w/o h" row of the paper's
    Table 2 and, with FBK and FAC off, the "Diffusion model" of its Table 1). The causal mask
    still uses the real frame indices."""

    def __post_init__(self):
        if len(self.channels) != len(self.depths) or not self.channels:
            raise UsageError(f"channels {self.channels} and depths {self.depths} differ in length")
        if any(c < 1 for c in self.channels) or any(d < 1 for d in self.depths):
            raise UsageError(
                f"channels and depths must be positive: {self.channels}, {self.depths}"
            )
        if self.speaker_context not in SPEAKER_CONTEXTS:
            raise UsageError(
                f"speaker_context must be one of {', '.join(SPEAKER_CONTEXTS)}, "
                f"got {self.speaker_context!r}"
            )
        if self.speaker_context == "window" and self.lookback:
            raise UsageError("lookback frames need speaker_context='lookback'")
        if self.coeff_filter < 0:
            raise UsageError(f"coeff_filter must be >= 0 taps, got {self.coeff_filter}")
        if self.coeff_path < 0:
            raise UsageError(f"coeff_path must be >= 0 channels, got {self.coeff_path}")
        for name in ("kernel", "path_kernel"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lookback < 0 or self.window < 1:
            raise UsageError(
                f"need window >= 1 and lookback >= 0, got {self.window}, {self.lookback}"
            )
        for name in ("dropout", "cond_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def context_frames(self) -> int:
        """Speaker frames before a window's first frame that the model may see."""
        return self.lookback if self.speaker_context == "lookback" else 0

    def as_dict(self) -> dict:
        """The fields as plain JSON. Fields added after the configurations already trained and
        cached (:data:`ADDED_LATER`) are written only when they differ from their default, so
        those models keep their identity and are not retrained."""
        out = dataclasses.asdict(self)
        out["channels"], out["depths"] = list(self.channels), list(self.depths)
        for name, default in ADDED_LATER.items():
            if out[name] == default:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ReactDiffConfig:
        # written before the filter, its basis or the path existed: without them
        d = {"coeff_filter": 0, "filter_basis": False, "coeff_path": 0, **d}
        d["channels"], d["depths"] = tuple(d["channels"]), tuple(d["depths"])
        return cls(**d)


ADDED_LATER = {"timestamp": True}
"""Fields :meth:`ReactDiffConfig.as_dict` leaves out at these defaults (``from_dict`` fills them
in), so that adding a setting does not change the identity of models trained before it."""


PROFILE_SIZES = {
    "ci": dict(depths=(1, 1), embed=32, head_dim=16),
    "lab": dict(depths=(1, 1), embed=64, head_dim=32),
    "full": dict(depths=(2, 4, 4), embed=256, head_dim=64),
}
"""Denoiser depths and embedding widths per profile; level widths are the profile's
``model_channels`` doubled at every level (``full``: 128, 256, 512 with 2, 4, 4 blocks, the
official layout; ``ci`` and ``lab`` are sized to train in seconds and minutes on two CPU cores)."""


def profile_config(profile: str, **overrides) -> ReactDiffConfig:
    """The denoiser configuration of a profile, with field overrides."""
    if profile not in PROFILE_SIZES:
        raise UsageError(
            f"no model size for profile {profile!r}; valid: {', '.join(PROFILE_SIZES)}"
        )
    size = dict(PROFILE_SIZES[profile])
    base = config.PROFILES[profile]["model_channels"]
    size["channels"] = tuple(base * 2**i for i in range(len(size["depths"])))
    return ReactDiffConfig(**{**size, **overrides})


# --- Conditioning embeddings --------------------------------------------------------------------


class FourierFeatures(nn.Module):
    """``[cos 2 pi W x, sin 2 pi W x]`` with fixed Gaussian frequencies ``W ~ N(0, std^2)``
    (k-diffusion's noise-level embedding of ``c_noise``)."""

    def __init__(self, out_features: int, std: float = 1.0):
        super().__init__()
        self.register_buffer("weight", torch.randn(out_features // 2, 1) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * x[..., None] * self.weight[:, 0]
        return torch.cat([angle.cos(), angle.sin()], dim=-1)


def timestamp_features(h: torch.Tensor, width: int, scale: float) -> torch.Tensor:
    """Sinusoids of ``h / scale`` at ``width / 2`` frequencies spaced geometrically from 1 to
    ``scale`` radians per ``scale`` frames, so neighbouring frames are close and the fastest
    sinusoid still tells frames apart: ``(...,) -> (..., width)``."""
    half = width // 2
    freqs = torch.logspace(0, math.log10(scale), half, device=h.device, dtype=torch.float32)
    angle = h.to(torch.float32)[..., None] / scale * freqs
    return torch.cat([angle.cos(), angle.sin()], dim=-1)


def mapping(width: int, in_features: int) -> nn.Sequential:
    """The two-layer embedding MLP (Linear, GELU, Linear, GELU)."""
    return nn.Sequential(
        nn.Linear(in_features, width), nn.GELU(), nn.Linear(width, width), nn.GELU()
    )


# --- Blocks ---------------------------------------------------------------------------------------


def _group_norm(x: torch.Tensor, channels: int) -> torch.Tensor:
    """GroupNorm without affine over ``(B, T, C)``, for each frame on its own (groups of 32
    channels). The official AdaGN normalises over all frames of the window as well, which lets
    every frame's statistics, and so every output frame, depend on later frames: not causal."""
    groups = max(1, channels // 32)
    return F.group_norm(x.reshape(-1, channels), groups).view_as(x)


class AdaGN(nn.Module):
    """Adaptive group norm: ``norm(x) (1 + gamma) + beta`` with ``gamma, beta`` from a
    condition. A ``(B, E)`` condition modulates every frame alike (the noise level); a
    ``(B, T, E)`` one modulates each frame (the timestamp)."""

    def __init__(self, embed: int, channels: int):
        super().__init__()
        self.channels = channels
        self.project = nn.Linear(embed, 2 * channels)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.modulate(x, self.project(cond))

    def modulate(self, x: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """The norm with ``gamma, beta`` from an already projected condition (see
        :meth:`ReactDiffNet.prepare`)."""
        gamma, beta = projected.chunk(2, dim=-1)
        if projected.ndim == 2:
            gamma, beta = gamma[:, None], beta[:, None]
        return _group_norm(x, self.channels) * (1 + gamma) + beta


class CausalConv(nn.Module):
    """A temporal convolution over ``(B, T, C)`` whose output frame t sees input frames
    ``t - kernel + 1 .. t`` (zero padding before the window); ``kernel`` 1 is a per-frame Linear.

    The weights are a ``Conv1d``'s; the product is one matrix product over the ``kernel`` frames
    each output sees, stacked: on 16-frame windows the CPU convolution kernel costs more than
    this (a ``lab`` network call takes 8 % less time), and the result equals it up to rounding
    (tested)."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(c_in, c_out, kernel)

    def forward(self, x):
        b, t, c = x.shape
        frames = F.pad(x, (0, 0, self.kernel - 1, 0)).unfold(1, self.kernel, 1)  # (B, T, C, k)
        weight = self.conv.weight.reshape(self.conv.out_channels, c * self.kernel)
        return F.linear(frames.reshape(b, t, c * self.kernel), weight, self.conv.bias)


class ResBlock(nn.Module):
    """Residual block: AdaGN(noise) -> GELU -> CausalConv -> Dropout -> AdaGN(noise) -> GELU ->
    AdaGN(timestamp) -> Linear -> Dropout, plus a (linear if the width changes) skip."""

    def __init__(self, c_in: int, c_out: int, embed: int, dropout: float, kernel: int = 1):
        super().__init__()
        self.norm1 = AdaGN(embed, c_in)
        self.linear1 = CausalConv(c_in, c_out, kernel)
        self.norm2 = AdaGN(embed, c_out)
        self.time_norm = AdaGN(embed, c_out)
        self.linear2 = nn.Linear(c_out, c_out)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Identity() if c_in == c_out else nn.Linear(c_in, c_out, bias=False)

    def forward(self, x, noise, time_projected):
        """``time_projected``: ``self.time_norm.project`` of the timestamp embedding."""
        y = self.dropout(self.linear1(F.gelu(self.norm1(x, noise))))
        y = self.time_norm.modulate(F.gelu(self.norm2(y, noise)), time_projected)
        return self.skip(x) + self.dropout(self.linear2(y))


class CausalCrossAttention(nn.Module):
    """Listener frames (queries) attend to speaker frames (keys, values: face coefficients and
    audio features of each frame). ``allowed (B, T, S)`` says which speaker frame each listener
    frame may see; a listener frame that may see none (the speaker dropped for guidance) gets no
    update. Residual, with a zero-initialised output projection."""

    def __init__(self, channels: int, speaker_dim: int, embed: int, head_dim: int, dropout: float):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = AdaGN(embed, channels)
        self.query = nn.Linear(channels, channels)
        self.speaker_norm = nn.LayerNorm(speaker_dim)
        self.key_value = nn.Linear(speaker_dim, 2 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.dropout = dropout

    def keys_values(self, speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, heads, S, head channels)`` of the speaker frames."""
        b, s, _ = speaker.shape
        k, v = self.key_value(self.speaker_norm(speaker)).chunk(2, dim=-1)
        return tuple(z.view(b, s, self.heads, -1).transpose(1, 2) for z in (k, v))

    def forward(self, x, noise, keys_values, allowed):
        b, t, c = x.shape
        q = self.query(self.norm(x, noise)).view(b, t, self.heads, -1).transpose(1, 2)
        k, v = keys_values
        sees = allowed.any(dim=-1, keepdim=True)  # (B, T, 1)
        # A row with no allowed key would give NaN; let it see everything and zero it after.
        mask = (allowed | ~sees)[:, None]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(b, t, c) * sees
        return x + self.out(y)


def _after_previous_frame(x: torch.Tensor, past: torch.Tensor, frames: int) -> torch.Tensor:
    """``x (B, T, C)`` with ``frames`` copies of the frame before the window, ``past (B, C)``, in
    front: ``(B, frames + T, C)``, what a causal filter over the window sees before its start."""
    b, _, c = x.shape
    return torch.cat([past[:, None].expand(b, frames, c), x], dim=1)


class CoefficientFilter(nn.Module):
    """A causal FIR filter over each coefficient's own frames, its ``taps`` weights per coefficient
    set by the noise level: ``y[t, c] = sum_k w_k,c(sigma) x[t - k, c]``, where the frames before
    the window are the listener's previous frame (scaled per coefficient and noise level, as the
    input is by ``c_in``).

    Why: at low noise the denoiser's target is the noise itself, 58 independent white signals,
    which must pass through the trunk's first width (32 in ``lab``) to reach the output: a narrow
    trunk cannot carry them and passes the noise through unremoved (measured in notebook 05). A
    per-coefficient temporal filter whose gain follows the noise level is the optimal *linear*
    denoiser of a smooth signal in white noise, and costs ``58 taps`` weights per noise level.

    With ``basis`` the filter acts in a learned basis: ``y = B filter(A x)``, the history
    ``A past``, where ``A`` and ``B`` are 58 x 58 maps that start at the identity. Coefficient by
    coefficient, the two sides of a symmetric pair (``eyeBlinkLeft``, ``eyeBlinkRight``) are
    filtered apart and keep independent residual noise, so they drift apart; in a basis where the
    pair is one sum and one difference, the filter can keep the sum and remove the difference,
    as a linear denoiser of correlated coefficients would in a basis that decorrelates them.
    Costs 2 x 58 x 58 weights."""

    def __init__(self, embed: int, taps: int, basis: bool = False):
        super().__init__()
        self.taps = taps
        n = coeffs.NUM_COEFFS
        self.into = nn.Linear(n, n, bias=False) if basis else None
        self.back = nn.Linear(n, n, bias=False) if basis else None
        for layer in (self.into, self.back):
            if layer is not None:
                nn.init.eye_(layer.weight)
        self.weights = nn.Linear(embed, n * taps)
        self.past_scale = nn.Linear(embed, n)
        for layer in (self.weights, self.past_scale):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, noise: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        if self.into is not None:
            x, past = self.into(x), self.into(past)
        padded = _after_previous_frame(x, past * self.past_scale(noise), self.taps - 1)
        frames = padded.unfold(1, self.taps, 1)  # (B, T, C, taps)
        taps = self.weights(noise).view(b, 1, c, self.taps)
        y = (frames * taps).sum(-1)
        return y if self.back is None else self.back(y)


class CoefficientPath(nn.Module):
    """A small nonlinear causal network over each coefficient's own frames, added to the
    output: per coefficient, two causal convolutions of ``kernel`` frames with ``hidden``
    channels, scaled and shifted by the noise level, the second gated by the trunk's last
    features, then one output per frame. The frames before the window are the listener's
    previous frame (scaled per coefficient and noise level, as in :class:`CoefficientFilter`).

    Why: the filter is linear, so it passes the same band of noise in every window, whether the
    coefficient moves there or not; telling a moving coefficient from noise (is the energy in a
    band more than the noise level alone would give?) is nonlinear. Each coefficient has its own
    weights; they are batched matrix products over the coefficients (grouped ``Conv1d`` is
    slower on CPU at these sizes)."""

    def __init__(self, embed: int, hidden: int, kernel: int, features: int):
        super().__init__()
        n = coeffs.NUM_COEFFS
        self.hidden, self.kernel = hidden, kernel
        self.w1 = nn.Parameter(torch.randn(n, kernel, hidden) / math.sqrt(kernel))
        self.b1 = nn.Parameter(torch.zeros(n, 1, hidden))
        self.w2 = nn.Parameter(torch.randn(n, kernel * hidden, hidden) / math.sqrt(kernel * hidden))
        self.b2 = nn.Parameter(torch.zeros(n, 1, hidden))
        self.w_out = nn.Parameter(torch.zeros(n, hidden, 1))
        self.film = nn.Linear(embed, 2 * n * hidden)
        self.gate = nn.Linear(features, n * hidden)
        self.past_scale = nn.Linear(embed, n)
        for layer in (self.film, self.gate, self.past_scale):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x, noise, past, features):
        b, t, c = x.shape
        k, hidden = self.kernel, self.hidden
        padded = _after_previous_frame(x, past * self.past_scale(noise), 2 * (k - 1))
        z = padded.permute(2, 0, 1)  # (C, B, 2k - 2 + T)
        t1 = t + k - 1
        y = torch.baddbmm(self.b1, z.unfold(2, k, 1).reshape(c, b * t1, k), self.w1)
        scale, shift = self.film(noise).view(b, 2, c, 1, hidden).permute(1, 2, 0, 3, 4)
        y = F.silu(y.view(c, b, t1, hidden) * (1 + scale) + shift)
        frames = y.unfold(2, k, 1).transpose(3, 4).reshape(c, b * t, k * hidden)
        y = torch.baddbmm(self.b2, frames, self.w2).view(c, b, t, hidden)
        y = F.silu(y + self.gate(features).view(b, t, c, hidden).permute(2, 0, 1, 3))
        return torch.bmm(y.reshape(c, b * t, hidden), self.w_out).view(c, b, t).permute(1, 2, 0)


def causal_mask(h: torch.Tensor, speaker_h: torch.Tensor, cond_mask=None) -> torch.Tensor:
    """``(B, T, S)`` True where listener frame ``h[b, t]`` may attend to speaker frame
    ``speaker_h[b, s]``: a real speaker frame (``speaker_h >= 0``) no later than the listener
    frame, of an item whose ``cond_mask`` is True."""
    allowed = (speaker_h[:, None, :] >= 0) & (speaker_h[:, None, :] <= h[:, :, None])
    if cond_mask is not None:
        allowed = allowed & cond_mask.to(torch.bool)[:, None, None]
    return allowed


# --- The network ----------------------------------------------------------------------------------


class ReactDiffNet(nn.Module):
    """``F(x_in, c_noise; past, speaker, audio, h, speaker_h, cond_mask)`` for one window.

    Shapes: ``x_in (B, T, 58)``, ``c_noise (B,)``, ``past (B, 58)`` (the listener's last frame
    before the window, zeros at the start of a conversation), ``speaker (B, S, 58)`` and
    ``audio (B, S, A)`` (the speaker context), ``h (B, T)`` and ``speaker_h (B, S)`` integer
    frame indices (``speaker_h < 0`` marks padding), ``cond_mask (B,)`` bool or None.
    Returns ``(B, T, 58)``.
    """

    def __init__(self, config: ReactDiffConfig):
        super().__init__()
        self.config = config
        c, e = config.channels, config.embed
        speaker_dim = coeffs.NUM_COEFFS + config.audio_dim
        self.noise_features = FourierFeatures(e)
        self.noise_mapping = mapping(e, e)
        self.time_mapping = mapping(e, e)
        self.proj_in = nn.Linear(coeffs.NUM_COEFFS, c[0])
        self.past_in = nn.Linear(coeffs.NUM_COEFFS, c[0])
        self.lstm_in = nn.LSTM(c[0], c[0], batch_first=True)

        def stage(c_in, width, c_out, depth):
            """``depth`` blocks from ``c_in`` through ``width`` to ``c_out``, each followed by
            its cross-attention."""
            sizes = [c_in] + [width] * (depth - 1) + [c_out]
            blocks = [
                ResBlock(a, b, e, config.dropout, config.kernel)
                for a, b in itertools.pairwise(sizes)
            ]
            attends = [
                CausalCrossAttention(b, speaker_dim, e, config.head_dim, config.dropout)
                for b in sizes[1:]
            ]
            return nn.ModuleList([nn.ModuleList(blocks), nn.ModuleList(attends)])

        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        previous = c[0]
        for width, depth in zip(c, config.depths, strict=True):
            self.down.append(stage(previous, width, width, depth))
            previous = width
        for level in reversed(range(len(c))):
            out = c[max(level - 1, 0)]  # each level up ends at the width of the next one
            # the deepest level continues from its own output; the others take the skip from
            # their level on the way down
            skip = 0 if level == len(c) - 1 else c[level]
            self.up.append(stage(previous + skip, c[level], out, config.depths[level]))
            previous = out
        self.lstm_out = nn.LSTM(c[0], c[0], batch_first=True)
        self.past_out = nn.Linear(coeffs.NUM_COEFFS, c[0])
        self.proj_out = nn.Linear(c[0], coeffs.NUM_COEFFS)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.coeff_filter = (
            CoefficientFilter(e, config.coeff_filter, config.filter_basis)
            if config.coeff_filter
            else None
        )
        self.coeff_path = (
            CoefficientPath(e, config.coeff_path, config.path_kernel, c[0])
            if config.coeff_path
            else None
        )

    def _layers(self):
        """(block, attention) pairs in the order the forward pass runs them."""
        for blocks, attends in [*self.down, *self.up]:
            yield from zip(blocks, attends, strict=True)

    def prepare(self, *, speaker, audio, h, speaker_h, **_) -> dict:
        """What a window's conditions give every network call alike, whatever the noise: the
        causal mask, each block's timestamp modulation and each attention's keys and values.
        A sampler calls the network 50 times per window with the same conditions; passing this
        as ``prepared`` computes it once (the output is the same, tested). Other keywords (the
        whole conditions dict may be passed) are ignored: ``past`` and ``cond_mask`` act in every
        call, so guidance can drop the speaker from prepared conditions."""
        stamp = h if self.config.timestamp else torch.zeros_like(h)
        time = self.time_mapping(timestamp_features(stamp, self.config.embed, self.config.h_scale))
        # Padding must not reach the output even through a zero attention weight (0 * NaN).
        real = (speaker_h >= 0)[..., None]
        context = torch.where(real, torch.cat([speaker, audio], dim=-1), 0.0)
        layers = list(self._layers())
        return {
            "allowed": causal_mask(h, speaker_h),
            "time": [block.time_norm.project(time) for block, _ in layers],
            "keys_values": [attend.keys_values(context) for _, attend in layers],
        }

    def forward(
        self, x, c_noise, *, past, speaker, audio, h, speaker_h, cond_mask=None, prepared=None
    ):
        if prepared is None:
            prepared = self.prepare(speaker=speaker, audio=audio, h=h, speaker_h=speaker_h)
        noise = self.noise_mapping(self.noise_features(c_noise.to(x.dtype)))
        allowed = prepared["allowed"]
        if cond_mask is not None:
            allowed = allowed & cond_mask.to(torch.bool)[:, None, None]
        per_layer = iter(zip(prepared["time"], prepared["keys_values"], strict=True))

        def run(blocks, attends, y):
            for block, attend in zip(blocks, attends, strict=True):
                time, keys_values = next(per_layer)  # in the order of self._layers()
                y = attend(block(y, noise, time), noise, keys_values, allowed)
            return y

        def lstm(module, y, seed):
            state = seed[None].contiguous()
            return module(y, (state, torch.zeros_like(state)))[0]

        y = lstm(self.lstm_in, self.proj_in(x), self.past_in(past))
        skips = []
        for blocks, attends in self.down:
            y = run(blocks, attends, y)
            skips.append(y)
        skips.pop()  # the deepest level's output is y itself
        for level, (blocks, attends) in enumerate(self.up):
            if level:
                y = torch.cat([y, skips.pop()], dim=-1)
            y = run(blocks, attends, y)
        features = lstm(self.lstm_out, y, self.past_out(past))
        y = self.proj_out(features)
        if self.coeff_filter is not None:
            y = y + self.coeff_filter(x, noise, past)
        if self.coeff_path is not None:
            y = y + self.coeff_path(x, noise, past, features)
        return y
