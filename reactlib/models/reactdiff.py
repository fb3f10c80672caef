"""ReactDiff end to end: the model with its normalisation, its training objective on a corpus,
training with the shared trainer (cached per configuration), and online generation.

- :class:`ReactDiff` is the EDM-preconditioned :class:`reactlib.models.reactdiff_net.ReactDiffNet`
  together with the statistics that normalise its inputs (z-scored coefficients, as the official
  code; z-scored audio features; :class:`reactlib.models.windows.Statistics`). The statistics live
  in the module's buffers, so a checkpoint carries everything generation needs.
- :func:`make_objective` trains on :class:`reactlib.models.windows.WindowPairs`: each item is a
  pair of consecutive windows ``(j - 1, j)`` of one conversation, both noised at the same level,
  so that ``L_fbk``'s lag-w term compares the current window with the previous one at that level
  (eq 8) while ``L_dm`` trains on both windows.
- :class:`ReactDiffGenerator` is ReactDiff as a :class:`reactlib.online.Generator`: for each
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

from reactlib import diffusion, online, train
from reactlib.data.corpus import Corpus, Split
from reactlib.data.layout import AUDIO_FEATURES_DEFAULT
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.models import losses, reactdiff_net
from reactlib.models.windows import Statistics, WindowPairs, fitted_statistics

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


class ReactDiff(Statistics):
    """The denoiser ``D(x; sigma, conditions)`` on normalised coefficients, and the statistics:
    ``coeff_mean``/``coeff_std`` (58) and ``audio_mean``/``audio_std`` (audio_dim)."""

    def __init__(self, config: reactdiff_net.ReactDiffConfig):
        super().__init__(config.audio_dim)
        self.config = config
        self.denoiser = diffusion.Denoiser(reactdiff_net.ReactDiffNet(config))

    def forward(self, x0, sigma, noise, **conditions):
        """The training pass: ``(F, target, sigma)`` of :meth:`Denoiser.output_and_target`
        (through ``forward`` so that DistributedDataParallel sees it)."""
        return self.denoiser.output_and_target(x0, sigma, noise, **conditions)


# --- Settings ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """Everything that defines a trained ReactDiff besides the data: the network, the loss, the
    trainer, the audio features."""

    net: reactdiff_net.ReactDiffConfig
    loss: losses.LossSettings
    train: train.TrainSettings
    audio_features: str = AUDIO_FEATURES_DEFAULT

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
    """The profile's recipe with overrides by field name (of :class:`reactdiff_net.ReactDiffConfig`,
    :class:`losses.LossSettings`, :class:`train.TrainSettings`, or ``audio_features``); values may
    be strings, as ``--set KEY=VALUE`` gives them."""
    audio_features = str(overrides.pop("audio_features", AUDIO_FEATURES_DEFAULT))
    if "lookback" in overrides and "speaker_context" not in overrides:
        try:
            lookback = int(overrides["lookback"])
        except ValueError as err:
            raise UsageError(
                f"ReactDiff setting lookback={overrides['lookback']!r}: {err}"
            ) from err
        overrides["speaker_context"] = "lookback" if lookback else "window"
    bases = {
        "net": reactdiff_net.profile_config(cfg.profile, window=cfg.window),
        "loss": losses.LossSettings(),
        "train": train.TrainSettings(
            steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.learning_rate, seed=cfg.seed
        ),
    }
    chosen = train.apply_settings("ReactDiff", overrides, bases)
    return Recipe(
        net=chosen["net"], loss=chosen["loss"], train=chosen["train"], audio_features=audio_features
    )


# --- Training -----------------------------------------------------------------------------------


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


def build(rec: Recipe, train_split: Split) -> ReactDiff:
    """A freshly initialised ReactDiff (seeded by the recipe) with the split's statistics."""
    torch.manual_seed(rec.train.seed)
    model = ReactDiff(rec.net)
    model.set_statistics(*fitted_statistics(train_split))
    return model


def train_model(
    cfg,
    corpus: Corpus,
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
    identity = rec.identity(corpus.identity(), cfg.profile)
    model = build(rec, split)
    objective = make_objective(WindowPairs(split, rec.net, model), rec)
    if out is None:
        return train.cached(
            name, lambda: model, objective, rec.train, identity=identity, cfg=cfg, device=device
        )
    return train.fit(model, objective, rec.train, out, identity=identity, cfg=cfg, device=device)


def from_checkpoint(state: Mapping[str, Any], *, ema: bool = True, device="cpu") -> ReactDiff:
    """The trained ReactDiff of a checkpoint read by :func:`reactlib.train.load_checkpoint`."""
    config = reactdiff_net.ReactDiffConfig.from_dict(state["identity"]["net"])
    return train.trained_module(state, ReactDiff(config), ema=ema, device=device)


def load(path: str | Path, *, ema: bool = True, device="cpu") -> tuple[ReactDiff, dict]:
    """A trained ReactDiff from a checkpoint, and the checkpoint's identity (profile, recipe)."""
    return train.load_model(
        path, "reactdiff", from_checkpoint, label="ReactDiff", ema=ema, device=device
    )


def is_diffusion_model(identity: Mapping[str, Any]) -> bool:
    """Whether a ReactDiff identity is Table 1's "Diffusion model" (:data:`DIFFUSION_MODEL`)."""
    settings = {**identity.get("net", {}), **identity.get("loss", {})}
    return all(settings.get(key, True) == value for key, value in DIFFUSION_MODEL.items())


# --- Generation ---------------------------------------------------------------------------------


def _seed_pair(seed: int) -> tuple[int, int]:
    a, b = np.random.SeedSequence(seed).generate_state(2)
    return int(a), int(b)


class ReactDiffGenerator(online.ModelGenerator):
    """ReactDiff as a :class:`reactlib.online.Generator`: one sampled window per call.

    ``sampler`` ``sde`` is DPM-Solver++(2M) SDE (the paper's), ``ode`` DPM-Solver++(2M);
    ``guidance`` is the classifier-free guidance scale (1: the conditional model alone).
    ``noise`` says where the SDE's noise comes from (:data:`NOISES`). On one schedule both give
    Brownian increments of exactly the same law (independent, ``N(0, |sigma_next - sigma|)``):
    ``steps`` draws them directly, ``tree`` builds them by bisection (about 20 normal draws per
    stream and step, worth it only when runs with different step counts must share one path,
    as in a convergence study). ``callback`` receives the sampler's per-step dict (for drawing
    trajectories). ``identity`` is the checkpoint's, when the model came from one."""

    def __init__(
        self,
        model: ReactDiff,
        *,
        identity: Mapping[str, Any] | None = None,
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
        super().__init__(model, None if identity is None else dict(identity))
        self.name = (
            "Diffusion model"
            if identity is not None and is_diffusion_model(identity)
            else "ReactDiff"
        )
        self.steps = steps
        self.sigmas = diffusion.reactdiff_sigmas(steps)
        self.sampler = sampler
        self.guidance = float(guidance)
        self.noise = noise
        self.callback = callback

    def describe(self) -> str:
        guided = "" if self.guidance == 1 else f", guidance {self.guidance:g}"
        return f"{self.name} ({self.sampler}, {self.steps} steps{guided})"

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
