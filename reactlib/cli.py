"""``python -m reactlib <command>``: the suite's command line.

Exit status: 0 on success; 1 when a notebook fails or an input file cannot be used
(:class:`~reactlib.errors.DataError`, a missing file), with the file and the problem named; 2 for a
usage or configuration error (:class:`~reactlib.errors.UsageError`, argparse). Any other exception
is a bug and comes with its traceback.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reactlib import config
from reactlib.errors import DataError, UsageError

COEFF_VIEWS = ("pfl", "float")
"""``train --view`` choices: :data:`reactlib.data.COEFF_VIEWS` (named here so that building the
parser imports no data code; a test keeps the two equal)."""


def _setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is read as a literal when it is one (``100``, ``1e-3``, ``None``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def _add_settings(parser: argparse.ArgumentParser, text: str) -> None:
    """The repeatable ``--set KEY=VALUE`` option, collected into ``args.settings``."""
    parser.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=text,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reactlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="execute the notebooks headlessly and export HTML",
        description="Execute the notebooks of notebooks/manifest.yaml with papermill, writing "
        "runs/<profile>/: executed notebooks, their HTML, each notebook's metrics.json and "
        "summary.csv. Stops at the first failing notebook, naming its cell.",
    )
    run.add_argument(
        "--profile",
        choices=config.VALID_PROFILES,
        help=f"profile (default: ${config.PROFILE_ENV}, else auto = full with CUDA, lab without)",
    )
    run.add_argument(
        "--only", nargs="+", metavar="NN", help="notebooks by number or name, e.g. 00 03"
    )
    run.add_argument(
        "--timeout",
        type=int,
        metavar="S",
        help="per-cell timeout in seconds (default: the manifest's)",
    )
    run.add_argument("--seed", type=int, help="seed injected into every notebook")
    run.add_argument("--data-root", help="a REACT 2024 copy to use instead of SynthReact")
    _add_settings(
        run, "inject a parameter into the notebooks declaring it (repeatable): train_steps=500"
    )
    run.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    run.add_argument("--no-html", action="store_true", help="skip the HTML export")

    student = sub.add_parser("student", help="write student copies with solution cells emptied")
    student.add_argument(
        "--out",
        type=Path,
        default=Path("build/student"),
        help="output folder (default: build/student)",
    )

    golden = sub.add_parser(
        "golden",
        help="re-execute notebooks in place under ci and strip them (refreshes golden outputs)",
    )
    golden.add_argument("--only", nargs="+", metavar="NN")

    synth = sub.add_parser(
        "synth",
        help="generate a SynthReact corpus in the REACT 2024 layout",
        description="Generate SynthReact for a profile's corpus size into DIR (reused when DIR "
        "already holds the same corpus). Prints the corpus summary and the wall time.",
    )
    synth.add_argument(
        "--profile", choices=config.VALID_PROFILES, help="corpus size (default: auto)"
    )
    synth.add_argument(
        "--out", type=Path, help="output folder (default: $REACTLIB_CACHE or data/synth, /<digest>)"
    )
    synth.add_argument("--seed", type=int, help="seed (default: the profile's, 0)")
    synth.add_argument(
        "--videos", type=int, metavar="N", help="how many sessions to render to mp4 (the first N)"
    )
    synth.add_argument("--force", action="store_true", help="regenerate even if DIR is current")
    synth.add_argument(
        "--anatomy",
        choices=("table17", "anatomical"),
        default="table17",
        help="table17: left/right pairs move as ReactDiff's Table 17 says (default); anatomical: "
        "conjugate gaze and one-sided jaw and mouth shifts",
    )

    crop = sub.add_parser(
        "pfl-crop",
        help="crop a face video with PFL's fixed window or the floating window",
        description="Detect the face in every frame of IN (first pass), place the crop window(s) "
        "and write the cropped video OUT (second pass), one frame in memory at a time. Exit "
        "status 1 when IN cannot be read or has no face in any frame (OUT is not written; the "
        "report still is).",
    )
    crop.add_argument("input", type=Path, metavar="IN", help="video file or folder of PNG frames")
    crop.add_argument("output", type=Path, metavar="OUT", help="the cropped H.264 mp4")
    crop.add_argument("--mode", choices=("pfl", "float"), default="pfl", help="default: pfl")
    crop.add_argument(
        "--detector",
        choices=("haar", "oracle"),
        default="haar",
        help="haar (OpenCV frontal cascade) or oracle (true boxes: --boxes, or found from the "
        "SynthReact corpus IN belongs to); default: haar",
    )
    crop.add_argument("--boxes", type=Path, help="oracle boxes, a (T, 4) .npy of centre x, y, w, h")
    crop.add_argument("--size", type=int, default=256, help="output side in pixels (default 256)")
    crop.add_argument(
        "--omega",
        type=float,
        nargs="+",
        default=[256.0],
        metavar="PX",
        help="PFL's largest window, one value or W H (default 256)",
    )
    crop.add_argument("--padding", type=float, default=20.0, help="PFL padding px (default 20)")
    crop.add_argument(
        "--extent",
        choices=("span", "omega"),
        default="span",
        help="PFL window size: the faces' span capped at omega (eq 8, default) or omega itself",
    )
    crop.add_argument(
        "--margin", type=float, default=0.2, help="floating side = face * (1 + 2 margin)"
    )
    crop.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        help="floating window EMA weight in [0, 1) (centre and side; default 0)",
    )
    crop.add_argument("--scale-factor", type=float, default=1.1, help="Haar scaleFactor")
    crop.add_argument("--min-neighbors", type=int, default=6, help="Haar minNeighbors")
    crop.add_argument("--min-size", type=int, default=60, help="Haar minSize in pixels")
    crop.add_argument("--report", type=Path, help="write the JSON report here")
    crop.add_argument("--quiet", action="store_true", help="no progress bars")

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
    _add_settings(
        trainer,
        "a model, loss or trainer setting (repeatable): speaker_context=lookback, "
        "lookback=24, fbk_dims=pose, fac_weight=0.01, steps=500",
    )

    gen = sub.add_parser(
        "generate",
        help="generate M reactions per speaker item of a split with a trained checkpoint",
        description="Online generation, window by window, of M reactions to the speaker of every "
        "item of SPLIT; writes PRED.npy of shape (N, M, T, 58) in raw (not normalised) "
        "coefficients, the layout REACT evaluation scripts read. The profile and the model "
        "configuration come from the checkpoint.",
    )
    gen.add_argument("--ckpt", type=Path, required=True, help="checkpoint.pt of a training run")
    gen.add_argument("--data", type=Path, metavar="DIR", help="a REACT 2024 copy")
    gen.add_argument("--split", default="test", help="train, val or test (default: test)")
    gen.add_argument("--m", type=int, default=10, help="reactions per speaker (default 10)")
    gen.add_argument("--steps", type=int, default=50, help="sampler steps (default 50)")
    gen.add_argument("--sampler", choices=("sde", "ode"), default="sde", help="default: sde")
    gen.add_argument(
        "--noise",
        choices=("steps", "tree"),
        default="steps",
        help="the SDE's noise: drawn per step, or from a Brownian tree shared by every step "
        "count (default: steps; the same law on one schedule)",
    )
    gen.add_argument("--guidance", type=float, default=1.0, help="guidance scale (default 1)")
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

    ev = sub.add_parser(
        "evaluate",
        help="score predictions with the REACT metrics, realism FD and smoothness",
        description="Score PRED.npy, reactions (N, M, T, 58) in raw coefficients (what `generate` "
        "writes) or (N, M, T, 25) emotion, against a split: FRCorr, FRDist, FRDiv, FRVar, FRDvs, "
        "FRSyn in the chosen convention, plus the coefficient Frechet distance and smoothness. "
        "Prints a table and, with --json, writes every figure and what was used (emotion map, "
        "neighbour matrix or fallback).",
    )
    ev.add_argument("--pred", type=Path, required=True, metavar="PRED.npy")
    ev.add_argument("--data", type=Path, metavar="DIR", help="a REACT 2024 copy")
    ev.add_argument("--profile", choices=config.VALID_PROFILES, help="whose SynthReact to use")
    ev.add_argument("--split", default="test", help="train, val or test (default: test)")
    ev.add_argument(
        "--convention",
        choices=("react2024", "reactface", "clean"),
        default="react2024",
        help="react2024 (the challenge, emotion; default), reactface (ReactFace's script, "
        "coefficients) or clean (means over M, all M for FRSyn, NaN-robust)",
    )
    ev.add_argument(
        "--emotion-map",
        choices=("auto", "exact", "fitted"),
        default="auto",
        help="coefficients -> emotion for react2024: exact (SynthReact's own), fitted (ridge "
        "regression on the corpus' train split, held-out R^2 reported), auto (default: exact "
        "for SynthReact, fitted otherwise)",
    )
    ev.add_argument(
        "--gt-through-map",
        action="store_true",
        help="map the real coefficients with the same map instead of reading emotion files",
    )
    ev.add_argument(
        "--fallback",
        choices=("same_speaker", "self"),
        default="same_speaker",
        help="appropriate reactions when the corpus has no neighbour matrix (default: the "
        "listeners of the same speaker clip)",
    )
    ev.add_argument("--items", type=int, metavar="N", help="predictions cover the first N items")
    ev.add_argument("--json", type=Path, metavar="OUT.json", help="write every figure here")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    bench = sub.add_parser(
        "bench",
        help="run a benchmark of benchmarks/ (metrics: the REACT metrics at REACT size)",
        description="Run benchmarks/<NAME>_speed.py with the options that follow; it prints its "
        "figures and writes benchmarks/results/<NAME>_speed.json with provenance. "
        "`bench metrics --help` lists the metrics benchmark's options.",
    )
    bench.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="passed to the benchmark")

    strip = sub.add_parser("strip", help="strip notebook outputs except golden cells")
    strip.add_argument(
        "--check", action="store_true", help="only report; exit 1 if anything would change"
    )
    strip.add_argument(
        "files", nargs="*", type=Path, help="default: every notebook in the manifest"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from reactlib import notebooks

    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            parameters = dict(args.settings)
            if args.seed is not None:
                parameters["seed"] = args.seed
            if args.data_root is not None:
                parameters["data_root"] = args.data_root
            notebooks.run_suite(
                args.profile,
                only=args.only,
                timeout=args.timeout,
                parameters=parameters,
                manifest=args.manifest,
                html=not args.no_html,
            )
        elif args.command == "student":
            written = notebooks.student_copies(args.out)
            print(f"wrote {len(written)} student notebook(s) to {args.out}")
        elif args.command == "golden":
            book = notebooks.load_manifest()
            notebooks.refresh_golden(book.select(args.only), book)
        elif args.command == "synth":
            _synth(args)
        elif args.command == "pfl-crop":
            return _pfl_crop(args)
        elif args.command == "train":
            _train(args)
        elif args.command == "generate":
            _generate(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "bench":
            _bench(args)
        elif args.command == "strip":
            files = args.files
            if not files:
                book = notebooks.load_manifest()
                files = [book.notebook_path(e) for e in book.notebooks]
            done = notebooks.strip(files, check=args.check)
            sys.stdout.write(done.stdout)
            sys.stderr.write(done.stderr)
            return 1 if done.returncode else 0
    except notebooks.NotebookFailed as err:
        print(f"\nFAILED: {err}", file=sys.stderr)
        return 1
    except (UsageError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _evaluate(args: argparse.Namespace) -> None:
    import json
    import warnings

    import numpy as np
    from tqdm import tqdm

    from reactlib import data, paths
    from reactlib.metrics import emotion, evaluation

    if args.split not in data.SPLITS:
        raise UsageError(f"--split must be one of {', '.join(data.SPLITS)}, got {args.split!r}")
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"folder {args.json.parent} does not exist (writing {args.json})")
    if not args.pred.is_file():
        raise DataError(f"{args.pred}: predictions file not found")
    try:
        pred = np.load(args.pred, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{args.pred}: not a readable .npy array ({err})") from None
    cfg = config.resolve(args.profile)
    corpus = _corpus(args.data, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.NeighbourFallbackWarning)
        split = corpus.split(args.split, fallback=args.fallback)
    if split.neighbour_source.startswith("fallback"):
        print(
            f"no neighbour matrix for split {args.split!r} in {corpus.root}: appropriate "
            f"reactions use the {args.fallback!r} fallback",
            file=sys.stderr,
        )
    mapper = None
    if args.convention == "react2024" and pred.ndim == 4 and pred.shape[-1] == 58:
        mapper = emotion.emotion_map(corpus, kind=args.emotion_map)
        print(f"coefficients -> emotion: {mapper.describe()}", file=sys.stderr)

    def bar(iterable):
        return tqdm(iterable, unit="item", disable=args.quiet, leave=False, file=sys.stderr)

    result = evaluation.evaluate(
        pred,
        split,
        convention=args.convention,
        emotion_map=mapper,
        gt_through_map=args.gt_through_map,
        items=args.items,
        source=str(args.pred),
        progress=bar,
    )
    result["pred"] = str(args.pred)
    result["corpus"] = str(corpus.root)
    for name, value in result["metrics"].items():
        print(f"{name:<8} {value:.6g}")
    if result["realism_fd"] is not None:
        print(f"{'FD':<8} {result['realism_fd']:.6g}  (coefficient Frechet distance, not FVD)")
        s, g = result["smoothness"], result["smoothness_ground_truth"]
        print(f"seam jump / velocity {s['seam_ratio']:.3g} (ground truth {g['seam_ratio']:.3g})")
    print(f"convention {args.convention}, {result['space']}, neighbours: {result['neighbours']}")
    if args.json is not None:
        text = json.dumps(result, indent=2, allow_nan=True) + "\n"
        paths.write_atomically(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(f"-> {args.json}")


BENCHMARKS = ("metrics",)
"""What ``python -m reactlib bench NAME`` runs: ``benchmarks/NAME_speed.py``."""


def _bench(args: argparse.Namespace) -> None:
    import runpy

    from reactlib import paths

    script = paths.repo_root() / "benchmarks" / f"{args.name}_speed.py"
    if not script.is_file():
        raise UsageError(f"{script}: benchmark script not found (run from a ReactLab checkout)")
    saved = sys.argv
    sys.argv = [str(script), *args.options]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code:
            raise UsageError(f"bench {args.name}: invalid options {args.options}") from None
    finally:
        sys.argv = saved


def _synth(args: argparse.Namespace) -> None:
    import time

    from reactlib import data, synth

    overrides = {
        k: v for k, v in (("seed", args.seed), ("synth_videos", args.videos)) if v is not None
    }
    cfg = config.resolve(args.profile, **overrides)
    started = time.perf_counter()
    out = synth.ensure(cfg, args.out, force=args.force, anatomy=args.anatomy)
    seconds = time.perf_counter() - started
    corpus = data.Corpus(out)
    print(corpus.describe().to_string())
    spec = synth.Spec(**corpus.meta["spec"])
    print(f"SynthReact {spec.digest()} ({cfg.profile}: {spec}) in {out}: {seconds:.1f} s")


def _corpus(data_root: Path | None, cfg):
    """``--data DIR``, else ``$REACT_DATA``, else the profile's SynthReact (made if missing)."""
    from reactlib import synth

    if data_root is not None and not data_root.is_dir():
        raise DataError(f"{data_root}: data folder not found")
    return synth.open_corpus(data_root, cfg=cfg)


