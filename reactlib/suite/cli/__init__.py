"""``python -m reactlib <command>``: the suite's command line, one parser per verb.

- notebooks (:mod:`~reactlib.suite.cli.notebooks`): ``run``, ``student``, ``golden``, ``strip``;
- data (:mod:`~reactlib.suite.cli.data`): ``synth``, ``pfl-crop``;
- models (:mod:`~reactlib.suite.cli.models`): ``train``, ``generate``;
- scores (:mod:`~reactlib.suite.cli.scores`): ``evaluate``, ``bench``, ``results``.

Exit status: 0 on success; 1 when a notebook fails or an input file cannot be used
(:class:`~reactlib.errors.DataError`, a missing file), with the file and the problem named; 2 for a
usage or configuration error (:class:`~reactlib.errors.UsageError`, argparse). Any other exception
is a bug and comes with its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reactlib.errors import DataError, UsageError
from reactlib.suite import runner
from reactlib.suite.cli import data, models, notebooks, scores

VERBS = (*notebooks.VERBS, *data.VERBS, *models.VERBS, *scores.VERBS)
"""Each verb's parser builder, in the order ``--help`` lists them."""


def parser() -> argparse.ArgumentParser:
    """The command line: one sub-parser per verb, each with its handler."""
    top = argparse.ArgumentParser(prog="python -m reactlib", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for add in VERBS:
        add(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.handler(args)
    except runner.NotebookFailed as err:
        print(f"\nFAILED: {err}", file=sys.stderr)
        return 1
    except (UsageError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return code or 0
