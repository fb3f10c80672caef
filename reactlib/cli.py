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
    trainer.add_argument("model", choices=("reactdiff",))
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
    gen.add_argument("--out", type=Path, required=True, metavar="PRED.npy")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

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
    corpus = _corpus(args.data, cfg)
    device = runtime.select_device(args.device)
    trained = reactdiff.train_model(cfg, corpus, out=args.out, device=device, **dict(args.settings))
    final = trained.log.iloc[-1] if len(trained.log) else None
    loss = "" if final is None else f", final loss {final['loss']:.4f}"
    done = "trained" if trained.trained_now else "already trained"
    print(f"{done}: {trained.step} steps{loss} -> {trained.out / 'checkpoint.pt'}")


def _generate(args: argparse.Namespace) -> None:
    import numpy as np
    from tqdm import tqdm

    from reactlib import data, paths, reactdiff, runtime

    if args.m < 1 or args.steps < 1:
        raise UsageError(f"--m and --steps must be >= 1, got {args.m} and {args.steps}")
    if args.split not in data.SPLITS:
        raise UsageError(f"--split must be one of {', '.join(data.SPLITS)}, got {args.split!r}")
    if not args.out.parent.is_dir():
        raise UsageError(f"folder {args.out.parent} does not exist (writing {args.out})")
    device = runtime.select_device(args.device)
    model, identity = reactdiff.load(args.ckpt, ema=not args.raw_weights, device=device)
    cfg = config.resolve(identity["profile"])
    corpus = _corpus(args.data, cfg)
    split = corpus.split(args.split, audio_features=identity["audio_features"])
    if split.audio_dim != model.config.audio_dim:
        raise DataError(
            f"{corpus.root}: {identity['audio_features']} audio features are {split.audio_dim}-d, "
            f"the checkpoint {args.ckpt} was trained on {model.config.audio_dim}-d ones"
        )
    items = None if args.items is None else range(min(args.items, len(split)))

    def bar(iterable):
        return tqdm(iterable, unit="chunk", disable=args.quiet, leave=False, file=sys.stderr)

    pred = reactdiff.generate_split(
        model,
        split,
        m=args.m,
        seed=args.seed,
        items=items,
        steps=args.steps,
        sampler=args.sampler,
        noise=args.noise,
        guidance=args.guidance,
        progress=bar,
    )
    paths.write_atomically(args.out, lambda tmp: np.save(tmp, pred))
    print(f"{pred.shape} reactions ({args.sampler}, {args.steps} steps) -> {args.out}")


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
