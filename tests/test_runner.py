"""`python -m reactlib run`: the papermill runner behind `make run`.

Each test builds a small suite (manifest + notebooks) in a temporary folder and runs it through the
real command line, so papermill, the kernel and the HTML export are all exercised.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reactlib import config
from reactlib.suite import cli, results
from reactlib.suite import runner as notebooks

pytestmark = pytest.mark.kernel

PARAMETERS = 'profile = None\nseed = 0\ndevice = "auto"\ndata_root = None\nresults_dir = None\n'
SETUP = (
    "import reactlib as rl\n"
    "cfg = rl.config.resolve(profile, seed=seed, device=device, results_dir=results_dir)\n"
)


def _notebook(path: Path, *code: str, save: bool = True) -> None:
    params = new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    body = [new_code_cell(src) for src in code]
    if save:
        body.append(
            new_code_cell(
                f'rl.results.save("{path.stem}", cfg, metrics={{"seed": cfg.seed, '
                '"profile": cfg.profile, "answer": answer})'
            )
        )
    nb = new_notebook(
        cells=[new_markdown_cell(f"# {path.stem}"), params, new_code_cell(SETUP), *body],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, path)


def _manifest(folder: Path, *files: str, profiles=("ci", "lab", "full")) -> Path:
    entries = [
        {
            "file": f,
            "title": f"test {f}",
            "profiles": list(profiles),
            "minutes": {p: 0.1 for p in profiles},
            "cell_timeout_s": {p: 60 for p in profiles},
        }
        for f in files
    ]
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"notebooks": entries}), encoding="utf-8")
    return path


@pytest.fixture
def runs(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    monkeypatch.setenv("REACTLIB_RUNS_DIR", str(out))
    return out


def _summary(runs: Path, profile: str) -> list[dict[str, str]]:
    with (runs / profile / "summary.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_good_suite_writes_notebooks_html_metrics_and_summary(tmp_path, runs, capsys):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_first.ipynb", "answer = 42")
    _notebook(suite / "01_second.ipynb", "import os\nanswer = os.getcwd()")
    manifest = _manifest(suite, "00_first.ipynb", "01_second.ipynb")

    code = cli.main(["run", "--profile", "ci", "--manifest", str(manifest), "--seed", "7"])

    assert code == 0, capsys.readouterr().err
    out_dir = runs / "ci"
    for stem in ("00_first", "01_second"):
        assert (out_dir / f"{stem}.ipynb").is_file()
        assert "<html" in (out_dir / f"{stem}.html").read_text(encoding="utf-8").lower()
        doc = json.loads((out_dir / stem / "metrics.json").read_text(encoding="utf-8"))
        assert doc["profile"] == "ci" and doc["seed"] == 7  # both injected by papermill
        assert doc["metrics"]["seed"] == 7 and doc["metrics"]["profile"] == "ci"
    # the kernel ran in the notebook's own folder
    second = json.loads((out_dir / "01_second" / "metrics.json").read_text(encoding="utf-8"))
    assert Path(second["metrics"]["answer"]) == suite
    rows = _summary(runs, "ci")
    assert [r["notebook"] for r in rows] == ["00_first", "01_second"]
    assert all(r["status"] == "ok" and float(r["wall_s"]) > 0 for r in rows)
    printed = capsys.readouterr().out
    assert "00_first" in printed and "wall_s" in printed and "summary:" in printed


def test_a_raising_notebook_fails_the_run_naming_notebook_cell_and_error(tmp_path, runs, capsys):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_fine.ipynb", "answer = 1")
    _notebook(suite / "01_broken.ipynb", "answer = 2", "ratio = answer / 0")
    _notebook(suite / "02_never.ipynb", "answer = 3")
    manifest = _manifest(suite, "00_fine.ipynb", "01_broken.ipynb", "02_never.ipynb")

    code = cli.main(["run", "--profile", "ci", "--manifest", str(manifest), "--no-html"])

    assert code == 1
    err = capsys.readouterr().err
    assert "01_broken.ipynb" in err
    assert "cell 5 of 6" in err  # title, parameters, setup, answer = 2, the failing cell
    assert "ZeroDivisionError" in err
    assert "ratio = answer / 0" in err
    rows = _summary(runs, "ci")
    assert [(r["notebook"], r["status"]) for r in rows] == [
        ("00_fine", "ok"),
        ("01_broken", "failed"),
    ]
    assert not (runs / "ci" / "02_never.ipynb").exists(), "the run stops at the first failure"
    assert (runs / "ci" / "01_broken.ipynb").is_file(), "the failed notebook is kept for reading"


def test_a_cell_timeout_names_the_cell_that_hung(tmp_path, runs, capsys):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_slow.ipynb", "import time\ntime.sleep(60)\nanswer = 0")
    manifest = _manifest(suite, "00_slow.ipynb")

    code = cli.main(
        ["run", "--profile", "ci", "--manifest", str(manifest), "--timeout", "3", "--no-html"]
    )

    assert code == 1
    err = capsys.readouterr().err
    assert "00_slow.ipynb" in err and "cell 4 of 5" in err
    assert "time.sleep(60)" in err
    assert "Timeout" in err or "timed out" in err


def test_a_notebook_that_saves_no_metrics_fails(tmp_path, runs, capsys):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_silent.ipynb", "answer = 1", save=False)
    manifest = _manifest(suite, "00_silent.ipynb")
    # a metrics.json left by an earlier run must not pass for this run's
    results.save(
        "00_silent", config.resolve("ci"), {"old": 1}, results_dir=runs / "ci" / "00_silent"
    )

    code = cli.main(["run", "--profile", "ci", "--manifest", str(manifest), "--no-html"])

    assert code == 1
    err = capsys.readouterr().err
    assert "00_silent.ipynb" in err and "metrics.json" in err


def test_notebooks_not_meant_for_a_profile_are_skipped(tmp_path, runs, capsys):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_gpu_only.ipynb", "answer = 1")
    manifest = _manifest(suite, "00_gpu_only.ipynb", profiles=("full",))

    code = cli.main(["run", "--profile", "ci", "--manifest", str(manifest)])

    assert code == 0
    assert [(r["notebook"], r["status"]) for r in _summary(runs, "ci")] == [
        ("00_gpu_only", "skipped")
    ]
    assert not (runs / "ci" / "00_gpu_only.ipynb").exists()
    assert "skipped" in capsys.readouterr().out


def test_settings_reach_only_notebooks_that_declare_them(tmp_path, runs):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_a.ipynb", "answer = 1")
    nb = nbformat.read(suite / "00_a.ipynb", as_version=4)
    nb.cells[1].source += "train_steps = None\n"
    nb.cells[3].source = "answer = train_steps"
    nbformat.write(nb, suite / "00_a.ipynb")
    _notebook(suite / "01_b.ipynb", "answer = 2")
    manifest = _manifest(suite, "00_a.ipynb", "01_b.ipynb")

    code = cli.main(
        [
            "run",
            "--profile",
            "ci",
            "--manifest",
            str(manifest),
            "--set",
            "train_steps=77",
            "--no-html",
        ]
    )

    assert code == 0
    first = json.loads((runs / "ci" / "00_a" / "metrics.json").read_text(encoding="utf-8"))
    assert first["metrics"]["answer"] == 77
    injected = nbformat.read(runs / "ci" / "01_b.ipynb", as_version=4)
    assert "train_steps" not in "".join(c.source for c in injected.cells)


def test_only_selects_by_number_or_name(tmp_path, runs):
    suite = tmp_path / "nb"
    suite.mkdir()
    for name in ("00_a.ipynb", "01_b.ipynb", "02_c.ipynb"):
        _notebook(suite / name, "answer = 0")
    manifest = _manifest(suite, "00_a.ipynb", "01_b.ipynb", "02_c.ipynb")

    assert (
        cli.main(
            [
                "run",
                "--profile",
                "ci",
                "--manifest",
                str(manifest),
                "--only",
                "02",
                "01_b",
                "--no-html",
            ]
        )
        == 0
    )
    assert [r["notebook"] for r in _summary(runs, "ci")] == ["01_b", "02_c"]


def test_the_python3_kernel_is_this_interpreter():
    assert notebooks._kernel_warning() is None


def test_golden_refresh_runs_top_to_bottom_and_keeps_only_golden_outputs(tmp_path, runs):
    suite = tmp_path / "nb"
    suite.mkdir()
    _notebook(suite / "00_gold.ipynb", "answer = 6 * 7", "print(answer)", "print('scratch')")
    nb = nbformat.read(suite / "00_gold.ipynb", as_version=4)
    nb.cells[4].metadata["tags"] = list(notebooks.GOLDEN_TAGS)  # print(answer)
    nb.cells[5].execution_count = 99  # stale state from an earlier session
    nbformat.write(nb, suite / "00_gold.ipynb")
    book = notebooks.load_manifest(_manifest(suite, "00_gold.ipynb"))

    notebooks.refresh_golden(book.notebooks, book, echo=lambda _: None)

    nb = nbformat.read(suite / "00_gold.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    kept = {c.source: c.outputs for c in code if c.outputs}
    assert list(kept) == ["print(answer)"] and kept["print(answer)"][0]["text"] == "42\n"
    assert notebooks.strip([suite / "00_gold.ipynb"], check=True).returncode == 0
    assert not (suite / "00_gold").exists(), "golden runs write their results to a scratch folder"
