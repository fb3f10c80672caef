"""Result files with provenance: ``metrics.json`` and CSV tables.

Every notebook ends with ``rl.results.save(notebook, cfg, metrics, tables=..., timer=...)``. The
JSON records what produced the numbers: profile, resolved configuration, seed, git commit (and
whether the tree had uncommitted changes), package versions, device and wall times, so a figure
in the README can always be traced to a run. JSON has no NaN: non-finite floats are stored as
``null`` and their paths listed under ``nonfinite`` (``loss[3]`` for a metric, ``config.x`` for a
setting), never silently dropped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactlib import paths
from reactlib.runtime import Timer, describe_device, select_device

if TYPE_CHECKING:
    import pandas as pd

    from reactlib.config import Config

SCHEMA_VERSION = 1

METRICS_FILE = "metrics.json"

TRACKED_PACKAGES = (
    "reactlib",
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "opencv-python-headless",
    "imageio-ffmpeg",
    "papermill",
)

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""Notebook and table names become file and folder names: no separators, no leading dot."""

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ReactLab metrics.json",
    "type": "object",
    "required": [
        "schema_version",
        "notebook",
        "created",
        "profile",
        "config",
        "seed",
        "git",
        "versions",
        "device",
        "wall_times",
        "metrics",
        "nonfinite",
        "tables",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "notebook": {"type": "string", "minLength": 1},
        "created": {"type": "string", "format": "date-time"},
        "profile": {"enum": ["ci", "lab", "full"]},
        "config": {"type": "object", "required": ["profile", "seed", "device"]},
        "seed": {"type": "integer", "minimum": 0},
        "git": {
            "type": "object",
            "required": ["commit", "dirty"],
            "additionalProperties": False,
            "properties": {
                "commit": {"type": ["string", "null"], "pattern": "^[0-9a-f]{40}$"},
                "dirty": {"type": ["boolean", "null"]},
            },
        },
        "versions": {
            "type": "object",
            "required": ["python", "platform", *TRACKED_PACKAGES],
            "additionalProperties": {"type": ["string", "null"]},
        },
        "device": {"type": "string", "minLength": 1},
        "wall_times": {
            "type": "object",
            "required": ["total"],
            "additionalProperties": {"type": "number", "minimum": 0},
        },
        "metrics": {"type": "object"},
        "nonfinite": {"type": "array", "items": {"type": "string"}},
        "tables": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": r"^[^/\\]+\.csv$"},
        },
        "table_sha256": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
    },
}


def validate(doc: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing every way ``doc`` departs from :data:`SCHEMA`."""
    import jsonschema  # imported here: it costs about 2 s, which `python -m reactlib` need not pay

    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
        ]
        raise ValueError("metrics document does not follow the schema:\n" + "\n".join(lines))


def git_state(root: Path | None = None) -> dict[str, Any]:
    """The checkout's commit and whether tracked files differ from it (None when unknown)."""
    try:
        where = ["git", "-C", str(root or paths.repo_root())]
        commit = subprocess.run(
            [*where, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            [*where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError, FileNotFoundError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _cpu_model() -> str:
    """The processor's marketing name (Linux: /proc/cpuinfo), else what the platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def machine() -> dict[str, Any]:
    """What a timing ran on: CPU model, logical cores (all of them, and those this process may
    use), total memory in bytes (None where unknown), the operating system, and the 1, 5 and
    15 minute load averages when asked (None where unknown): on a shared machine they say how
    busy it was."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(terse=True),
        "load_average": load,
    }


def thread_settings() -> dict[str, Any]:
    """Thread counts in force now: torch's intra-op threads and OpenCV's (for whichever of the
    two is loaded, else None) and the thread-pool environment variables."""
    torch_module, cv2_module = sys.modules.get("torch"), sys.modules.get("cv2")
    return {
        "torch": torch_module.get_num_threads() if torch_module else None,
        "opencv": cv2_module.getNumThreads() if cv2_module else None,
        "env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
    }


def benchmark_provenance() -> dict[str, Any]:
    """Where a benchmark figure came from, for the JSON it is written to: the time, the git
    commit and whether tracked files differed from it, the exact command line
    (``sys.orig_argv``), :func:`machine`, :func:`thread_settings` and the package versions
    (the same ones ``metrics.json`` records)."""
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "command": shlex.join(sys.orig_argv),
        "machine": machine(),
        "threads": thread_settings(),
        "versions": package_versions(),
    }


def _jsonable(value: Any, where: str, nonfinite: list[str]) -> Any:
    """Plain JSON types from numbers, arrays, tensors and nested containers."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        nonfinite.append(where)
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"metric keys must be strings; {where or 'metrics'} has {key!r}")
            out[key] = _jsonable(item, f"{where}.{key}" if where else key, nonfinite)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(item, f"{where}[{i}]", nonfinite) for i, item in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        data = value.detach().cpu().tolist() if hasattr(value, "detach") else value.tolist()
        return _jsonable(data, where, nonfinite)
    raise TypeError(
        f"metric {where!r} has a value of type {type(value).__name__} that JSON cannot hold"
    )


def default_results_dir(notebook: str, cfg: Config) -> Path:
    return Path(cfg.results_dir) if cfg.results_dir else paths.runs_dir(cfg.profile) / notebook


def save(
    notebook: str,
    cfg: Config,
    metrics: Mapping[str, Any],
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    timer: Timer | None = None,
    results_dir: str | Path | None = None,
) -> Path:
    """Write ``metrics.json`` (and one CSV per table) and return the path of ``metrics.json``.

    The folder is ``results_dir``, else ``cfg.results_dir``, else ``runs/<profile>/<notebook>/``.
    Each file is written to a temporary name and renamed, tables first and ``metrics.json`` last,
    so a ``metrics.json`` on disk always describes complete tables.
    """
    for kind, name in (("notebook", notebook), *(("table", t) for t in tables or {})):
        if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
            raise ValueError(
                f"{kind} name {name!r} must be a plain file name (letters, digits, _.-)"
            )
    out = Path(results_dir) if results_dir else default_results_dir(notebook, cfg)
    out.mkdir(parents=True, exist_ok=True)
    nonfinite: list[str] = []
    doc = {
        "schema_version": SCHEMA_VERSION,
        "notebook": notebook,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "profile": cfg.profile,
        "config": _jsonable(cfg.as_dict(), "config", nonfinite),
        "seed": cfg.seed,
        "git": git_state(),
        "versions": package_versions(),
        "device": describe_device(select_device(cfg.device)),
        "wall_times": timer.as_dict() if timer else {"total": 0.0},
        "metrics": _jsonable(dict(metrics), "", nonfinite),
        "nonfinite": nonfinite,
        "tables": {name: f"{name}.csv" for name in tables or {}},
    }
    validate(doc)  # before anything is written
    digests = {}
    for name, frame in (tables or {}).items():
        keep_index = frame.index.name is not None or frame.index.nlevels > 1
        written = paths.write_atomically(
            out / doc["tables"][name], partial(frame.to_csv, index=keep_index)
        )
        digests[name] = file_sha256(written)
    if digests:  # so a copied table can be checked against what the run wrote
        doc["table_sha256"] = digests
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    target = out / METRICS_FILE
    paths.write_atomically(target, lambda p: p.write_text(text, encoding="utf-8"))
    return target


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``metrics.json`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such metrics file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    try:
        validate(doc)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return doc