def _train(args: argparse.Namespace) -> None:
    from reactlib import reactdiff, runtime

    cfg = config.resolve(args.profile, **({} if args.seed is None else {"seed": args.seed}))
    corpus = _corpus(args.data, cfg).with_view(args.view)
    device = runtime.select_device(args.device)
    settings = dict(args.settings)
    if (args.on is not None) != (args.model == "posnet"):
        raise UsageError("--on CKPT goes with posnet, and posnet needs it")
    if args.model == "posnet":
        from reactlib import posnet

        if args.m < 1:
            raise UsageError(f"--m must be >= 1, got {args.m}")
        if args.view is not None:
            raise UsageError(
                "posnet learns in its generator's view; --view goes with the generator"
            )
        kind, generator, identity = _load_generator(args.on, device, raw_weights=False)
        corpus = corpus.with_view(identity["corpus"].get("view"))
        split = corpus.split("train", audio_features=identity["audio_features"])
        items = None if args.items is None else range(min(args.items, len(split)))
        print(f"generating {args.m} {kind} reactions per training speaker to learn on ...")
        reactions, _ = _split_reactions(kind, generator, split, m=args.m, items=items, seed=0)
        trained = posnet.train_model(
            cfg, reactions, source=kind, out=args.out, device=device, **settings
        )
    elif args.model == "transvae":
        from reactlib import transvae

        trained = transvae.train_model(cfg, corpus, out=args.out, device=device, **settings)
    else:
        if args.model == "diffusion":
            settings = {**reactdiff.DIFFUSION_MODEL, **settings}
        trained = reactdiff.train_model(cfg, corpus, out=args.out, device=device, **settings)
    final = trained.log.iloc[-1] if len(trained.log) else None
    loss = "" if final is None else f", final loss {final['loss']:.4f}"
    done = "trained" if trained.trained_now else "already trained"
    print(f"{done}: {trained.step} steps{loss} -> {trained.out / 'checkpoint.pt'}")


