"""The notebook suite: its manifest, the headless runner, student copies and golden outputs.

``python -m reactlib run`` (behind ``make run``) executes the notebooks listed in
``notebooks/manifest.yaml`` in order, in this one process, each in a fresh ``python3`` kernel
started in the notebook's own folder, with papermill injecting the profile and the results
folder. Each executed notebook lands in ``runs/<profile>/`` with its HTML export next to it and
its ``metrics.json`` in ``runs/<profile>/<notebook>/``; a summary table closes the run. The
first failure stops the run with the notebook, the cell and the error named.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reactlib import config, paths
from reactlib.errors import DataError, UsageError
from reactlib.suite import results

KERNEL_NAME = "python3"

NOTEBOOK_NAME = re.compile(r"^(?P<number>\d\d)_[a-z0-9_]+\.ipynb$")

SOLUTION_TAG = "solution"
GOLDEN_TAGS = ("keep_output", "nbval-check-output")
"""A golden cell carries both: nbstripout keeps its output, nbval --nbval-lax compares it."""

STRIP_ARGS = (
    "--keep-count",
    "--extra-keys",
    " ".join(
        (
            "metadata.papermill",
            "metadata.language_info.version",
            "cell.metadata.papermill",
            "cell.metadata.execution",
            "cell.metadata.ExecuteTime",
        )
    ),
)
"""The one strip policy: outputs go except in ``keep_output`` cells; counts stay for nbval."""

STUDENT_STUB = "# Your solution here: write it, then run the check cell below.\n"

_ENTRY_KEYS = {"file", "title", "profiles", "minutes", "cell_timeout_s"}


class ManifestError(UsageError):
    """The manifest is missing, malformed or out of step with the notebooks folder."""


class NotebookFailed(RuntimeError):
    """A notebook raised, timed out, lost its kernel or wrote no valid ``metrics.json``."""


@dataclass(frozen=True)
class NotebookEntry:
    """One notebook as the manifest lists it."""

    file: str
    title: str
    profiles: tuple[str, ...]
    minutes: Mapping[str, float]
    """Expected wall minutes per profile on the reference 2-core CPU (GPU for ``full``)."""
    cell_timeout_s: Mapping[str, int]
    """papermill's per-cell execution timeout per profile."""

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    @property
    def number(self) -> str:
        return self.file[:2]


@dataclass(frozen=True)
class Manifest:
    path: Path
    notebooks: tuple[NotebookEntry, ...]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def notebook_path(self, entry: NotebookEntry) -> Path:
        return self.directory / entry.file

    def select(self, only: Sequence[str] | None = None) -> list[NotebookEntry]:
        """All notebooks, or those named in ``only`` by number (``00``), stem or file name."""
        if not only:
            return list(self.notebooks)
        chosen = []
        for wanted in only:
            key = wanted.removesuffix(".ipynb")
            hits = [e for e in self.notebooks if key in (e.number, e.stem)]
            if not hits:
                listed = ", ".join(e.stem for e in self.notebooks)
                raise ManifestError(
                    f"--only {wanted!r} matches no notebook in {self.path}; listed: {listed}"
                )
            chosen.extend(h for h in hits if h not in chosen)
        return sorted(chosen, key=self.notebooks.index)

    def expected_minutes(self, profile: str) -> float:
        return sum(e.minutes.get(profile, 0.0) for e in self.notebooks if profile in e.profiles)

    def table(self) -> list[dict[str, Any]]:
        """One row per notebook: name, title and expected minutes per profile (None: not run)."""
        return [
            {
                "notebook": e.stem,
                "title": e.title,
                **{f"{p} min": e.minutes.get(p) for p in config.PROFILE_NAMES},
            }
            for e in self.notebooks
        ]


