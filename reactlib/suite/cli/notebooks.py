"""The notebook verbs: ``run`` (the suite, headless), ``student``, ``golden``, ``strip``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reactlib import config
from reactlib.suite import runner
from reactlib.suite.cli.common import add_settings


def add_run(sub) -> None:
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
    add_settings(
        run, "inject a parameter into the notebooks declaring it (repeatable): train_steps=500"
    )
    run.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    run.add_argument("--no-html", action="store_true", help="skip the HTML export")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    parameters = dict(args.settings)
    if args.seed is not None:
        parameters["seed"] = args.seed
    if args.data_root is not None:
        parameters["data_root"] = args.data_root
    runner.run_suite(
        args.profile,
        only=args.only,
        timeout=args.timeout,
        parameters=parameters,
        manifest=args.manifest,
        html=not args.no_html,
    )


def add_student(sub) -> None:
    student = sub.add_parser("student", help="write student copies with solution cells emptied")
    student.add_argument(
        "--out",
        type=Path,
        default=Path("build/student"),
        help="output folder (default: build/student)",
    )
    student.set_defaults(handler=_student)


def _student(args: argparse.Namespace) -> None:
    written = runner.student_copies(args.out)
    print(f"wrote {len(written)} student notebook(s) to {args.out}")


def add_golden(sub) -> None:
    golden = sub.add_parser(
        "golden",
        help="re-execute notebooks in place under ci and strip them (refreshes golden outputs)",
    )
    golden.add_argument("--only", nargs="+", metavar="NN")
    golden.set_defaults(handler=_golden)


def _golden(args: argparse.Namespace) -> None:
    book = runner.load_manifest()
    runner.refresh_golden(book.select(args.only), book)


def add_strip(sub) -> None:
    strip = sub.add_parser("strip", help="strip notebook outputs except golden cells")
    strip.add_argument(
        "--check", action="store_true", help="only report; exit 1 if anything would change"
    )
    strip.add_argument(
        "files", nargs="*", type=Path, help="default: every notebook in the manifest"
    )
    strip.set_defaults(handler=_strip)


def _strip(args: argparse.Namespace) -> int:
    files = args.files
    if not files:
        book = runner.load_manifest()
        files = [book.notebook_path(e) for e in book.notebooks]
    done = runner.strip(files, check=args.check)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return 1 if done.returncode else 0


VERBS = (add_run, add_student, add_golden, add_strip)
