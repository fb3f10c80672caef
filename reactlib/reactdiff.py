"""ReactDiff end to end: the model with its normalisation, its training objective on a corpus,
training with the shared trainer (cached per configuration), and online generation.

- :class:`ReactDiff` is the EDM-preconditioned :class:`reactlib.models.ReactDiffNet` together
  with the statistics that normalise its inputs (z-scored coefficients, as the official code;
  z-scored audio features). The statistics live in the module's buffers, so a checkpoint carries
  everything generation needs.
- :class:`WindowPairs` holds a split's arrays and draws training batches: each item is a pair of
  consecutive windows ``(j - 1, j)`` of one conversation, both noised at the same level, so that
  ``L_fbk``'s lag-w term compares the current window with the previous one at that level
  (eq 8) while ``L_dm`` trains on both windows. Every window is the *noised current* window
  (the official training feeds the previous window's frames instead: not copied). The batch of a
  step is a function of (seed, step) alone, so training resumes exactly and splits across
  processes without any loader state.
- :class:`ReactDiffGenerator` is the generator of :func:`reactlib.online.generate`: for each
  window it picks the speaker context (the window's frames, or ``L`` frames more before it),
  draws the initial noise and the SDE's Brownian noise from the window's seeds, and samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reactlib import baselines, coeffs, data, diffusion, losses, models, online, train
from reactlib.errors import UsageError

FORMAT = 5
"""Version of the network and the training recipe, part of every run's identity: raised with every
change to either, so a cached model of an older version is never loaded into a newer network."""
SAMPLERS = ("sde", "ode")
NOISES = ("steps", "tree")
"""Where the SDE sampler's noise comes from: ``steps`` draws each step's increment afresh from
the stream's seed (one normal draw per step); ``tree`` reads it off a Brownian tree, the same
path whatever the number of steps (k-diffusion's default, the official sampler's)."""
DIFFUSION_MODEL = {"timestamp": False, "fbk_weight": 0.0, "fac_weight": 0.0}
"""The settings that make ReactDiff the "Diffusion model" row of its Table 1: the same network
and sampler without the global timestamp h and without the FBK and FAC constraints."""
LOOKBACK = 24
"""The look-back context's default L: SynthReact's listeners react 0.3-0.8 s (8-20 frames) late,
so 24 speaker frames before a window cover the longest delay for every frame of it."""


class ReactDiff(nn.Module):
    """The denoiser ``D(x; sigma, conditions)`` on normalised coefficients, and the statistics:
    ``coeff_mean``/``coeff_std`` (58) and ``audio_mean``/``audio_std`` (audio_dim)."""

    def __init__(self, config: models.ReactDiffConfig):
        super().__init__()
        self.config = config
        self.denoiser = diffusion.Denoiser(models.ReactDiffNet(config))
        self.register_buffer("coeff_mean", torch.zeros(coeffs.NUM_COEFFS))
        self.register_buffer("coeff_std", torch.ones(coeffs.NUM_COEFFS))
        self.register_buffer("audio_mean", torch.zeros(config.audio_dim))
        self.register_buffer("audio_std", torch.ones(config.audio_dim))

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

    def forward(self, x0, sigma, noise, **conditions):
        """The training pass: ``(F, target, sigma)`` of :meth:`Denoiser.output_and_target`
        (through ``forward`` so that DistributedDataParallel sees it)."""
        return self.denoiser.output_and_target(x0, sigma, noise, **conditions)


# --- Settings ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """Everything that defines a trained ReactDiff besides the data: the network, the loss, the
    trainer, the audio features."""

    net: models.ReactDiffConfig
    loss: losses.LossSettings
    train: train.TrainSettings
    audio_features: str = data.AUDIO_FEATURES_DEFAULT

    def identity(self, corpus_id: Mapping[str, Any], profile: str) -> dict:
        loss = dataclasses.asdict(self.loss)
        loss["fac_kinds"] = list(loss["fac_kinds"])
        return {
            "model": "reactdiff",
            "format": FORMAT,
            "profile": profile,
            "corpus": dict(corpus_id),
            "audio_features": self.audio_features,
            "net": self.net.as_dict(),
            "loss": loss,
            "train": self.train.as_dict(),
        }


def recipe(cfg, **overrides) -> Recipe:
    """The profile's recipe with overrides by field name (of :class:`models.ReactDiffConfig`,
    :class:`losses.LossSettings`, :class:`train.TrainSettings`, or ``audio_features``); values may
    be strings, as ``--set KEY=VALUE`` gives them."""
    audio_features = str(overrides.pop("audio_features", data.AUDIO_FEATURES_DEFAULT))
    if "lookback" in overrides and "speaker_context" not in overrides:
        try:
            lookback = int(overrides["lookback"])
        except ValueError as err:
            raise UsageError(
                f"ReactDiff setting lookback={overrides['lookback']!r}: {err}"
            ) from err
        overrides["speaker_context"] = "lookback" if lookback else "window"
    bases = {
        "net": models.profile_config(cfg.profile, window=cfg.window),
        "loss": losses.LossSettings(),
        "train": train.TrainSettings(
            steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.learning_rate, seed=cfg.seed
        ),
    }
    chosen = train.apply_settings("ReactDiff", overrides, bases)
    return Recipe(
        net=chosen["net"], loss=chosen["loss"], train=chosen["train"], audio_features=audio_features
    )


def corpus_identity(corpus: data.Corpus) -> dict:
    """What names a corpus in a run's identity: SynthReact's digest, or a REACT copy's path, and
    its coefficient view when it has one (no key without: earlier runs keep their identity)."""
    if corpus.meta is not None:
        named = {"kind": "SynthReact", "digest": corpus.meta["digest"]}
    else:
        named = {"kind": "REACT 2024", "root": str(Path(corpus.root).resolve())}
    return named if corpus.view is None else {**named, "view": corpus.view}


# --- Training data ------------------------------------------------------------------------------


class WindowPairs:
    """A split's speaker and listener coefficients and speaker audio features, normalised, and
    batches of consecutive window pairs drawn from them."""

    def __init__(self, split: data.Split, config: models.ReactDiffConfig, model: ReactDiff):
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

    def _context(self, items, starts):
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
        """The keyword conditions of :class:`models.ReactDiffNet` for windows at ``starts``."""
        frames = starts[:, None] + torch.arange(self.window)
        before = starts - 1
        past = self.listener[items, before.clamp(min=0)] * (before >= 0)[:, None]
        speaker, audio, speaker_h = self._context(items, starts)
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


def make_objective(pairs: WindowPairs, rec: Recipe) -> train.Objective:
    """The trainer's objective: eq 10 on this step's share of the global batch of pairs."""

    def objective(model, step: int, rank: int, world: int):
        b = pairs.batch(rec.train.batch_size, rec.train.seed, step, rec.net.cond_dropout)
        share = slice(rank, None, world)
        items, starts, sigma = b["items"][share], b["starts"][share], b["sigma"][share]
        drop, noise = b["drop"][share], b["noise"][:, share]
        device = next(model.parameters()).device
        both = torch.cat([starts, starts - pairs.window])
        twice = torch.cat([items, items])
        x0 = pairs.frames(twice, both)
        cond = pairs.conditions(twice, both, torch.cat([drop, drop]))
        cond = {k: v.to(device) for k, v in cond.items()}
        output, target, _ = model(
            x0.to(device),
            torch.cat([sigma, sigma]).to(device),
            noise.flatten(0, 1).to(device),
            **cond,
        )
        n = len(items)
        return losses.reactdiff_loss(
            output[:n], target[:n], output[n:], target[n:], sigma.to(device), rec.loss
        )

    return objective


# --- Training -----------------------------------------------------------------------------------


def fitted_statistics(split: data.Split) -> tuple[coeffs.Normalizer, coeffs.Normalizer]:
    """z-score statistics of the training split: coefficients over speakers and listeners,
    audio features over speakers."""
    both = np.concatenate([split.stack("coeffs", "speaker"), split.stack("coeffs", "listener")])
    audio = np.stack(
        [split.audio_features(c) for c in dict.fromkeys(i.speaker for i in split.items)]
    )
    return coeffs.Normalizer.fit(both), coeffs.Normalizer.fit(audio)


def build(rec: Recipe, train_split: data.Split) -> ReactDiff:
    """A freshly initialised ReactDiff (seeded by the recipe) with the split's statistics."""
    torch.manual_seed(rec.train.seed)
    model = ReactDiff(rec.net)
    model.set_statistics(*fitted_statistics(train_split))
    return model


