"""Trans-VAE, the REACT challenge's baseline, online and windowed, trained with the shared trainer.

The REACT 2023/2024 baseline (reference notes, section 2.8) encodes the speaker's behaviour with
a transformer into the distribution of a latent (a VAE), decodes the listener's window with a
transformer decoder that attends to the speaker, and smooths it with an LSTM seeded by the last
listener frame before the window. ReactDiff's Table 1 lists it as "Trans-AE"/"Trans-VAE". This is
that design at a size per profile, on ReactDiff's data and online loop, so that the two are
compared on equal terms:

- **Speaker encoder.** The speaker's coefficients and audio features of the window and of
  ``lookback`` frames before it (zero where the conversation has not begun), one linear layer,
  sinusoidal frame positions, a causal transformer encoder (a frame attends to itself and the
  frames before it).
- **Latent.** The mean of the encoded frames gives ``mu`` and ``log sigma^2`` of a ``latent``-d
  Gaussian; ``z = mu + sigma * eps`` with ``eps`` drawn per stream (training: per item). As in
  the baseline, the encoder sees only the speaker: the latent is a distribution *given the
  speaker*, its KL to N(0, I) (weight ``kl_weight``, 1e-5 as the baseline) keeps it from
  collapsing to a point, and different ``eps`` give the M different reactions.
- **Decoder.** One query per listener frame: the latent, a position embedding and the previous
  listener frame, through a transformer decoder whose self-attention is causal and whose
  cross-attention lets listener frame ``t`` see speaker frames up to ``t`` only.
- **LSTM.** Over the decoded frames, its state seeded from the previous listener frame, then a
  linear layer to the 58 coefficients (normalised, as ReactDiff's).
- **Loss.** Mean squared error to the real listener window plus ``kl_weight`` times the KL.

A window longer than ``window`` (the online loop's last one absorbs the remainder) is decoded in
chunks of at most ``window`` frames, each continuing from the last frame of the one before, so the
decoder never meets a position it was not trained on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reactlib import online, train
from reactlib.data.corpus import Corpus
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.models.windows import Statistics, WindowPairs, fitted_statistics

FORMAT = 1
"""Version of the Trans-VAE checkpoint identity."""
KL_WEIGHT = 1e-5
"""The REACT baseline's KL weight."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransVAEConfig:
    width: int = 128
    """Transformer width (the baseline's feature dimension)."""
    heads: int = 4
    layers: int = 2
    """Encoder layers and decoder layers (each)."""
    latent: int = 64
    dropout: float = 0.1
    window: int = 16
    lookback: int = 32
    """Speaker frames before the window that the encoder sees."""
    audio_dim: int = 78
    kl_weight: float = KL_WEIGHT

    def __post_init__(self):
        for name in ("width", "heads", "layers", "latent", "window"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise UsageError(f"width {self.width} must be a multiple of heads {self.heads}")
        if self.lookback < 0 or self.kl_weight < 0 or not 0 <= self.dropout < 1:
            raise UsageError("lookback and kl_weight must be >= 0 and dropout in [0, 1)")

    @property
    def context_frames(self) -> int:
        """Speaker frames before a window's first frame that the model sees."""
        return self.lookback

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PROFILE_SIZES = {
    "ci": dict(width=32, heads=2, layers=1, latent=16),
    "lab": dict(width=64, heads=4, layers=2, latent=32),
    "full": dict(width=128, heads=4, layers=2, latent=64),
}


def profile_config(profile: str, **overrides) -> TransVAEConfig:
    if profile not in PROFILE_SIZES:
        raise UsageError(
            f"no Trans-VAE size for profile {profile!r}; valid: {', '.join(PROFILE_SIZES)}"
        )
    return TransVAEConfig(**{**PROFILE_SIZES[profile], **overrides})


def _positions(frames: int, width: int, device) -> torch.Tensor:
    """Sinusoidal position features ``(frames, width)``."""
    t = torch.arange(frames, device=device, dtype=torch.float32)[:, None]
    scale = torch.exp(-math.log(1000.0) * torch.arange(0, width, 2, device=device) / width)
    out = torch.zeros(frames, width, device=device)
    out[:, 0::2] = torch.sin(t * scale)
    out[:, 1::2] = torch.cos(t * scale)[:, : width // 2]
    return out


class TransVAENet(nn.Module):
    """The network on normalised inputs (module docstring)."""

    def __init__(self, config: TransVAEConfig):
        super().__init__()
        self.config = config
        d = config.width
        self.speaker_in = nn.Linear(coeffs.NUM_COEFFS + config.audio_dim, d)
        layer = nn.TransformerEncoderLayer(
            d, config.heads, 2 * d, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.to_latent = nn.Linear(d, 2 * config.latent)
        self.latent_in = nn.Linear(config.latent, d)
        self.past_in = nn.Linear(coeffs.NUM_COEFFS, d)
        self.query_position = nn.Parameter(torch.randn(config.window, d) * 0.02)
        dec = nn.TransformerDecoderLayer(
            d, config.heads, 2 * d, config.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(dec, config.layers)
        self.lstm = nn.LSTM(d, d, batch_first=True)
        self.state_in = nn.Linear(coeffs.NUM_COEFFS, 2 * d)
        self.out = nn.Linear(d, coeffs.NUM_COEFFS)

    def encode(self, speaker, audio, valid):
        """``mu, logvar (B, latent)`` and the encoded speaker frames ``(B, S, d)``."""
        x = self.speaker_in(torch.cat([speaker, audio], dim=-1))
        x = x + _positions(x.shape[1], x.shape[2], x.device)
        s = x.shape[1]
        causal = torch.triu(torch.ones(s, s, dtype=torch.bool, device=x.device), 1)
        # Frames before the conversation are zeros (and left out of the latent's mean); they are
        # not masked as keys, which would leave those queries nothing to attend to (NaN).
        encoded = self.encoder(x, mask=causal)
        weights = valid[..., None].to(encoded.dtype)
        pooled = (encoded * weights).sum(1) / weights.sum(1).clamp(min=1)
        mu, logvar = self.to_latent(pooled).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10), encoded

    def decode(self, z, encoded, past, frames: int):
        """``(B, frames, 58)`` for the last ``frames`` frames of the speaker context."""
        s = encoded.shape[1]
        queries = (
            self.latent_in(z)[:, None] + self.query_position[:frames] + self.past_in(past)[:, None]
        )
        causal = torch.triu(torch.ones(frames, frames, dtype=torch.bool, device=z.device), 1)
        # Listener frame t (context position s - frames + t) sees speaker positions up to it.
        seen = (
            torch.arange(s, device=z.device)[None, :]
            <= (s - frames + torch.arange(frames, device=z.device))[:, None]
        )
        cross = ~seen
        y = self.decoder(queries, encoded, tgt_mask=causal, memory_mask=cross)
        h0, c0 = torch.tanh(self.state_in(past)).chunk(2, dim=-1)
        y, _ = self.lstm(y, (h0[None].contiguous(), c0[None].contiguous()))
        return self.out(y)

    def forward(self, speaker, audio, valid, past, eps, frames: int):
        mu, logvar, encoded = self.encode(speaker, audio, valid)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z, encoded, past, frames), mu, logvar


class TransVAE(Statistics):
    """The network and the data statistics (the same z-scoring as ReactDiff)."""

    def __init__(self, config: TransVAEConfig):
        super().__init__(config.audio_dim)
        self.config = config
        self.net = TransVAENet(config)

    def forward(self, speaker, audio, valid, past, eps, frames: int):
        return self.net(speaker, audio, valid, past, eps, frames)


def kl_divergence(mu, logvar) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per item ``(B,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


def make_objective(pairs: WindowPairs, config: TransVAEConfig, settings) -> train.Objective:
    """Reconstruction + ``kl_weight`` KL on this step's share of the global batch of windows."""

    def objective(model, step: int, rank: int, world: int):
        b = pairs.batch(settings.batch_size, settings.seed, step, 0.0)
        share = slice(rank, None, world)
        items, starts = b["items"][share], b["starts"][share]
        device = next(model.parameters()).device
        speaker, audio, speaker_h = pairs.speaker_context(items, starts)
        cond = pairs.conditions(items, starts, torch.zeros(len(items), dtype=torch.bool))
        g = torch.Generator().manual_seed(train.step_seed(settings.seed, step, rank) + 1)
        eps = torch.randn(len(items), config.latent, generator=g)
        target = pairs.frames(items, starts).to(device)
        out, mu, logvar = model(
            speaker.to(device),
            audio.to(device),
            (speaker_h >= 0).to(device),
            cond["past"].to(device),
            eps.to(device),
            pairs.window,
        )
        reconstruction = F.mse_loss(out, target)
        kl = kl_divergence(mu, logvar).mean()
        loss = reconstruction + config.kl_weight * kl
        return loss, {"reconstruction": float(reconstruction.detach()), "kl": float(kl.detach())}

    return objective


def identity(config: TransVAEConfig, settings, corpus_id, profile: str, audio_features: str):
    return {
        "model": "transvae",
        "format": FORMAT,
        "profile": profile,
        "corpus": dict(corpus_id),
        "audio_features": audio_features,
        "net": config.as_dict(),
        "train": settings.as_dict(),
    }


def train_model(
    cfg, corpus: Corpus, *, out: str | Path | None = None, device="cpu", **overrides
) -> train.Trained:
    """Train Trans-VAE on ``corpus``'s train split with the profile's size and budget (the same
    steps, batch and learning rate as ReactDiff) and ``overrides`` of :class:`TransVAEConfig` or
    :class:`reactlib.train.TrainSettings` fields. Cached like ReactDiff without ``out``."""
    split = corpus.split("train")
    bases = {
        "net": profile_config(cfg.profile, window=cfg.window, audio_dim=split.audio_dim),
        "train": train.TrainSettings(
            steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.learning_rate, seed=cfg.seed
        ),
    }
    chosen = train.apply_settings("Trans-VAE", overrides, bases)
    config, settings = chosen["net"], chosen["train"]
    ident = identity(config, settings, corpus.identity(), cfg.profile, split.audio_features_name)
    torch.manual_seed(settings.seed)
    model = TransVAE(config)
    model.set_statistics(*fitted_statistics(split))
    objective = make_objective(WindowPairs(split, config, model), config, settings)
    if out is None:
        return train.cached(
            "transvae", lambda: model, objective, settings, identity=ident, cfg=cfg, device=device
        )
    return train.fit(model, objective, settings, out, identity=ident, cfg=cfg, device=device)


def from_checkpoint(state: Mapping[str, Any], *, ema: bool = True, device="cpu") -> TransVAE:
    """The trained Trans-VAE of a checkpoint read by :func:`reactlib.train.load_checkpoint`."""
    config = TransVAEConfig(**state["identity"]["net"])
    return train.trained_module(state, TransVAE(config), ema=ema, device=device)


def load(path: str | Path, *, ema: bool = True, device="cpu") -> tuple[TransVAE, dict]:
    """A trained Trans-VAE from a checkpoint, and the checkpoint's identity."""
    return train.load_model(
        path, "transvae", from_checkpoint, label="Trans-VAE", ema=ema, device=device
    )


class TransVAEGenerator(online.ModelGenerator):
    """Trans-VAE as a :class:`reactlib.online.Generator`: each stream draws its latent's noise
    from its window seed; windows longer than the model's are decoded in chunks (module
    docstring). It has no sampler: the latent's noise is its only randomness."""

    name = "Trans-VAE"

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        model, config = self.model, self.model.config
        if ctx.audio is None:
            raise UsageError("Trans-VAE needs the speaker's audio features")
        device = model.coeff_mean.device
        streams = ctx.speaker.shape[0]
        eps = torch.stack(
            [
                torch.randn(config.latent, generator=torch.Generator().manual_seed(int(s)))
                for s in ctx.seeds
            ]
        ).to(device)
        past = self.past(ctx, device)
        chunks = []
        for begin in range(ctx.start, ctx.stop, config.window):
            end = min(begin + config.window, ctx.stop)
            lo = begin - config.lookback
            index = torch.arange(lo, end, device=device)
            valid = (index >= 0).expand(streams, -1)
            safe = index.clamp(min=0)
            speaker = model.normalize(ctx.speaker[:, safe.cpu()].to(device)) * valid[..., None]
            audio = model.normalize_audio(ctx.audio[:, safe.cpu()].to(device)) * valid[..., None]
            frames, _, _ = model(speaker, audio, valid, past, eps, end - begin)
            chunks.append(frames)
            past = frames[:, -1]
        return model.denormalize(torch.cat(chunks, dim=1))