def _load_generator(ckpt: Path, device, raw_weights: bool):
    """``(kind, model, identity)`` of a generator checkpoint: Trans-VAE or ReactDiff."""
    from reactlib import reactdiff, train

    kind = train.load_checkpoint(ckpt)["identity"].get("model")
    if kind == "posnet":
        raise UsageError(f"{ckpt}: a PosNet checkpoint; pass it as --posnet with a generator's")
    if kind == "transvae":
        from reactlib import transvae

        model, identity = transvae.load(ckpt, ema=not raw_weights, device=device)
    else:
        model, identity = reactdiff.load(ckpt, ema=not raw_weights, device=device)
    return kind, model, identity


def _split_reactions(kind, model, split, *, post=None, progress=None, **options):
    """``(reactions (N, M, T, 58), how)`` of a loaded generator; ``options``: ``m``, ``seed``,
    ``items`` and, for ReactDiff, the sampler's ``steps``, ``sampler``, ``noise``,
    ``guidance``."""
    from reactlib import reactdiff

    common = {k: options.pop(k) for k in ("m", "seed", "items")}
    if kind == "transvae":  # no sampler: the latent's noise is the only randomness
        from reactlib import transvae

        pred = transvae.generate_split(model, split, post=post, progress=progress, **common)
        return pred, "Trans-VAE"
    pred = reactdiff.generate_split(model, split, post=post, progress=progress, **common, **options)
    steps, sampler = options.get("steps", 50), options.get("sampler", "sde")
    return pred, f"{sampler}, {steps} steps"