def train_model(
    cfg,
    corpus: data.Corpus,
    *,
    out: str | Path | None = None,
    name: str = "reactdiff",
    device="cpu",
    **overrides,
) -> train.Trained:
    """Train ReactDiff on ``corpus``'s train split with the profile's recipe and ``overrides``.

    Without ``out`` the run is cached under :func:`reactlib.train.models_dir` by its identity,
    so every notebook asking for the same configuration trains it once."""
    rec = recipe(cfg, **overrides)
    split = corpus.split("train", audio_features=rec.audio_features)
    if split.audio_dim != rec.net.audio_dim:
        rec = dataclasses.replace(rec, net=dataclasses.replace(rec.net, audio_dim=split.audio_dim))
    identity = rec.identity(corpus_identity(corpus), cfg.profile)
    model = build(rec, split)
    objective = make_objective(WindowPairs(split, rec.net, model), rec)
    if out is None:
        return train.cached(
            name, lambda: model, objective, rec.train, identity=identity, cfg=cfg, device=device
        )
    return train.fit(model, objective, rec.train, out, identity=identity, cfg=cfg, device=device)


def load(path: str | Path, *, ema: bool = True, device="cpu") -> tuple[ReactDiff, dict]:
    """A trained ReactDiff from a checkpoint, and the checkpoint's identity (profile, recipe)."""
    state = train.load_checkpoint(path)
    identity = state["identity"]
    if identity.get("model") != "reactdiff":
        raise UsageError(f"{path}: a {identity.get('model')!r} checkpoint, not a ReactDiff one")
    model = ReactDiff(models.ReactDiffConfig.from_dict(identity["net"]))
    model.load_state_dict(train.checkpoint_weights(state, ema=ema))
    return model.to(device).eval(), identity


