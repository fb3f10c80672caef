"""PosNet, its training, and the seam fixes it is compared with: head-pose post-processors of any
generator.

An online generator makes each window of ``w`` frames on its own, continuing from the last frame
of the one before; where it does that badly the head jumps at every seam. PFLPosNet's answer is
PosNet (:class:`PosNet`, its eqs 11-13), a small network that rewrites the
window's *head pose* (the last six coefficients) from the window's poses and the last adjusted
pose before it, and leaves every expression coefficient as the generator made it. Here it and
three non-learned fixes are post-processors of the online loop (:func:`reactlib.online.generate`,
``post=``), so they plug into every generator:

- ``linear``: the first ``frames`` poses of a window are replaced by a straight line from the
  previous window's last pose to the window's pose at frame ``frames``;
- ``cubic``: the same span by the official code's cubic, ``p(t) = a + (b - a) (1 - (1 - t/d)^3)``,
  which leaves the seam with the slope of a straight line times three and arrives at ``b`` with
  zero slope;
- ``moving_average``: a causal box filter of ``width`` frames over the raw poses, carried across
  windows (it delays the motion by ``(width - 1) / 2`` frames);
- ``posnet``: the trained network.

The online loop hands every window the last frame *after* post-processing, so the generator and
the fix continue from what was shown, and a fix never sees a frame after the window.

Training (:func:`train_model`, or :func:`train_on` a generator): PosNet learns on the reactions of
a generator to the training speakers, three consecutive windows at a time, each adjusted from the
last adjusted pose before it (:func:`make_objective`), with the loss of
:func:`reactlib.models.losses.posnet_loss` (eq 18 with a fidelity term).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reactlib import online, train
from reactlib.data.corpus import Split
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.models import losses

FORMAT = 1
"""Version of the PosNet checkpoint identity."""

SEAM_FIXES = ("none", "linear", "cubic", "moving_average", "posnet")
"""The post-processors compared in the notebooks, ``none`` being the generator as it is."""

BLEND_FRAMES = 5
"""Frames the linear and cubic blends rewrite (the official code's ``delay_size``)."""
AVERAGE_WIDTH = 10
"""Frames of the causal moving average (the official code's window)."""

POSE = coeffs.POSE


# --- The network (PFLPosNet eqs 11-13) ----------------------------------------------------------

POSE_DIMS = 6
"""PosNet's coefficients: the last six, rotation (pitch, yaw, roll) and translation."""


@dataclass(frozen=True, kw_only=True)
class PosNetConfig:
    """PosNet's size. ``hidden`` 512 is the official network (about 1.4 M parameters with its
    50-frame windows); ``residual`` adds the MLP's output to the window's poses instead of
    replacing them (below)."""

    window: int = 16
    """Frames the MLP outputs at once: the online loop's ``w``."""
    hidden: int = 512
    residual: bool = True
    pool: str = "flatten"
    """How the encoder's per-frame features become one vector: ``flatten`` (in frame order) or
    ``mean`` over frames (the official encoder)."""

    def __post_init__(self):
        if self.window < 1 or self.hidden < 1:
            raise UsageError(f"window and hidden must be >= 1, got {self.window}, {self.hidden}")
        if self.pool not in ("flatten", "mean"):
            raise UsageError(f"pool must be 'flatten' or 'mean', got {self.pool!r}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


POSNET_HIDDEN = {"ci": 32, "lab": 128, "full": 512}
"""PosNet's hidden width per profile (``full`` is the official 512)."""


class PosNet(nn.Module):
    """Eq 13: ``P_adjusted = MLP(P_{t-w} (+) Enc(P_{[t-w+1:t]}))`` on the window's poses only.

    - ``Enc``: two temporal convolutions (kernel 3) over the window's poses, taken relative to
      the last adjusted pose (so a seam is the first frame's displacement), then the features of
      all ``window`` frames in order (``pool="flatten"``; a shorter chunk repeats its last
      frame). The official encoder averages them over frames (``pool="mean"``), which blurs
      *where* in the window the pose jumps, and trained alike it leaves larger seams.
    - ``MLP``: three linear layers on the encoding concatenated with the last *adjusted* pose of
      the previous window; it outputs ``window`` frames of pose.
    - ``residual`` (default): the output is added to the window's poses, and the last layer
      starts at zero, so an untrained PosNet is the identity and training only learns the
      correction. The paper's eq 13 (and the official code) replace the poses with the MLP's
      output, which must then rebuild the generator's whole motion from one pooled vector;
      ``residual=False`` is that form.
    - A window longer than ``window`` (the online loop's last one absorbs the remainder) is
      adjusted in chunks of at most ``window`` frames, each continuing from the last adjusted
      pose of the chunk before.

    Poses are z-scored inside with the training data's statistics (:meth:`set_statistics`);
    inputs and outputs are in coefficient units. Expressions never enter.
    """

    def __init__(self, config: PosNetConfig = PosNetConfig()):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.encoder = nn.Sequential(
            nn.Conv1d(POSE_DIMS, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
        )
        encoded = hidden * config.window if config.pool == "flatten" else hidden
        self.mlp = nn.Sequential(
            nn.Linear(POSE_DIMS + encoded, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, config.window * POSE_DIMS),
        )
        if config.residual:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("pose_mean", torch.zeros(POSE_DIMS))
        self.register_buffer("pose_std", torch.ones(POSE_DIMS))

    def set_statistics(self, mean, std) -> None:
        """The pose statistics inputs are z-scored with (``(6,)`` each, ``std > 0``)."""
        mean, std = torch.as_tensor(mean).float(), torch.as_tensor(std).float()
        if mean.shape != (POSE_DIMS,) or std.shape != (POSE_DIMS,) or (std <= 0).any():
            raise UsageError(f"pose statistics must be (6,) with std > 0, got {mean}, {std}")
        self.pose_mean.copy_(mean)
        self.pose_std.copy_(std)

    def normalize(self, pose: torch.Tensor) -> torch.Tensor:
        return (pose - self.pose_mean) / self.pose_std

    def denormalize(self, pose: torch.Tensor) -> torch.Tensor:
        return pose * self.pose_std + self.pose_mean

    def adjust(self, past: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """Normalised poses in and out: ``past (B, 6)``, the last adjusted pose before the
        window, and ``poses (B, L, 6)`` -> ``(B, L, 6)``."""
        w = self.config.window
        chunks = []
        for start in range(0, poses.shape[1], w):
            chunk = poses[:, start : start + w]
            frames = chunk - past[:, None]
            if self.config.pool == "flatten" and chunk.shape[1] < w:
                pad = frames[:, -1:].expand(-1, w - chunk.shape[1], -1)
                frames = torch.cat([frames, pad], dim=1)
            features = self.encoder(frames.transpose(1, 2))
            if self.config.pool == "flatten":
                encoded = features.flatten(1)
            else:
                encoded = features.mean(dim=-1)
            out = self.mlp(torch.cat([past, encoded], dim=-1)).view(-1, w, POSE_DIMS)
            out = out[:, : chunk.shape[1]]
            if self.config.residual:
                out = chunk + out
            chunks.append(out)
            past = out[:, -1]
        return torch.cat(chunks, dim=1)

    def forward(
        self, past: torch.Tensor, poses: torch.Tensor, normalized: bool = False
    ) -> torch.Tensor:
        """``past (B, 6)`` and ``poses (B, L, 6)`` -> adjusted ``(B, L, 6)``, in coefficient
        units, or z-scored in and out with ``normalized`` (what training uses)."""
        if normalized:
            return self.adjust(past, poses)
        return self.denormalize(self.adjust(self.normalize(past), self.normalize(poses)))


# --- Seam fixes -----------------------------------------------------------------------------------


class PoseFix:
    """Base of the post-processors: ``fix(window, ctx)`` returns a copy of the window ``(S, L,
    58)`` whose pose coefficients :meth:`poses` rewrote; every other coefficient is the input's,
    bit for bit. The first window of a conversation has no seam and is returned unchanged, unless
    the fix keeps a history (:attr:`stateful`)."""

    stateful = False

    def __call__(self, window: torch.Tensor, ctx: online.WindowContext) -> torch.Tensor:
        out = window.clone()
        if ctx.past is None and not self.stateful:
            return out
        past = None if ctx.past is None else ctx.past[:, POSE].to(window)
        out[..., POSE] = self.poses(past, window[..., POSE], ctx)
        return out

    def poses(
        self, past: torch.Tensor | None, poses: torch.Tensor, ctx: online.WindowContext
    ) -> torch.Tensor:
        raise NotImplementedError


class Blend(PoseFix):
    """``linear`` or ``cubic`` (module docstring) over the first ``frames`` frames."""

    def __init__(self, shape: str = "linear", frames: int = BLEND_FRAMES):
        if shape not in ("linear", "cubic"):
            raise UsageError(f"blend shape must be 'linear' or 'cubic', got {shape!r}")
        if frames < 1:
            raise UsageError(f"blend frames must be >= 1, got {frames}")
        self.shape, self.frames = shape, frames

    def poses(self, past, poses, ctx):
        d = min(self.frames, poses.shape[1] - 1)
        if d < 1:
            return poses
        target = poses[:, d]
        t = torch.arange(d, dtype=poses.dtype, device=poses.device) + 1  # frames 1..d after past
        share = t / (d + 1) if self.shape == "linear" else 1 - (1 - t / (d + 1)) ** 3
        out = poses.clone()
        out[:, :d] = past[:, None] + (target - past)[:, None] * share[None, :, None]
        return out


class MovingAverage(PoseFix):
    """A causal box filter of ``width`` frames over the generator's raw poses; the raw poses of
    the last ``width - 1`` frames are kept from window to window (frames before the first are
    the first frame repeated)."""

    stateful = True

    def __init__(self, width: int = AVERAGE_WIDTH):
        if width < 1:
            raise UsageError(f"moving-average width must be >= 1, got {width}")
        self.width = width
        self._history: torch.Tensor | None = None

    def poses(self, past, poses, ctx):
        if ctx.index == 0 or self._history is None:
            self._history = poses[:, :1].expand(-1, self.width - 1, -1)
        extended = torch.cat([self._history.to(poses), poses], dim=1)
        self._history = extended[:, extended.shape[1] - (self.width - 1) :]
        sums = extended.cumsum(dim=1)
        sums = torch.cat([torch.zeros_like(sums[:, :1]), sums], dim=1)
        return (sums[:, self.width :] - sums[:, : -self.width]) / self.width


class PosNetFix(PoseFix):
    """A trained :class:`PosNet` as a post-processor."""

    def __init__(self, model: PosNet):
        self.model = model.eval()

    def poses(self, past, poses, ctx):
        device = self.model.pose_mean.device
        with torch.inference_mode():
            out = self.model(past.to(device), poses.to(device))
        return out.to(poses).clone()


def make_fix(name: str, model: PosNet | None = None) -> PoseFix | None:
    """The post-processor called ``name`` (:data:`SEAM_FIXES`); ``posnet`` needs ``model``;
    ``none`` is None (no post-processing). Each call makes a fresh one (the moving average keeps
    a history: use one per run)."""
    if name == "none":
        return None
    if name in ("linear", "cubic"):
        return Blend(name)
    if name == "moving_average":
        return MovingAverage()
    if name == "posnet":
        if model is None:
            raise UsageError("the posnet fix needs a trained PosNet (model=...)")
        return PosNetFix(model)
    raise UsageError(f"unknown seam fix {name!r}; valid: {', '.join(SEAM_FIXES)}")


# --- Training --------------------------------------------------------------------------------


def digest(array: np.ndarray) -> str:
    """A short SHA-256 of an array's shape, type and bytes: what identifies a set of rollouts."""
    h = hashlib.sha256(repr((array.shape, str(array.dtype))).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


UNROLL = 3
"""Consecutive windows PosNet is trained on at a time (below)."""


class RolloutWindows:
    """The training sequences of a set of generated reactions ``(N, M, T, 58)``: ``unroll``
    consecutive windows of ``w`` frames, none of them the first, with the generator's last pose
    before them."""

    def __init__(self, reactions: np.ndarray, window: int, unroll: int = UNROLL):
        reactions = np.asarray(reactions)
        if reactions.ndim != 4 or reactions.shape[-1] != coeffs.NUM_COEFFS:
            raise UsageError(f"rollouts must be (N, M, T, 58), got {reactions.shape}")
        if unroll < 1:
            raise UsageError(f"unroll must be >= 1, got {unroll}")
        if reactions.shape[2] < (unroll + 1) * window:
            raise UsageError(
                f"rollouts of {reactions.shape[2]} frames hold no {unroll} windows after the "
                f"first (w = {window})"
            )
        if not np.isfinite(reactions).all():
            raise UsageError("rollouts hold NaN or infinite values")
        n, m, frames, _ = reactions.shape
        self.poses = torch.from_numpy(
            np.ascontiguousarray(reactions[..., POSE], dtype=np.float32)
        ).reshape(n * m, frames, POSE_DIMS)
        self.window, self.unroll = window, unroll
        self.first_starts = frames // window - unroll  # the first window is 1 .. this

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.poses.reshape(-1, POSE_DIMS)
        return flat.mean(0), flat.std(0).clamp(min=1e-6)

    def batch(self, size: int, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(past (size, 6), poses (size, unroll * w, 6))`` of ``step``'s global batch."""
        g = torch.Generator().manual_seed(train.step_seed(seed, step))
        streams = torch.randint(self.poses.shape[0], (size,), generator=g)
        starts = torch.randint(1, self.first_starts + 1, (size,), generator=g) * self.window
        frames = starts[:, None] + torch.arange(-1, self.unroll * self.window)
        chosen = self.poses[streams[:, None], frames]
        return chosen[:, 0], chosen[:, 1:]


def make_objective(
    windows: RolloutWindows, settings: train.TrainSettings, loss: losses.PosNetLossSettings
) -> train.Objective:
    """Eq 18 (with fidelity to the generator's poses) on this step's share of the batch,
    averaged over ``unroll`` consecutive windows, each adjusted from the last *adjusted* pose of
    the one before, as in the online loop. (Trained on the generator's last pose alone, PosNet
    learns to meet a pose it is never given at test time, and the seams it leaves are several
    times what its training loss promises.)"""
    w = windows.window

    def objective(model, step: int, rank: int, world: int):
        past, poses = windows.batch(settings.batch_size, settings.seed, step)
        share = slice(rank, None, world)
        device = next(model.parameters()).device
        inner = model.module if hasattr(model, "module") else model
        past = inner.normalize(past[share].to(device))
        poses = inner.normalize(poses[share].to(device))
        total, logs = 0.0, {}
        for k in range(windows.unroll):
            raw = poses[:, k * w : (k + 1) * w]
            adjusted = model(past, raw, normalized=True)
            value, parts = losses.posnet_loss(adjusted, raw, past, loss)
            total = total + value / windows.unroll
            for name, v in parts.items():
                logs[name] = logs.get(name, 0.0) + v / windows.unroll
            past = adjusted[:, -1]
        return total, logs

    return objective


def identity(config, settings, loss, source: dict, profile: str) -> dict:
    return {
        "model": "posnet",
        "format": FORMAT,
        "profile": profile,
        "source": dict(source),
        "net": config.as_dict(),
        "loss": dataclasses.asdict(loss),
        "train": settings.as_dict(),
    }


POSNET_TRAIN = dict(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=1e-4, batch_size=64)
"""The paper's optimiser (SGD, learning rate 1e-3) with the official momentum and weight decay;
the batch is 64 windows (the official 2 speakers x 10 reactions, of 50-frame windows)."""


def train_model(
    cfg,
    reactions: np.ndarray,
    *,
    source: str,
    out: str | Path | None = None,
    device="cpu",
    **overrides,
) -> train.Trained:
    """Train PosNet on ``reactions (N, M, T, 58)`` of the generator named ``source``, with the
    profile's width and step budget and ``overrides`` of :class:`PosNetConfig`,
    :class:`reactlib.models.losses.PosNetLossSettings` or :class:`reactlib.train.TrainSettings`
    fields.
    Cached by the configuration and the reactions' digest without ``out``."""
    bases = {
        "net": PosNetConfig(window=cfg.window, hidden=POSNET_HIDDEN[cfg.profile]),
        "loss": losses.PosNetLossSettings(),
        "train": train.TrainSettings(**POSNET_TRAIN, steps=cfg.train_steps, seed=cfg.seed),
    }
    chosen = train.apply_settings("PosNet", overrides, bases)
    net, loss, settings = chosen["net"], chosen["loss"], chosen["train"]
    windows = RolloutWindows(reactions, net.window)
    ident = identity(
        net, settings, loss, {"generator": source, "reactions": digest(reactions)}, cfg.profile
    )

    def build() -> PosNet:
        model = PosNet(net)
        model.set_statistics(*windows.statistics())
        return model

    objective = make_objective(windows, settings, loss)
    if out is None:
        return train.cached(
            "posnet", build, objective, settings, identity=ident, cfg=cfg, device=device
        )
    torch.manual_seed(settings.seed)
    return train.fit(build(), objective, settings, out, identity=ident, cfg=cfg, device=device)


def from_checkpoint(state: Mapping[str, Any], *, ema: bool = True, device="cpu") -> PosNet:
    """The trained PosNet of a checkpoint read by :func:`reactlib.train.load_checkpoint`."""
    config = PosNetConfig(**state["identity"]["net"])
    return train.trained_module(state, PosNet(config), ema=ema, device=device)


def load(path: str | Path, *, ema: bool = True, device="cpu") -> tuple[PosNet, dict]:
    """A trained PosNet and its identity from a run folder or ``checkpoint.pt``."""
    return train.load_model(path, "posnet", from_checkpoint, label="PosNet", ema=ema, device=device)


def train_on(
    cfg,
    generator: online.Generator,
    split: Split,
    *,
    source: str | None = None,
    items=None,
    m: int = 2,
    seed: int | None = None,
    out: str | Path | None = None,
    device="cpu",
    progress: Callable | None = None,
    **overrides,
) -> tuple[train.Trained, np.ndarray]:
    """PosNet trained (cached) on ``generator``'s ``m`` reactions to the speakers of ``split``
    (all its items, or ``items``); returns the run and the reactions. ``source`` names the
    generator in the run's identity (default: :meth:`~reactlib.online.Generator.describe`);
    ``seed`` defaults to the profile's plus one (not the test-time seed); ``out`` as
    :func:`train_model`."""
    seed = cfg.seed + 1 if seed is None else seed
    inputs = online.speaker_inputs(split, items)
    reactions = generator.react(inputs, m=m, seed=seed, progress=progress)
    source = generator.describe() if source is None else source
    trained = train_model(cfg, reactions, source=source, out=out, device=device, **overrides)
    return trained, reactions
