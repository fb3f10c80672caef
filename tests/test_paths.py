"""Paths are anchored at the checkout, whatever folder a process or kernel runs in."""

from __future__ import annotations

from reactlib import paths


def test_repo_root_holds_the_manifest_and_pyproject(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    root = paths.repo_root()
    assert (root / "pyproject.toml").is_file()
    assert paths.manifest_path() == root / "notebooks" / "manifest.yaml"
    assert paths.notebooks_dir() == root / "notebooks"


def test_runs_dir_defaults_to_runs_under_the_checkout(monkeypatch):
    monkeypatch.delenv(paths.RUNS_DIR_ENV, raising=False)
    assert paths.runs_dir("lab") == paths.repo_root() / "runs" / "lab"


def test_relative_runs_dir_is_taken_from_the_checkout_not_the_cwd(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.RUNS_DIR_ENV, "build/elsewhere")
    monkeypatch.chdir(tmp_path)
    assert paths.runs_dir("ci") == paths.repo_root() / "build" / "elsewhere" / "ci"


def test_absolute_runs_dir_is_used_as_is(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.RUNS_DIR_ENV, str(tmp_path))
    assert paths.runs_dir("full") == tmp_path / "full"
