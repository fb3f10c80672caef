"""The committed notebooks follow the suite's conventions (ARCHITECTURE.md section 5).

These run on the files in git, without executing them; execution is nbval's job (`make nbval`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from reactlib import config, paths
from reactlib.suite import runner as notebooks

ROOT = paths.repo_root()
NOTEBOOK_DIR = ROOT / "notebooks"
MANIFEST = notebooks.load_manifest()
NOTEBOOKS = [MANIFEST.notebook_path(e) for e in MANIFEST.notebooks]
REQUIRED_PARAMETERS = {
    "profile": None,
    "seed": 0,
    "device": "auto",
    "data_root": None,
    "results_dir": None,
}


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_notebook_is_in_the_manifest_and_vice_versa():
    on_disk = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    listed = sorted(e.file for e in MANIFEST.notebooks)
    assert on_disk == listed, (
        f"not in manifest: {sorted(set(on_disk) - set(listed))}; "
        f"listed but missing: {sorted(set(listed) - set(on_disk))}"
    )


PLACEHOLDER = re.compile(r"\[\s*(lab|ci|full)\s*(:|\]|\.\.\.)|\bTODO\b|\bTBD\b|\bXXX\b")
"""Draft markers: "[lab: ...]", "[ci]", TODO. A notebook's text states what its run computes."""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_text_holds_a_placeholder(path):
    found = [
        (index, match.group(0))
        for index, cell in enumerate(_read(path).cells)
        if cell.cell_type == "markdown"
        for match in PLACEHOLDER.finditer(cell.source)
    ]
    assert found == [], f"{path.name}: placeholders in markdown cells (cell, text): {found}"


def test_the_placeholder_scan_finds_a_draft():
    assert PLACEHOLDER.search("FRSyn is 49 [ci: 9 of 9; lab: ...]")
    assert PLACEHOLDER.search("[lab: whether ReactDiff beats it]")
    assert not PLACEHOLDER.search("see [the lab budget](#the-lab-budget), `ITEMS[cfg.profile]`")


def test_ci_profile_fits_its_budget():
    budget = config.PROFILES["ci"]["budget_minutes"]
    assert MANIFEST.expected_minutes("ci") <= budget


def test_lab_profile_fits_its_budget():
    budget = config.PROFILES["lab"]["budget_minutes"]
    assert MANIFEST.expected_minutes("lab") <= budget


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
class TestConventions:
    def test_first_cell_is_the_title_with_objectives_prerequisites_and_times(self, path):
        first = _read(path).cells[0]
        assert first.cell_type == "markdown"
        number = path.name[:2]
        assert re.match(rf"# {number} · \S", first.source), "title line: '# NN · Title'"
        for heading in ("objectives", "Prerequisites", "Expected run time"):
            assert heading.lower() in first.source.lower(), f"title cell lacks {heading!r}"
        entry = next(e for e in MANIFEST.notebooks if e.file == path.name)
        for profile in entry.profiles:
            assert f"`{profile}`" in first.source, f"no expected time for {profile}"

    def test_second_cell_is_the_parameters_cell_with_literals_only(self, path):
        cell = _read(path).cells[1]
        assert cell.cell_type == "code" and "parameters" in _tags(cell)
        declared = notebooks.declared_parameters(path)  # raises on anything but name = literal
        for name, default in REQUIRED_PARAMETERS.items():
            assert name in declared, f"parameters cell lacks {name!r}"
            assert declared[name] == default, f"{name} should default to {default!r}"
        others = {k: v for k, v in declared.items() if k not in REQUIRED_PARAMETERS}
        assert all(v is None for v in others.values()), f"overrides default to None: {others}"

    def test_third_cell_resolves_the_configuration_and_is_not_compared(self, path):
        cell = _read(path).cells[2]
        assert cell.cell_type == "code"
        assert "import reactlib as rl" in cell.source
        assert "rl.config.resolve(" in cell.source
        assert "rl.runtime.seed_everything(" in cell.source
        assert "nbval-ignore-output" in _tags(cell)

    def test_only_golden_cells_keep_outputs(self, path):
        nb = _read(path)
        for index, cell in enumerate(_code_cells(nb)):
            golden = all(tag in _tags(cell) for tag in notebooks.GOLDEN_TAGS)
            if cell.outputs:
                assert golden, f"code cell {index + 1} has outputs but is not a tagged golden cell"
            if "keep_output" in _tags(cell) or "nbval-check-output" in _tags(cell):
                assert golden, (
                    f"code cell {index + 1}: golden cells carry both {notebooks.GOLDEN_TAGS}"
                )
                assert cell.outputs, f"golden code cell {index + 1} has no stored output"
        assert any(all(t in _tags(c) for t in notebooks.GOLDEN_TAGS) for c in nb.cells), (
            "each notebook has at least one golden cell"
        )

    def test_execution_counts_are_one_to_n(self, path):
        cells = _code_cells(_read(path))
        assert all(c.source.strip() for c in cells), "no empty code cells"
        counts = [c.execution_count for c in cells]
        assert counts == list(range(1, len(cells) + 1)), (
            f"execution counts {counts}: run the notebook top to bottom once (make golden)"
        )

    def test_no_volatile_metadata(self, path):
        nb = _read(path)
        assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
        assert nb.metadata.kernelspec.name == notebooks.KERNEL_NAME
        for cell in nb.cells:
            assert "papermill" not in cell.metadata and "execution" not in cell.metadata

    def test_is_stripped_by_the_suite_policy(self, path):
        done = notebooks.strip([path], check=True)
        assert done.returncode == 0, f"`make strip` would change {path.name}: {done.stdout}"

    def test_no_installs_path_hacks_or_bare_cuda(self, path):
        for cell in _code_cells(_read(path)):
            src = cell.source
            assert not re.search(r"^\s*[!%]\s*pip", src, re.M), "no pip installs in notebooks"
            assert "sys.path" not in src, "no sys.path hacks: reactlib is installed"
            assert ".cuda()" not in src, "use rl.runtime.select_device, never .cuda()"

    def test_ends_by_saving_results(self, path):
        sources = "\n".join(c.source for c in _code_cells(_read(path)))
        assert f'rl.results.save(\n    "{path.stem}"' in sources or (
            f'rl.results.save("{path.stem}"' in sources
        ), "the notebook saves its metrics under its own name"

    def test_exercises_have_a_check_after_each_solution(self, path):
        cells = _read(path).cells
        solutions = [i for i, c in enumerate(cells) if notebooks.SOLUTION_TAG in _tags(c)]
        assert solutions, "each notebook has at least one exercise"
        for i in solutions:
            after = cells[i + 1] if i + 1 < len(cells) else None
            assert after is not None and after.cell_type == "code", "a check cell follows"
            assert "assert" in after.source and notebooks.SOLUTION_TAG not in _tags(after)

    def test_code_cells_parse(self, path):
        for cell in _code_cells(_read(path)):
            ast.parse(cell.source)