def _generate(args: argparse.Namespace) -> None:
    import numpy as np
    from tqdm import tqdm

    from reactlib import data, paths, posnet, runtime

    if args.m < 1 or args.steps < 1:
        raise UsageError(f"--m and --steps must be >= 1, got {args.m} and {args.steps}")
    if args.split not in data.SPLITS:
        raise UsageError(f"--split must be one of {', '.join(data.SPLITS)}, got {args.split!r}")
    if not args.out.parent.is_dir():
        raise UsageError(f"folder {args.out.parent} does not exist (writing {args.out})")
    if args.posnet is not None and args.seam_fix != "none":
        raise UsageError("--posnet and --seam-fix are two fixes; choose one")
    device = runtime.select_device(args.device)
    kind, model, identity = _load_generator(args.ckpt, device, args.raw_weights)
    if args.posnet is not None:
        smoother, _ = posnet.load(args.posnet, ema=not args.raw_weights, device=device)
        post = posnet.make_fix("posnet", smoother)
    else:
        post = posnet.make_fix(args.seam_fix)
    cfg = config.resolve(identity["profile"])
    corpus = _corpus(args.data, cfg).with_view(identity["corpus"].get("view"))
    split = corpus.split(args.split, audio_features=identity["audio_features"])
    if split.audio_dim != model.config.audio_dim:
        raise DataError(
            f"{corpus.root}: {identity['audio_features']} audio features are {split.audio_dim}-d, "
            f"the checkpoint {args.ckpt} was trained on {model.config.audio_dim}-d ones"
        )
    items = None if args.items is None else range(min(args.items, len(split)))

    def bar(iterable):
        return tqdm(iterable, unit="chunk", disable=args.quiet, leave=False, file=sys.stderr)

    options = dict(m=args.m, seed=args.seed, items=items)
    if kind != "transvae":
        options.update(
            steps=args.steps, sampler=args.sampler, noise=args.noise, guidance=args.guidance
        )
    pred, how = _split_reactions(kind, model, split, post=post, progress=bar, **options)
    if args.posnet is not None:
        how += ", PosNet"
    elif args.seam_fix != "none":
        how += f", {args.seam_fix} seam fix"
    paths.write_atomically(args.out, lambda tmp: np.save(tmp, pred))
    print(f"{pred.shape} reactions ({how}) -> {args.out}")


