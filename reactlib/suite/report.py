"""``results/README.md``: every measured figure the repository holds, on one generated page.

The page is written from the committed files alone: each notebook run's ``metrics.json`` under
``results/<profile>/<notebook>/`` and each benchmark's JSON under ``benchmarks/results/``. Every
section says where its figures come from (profile, commit, date, machine) and the command that
measures them again. :func:`render` is deterministic (no clock, no machine state), so a test can
compare the committed page with what the committed results give and fail when it is stale;
``python -m reactlib results`` rewrites it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REPORT = Path("results") / "README.md"
"""The page, relative to the checkout."""
RESULTS = Path("results")
BENCHMARKS = Path("benchmarks") / "results"
LIST_SHOWN = 6
"""Items of a list shown before it is cut short."""


def _number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        shown = ", ".join(_value(v) for v in value[:LIST_SHOWN])
        more = f", ... ({len(value)} values)" if len(value) > LIST_SHOWN else ""
        return f"[{shown}{more}]"
    return str(value).replace("|", "\\|").replace("\n", " ")


def flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``[(key path, leaf value)]`` of nested dicts in their order, paths joined with ``/``."""
    if isinstance(tree, dict):
        rows = []
        for key, value in tree.items():
            rows += flatten(value, f"{prefix}/{key}" if prefix else str(key))
        return rows
    return [(prefix, tree)]


def _folded(tree: Any) -> list[str]:
    """Every figure of ``tree`` as a two-column table, folded under a summary line."""
    rows = flatten(tree)
    count = f"{len(rows)} figure" + ("" if len(rows) == 1 else "s")
    table = [f"| `{key}` | {_value(value)} |" for key, value in rows]
    return [f"<details><summary>{count}</summary>", "", "| figure | value |", "|---|---|",
            *table, "", "</details>", ""]  # fmt: skip


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f", {seconds / 60:.1f} min"


def _notebook_section(path: Path, root: Path) -> list[str]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    git = doc.get("git", {})
    commit = (git.get("commit") or "unknown")[:7] + (" (dirty tree)" if git.get("dirty") else "")
    profile, notebook = doc.get("profile", "?"), doc.get("notebook", path.parent.name)
    wall = doc.get("wall_times", {}).get("total")
    number = notebook.split("_", 1)[0]
    lines = [
        f"### {profile} / {notebook}",
        "",
        f"Commit {commit}, {doc.get('created', '?')[:10]}, {doc.get('device', '?')}"
        f"{_minutes(wall)}. Re-run: `python -m reactlib run --profile {profile} --only {number}`.",
        "",
    ]
    tables = doc.get("tables") or {}
    hashes = doc.get("table_sha256") or {}
    if tables:
        listed = []
        for key, name in tables.items():
            link = (path.parent / name).relative_to(root / RESULTS).as_posix()
            sha = f" (sha256 {hashes[key][:12]})" if key in hashes else ""
            listed.append(f"[{name}]({link}){sha}")
        lines += ["Tables: " + ", ".join(listed) + ".", ""]
    return lines + _folded(doc.get("metrics", {}))


def _benchmark_section(path: Path) -> list[str]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    prov = doc.get("provenance", {})
    git = prov.get("git", {})
    commit = (git.get("commit") or "unknown")[:7] + (" (dirty tree)" if git.get("dirty") else "")
    machine = prov.get("machine", {})
    load = machine.get("load_average")
    load_text = "" if not load else f", load average {', '.join(f'{x:.2f}' for x in load)}"
    cores = machine.get("cores")
    where = f"{machine.get('cpu', '?')}, {cores} cores" if cores else machine.get("cpu", "?")
    command = prov.get("command") or f"python benchmarks/{path.stem}.py"
    lines = [
        f"### {doc.get('benchmark', path.stem)} (`{path.name}`)",
        "",
        f"Commit {commit}, {str(prov.get('created', '?'))[:10]}, {where}{load_text}. "
        f"Re-run: `{command}`.",
        "",
    ]
    settings = doc.get("settings")
    if settings:
        lines += ["Settings: " + ", ".join(f"{k}={_value(v)}" for k, v in settings.items()), ""]
    return lines + _folded(doc.get("figures", {}))


def render(root: str | Path) -> str:
    """The page for the checkout at ``root``, from its result and benchmark files."""
    root = Path(root)
    runs = sorted((root / RESULTS).glob("*/*/metrics.json"))
    benches = sorted((root / BENCHMARKS).glob("*.json"))
    lines = [
        "# Measured figures",
        "",
        "Generated by `python -m reactlib results` from the committed `results/*/*/metrics.json`",
        "and `benchmarks/results/*.json`; do not edit by hand (a test fails when this page and",
        "those files disagree). Each section names the profile, the commit that measured it and",
        "the command that measures it again. Paper numbers are never here: the notebooks show",
        "them beside ours, labelled as the paper's.",
        "",
        "## Notebook runs",
        "",
    ]
    profiles: dict[str, list[Path]] = {}
    for path in runs:
        profiles.setdefault(path.parent.parent.name, []).append(path)
    for profile, paths in profiles.items():
        listed = ", ".join(p.parent.name for p in paths)
        lines += [f"- `{profile}`: {listed}"]
    lines += [""]
    for path in runs:
        lines += _notebook_section(path, root)
    lines += ["## Benchmarks", ""]
    for path in benches:
        lines += _benchmark_section(path)
    return "\n".join(lines).rstrip() + "\n"