# --- the sanitize file -------------------------------------------------------------------------

SANITIZE = get_sanitize_patterns((NOTEBOOK_DIR / "sanitize.cfg").read_text(encoding="utf-8"))


def _sanitize(text: str) -> str:
    """What nbval does to both outputs before comparing them."""
    for regex, replace in SANITIZE:
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # addresses
        (
            "<matplotlib.lines.Line2D at 0x7f3a2c1d0e50>",
            "<matplotlib.lines.Line2D at 0x7f00deadbeef>",
        ),
        ("<Foo object at 0x7fabc0001234>", "<Foo object at 0x55d1e2f3a4b5>"),
        ("id 0x7f3a2c1d0e50", "id 0x55d1e2f3a4b5"),
        # timings
        ("trained in 12.3 s", "trained in 4.56 s"),
        ("step took 87 ms", "step took 112 ms"),
        ("expected 1.5 min", "expected 2 min"),
        ("started 2026-11-21T20:20:18+00:00", "started 2027-01-02T03:04:05+00:00"),
        ("at 12:34:56", "at 01:02:03"),
        ("100%|##| 20/20 [00:01<00:00, 13.37it/s]", "100%|##| 20/20 [00:03<00:00,  6.10it/s]"),
        # rates
        ("106.4 GFLOP/s", "87.25 GFLOP/s"),
        ("310 fps", "1024 fps"),
        ("5.2 steps/s", "11 steps/s"),
        ("3.1 s/it", "0.4 s/it"),
        # figure sizes and temporary paths
        ("<Figure size 640x480 with 1 Axes>", "<Figure size 500x300 with 1 Axes>"),
        ("saved /tmp/pytest-3/x/metrics.json", "saved /tmp/abc/metrics.json"),
    ],
)
def test_sanitize_makes_volatile_values_compare_equal(first, second):
    assert first != second
    assert _sanitize(first) == _sanitize(second)


@pytest.mark.parametrize(
    "stable",
    [
        "torch: [1.541, -0.2934, -2.1788, 0.5684]",
        "numpy: [0.5488, 0.7152, 0.6028]",
        "unknown profile 'fast' (from the profile argument); valid profiles: ci, lab, full, auto",
        "lab <- a parameter beats the environment",
        "window 16 frames, 50 steps, M = 10",
    ],
)
def test_sanitize_leaves_deterministic_results_alone(stable):
    assert _sanitize(stable) == stable


# --- student copies ----------------------------------------------------------------------------


def test_student_copies_empty_solutions_and_nothing_else(tmp_path):
    written = notebooks.student_copies(tmp_path)
    assert [p.name for p in written] == [e.file for e in MANIFEST.notebooks]
    for copy in written:
        original, student = _read(NOTEBOOK_DIR / copy.name), _read(copy)
        assert len(original.cells) == len(student.cells)
        emptied = 0
        for before, after in zip(original.cells, student.cells, strict=True):
            if notebooks.SOLUTION_TAG in _tags(before):
                emptied += 1
                assert after.source != before.source
                assert after.source.strip().startswith("#") or after.cell_type == "markdown"
                assert not after.get("outputs")
            else:
                assert after.source == before.source and after.get("outputs") == before.get(
                    "outputs"
                )
        assert emptied >= 1


def test_strip_check_flags_outputs_outside_golden_cells(tmp_path):
    nb = _read(NOTEBOOKS[0])
    cell = next(c for c in _code_cells(nb) if not _tags(c))
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="leftover\n")]
    dirty = tmp_path / NOTEBOOKS[0].name
    nbformat.write(nb, dirty)
    assert notebooks.strip([dirty], check=True).returncode != 0
    assert notebooks.strip([dirty]).returncode == 0
    assert notebooks.strip([dirty], check=True).returncode == 0
    assert not any(c.outputs for c in _code_cells(_read(dirty)) if not _tags(c))