def _entry(raw: Any, where: str) -> NotebookEntry:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: each notebook entry must be a mapping, got {raw!r}")
    missing, extra = _ENTRY_KEYS - raw.keys(), raw.keys() - _ENTRY_KEYS
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(sorted(missing))}")
        if extra:
            problems.append(f"unknown {', '.join(sorted(extra))}")
        raise ManifestError(
            f"{where}: entry {raw.get('file', raw)!r}: {'; '.join(problems)} "
            f"(keys: {', '.join(sorted(_ENTRY_KEYS))})"
        )
    name = raw["file"]
    if not isinstance(name, str) or not NOTEBOOK_NAME.match(name):
        raise ManifestError(f"{where}: file {name!r} must be named NN_slug.ipynb (lower-case slug)")
    profiles = raw["profiles"]
    if (
        not isinstance(profiles, list)
        or not profiles
        or any(p not in config.PROFILE_NAMES for p in profiles)
    ):
        raise ManifestError(
            f"{where}: {name}: profiles must be a non-empty list drawn from "
            f"{', '.join(config.PROFILE_NAMES)}, got {profiles!r}"
        )
    for key in ("minutes", "cell_timeout_s"):
        table = raw[key]
        if not isinstance(table, dict) or set(table) != set(profiles):
            raise ManifestError(
                f"{where}: {name}: {key} must give a value for exactly its profiles "
                f"{profiles}, got {table!r}"
            )
        bad = {
            k: v
            for k, v in table.items()
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0
        }
        if bad:
            raise ManifestError(f"{where}: {name}: {key} values must be positive numbers: {bad}")
    return NotebookEntry(
        file=name,
        title=str(raw["title"]),
        profiles=tuple(profiles),
        minutes={k: float(v) for k, v in raw["minutes"].items()},
        cell_timeout_s={k: int(v) for k, v in raw["cell_timeout_s"].items()},
    )


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and check the manifest: entries well formed, in number order, files present."""
    path = Path(path) if path else paths.manifest_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except yaml.YAMLError as err:
        raise ManifestError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("notebooks"), list):
        raise ManifestError(f"{path}: expected a mapping with a 'notebooks' list")
    entries = tuple(_entry(item, str(path)) for item in raw["notebooks"])
    names = [e.file for e in entries]
    if len(set(names)) != len(names):
        raise ManifestError(f"{path}: a notebook is listed twice: {names}")
    if names != sorted(names):
        raise ManifestError(f"{path}: notebooks must be listed in number order: {names}")
    absent = [n for n in names if not (path.parent / n).is_file()]
    if absent:
        raise ManifestError(f"{path}: listed but not in {path.parent}: {', '.join(absent)}")
    return Manifest(path=path, notebooks=entries)


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell (literals only).

    Raises :class:`~reactlib.errors.UsageError` naming the notebook when the cell is missing or
    holds anything but ``name = literal`` lines: papermill would not recompute derived values
    after injection.
    """
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as err:  # nbformat's JSON and schema errors are ValueErrors
        raise DataError(f"{notebook}: not a readable notebook ({err})") from err
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1 or cells[0].cell_type != "code":
        raise UsageError(
            f"{notebook.name}: needs exactly one code cell tagged 'parameters', found {len(cells)}"
        )
    found: dict[str, Any] = {}
    for stmt in ast.parse(cells[0].source).body:
        name = _assigned_name(stmt)
        if name is None:
            raise UsageError(
                f"{notebook.name}: parameters cell line {stmt.lineno} is not `name = literal`"
            )
        try:
            found[name] = ast.literal_eval(stmt.value)
        except ValueError:
            raise UsageError(
                f"{notebook.name}: parameter {name!r} (line {stmt.lineno}) is not a literal; "
                "compute derived values in the next cell"
            ) from None
    return found


