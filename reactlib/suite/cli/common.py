"""What several verbs share: ``--set KEY=VALUE`` settings, the progress bar, the corpus a verb
reads."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from reactlib.errors import DataError


def setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is read as a literal when it is one (``100``, ``1e-3``, ``None``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def add_settings(parser: argparse.ArgumentParser, text: str) -> None:
    """The repeatable ``--set KEY=VALUE`` option, collected into ``args.settings``."""
    parser.add_argument(
        "--set",
        dest="settings",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=text,
    )


def bar(args: argparse.Namespace, unit: str):
    """The verb's progress bar: tqdm on standard error, gone when done, off with ``--quiet``."""

    def wrap(iterable):
        quiet = getattr(args, "quiet", False)
        return tqdm(iterable, unit=unit, disable=quiet, leave=False, file=sys.stderr)

    return wrap


def open_corpus(data_root: Path | None, cfg):
    """``--data DIR``, else ``$REACT_DATA``, else the profile's SynthReact (made if missing)."""
    from reactlib.data import corpus  # numpy and OpenCV: only when a verb reads data

    if data_root is not None and not data_root.is_dir():
        raise DataError(f"{data_root}: data folder not found")
    return corpus.open_corpus(data_root, cfg=cfg)
