"""``python -m reactlib <command>``: the suite's command line.

Exit status: 0 on success, 1 when a notebook fails, 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reactlib import config


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
    run.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="inject a parameter into the notebooks declaring it (repeatable): train_steps=500",
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
    synth.add_argument("--out", type=Path, help="output folder (default: data/synth/<digest>)")
    synth.add_argument("--seed", type=int, help="seed (default: the profile's, 0)")
    synth.add_argument(
        "--videos", type=int, metavar="N", help="how many sessions to render to mp4 (the first N)"
    )
    synth.add_argument("--force", action="store_true", help="regenerate even if DIR is current")

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
    except (
        config.ConfigError,
        notebooks.ManifestError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _synth(args: argparse.Namespace) -> None:
    import time

    from reactlib import data, synth

    overrides = {
        k: v for k, v in (("seed", args.seed), ("synth_videos", args.videos)) if v is not None
    }
    cfg = config.resolve(args.profile, **overrides)
    started = time.perf_counter()
    out = synth.ensure(cfg, args.out, force=args.force)
    seconds = time.perf_counter() - started
    corpus = data.Corpus(out)
    print(corpus.describe().to_string())
    spec = synth.Spec(**corpus.meta["spec"])
    print(f"SynthReact {spec.digest()} ({cfg.profile}: {spec}) in {out}: {seconds:.1f} s")
