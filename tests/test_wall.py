"""Tests for benchmarks/wall.py: a whole command timed, its status and test counts kept."""

from __future__ import annotations

import importlib.util
import json
import sys

from reactlib import paths


def _load(name: str):
    folder = paths.repo_root() / "benchmarks"
    sys.path.insert(0, str(folder))  # wall.py imports its sibling harness.py
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


wall = _load("wall")


def test_summary_counts_reads_every_runner_line():
    out = (
        "collected 5\n...\n=== 3 passed, 1 skipped, 2 warnings in 4.20s ===\n"
        "rendered 2 passed frames\n"  # not a closing line: no duration
        "=== 1 failed, 2 passed, 1 error in 1.0s ===\n"
    )
    assert wall.summary_counts(out) == [
        {"passed": 3, "skipped": 1, "warning": 2},
        {"failed": 1, "passed": 2, "error": 1},
    ]
    assert wall.summary_counts("nothing to see\n") == []


def test_wall_times_a_command_and_keeps_its_exit_status(tmp_path, capsys):
    code = "import sys; print('7 passed, 1 failed in 0.1s'); sys.exit(3)"
    status = wall.main(["demo", "--results-dir", str(tmp_path), "--", sys.executable, "-c", code])
    assert status == 3
    doc = json.loads((tmp_path / "demo.json").read_text())
    figures = doc["figures"]
    assert figures["exit_status"] == 3 and figures["wall_seconds"] >= 0
    assert figures["test_runs"] == [{"passed": 7, "failed": 1}]
    assert doc["settings"]["command"][-1] == code
    assert {"git", "command", "machine", "versions"} <= set(doc["provenance"])
    assert "7 passed" in capsys.readouterr().out