def _pfl_crop(args: argparse.Namespace) -> int:
    """Options are checked first (exit 2); problems with the video itself exit 1."""
    import numpy as np
    from tqdm import tqdm

    from reactlib import detect, pfl

    if len(args.omega) not in (1, 2):
        raise UsageError(f"--omega takes one value or two (W H), got {len(args.omega)}")
    omega = args.omega[0] if len(args.omega) == 1 else tuple(args.omega)
    try:
        pfl.check_crop_options(
            args.mode, args.size, omega, args.padding, args.extent, args.margin, args.smooth, "--"
        )
        if args.detector == "haar":
            if args.boxes is not None:
                raise UsageError("--boxes goes with --detector oracle")
            det = detect.HaarDetector(args.scale_factor, args.min_neighbors, args.min_size)
    except ValueError as err:  # the options themselves are wrong, whatever raised it
        raise UsageError(str(err)) from err
    if args.detector == "oracle" and args.boxes is not None:
        try:
            det = detect.OracleDetector(np.load(args.boxes), source=str(args.boxes))
        except (OSError, ValueError) as err:  # np.load raises ValueError for a non-array file
            raise DataError(f"{args.boxes}: not usable as oracle boxes ({err})") from err
    elif args.detector == "oracle":
        det = detect.OracleDetector.for_synth_video(args.input)
    if not args.output.parent.is_dir():
        raise UsageError(f"folder {args.output.parent} does not exist (writing {args.output})")

    def bar(iterable):
        return tqdm(iterable, unit="frame", disable=args.quiet, leave=False, file=sys.stderr)

    try:
        rep = pfl.crop_video(
            args.input,
            args.output,
            args.mode,
            det,
            args.size,
            omega=omega,
            padding=args.padding,
            extent=args.extent,
            margin=args.margin,
            smooth=args.smooth,
            report=args.report,
            progress=bar,
        )
    except (DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        if args.report is not None and args.report.exists():
            print(f"report: {args.report}", file=sys.stderr)
        return 1
    d = rep.detections
    print(
        f"{rep.mode} crop of {rep.source}: {rep.frames} frames {rep.frame_size[1]}x"
        f"{rep.frame_size[0]} -> {args.output} ({rep.size}x{rep.size})"
    )
    print(f"faces found in {d['found']}/{d['frames']} frames ({d['missed']} missed)")
    if rep.mode == "pfl":
        w = rep.window
        print(f"window: centre ({w['x']:.1f}, {w['y']:.1f}), {w['w']:.0f}x{w['h']:.0f} px")
    for warning in rep.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{rep.seconds['frames_per_second']:.1f} frames/s ({rep.seconds['total']:.2f} s)")
    if args.report is not None:
        print(f"report: {args.report}")
    return 0
