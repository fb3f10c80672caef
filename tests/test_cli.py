"""Command-line errors: usage and configuration errors exit 2 before any kernel starts, bad input
files exit 1 naming the file, and a bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from reactlib import paths
from reactlib.suite import cli
from reactlib.suite import runner as notebooks
from reactlib.suite.cli import common


def test_unknown_profile_fails_clearly(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--profile", "fast"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "fast" in err and "ci" in err and "lab" in err and "full" in err


def test_unknown_profile_from_the_environment_fails_clearly(monkeypatch, capsys):
    monkeypatch.setenv("REACTLIB_PROFILE", "turbo")
    assert cli.main(["run", "--only", "00"]) == 2
    err = capsys.readouterr().err
    assert "turbo" in err and "REACTLIB_PROFILE" in err and "ci, lab, full, auto" in err


def test_unknown_notebook_lists_the_known_ones(capsys):
    assert cli.main(["run", "--profile", "ci", "--only", "99"]) == 2
    err = capsys.readouterr().err
    assert "99" in err and "00_welcome" in err


def test_setting_no_notebook_declares_fails(capsys):
    assert cli.main(["run", "--profile", "ci", "--set", "no_such_knob=3"]) == 2
    err = capsys.readouterr().err
    assert "no_such_knob" in err and "profile" in err


def test_malformed_setting_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--set", "oops"])
    assert stop.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "value"),
    [("steps=500", 500), ("lr=1e-3", 1e-3), ("name=hello", "hello"), ("x=None", None)],
)
def test_settings_are_read_as_literals(text, value):
    assert common.setting(text) == (text.split("=")[0], value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"file": "00_a.ipynb", "title": "t", "profiles": ["gpu"]}, "missing"),
        (
            {
                "file": "0_a.ipynb",
                "title": "t",
                "profiles": ["ci"],
                "minutes": {"ci": 1},
                "cell_timeout_s": {"ci": 9},
            },
            "NN_slug",
        ),
        (
            {
                "file": "00_a.ipynb",
                "title": "t",
                "profiles": ["gpu"],
                "minutes": {"gpu": 1},
                "cell_timeout_s": {"gpu": 9},
            },
            "profiles",
        ),
        (
            {
                "file": "00_a.ipynb",
                "title": "t",
                "profiles": ["ci", "lab"],
                "minutes": {"ci": 1},
                "cell_timeout_s": {"ci": 9, "lab": 9},
            },
            "minutes",
        ),
        (
            {
                "file": "00_a.ipynb",
                "title": "t",
                "profiles": ["ci"],
                "minutes": {"ci": -1},
                "cell_timeout_s": {"ci": 9},
            },
            "positive",
        ),
        (
            {
                "file": "00_missing.ipynb",
                "title": "t",
                "profiles": ["ci"],
                "minutes": {"ci": 1},
                "cell_timeout_s": {"ci": 9},
            },
            "listed but not in",
        ),
    ],
)
def test_manifest_problems_name_the_file_and_the_problem(tmp_path, entry, message):
    (tmp_path / "00_a.ipynb").write_text("{}", encoding="utf-8")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"notebooks": [entry]}), encoding="utf-8")
    with pytest.raises(notebooks.ManifestError) as err:
        notebooks.load_manifest(manifest)
    assert str(manifest) in str(err.value) and message in str(err.value)


def test_parameters_cell_with_an_expression_is_rejected(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell("steps = 10\ntwice = steps * 2\n")
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "00_bad.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    with pytest.raises(ValueError, match=r"00_bad.ipynb.*'twice'.*not a literal"):
        notebooks.declared_parameters(path)


def test_python_dash_m_reactlib_shows_help():
    done = subprocess.run(
        [sys.executable, "-m", "reactlib", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=paths.repo_root(),
        check=False,
    )
    assert done.returncode == 0
    for flag in ("--profile", "--only", "--timeout", "--seed", "--data-root", "--set"):
        assert flag in done.stdout


@pytest.mark.parametrize(
    ("source", "accepted"),
    [
        ("steps = 10\nname = 'x'\nsizes = [1, 2]\nnothing = None\n", True),
        ("steps: int = 10\n", True),
        ("a, b = 1, 2\n", False),
        ("a = b = 1\n", False),
        ("print(1)\n", False),
        ("steps: int\n", False),
        ("import os\n", False),
    ],
)
def test_parameters_cell_shapes(tmp_path, source, accepted):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "00_shapes.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    if accepted:
        assert notebooks.declared_parameters(path)
    else:
        with pytest.raises(ValueError, match=r"00_shapes.ipynb: parameters cell line 1"):
            notebooks.declared_parameters(path)


@pytest.mark.parametrize("key", ["profile", "results_dir"])
def test_profile_and_results_dir_cannot_be_set_as_parameters(key, capsys):
    assert cli.main(["run", "--profile", "ci", "--set", f"{key}=x"]) == 2
    assert f"{key} cannot be set as a parameter" in capsys.readouterr().err


# --- Exit status by kind of error ----------------------------------------------------------------


def test_a_bug_keeps_its_traceback(monkeypatch):
    """A plain ValueError from inside the library is a bug, not the user's mistake: it must not be
    turned into 'error: ...' and exit 2."""
    from reactlib.data import synth

    def broken(*args, **kwargs):
        raise ValueError("internal inconsistency")

    monkeypatch.setattr(synth, "ensure", broken)
    with pytest.raises(ValueError, match="internal inconsistency"):
        cli.main(["synth", "--profile", "ci", "--out", "unused"])


def test_a_data_error_exits_1_naming_the_file(monkeypatch, capsys):
    from reactlib.data import synth
    from reactlib.errors import DataError

    def bad_file(*args, **kwargs):
        raise DataError("/some/corpus/3D_FV_files/x.npy: shape (10, 3), expected (T, 58)")

    monkeypatch.setattr(synth, "ensure", bad_file)
    assert cli.main(["synth", "--profile", "ci", "--out", "unused"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: /some/corpus/3D_FV_files/x.npy") and "Traceback" not in err


def test_an_unreadable_notebook_is_a_data_error(tmp_path, capsys):
    book = tmp_path / "notebooks"
    book.mkdir()
    (book / "00_broken.ipynb").write_text('{"cells": [\n')
    entry = {
        "file": "00_broken.ipynb",
        "title": "broken",
        "profiles": ["ci"],
        "minutes": {"ci": 0.1},
        "cell_timeout_s": {"ci": 60},
    }
    (book / "manifest.yaml").write_text(yaml.safe_dump({"notebooks": [entry]}))
    code = cli.main(["run", "--profile", "ci", "--manifest", str(book / "manifest.yaml")])
    assert code == 1
    err = capsys.readouterr().err
    assert "00_broken.ipynb" in err and "not a readable notebook" in err


def test_error_kinds_are_value_errors_and_configuration_is_usage():
    """Library callers that catch ValueError keep working; config and manifest errors exit 2."""
    from reactlib import config, data, errors

    assert issubclass(errors.UsageError, ValueError) and issubclass(errors.DataError, ValueError)
    assert issubclass(config.ConfigError, errors.UsageError)
    assert issubclass(notebooks.ManifestError, errors.UsageError)
    assert data.DataError is errors.DataError


def test_generate_offers_exactly_the_baselines_samplers_and_noises():
    """The parser lists its choices itself (importing torch to parse arguments would slow every
    command); they must stay the ones :class:`reactlib.models.reactdiff.ReactDiffGenerator` and
    :func:`reactlib.models.registry.baseline` accept."""
    from reactlib.models import baselines, reactdiff

    generate = cli.parser()._subparsers._group_actions[0].choices["generate"]
    choices = {a.dest: tuple(a.choices) for a in generate._actions if a.choices}
    assert choices["sampler"] == reactdiff.SAMPLERS
    assert choices["noise"] == reactdiff.NOISES
    assert choices["baseline"] == tuple(baselines.BASELINES)
