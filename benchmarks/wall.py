"""Time one whole command and keep the figure: ``benchmarks/results/<name>.json``.

    python benchmarks/wall.py NAME [--cwd DIR] -- COMMAND [ARGS...]

runs COMMAND once (no shell; wrap it in ``bash -c '...'`` for one), streams its output through,
and writes the wall seconds, its exit status, the peak resident memory of its largest process,
and the counts of every test runner's closing line in its output (``12 passed, 1 skipped in
3.4s``), with the provenance every benchmark file carries (``harness.py``). This is
how the README's figures for ``make test``, ``bash .ci/run`` and ``make run`` are produced.

The exit status is COMMAND's, so a failed run is never mistaken for a measurement; the file is
written either way and says which.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from harness import write_results

_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|warnings?)\b")


def summary_counts(output: str) -> list[dict[str, int]]:
    """The counts of every test runner's closing line in ``output``, in order (``make test`` runs
    pytest twice: the unit tests, then the notebooks): ``[{"passed": 12, "skipped": 1}, ...]``."""
    runs = []
    for line in output.splitlines():
        found = _COUNTS.findall(line)
        if found and re.search(r"\b(passed|failed)\b", line) and re.search(r" in [\d.]+s", line):
            runs.append({kind.removesuffix("s"): int(n) for n, kind in found})  # errors -> error
    return runs


def run(command: list[str], cwd: Path | None = None) -> dict:
    """Run ``command``, echoing its output, and return what was measured."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = proc.wait()
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {
        "wall_seconds": round(seconds, 2),
        "exit_status": code,
        "peak_rss_mib_largest_process": round(peak_kib / 1024, 1),
        "test_runs": summary_counts("".join(lines)),
        "last_lines": [line.rstrip("\n") for line in lines[-5:]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], usage="%(prog)s NAME [--cwd DIR] -- COMMAND ..."
    )
    parser.add_argument("name", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--cwd", type=Path, help="run COMMAND in this folder")
    parser.add_argument("--results-dir", type=Path, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("give the command to time after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    figures = run(command, args.cwd)
    settings = {"command": command, "cwd": str(args.cwd.resolve()) if args.cwd else None}
    path = write_results(args.name, settings, figures, results_dir=args.results_dir)
    print(f"{figures['wall_seconds']:.1f} s, exit {figures['exit_status']} -> {path}")
    return figures["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
