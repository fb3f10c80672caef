"""The model verbs: ``train`` (any model of the package) and ``generate`` (any generator).

Handlers import the models when they run: building the parser must not import torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from reactlib import config
from reactlib.errors import DataError, UsageError
from reactlib.suite.cli.common import add_settings, bar, open_corpus

COEFF_VIEWS = ("pfl", "float")
"""``train --view`` choices: :data:`reactlib.data.corpus.COEFF_VIEWS` (named here so that
building the parser imports no data code; a test keeps the two equal)."""
BASELINES = ("GT", "Mirror", "Random", "NN motion", "NN audio", "Mean frame")
"""``generate --baseline`` choices: the keys of :data:`reactlib.models.baselines.BASELINES`
(a test keeps the two equal)."""
SAMPLER_OPTIONS = ("steps", "sampler", "noise", "guidance")
"""``generate``'s options that go to a sampler; given to a generator without one, they are
refused."""


def add_train(sub) -> None:
    trainer = sub.add_parser(
        "train",
        help="train a model (reactdiff) on SynthReact or a REACT 2024 copy",
        description="Train MODEL with the profile's recipe on the train split of DIR (default: the "
        "profile's SynthReact corpus, generated if missing), writing OUT/checkpoint.pt, "
        "OUT/log.csv and OUT/loss.png. A run in OUT with the same configuration resumes; one with "
        "another configuration is refused. Launch with torchrun for several processes.",
    )
    trainer.add_argument(
        "model",
        choices=("reactdiff", "diffusion", "transvae", "posnet"),
        help="reactdiff; diffusion (ReactDiff without h, FBK and FAC: Table 1's \"Diffusion "
        "model\"); transvae (the REACT baseline Trans-VAE); posnet (PFLPosNet's head-pose "
        "smoother, trained on the reactions of the generator --on CKPT to the train split)",
    )
    trainer.add_argument(
        "--on", type=Path, metavar="CKPT", help="posnet: the generator checkpoint it learns on"
    )
    trainer.add_argument(
        "--view",
        choices=COEFF_VIEWS,
        help="train on the coefficients a fit on a PFL (fixed) or floating crop of the video "
        "would see (default: as stored); generate uses the checkpoint's view",
    )
    trainer.add_argument(
        "--m", type=int, default=2, help="posnet: reactions per training speaker (default 2)"
    )
    trainer.add_argument(
        "--items", type=int, metavar="N", help="posnet: only the first N training speakers"
    )
    trainer.add_argument("--profile", choices=config.VALID_PROFILES, help="profile (default: auto)")
    trainer.add_argument("--data", type=Path, metavar="DIR", help="a REACT 2024 copy")
    trainer.add_argument("--out", type=Path, required=True, metavar="OUT", help="run folder")
    trainer.add_argument("--seed", type=int, help="seed (default: the profile's, 0)")
    trainer.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_settings(
        trainer,
        "a model, loss or trainer setting (repeatable): speaker_context=lookback, "
        "lookback=24, fbk_dims=pose, fac_weight=0.01, steps=500",
    )
    trainer.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> None:
    from reactlib import runtime  # torch: only when the verb runs
    from reactlib.models import posnet, reactdiff, registry, transvae  # torch: only when it runs

    cfg = config.resolve(args.profile, **({} if args.seed is None else {"seed": args.seed}))
    corpus = open_corpus(args.data, cfg).with_view(args.view)
    device = runtime.select_device(args.device)
    settings = dict(args.settings)
    if (args.on is not None) != (args.model == "posnet"):
        raise UsageError("--on CKPT goes with posnet, and posnet needs it")
    if args.model == "posnet":
        if args.m < 1:
            raise UsageError(f"--m must be >= 1, got {args.m}")
        if args.view is not None:
            raise UsageError(
                "posnet learns in its generator's view; --view goes with the generator"
            )
        generator = registry.load_generator(args.on, device=device)
        identity = generator.identity
        corpus = corpus.with_view(identity["corpus"].get("view"))
        split = corpus.split("train", audio_features=identity["audio_features"])
        items = None if args.items is None else range(min(args.items, len(split)))
        print(f"generating {args.m} {generator.describe()} reactions per training speaker ...")
        trained, _ = posnet.train_on(
            cfg,
            generator,
            split,
            source=identity["model"],
            items=items,
            m=args.m,
            seed=0,
            out=args.out,
            device=device,
            **settings,
        )
    elif args.model == "transvae":
        trained = transvae.train_model(cfg, corpus, out=args.out, device=device, **settings)
    else:
        if args.model == "diffusion":
            settings = {**reactdiff.DIFFUSION_MODEL, **settings}
        trained = reactdiff.train_model(cfg, corpus, out=args.out, device=device, **settings)
    final = trained.log.iloc[-1] if len(trained.log) else None
    loss = "" if final is None else f", final loss {final['loss']:.4f}"
    done = "trained" if trained.trained_now else "already trained"
    print(f"{done}: {trained.step} steps{loss} -> {trained.out / 'checkpoint.pt'}")


def add_generate(sub) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate M reactions per speaker item of a split with a trained checkpoint",
        description="Online generation, window by window, of M reactions to the speaker of every "
        "item of SPLIT, by a trained checkpoint (--ckpt: ReactDiff, the diffusion model, "
        "Trans-VAE) or a baseline (--baseline); writes PRED.npy of shape (N, M, T, 58) in raw "
        "(not normalised) coefficients, the layout REACT evaluation scripts read. A checkpoint "
        "brings its profile and model configuration; a baseline uses --profile.",
    )
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", type=Path, help="checkpoint.pt (or run folder) of a training run")
    source.add_argument(
        "--baseline",
        choices=BASELINES,
        help="a baseline fitted on the train split instead (GT copies each item's listener)",
    )
    gen.add_argument(
        "--profile", choices=config.VALID_PROFILES, help="--baseline: whose SynthReact to use"
    )
    gen.add_argument("--data", type=Path, metavar="DIR", help="a REACT 2024 copy")
    gen.add_argument("--split", default="test", help="train, val or test (default: test)")
    gen.add_argument("--m", type=int, default=10, help="reactions per speaker (default 10)")
    gen.add_argument("--steps", type=int, help="ReactDiff: sampler steps (default 50)")
    gen.add_argument("--sampler", choices=("sde", "ode"), help="ReactDiff: default sde")
    gen.add_argument(
        "--noise",
        choices=("steps", "tree"),
        help="ReactDiff: the SDE's noise, drawn per step or from a Brownian tree shared by every "
        "step count (default: steps; the same law on one schedule)",
    )
    gen.add_argument("--guidance", type=float, help="ReactDiff: guidance scale (default 1)")
    gen.add_argument("--seed", type=int, default=0, help="default 0")
    gen.add_argument("--items", type=int, metavar="N", help="only the first N items")
    gen.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    gen.add_argument("--raw-weights", action="store_true", help="the raw weights, not the EMA")
    gen.add_argument(
        "--posnet", type=Path, metavar="CKPT", help="smooth head pose with this trained PosNet"
    )
    gen.add_argument(
        "--seam-fix",
        choices=("none", "linear", "cubic", "moving_average"),
        default="none",
        help="a non-learned head-pose seam fix instead (default: none)",
    )
    gen.add_argument("--out", type=Path, required=True, metavar="PRED.npy")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> None:
    import numpy as np

    from reactlib import online, paths, runtime  # torch: only when the verb runs
    from reactlib.data import layout  # SciPy and OpenCV: only when the verb runs
    from reactlib.models import posnet, registry  # torch: only when the verb runs

    sampler = {k: getattr(args, k) for k in SAMPLER_OPTIONS if getattr(args, k) is not None}
    if args.m < 1:
        raise UsageError(f"--m must be >= 1, got {args.m}")
    if sampler.get("steps", 1) < 1:
        raise UsageError(f"--steps must be >= 1, got {sampler['steps']}")
    if args.split not in layout.SPLITS:
        raise UsageError(f"--split must be one of {', '.join(layout.SPLITS)}, got {args.split!r}")
    if not args.out.parent.is_dir():
        raise UsageError(f"folder {args.out.parent} does not exist (writing {args.out})")
    if args.posnet is not None and args.seam_fix != "none":
        raise UsageError("--posnet and --seam-fix are two fixes; choose one")
    if args.baseline is not None and (sampler or args.raw_weights):
        given = [f"--{k}" for k in sampler] + (["--raw-weights"] if args.raw_weights else [])
        raise UsageError(f"{', '.join(given)} go with --ckpt, not with a baseline")
    device = runtime.select_device(args.device)
    if args.ckpt is not None:
        if args.profile is not None:
            raise UsageError("--profile goes with --baseline; a checkpoint brings its own")
        generator = registry.load_generator(
            args.ckpt, device=device, ema=not args.raw_weights, **sampler
        )
        identity = generator.identity
        cfg = config.resolve(identity["profile"])
        corpus = open_corpus(args.data, cfg).with_view(identity["corpus"].get("view"))
        split = corpus.split(args.split, audio_features=identity["audio_features"])
        if split.audio_dim != generator.model.config.audio_dim:
            raise DataError(
                f"{corpus.root}: {identity['audio_features']} audio features are "
                f"{split.audio_dim}-d, the checkpoint {args.ckpt} was trained on "
                f"{generator.model.config.audio_dim}-d ones"
            )
    else:
        cfg = config.resolve(args.profile)
        corpus = open_corpus(args.data, cfg)
        split = corpus.split(args.split)
        train = None if args.baseline in ("GT", "Mirror") else corpus.split("train")
        generator = registry.baseline(args.baseline, train, listener=split)
    if args.posnet is not None:
        smoother, _ = posnet.load(args.posnet, ema=not args.raw_weights, device=device)
        post = posnet.make_fix("posnet", smoother)
    else:
        post = posnet.make_fix(args.seam_fix)
    items = None if args.items is None else range(min(args.items, len(split)))
    pred = generator.react(
        online.speaker_inputs(split, items),
        m=args.m,
        seed=args.seed,
        post=post,
        progress=bar(args, "chunk"),
    )
    how = generator.describe()
    if args.posnet is not None:
        how += ", PosNet"
    elif args.seam_fix != "none":
        how += f", {args.seam_fix} seam fix"
    paths.write_atomically(args.out, lambda tmp: np.save(tmp, pred))
    print(f"{pred.shape} reactions ({how}) -> {args.out}")


VERBS = (add_train, add_generate)