# --- Generation ---------------------------------------------------------------------------------


def _seed_pair(seed: int) -> tuple[int, int]:
    a, b = np.random.SeedSequence(seed).generate_state(2)
    return int(a), int(b)


class ReactDiffGenerator(online.ModelGenerator):
    """ReactDiff as an :mod:`reactlib.online` generator: one sampled window per call.

    ``sampler`` ``sde`` is DPM-Solver++(2M) SDE (the paper's), ``ode`` DPM-Solver++(2M);
    ``guidance`` is the classifier-free guidance scale (1: the conditional model alone).
    ``noise`` says where the SDE's noise comes from (:data:`NOISES`). On one schedule both give
    Brownian increments of exactly the same law (independent, ``N(0, |sigma_next - sigma|)``):
    ``steps`` draws them directly, ``tree`` builds them by bisection (about 20 normal draws per
    stream and step, worth it only when runs with different step counts must share one path,
    as in a convergence study). ``callback`` receives the sampler's per-step dict (for drawing
    trajectories)."""

    def __init__(
        self,
        model: ReactDiff,
        *,
        steps: int = diffusion.REACTDIFF_STEPS,
        sampler: str = "sde",
        guidance: float = 1.0,
        noise: str = "steps",
        callback: Callable | None = None,
    ):
        if sampler not in SAMPLERS:
            raise UsageError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if noise not in NOISES:
            raise UsageError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
        if steps < 1:
            raise UsageError(f"steps must be >= 1, got {steps}")
        super().__init__(model)
        self.sigmas = diffusion.reactdiff_sigmas(steps)
        self.sampler = sampler
        self.guidance = float(guidance)
        self.noise = noise
        self.callback = callback

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        model, config = self.model, self.model.config
        if ctx.audio is None:
            raise UsageError("ReactDiff needs the speaker's audio features")
        device = model.coeff_mean.device
        lo = max(0, ctx.start - config.context_frames)
        streams, length = ctx.speaker.shape[0], ctx.stop - ctx.start
        cond = {
            "speaker": model.normalize(ctx.speaker[:, lo : ctx.stop].to(device)),
            "audio": model.normalize_audio(ctx.audio[:, lo : ctx.stop].to(device)),
            "h": ctx.frames.to(device).expand(streams, length),
            "speaker_h": torch.arange(lo, ctx.stop, device=device).expand(streams, -1),
            "past": self.past(ctx, device),
        }
        # the part of every network call that depends on the conditions alone, computed once
        cond["prepared"] = model.denoiser.inner.prepare(**cond)
        denoise = model.denoiser
        if self.guidance != 1:
            uncond = {"cond_mask": torch.zeros(streams, dtype=torch.bool, device=device)}
            denoise = diffusion.guided(model.denoiser, self.guidance, uncond)
        start_seeds, noise_seeds = zip(*(_seed_pair(s) for s in ctx.seeds), strict=True)
        shape = (length, coeffs.NUM_COEFFS)
        x = diffusion.ItemNoise(start_seeds, shape, device=device).randn() * self.sigmas[0]
        sigmas = self.sigmas.to(device=device, dtype=x.dtype)
        if self.sampler == "ode":
            x = diffusion.sample_dpmpp_2m(denoise, x, sigmas, extra=cond, callback=self.callback)
        else:
            if self.noise == "steps":
                noise = diffusion.ItemNoise(noise_seeds, shape, device=device)
            else:
                positive = sigmas[sigmas > 0]
                noise = diffusion.BrownianTreeNoise(
                    noise_seeds, shape, float(positive.min()), float(positive.max()), device=device
                )
            x = diffusion.sample_dpmpp_2m_sde(
                denoise, x, sigmas, noise_sampler=noise, extra=cond, callback=self.callback
            )
        return model.denormalize(x)


def speaker_inputs(split: data.Split, items=None) -> tuple[np.ndarray, np.ndarray]:
    """``(speaker (N, T, 58), audio (N, T, A))`` of a split's items (all by default)."""
    return baselines.speaker_inputs(split, items)


def generate_split(
    model: ReactDiff,
    split: data.Split,
    *,
    m: int = 10,
    seed: int = 0,
    items=None,
    chunk: int = 8,
    post: online.PostProcess | None = None,
    progress: Callable | None = None,
    **generator_kwargs,
) -> np.ndarray:
    """``(N, M, T, 58)`` reactions to the speakers of ``split``'s items (all, or ``items``),
    ``chunk`` speakers at a time; item ``k``'s reactions do not depend on the chunking
    (:func:`reactlib.baselines.generate_split` with a :class:`ReactDiffGenerator`)."""
    generator = ReactDiffGenerator(model, **generator_kwargs)
    return baselines.generate_split(
        generator, split, m=m, seed=seed, items=items, chunk=chunk, post=post, progress=progress
    )
