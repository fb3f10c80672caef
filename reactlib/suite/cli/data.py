"""The data verbs: ``synth`` (write a SynthReact corpus) and ``pfl-crop`` (crop a face video)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reactlib import config
from reactlib.errors import DataError, UsageError
from reactlib.suite.cli.common import bar


def add_synth(sub) -> None:
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

    synth.set_defaults(handler=_synth)


def _synth(args: argparse.Namespace) -> None:
    import time

    from reactlib.data import corpus, synth  # numpy, SciPy and OpenCV: only when the verb runs

    overrides = {
        k: v for k, v in (("seed", args.seed), ("synth_videos", args.videos)) if v is not None
    }
    cfg = config.resolve(args.profile, **overrides)
    started = time.perf_counter()
    out = synth.ensure(cfg, args.out, force=args.force, anatomy=args.anatomy)
    seconds = time.perf_counter() - started
    made = corpus.Corpus(out)
    print(made.describe().to_string())
    spec = synth.Spec(**made.meta["spec"])
    print(f"SynthReact {spec.digest()} ({cfg.profile}: {spec}) in {out}: {seconds:.1f} s")


def add_pfl_crop(sub) -> None:
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
    crop.set_defaults(handler=_pfl_crop)


def _pfl_crop(args: argparse.Namespace) -> int:
    """Options are checked first (exit 2); problems with the video itself exit 1."""
    import numpy as np

    from reactlib.face import detect, pfl  # OpenCV: only when the verb runs

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
        from reactlib.data import synth  # the corpus the video belongs to: only when asked

        det = synth.oracle_detector(args.input)
    if not args.output.parent.is_dir():
        raise UsageError(f"folder {args.output.parent} does not exist (writing {args.output})")

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
            progress=bar(args, "frame"),
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


VERBS = (add_synth, add_pfl_crop)