def _assigned_name(stmt: ast.stmt) -> str | None:
    """The name bound by ``name = value`` or ``name: type = value``; None for anything else."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        target = stmt.target
    else:
        return None
    return target.id if isinstance(target, ast.Name) else None


@dataclass
class NotebookRun:
    entry: NotebookEntry
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    output: Path | None = None
    html: Path | None = None
    metrics: Path | None = None
    message: str = ""


@dataclass
class SuiteRun:
    profile: str
    directory: Path
    runs: list[NotebookRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.runs)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _kernel_warning() -> str | None:
    """Say so when the ``python3`` kernelspec would start another interpreter than this one."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv
    except NoSuchKernel:
        return f"no Jupyter kernel named {KERNEL_NAME!r}: install ipykernel in this environment"
    executable = argv[0] if argv else ""
    if executable in {"python", "python3", f"python3.{sys.version_info.minor}"}:
        return None  # jupyter_client substitutes sys.executable for these
    if Path(executable).resolve() != Path(sys.executable).resolve():
        return (
            f"the {KERNEL_NAME!r} kernelspec starts {executable}, not {sys.executable}; notebooks "
            "may not see this environment's reactlib (remove the user-level kernelspec or "
            "run inside the project's .venv)"
        )
    return None


def _kernel_config():
    """Kernel-manager settings for every kernel the suite starts: encrypt the kernel's local
    sockets with CurveZMQ where pyzmq supports it (it also keeps ipykernel from warning about
    plain-text TCP on every start)."""
    import zmq
    from traitlets.config import Config as TraitletsConfig

    policy = "auto" if zmq.has("curve") else "disabled"
    return TraitletsConfig({"KernelManager": {"transport_encryption": policy}})


def _failed_cell(source: Path, executed: Path) -> tuple[str, str]:
    """The failing cell as (where, source); ``where`` counts cells of the source notebook."""
    import nbformat

    try:
        out = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return "an unknown cell (the executed notebook was not written)", ""
    meta = [c.get("metadata", {}).get("papermill", {}) for c in out.cells]
    failing = [i for i, m in enumerate(meta) if m.get("exception") is True]
    started = [i for i, m in enumerate(meta) if m.get("start_time")]
    index = failing[0] if failing else (started[-1] if started else None)
    if index is None:
        return "no cell (the kernel did not start)", ""
    cell = out.cells[index]
    src_cells = nbformat.read(source, as_version=4).cells
    ids = [c.get("id") for c in src_cells]
    if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
        where = "the injected parameters cell"
    elif cell.get("id") in ids:
        where = f"cell {ids.index(cell.get('id')) + 1} of {len(src_cells)}"
    else:
        where = f"cell {index + 1} of the executed notebook"
    if cell.get("execution_count") is not None:
        where += f" (In [{cell.execution_count}])"
    return where, cell.source


