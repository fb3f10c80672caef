"""What every network that learns from windows shares: its input statistics and its training data.

- :class:`Statistics`: the z-score statistics of coefficients (58) and audio features, held as a
  module's buffers so a checkpoint carries everything generation needs, with ``normalize`` /
  ``denormalize`` / ``normalize_audio``. ReactDiff and Trans-VAE are both such modules.
- :func:`fitted_statistics`: those statistics from a training split.
- :class:`WindowPairs`: a split's arrays, normalised, and batches of consecutive window pairs
  ``(j - 1, j)`` of one conversation. Each batch item's noise level, noise and condition dropout
  are drawn with it (ReactDiff uses them; Trans-VAE ignores them), from a generator seeded by
  ``(seed, step)`` alone, so training resumes exactly and splits across processes without any
  loader state. Every window is the *current* window (the official training feeds the previous
  window's frames instead: not copied).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reactlib import diffusion, train
from reactlib.data.corpus import Split
from reactlib.errors import UsageError
from reactlib.face import coeffs


class Statistics(nn.Module):
    """Buffers ``coeff_mean``/``coeff_std`` (58) and ``audio_mean``/``audio_std``
    (``audio_dim``), and the z-scoring they define; a model subclasses it and calls
    ``super().__init__(audio_dim)`` before building its layers."""

    def __init__(self, audio_dim: int):
        super().__init__()
        self.register_buffer("coeff_mean", torch.zeros(coeffs.NUM_COEFFS))
        self.register_buffer("coeff_std", torch.ones(coeffs.NUM_COEFFS))
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))

    def set_statistics(self, coeff_norm: coeffs.Normalizer, audio_norm: coeffs.Normalizer):
        for name, norm in (("coeff", coeff_norm), ("audio", audio_norm)):
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(norm.mean))
            getattr(self, f"{name}_std").copy_(torch.from_numpy(norm.std))

    def normalize(self, x):
        return (x - self.coeff_mean) / self.coeff_std

    def denormalize(self, x):
        return x * self.coeff_std + self.coeff_mean

    def normalize_audio(self, a):
        return (a - self.audio_mean) / self.audio_std


def fitted_statistics(split: Split) -> tuple[coeffs.Normalizer, coeffs.Normalizer]:
    """z-score statistics of the training split: coefficients over speakers and listeners,
    audio features over speakers."""
    both = np.concatenate([split.stack("coeffs", "speaker"), split.stack("coeffs", "listener")])
    audio = np.stack(
        [split.audio_features(c) for c in dict.fromkeys(i.speaker for i in split.items)]
    )
    return coeffs.Normalizer.fit(both), coeffs.Normalizer.fit(audio)


class WindowPairs:
    """A split's speaker and listener coefficients and speaker audio features, normalised by
    ``model``'s statistics, and batches of consecutive window pairs drawn from them. ``config``
    gives the window ``w`` and the speaker frames before a window the model sees
    (``context_frames``)."""

    def __init__(self, split: Split, config, model: Statistics):
        self.window = config.window
        self.context = config.context_frames
        if split.frames < 2 * self.window:
            raise UsageError(
                f"clips of {split.frames} frames are too short for two windows of {self.window}"
            )
        with torch.no_grad():
            self.speaker = model.normalize(torch.from_numpy(split.stack("coeffs", "speaker")))
            self.listener = model.normalize(torch.from_numpy(split.stack("coeffs", "listener")))
            self.audio = model.normalize_audio(
                torch.from_numpy(np.stack([split.audio_features(i.speaker) for i in split.items]))
            )
        self.windows_per_clip = split.frames // self.window

    def __len__(self) -> int:
        return len(self.speaker)

    def speaker_context(self, items, starts):
        """Speaker context ``(P, S, .)`` for windows starting at ``starts`` and its frame
        indices ``(P, S)``, -1 where the look-back reaches before the conversation."""
        span = self.context + self.window
        index = starts[:, None] - self.context + torch.arange(span)
        valid = index >= 0
        safe = index.clamp(min=0)
        speaker = self.speaker[items[:, None], safe] * valid[..., None]
        audio = self.audio[items[:, None], safe] * valid[..., None]
        return speaker, audio, torch.where(valid, index, torch.full_like(index, -1))

    def conditions(self, items, starts, drop):
        """The keyword conditions of the denoiser network
        (:class:`~reactlib.models.reactdiff_net.ReactDiffNet`) for windows at ``starts``."""
        frames = starts[:, None] + torch.arange(self.window)
        before = starts - 1
        past = self.listener[items, before.clamp(min=0)] * (before >= 0)[:, None]
        speaker, audio, speaker_h = self.speaker_context(items, starts)
        return {
            "past": past,
            "speaker": speaker,
            "audio": audio,
            "h": frames,
            "speaker_h": speaker_h,
            "cond_mask": ~drop,
        }

    def batch(self, size: int, seed: int, step: int, cond_dropout: float) -> dict:
        """The global batch of ``step``: ``size`` window pairs with their noise levels, noise and
        condition dropout, all drawn from a generator seeded by ``(seed, step)``."""
        g = torch.Generator().manual_seed(train.step_seed(seed, step))
        items = torch.randint(len(self), (size,), generator=g)
        j = torch.randint(1, self.windows_per_clip, (size,), generator=g)
        sigma = diffusion.sample_sigmas(size, "cosine", generator=g)
        noise = torch.randn(2, size, self.window, coeffs.NUM_COEFFS, generator=g)
        drop = torch.rand(size, generator=g) < cond_dropout
        return {
            "items": items,
            "starts": j * self.window,
            "sigma": sigma,
            "noise": noise,
            "drop": drop,
        }

    def frames(self, items, starts):
        return self.listener[items[:, None], starts[:, None] + torch.arange(self.window)]