def _indent(text: str, limit: int = 12) -> str:
    lines = text.strip("\n").splitlines()
    shown = lines[:limit] + (
        [f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else []
    )
    return "\n".join(f"    {line}" for line in shown)


def export_html(notebook: Path, html: Path) -> Path:
    """Render an executed notebook to a standalone HTML page (images embedded)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(notebook))
    html.write_text(body, encoding="utf-8")
    return html


def _describe_failure(err: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        return f"{err.ename}: {err.evalue}"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


def _execute(
    manifest: Manifest,
    entry: NotebookEntry,
    profile: str,
    out_dir: Path,
    declared: Mapping[str, Any],
    parameters: Mapping[str, Any],
    timeout: int | None,
    progress_bar: bool,
    html: bool,
) -> NotebookRun:
    import papermill

    source = manifest.notebook_path(entry)
    output = out_dir / entry.file
    results_dir = out_dir / entry.stem
    inject = {"profile": profile, "results_dir": str(results_dir), **parameters}
    inject = {k: v for k, v in inject.items() if k in declared}
    # Nothing from an earlier run may pass for this run's output.
    for stale in (output, output.with_suffix(".html"), results_dir / results.METRICS_FILE):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    run = NotebookRun(entry, "ok", output=output)
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=inject,
            kernel_name=KERNEL_NAME,
            cwd=str(source.parent),
            execution_timeout=timeout or entry.cell_timeout_s[profile],
            progress_bar=progress_bar,
            log_output=False,
            config=_kernel_config(),
        )
    except Exception as err:  # every failure is reported with its notebook and cell
        run.status = "failed"
        where, cell_source = _failed_cell(source, output)
        run.message = f"notebook {entry.file} failed in {where}:\n    {_describe_failure(err)}" + (
            f"\n  cell source:\n{_indent(cell_source)}" if cell_source else ""
        )
    run.seconds = time.perf_counter() - start
    if run.status == "ok":
        try:
            results.load(results_dir)
            run.metrics = results_dir / results.METRICS_FILE
        except (FileNotFoundError, ValueError) as err:
            run.status = "failed"
            run.message = (
                f"notebook {entry.file} ran but left no valid metrics.json in {results_dir}: "
                f"{err}\n"
                "  (every notebook ends with rl.results.save(...))"
            )
    if html and output.is_file():
        run.html = export_html(output, output.with_suffix(".html"))
    if run.status == "failed" and output.is_file():
        run.message += f"\n  executed copy with the traceback: {output}"
    return run


def _write_summary(suite: SuiteRun) -> tuple[Path, str]:
    header = ("notebook", "status", "expected_min", "wall_s", "metrics", "html")
    rows = []
    for run in suite.runs:
        minutes = run.entry.minutes.get(suite.profile)
        rows.append(
            (
                run.entry.stem,
                run.status,
                "" if minutes is None else f"{minutes:g}",
                f"{run.seconds:.1f}" if run.status != "skipped" else "",
                str(run.metrics.relative_to(suite.directory)) if run.metrics else "",
                str(run.html.relative_to(suite.directory)) if run.html else "",
            )
        )
    path = suite.directory / "summary.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True))
        for line in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = sum(r.seconds for r in suite.runs)
    lines.append(
        f"total {total:.1f} s for {sum(r.status != 'skipped' for r in suite.runs)} notebook(s)"
    )
    table = "\n".join(lines)
    (suite.directory / "summary.md").write_text(
        f"# ReactLab run, profile `{suite.profile}`\n\n```\n{table}\n```\n", encoding="utf-8"
    )
    return path, table


def run_suite(
    profile: str | None = None,
    *,
    only: Sequence[str] | None = None,
    timeout: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    manifest: str | Path | None = None,
    html: bool = True,
    echo: Callable[[str], Any] = print,
) -> SuiteRun:
    """Execute the manifest's notebooks (or ``only`` those) under ``profile``.

    ``parameters`` are injected into the notebooks that declare them (``seed``, ``data_root``,
    overrides such as ``train_steps``); naming one that no selected notebook declares is an error.
    Raises :class:`NotebookFailed` at the first failure, after writing the summary.
    """
    cfg = config.resolve(profile)
    book = load_manifest(manifest)
    entries = book.select(only)
    parameters = dict(parameters or {})
    reserved = sorted({"profile", "results_dir"} & parameters.keys())
    if reserved:
        raise UsageError(
            f"{', '.join(reserved)} cannot be set as a parameter: the profile comes from "
            "--profile and each notebook's results folder is runs/<profile>/<notebook>/"
        )
    # Read every parameters cell once, up front: a malformed one stops the run before it starts.
    declared = {e.file: declared_parameters(book.notebook_path(e)) for e in entries}
    if parameters:
        known = set().union(*declared.values())
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise UsageError(
                f"no selected notebook has a parameter {', '.join(unknown)}; "
                f"they declare: {', '.join(sorted(known))}"
            )
    suite = SuiteRun(cfg.profile, paths.runs_dir(cfg.profile))
    suite.directory.mkdir(parents=True, exist_ok=True)
    warning = _kernel_warning()
    if warning:
        echo(f"warning: {warning}")
    echo(
        f"ReactLab: {len(entries)} notebook(s), profile {cfg.profile!r}, "
        f"writing to {suite.directory}"
    )
    with _environ(**{config.PROFILE_ENV: cfg.profile}):
        for number, entry in enumerate(entries, 1):
            label = f"[{number}/{len(entries)}] {entry.file}"
            if cfg.profile not in entry.profiles:
                suite.runs.append(NotebookRun(entry, "skipped", message=f"not for {cfg.profile}"))
                echo(f"{label}: skipped (runs under {', '.join(entry.profiles)})")
                continue
            echo(f"{label}: running (expected {entry.minutes[cfg.profile]:g} min) ...")
            run = _execute(
                book,
                entry,
                cfg.profile,
                suite.directory,
                declared[entry.file],
                parameters,
                timeout,
                progress_bar=cfg.progress,
                html=html,
            )
            suite.runs.append(run)
            echo(f"{label}: {run.status} in {run.seconds:.1f} s")
            if run.status == "failed":
                break
    summary, table = _write_summary(suite)
    echo(table)
    echo(f"summary: {summary}")
    if not suite.ok:
        raise NotebookFailed(next(r.message for r in suite.runs if r.status == "failed"))
    return suite


def student_copies(out_dir: str | Path, manifest: str | Path | None = None) -> list[Path]:
    """Write the manifest's notebooks to ``out_dir`` with every ``solution`` cell emptied."""
    import nbformat

    book = load_manifest(manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in book.notebooks:
        nb = nbformat.read(book.notebook_path(entry), as_version=4)
        for cell in nb.cells:
            if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
                cell.source = STUDENT_STUB if cell.cell_type == "code" else "*Your answer here.*"
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
        target = out_dir / entry.file
        nbformat.write(nb, target)
        written.append(target)
    return written


def strip(notebooks: Sequence[Path], check: bool = False) -> subprocess.CompletedProcess:
    """Apply :data:`STRIP_ARGS` with nbstripout; ``check`` only reports (non-zero: would change)."""
    if not notebooks:
        raise UsageError("no notebooks to strip")
    cmd = [
        sys.executable,
        "-m",
        "nbstripout",
        *STRIP_ARGS,
        *(["--verify"] if check else []),
        *map(str, notebooks),
    ]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:  # pragma: no cover - sys.executable always exists
        raise RuntimeError(f"cannot run nbstripout: {err}") from err


def refresh_golden(
    entries: Sequence[NotebookEntry], manifest: Manifest, echo: Callable[[str], Any] = print
) -> None:
    """Re-execute notebooks in place under ``ci`` from a fresh kernel, then strip them.

    This is how golden outputs are made: every code cell runs once, top to bottom, so execution
    counts are 1..N, and only ``keep_output`` cells keep what they printed.
    """
    import nbformat
    from nbclient import NotebookClient

    with (
        tempfile.TemporaryDirectory(prefix="reactlib-golden-") as scratch,
        _environ(**{config.PROFILE_ENV: "ci", paths.RUNS_DIR_ENV: scratch}),
    ):
        for entry in entries:
            path = manifest.notebook_path(entry)
            if "ci" not in entry.profiles:
                raise UsageError(
                    f"{entry.file} does not run under ci, so it cannot carry golden outputs"
                )
            nb = nbformat.read(path, as_version=4)
            echo(f"executing {entry.file} under ci ...")
            NotebookClient(
                nb,
                kernel_name=KERNEL_NAME,
                timeout=entry.cell_timeout_s["ci"],
                resources={"metadata": {"path": str(path.parent)}},
                config=_kernel_config(),
            ).execute()
            nbformat.write(nb, path)
    done = strip([manifest.notebook_path(e) for e in entries])
    if done.returncode != 0:
        raise RuntimeError(f"nbstripout failed:\n{done.stdout}{done.stderr}")
