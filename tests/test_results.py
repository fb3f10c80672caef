"""Tests for reactlib.suite.results: metrics.json with provenance, tables, schema, git state."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import re
import string
import subprocess
import sys
import tempfile
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reactlib import paths, runtime
from reactlib.config import resolve
from reactlib.suite import report, results
from reactlib.suite import runner as notebooks

REAL_GIT_STATE = results.git_state
FAKE_GIT = {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False}
HEX40 = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module", autouse=True)
def _isolate(tmp_path_factory):
    """Keep every write out of the repository and keep git out of save()."""
    mp = pytest.MonkeyPatch()
    mp.setenv("REACTLIB_RUNS_DIR", str(tmp_path_factory.mktemp("runs-default")))
    mp.setattr(results, "git_state", lambda root=None: dict(FAKE_GIT))
    yield
    mp.undo()


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A fresh runs folder for this test."""
    monkeypatch.setenv("REACTLIB_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def cfg():
    return resolve("ci")


@pytest.fixture(scope="module")
def valid_doc(_isolate, tmp_path_factory):
    """A document written by save(), as it lies on disk."""
    out = tmp_path_factory.mktemp("valid")
    path = results.save(
        "00_demo", resolve("ci"), {"loss": 0.5, "curve": [1.0, float("nan")]}, results_dir=out
    )
    return json.loads(path.read_text(encoding="utf-8"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp-*"))


# --- save: provenance and schema ---------------------------------------------------------------


def test_save_writes_a_complete_document(cfg, tmp_path, monkeypatch):
    """save() records profile, config, seed, git, versions, device, timer and metrics."""
    clock = types.SimpleNamespace(perf_counter=lambda: clock.now, now=10.0)
    monkeypatch.setattr(runtime, "time", clock)
    timer = runtime.Timer()
    with timer("train"):
        clock.now += 2.0
    clock.now += 1.0

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    path = results.save(
        "01_train", cfg, {"loss": 0.25, "steps": 300}, timer=timer, results_dir=tmp_path
    )
    after = dt.datetime.now(dt.UTC)

    assert path == tmp_path / "metrics.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    # Every property but the table digests, written only with tables, is required.
    optional = {"table_sha256"}
    assert (
        set(doc) == set(results.SCHEMA["properties"]) - optional == set(results.SCHEMA["required"])
    )
    assert doc["schema_version"] == results.SCHEMA_VERSION == 1
    assert doc["notebook"] == "01_train"
    assert doc["profile"] == "ci"
    assert doc["config"] == cfg.as_dict()
    assert doc["seed"] == cfg.seed
    assert doc["git"] == FAKE_GIT
    assert doc["versions"] == results.package_versions()
    assert doc["device"] == runtime.describe_device(runtime.select_device(cfg.device))
    assert doc["wall_times"] == {"train": 2.0, "total": 3.0}
    assert doc["metrics"] == {"loss": 0.25, "steps": 300}
    assert doc["nonfinite"] == []
    assert doc["tables"] == {}
    created = dt.datetime.fromisoformat(doc["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert before <= created <= after
    results.validate(doc)


def test_save_without_timer_records_zero_total(cfg, tmp_path):
    """Without a timer the wall times are just a zero total."""
    doc = results.load(results.save("nb", cfg, {}, results_dir=tmp_path))
    assert doc["wall_times"] == {"total": 0.0}
    assert doc["metrics"] == {}


def test_save_records_overridden_settings(tmp_path):
    """The config block is the resolved configuration, overrides included."""
    cfg = resolve("lab", seed=17, train_steps=5)
    doc = results.load(results.save("nb", cfg, {"x": 1}, results_dir=tmp_path))
    assert doc["profile"] == "lab"
    assert doc["seed"] == 17
    assert doc["config"]["seed"] == 17
    assert doc["config"]["train_steps"] == 5
    assert doc["config"]["requested"] == "lab"


def test_saved_file_is_strict_json(cfg, tmp_path):
    """No NaN or Infinity tokens reach the file; it ends with a newline."""
    path = results.save("nb", cfg, {"a": float("nan"), "b": float("-inf")}, results_dir=tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text
    assert "Infinity" not in text
    assert text.endswith("}\n")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


def test_saved_document_validates(valid_doc):
    """What save() writes passes validate() and load()."""
    assert results.validate(valid_doc) is None
    assert valid_doc["nonfinite"] == ["curve[1]"]


def test_save_refuses_a_document_that_breaks_the_schema(tmp_path):
    """A config built around resolve() is still validated before anything is written."""
    cfg = dataclasses.replace(resolve("ci"), seed=-1)
    with pytest.raises(ValueError, match=r"seed: -1 is less than the minimum of 0"):
        results.save("nb", cfg, {}, results_dir=tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    assert _leftovers(tmp_path) == []


def test_save_refuses_an_empty_notebook_name(cfg, tmp_path):
    """The notebook name is required to be non-empty."""
    with pytest.raises(ValueError, match=r"notebook name '' must be a plain file name"):
        results.save("", cfg, {}, results_dir=tmp_path)


# --- validate -------------------------------------------------------------------------------------


def _drop(key):
    def mutate(doc):
        del doc[key]

    return mutate


def _set(*path_and_value):
    *path, value = path_and_value

    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop("metrics"), "<root>: 'metrics' is a required property"),
        (_drop("git"), "<root>: 'git' is a required property"),
        (_set("profile", "auto"), "profile: 'auto' is not one of ['ci', 'lab', 'full']"),
        (_set("profile", "CI"), "profile: 'CI' is not one of"),
        (_set("git", "commit", "abc123"), "git/commit: 'abc123' does not match"),
        (_set("git", "commit", "A" * 40), "git/commit: '" + "A" * 40 + "' does not match"),
        (_set("git", "commit", 5), "git/commit: 5 is not of type 'string', 'null'"),
        (_set("git", "dirty", "yes"), "git/dirty: 'yes' is not of type 'boolean', 'null'"),
        (_set("git", "branch", "main"), "git: Additional properties are not allowed"),
        (
            _set("extra", 1),
            "<root>: Additional properties are not allowed ('extra' was unexpected)",
        ),
        (_set("schema_version", 2), "schema_version: 1 was expected"),
        (_set("notebook", ""), "notebook: '' should be non-empty"),
        (_set("created", "yesterday"), "created: 'yesterday' is not a 'date-time'"),
        (_set("seed", -3), "seed: -3 is less than the minimum of 0"),
        (_set("seed", 1.5), "seed: 1.5 is not of type 'integer'"),
        (_set("config", {"profile": "ci"}), "config: 'seed' is a required property"),
        (_set("versions", "numpy", 2), "versions/numpy: 2 is not of type 'string', 'null'"),
        (_set("device", ""), "device: '' should be non-empty"),
        (_set("wall_times", {}), "wall_times: 'total' is a required property"),
        (_set("wall_times", "total", -1.0), "wall_times/total: -1.0 is less than the minimum"),
        (_set("nonfinite", ["ok", 3]), "nonfinite/1: 3 is not of type 'string'"),
        (_set("tables", {"t": "../t.csv"}), "tables/t: '../t.csv' does not match"),
        (_set("tables", {"t": "t.txt"}), "tables/t: 't.txt' does not match"),
        (_set("metrics", [1]), "metrics: [1] is not of type 'object'"),
    ],
)
def test_validate_names_the_offending_path(valid_doc, mutate, expected):
    """Each departure from the schema is reported with its path in the document."""
    doc = copy.deepcopy(valid_doc)
    mutate(doc)
    with pytest.raises(ValueError) as info:
        results.validate(doc)
    msg = str(info.value)
    assert msg.startswith("metrics document does not follow the schema:\n")
    assert expected in msg


def test_validate_lists_every_error(valid_doc):
    """Several problems are reported together, one per line."""
    doc = copy.deepcopy(valid_doc)
    doc["profile"] = "auto"
    doc["git"]["commit"] = "nope"
    del doc["tables"]
    with pytest.raises(ValueError) as info:
        results.validate(doc)
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 3
    assert lines[0].startswith("  <root>: 'tables' is a required property")
    assert lines[1].startswith("  git/commit: 'nope'")
    assert lines[2].startswith("  profile: 'auto'")


def test_validate_accepts_null_git(valid_doc):
    """Unknown git state (outside a checkout) is valid."""
    doc = copy.deepcopy(valid_doc)
    doc["git"] = {"commit": None, "dirty": None}
    results.validate(doc)


def test_validate_rejects_a_non_object():
    """A JSON array at the top is not a metrics document."""
    with pytest.raises(ValueError, match=r"<root>: \[\] is not of type 'object'"):
        results.validate([])


# --- load ----------------------------------------------------------------------------------------


def test_load_reads_back_what_save_wrote(cfg, tmp_path):
    """load() accepts the file or its folder and returns the saved document."""
    path = results.save("nb", cfg, {"acc": 0.9}, results_dir=tmp_path)
    from_file = results.load(path)
    from_dir = results.load(tmp_path)
    from_str = results.load(str(path))
    assert from_file == from_dir == from_str == json.loads(path.read_text(encoding="utf-8"))
    assert from_file["metrics"] == {"acc": 0.9}


def test_load_missing_file_names_the_path(tmp_path):
    """A missing metrics file is a FileNotFoundError that names it."""
    missing = tmp_path / "nowhere" / "metrics.json"
    with pytest.raises(FileNotFoundError) as info:
        results.load(missing)
    assert str(missing) in str(info.value)


def test_load_folder_without_metrics_names_the_file(tmp_path):
    """A folder with no metrics.json reports the file it looked for."""
    with pytest.raises(FileNotFoundError) as info:
        results.load(tmp_path)
    assert str(tmp_path / "metrics.json") in str(info.value)


def test_load_invalid_json_names_the_path(tmp_path):
    """Broken JSON is a ValueError that names the file."""
    path = tmp_path / "metrics.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        results.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: not valid JSON")


def test_load_schema_violation_names_the_path(valid_doc, tmp_path):
    """A well-formed JSON file that breaks the schema names the file and the offending key."""
    doc = copy.deepcopy(valid_doc)
    doc["profile"] = "gpu"
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        results.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: metrics document does not follow the schema")
    assert "profile: 'gpu'" in msg


# --- conversion of metric values ------------------------------------------------------------------


def test_numpy_and_torch_values_are_converted(cfg, tmp_path):
    """Arrays, tensors and NumPy scalars become plain JSON; their non-finite entries are listed."""
    metrics = {
        "arr": np.array([1.0, np.nan, np.inf]),
        "grid": np.array([[1, 2], [3, 4]], dtype=np.int64),
        "f32": np.float32(0.5),
        "f64": np.float64(-np.inf),
        "i64": np.int64(7),
        "flag": np.bool_(True),
        "tensor": torch.tensor([0.25, float("nan")]),
        "grad": torch.tensor([2.0], requires_grad=True) * 1.5,
        "scalar_tensor": torch.tensor(3),
        "tuple": (1, 2.5, "x"),
        "path": Path("runs") / "ci",
        "none": None,
        "text": "ok",
        "bool": False,
    }
    doc = results.load(results.save("nb", cfg, metrics, results_dir=tmp_path))
    assert doc["metrics"] == {
        "arr": [1.0, None, None],
        "grid": [[1, 2], [3, 4]],
        "f32": 0.5,
        "f64": None,
        "i64": 7,
        "flag": True,
        "tensor": [0.25, None],
        "grad": [3.0],
        "scalar_tensor": 3,
        "tuple": [1, 2.5, "x"],
        "path": str(Path("runs") / "ci"),
        "none": None,
        "text": "ok",
        "bool": False,
    }
    assert doc["nonfinite"] == ["arr[1]", "arr[2]", "f64", "tensor[1]"]
    assert doc["metrics"]["flag"] is True
    assert doc["metrics"]["bool"] is False


def test_nonfinite_paths_in_nested_containers(cfg, tmp_path):
    """Dotted paths name dict keys with '.' and list positions with [i]."""
    metrics = {
        "a": {"b": [1.0, float("nan")], "c": {"d": float("inf")}},
        "e": [{"f": float("-inf")}, [0.0, [float("nan")]]],
        "g": float("nan"),
    }
    doc = results.load(results.save("nb", cfg, metrics, results_dir=tmp_path))
    assert doc["nonfinite"] == ["a.b[1]", "a.c.d", "e[0].f", "e[1][1][0]", "g"]
    assert doc["metrics"] == {
        "a": {"b": [1.0, None], "c": {"d": None}},
        "e": [{"f": None}, [0.0, [None]]],
        "g": None,
    }


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({1: 2.0}, "metric keys must be strings; metrics has 1"),
        ({"a": {(1, 2): 3.0}}, "metric keys must be strings; a has (1, 2)"),
        ({"a": [{"b": {None: 1}}]}, "metric keys must be strings; a[0].b has None"),
    ],
)
def test_non_string_metric_keys_raise_type_error(cfg, tmp_path, metrics, expected):
    """Keys that JSON would silently turn into strings are refused, with where they are."""
    with pytest.raises(TypeError) as info:
        results.save("nb", cfg, metrics, results_dir=tmp_path)
    assert str(info.value) == expected
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    ("metrics", "name", "kind"),
    [
        ({"model": object()}, "'model'", "object"),
        ({"a": [1, {1, 2}]}, "'a[1]'", "set"),
        ({"a": {"b": b"bytes"}}, "'a.b'", "bytes"),
        ({"frame": pd.DataFrame({"x": [1]})}, "'frame'", "DataFrame"),
        ({"c": 1 + 2j}, "'c'", "complex"),
    ],
)
def test_unsupported_values_raise_type_error(cfg, tmp_path, metrics, name, kind):
    """A value JSON cannot hold is refused with the metric's path and the value's type."""
    with pytest.raises(TypeError) as info:
        results.save("nb", cfg, metrics, results_dir=tmp_path)
    msg = str(info.value)
    assert f"metric {name} has a value of type {kind}" in msg
    assert not (tmp_path / "metrics.json").exists()


_KEYS = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=4)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_TREES = st.recursive(
    _FLOATS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=12,
)


def _expected(value, where, nonfinite):
    """The conversion save() promises: non-finite floats to None, paths recorded in order."""
    if isinstance(value, dict):
        return {
            k: _expected(v, f"{where}.{k}" if where else k, nonfinite) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expected(v, f"{where}[{i}]", nonfinite) for i, v in enumerate(value)]
    if math.isfinite(value):
        return value
    nonfinite.append(where)
    return None


@settings(max_examples=40, deadline=None)
@given(metrics=st.dictionaries(_KEYS, _TREES, max_size=4))
@example(metrics={"a": {"b": [1.0, float("nan")]}})
def test_float_trees_round_trip(metrics):
    """Finite floats come back equal; non-finite ones come back null and listed by dotted path."""
    nonfinite: list[str] = []
    expected = _expected(metrics, "", nonfinite)
    with tempfile.TemporaryDirectory() as folder:
        path = results.save("prop", resolve("ci"), metrics, results_dir=folder)
        doc = results.load(path)
        assert _leftovers(Path(folder)) == []
    assert doc["metrics"] == expected
    assert doc["nonfinite"] == nonfinite
    if metrics == {"a": {"b": [1.0, float("nan")]}}:
        assert doc["nonfinite"] == ["a.b[1]"]


# --- tables --------------------------------------------------------------------------------------


def test_tables_are_written_as_csv_and_listed(cfg, tmp_path):
    """Each table becomes <name>.csv next to metrics.json and is listed under "tables"."""
    losses = pd.DataFrame({"step": [1, 2, 3], "loss": [0.9, 0.5, 0.25]})
    scores = pd.DataFrame({"fid": [10.5, 12.0]}, index=pd.Index(["ours", "base"], name="model"))
    path = results.save(
        "nb", cfg, {"n": 1}, tables={"losses": losses, "scores.v2": scores}, results_dir=tmp_path
    )
    doc = results.load(path)
    assert doc["tables"] == {"losses": "losses.csv", "scores.v2": "scores.v2.csv"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "losses.csv",
        "metrics.json",
        "scores.v2.csv",
    ]
    # A default RangeIndex is not written; a named index is.
    assert (tmp_path / "losses.csv").read_text().splitlines()[0] == "step,loss"
    assert (tmp_path / "scores.v2.csv").read_text().splitlines()[0] == "model,fid"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "losses.csv"), losses)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "scores.v2.csv", index_col="model"), scores
    )


def test_multiindex_tables_keep_their_index(cfg, tmp_path):
    """A MultiIndex, even unnamed, is written out rather than lost."""
    index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])
    frame = pd.DataFrame({"v": [0.1, 0.2]}, index=index)
    results.save("nb", cfg, {}, tables={"multi": frame}, results_dir=tmp_path)
    back = pd.read_csv(tmp_path / "multi.csv", index_col=[0, 1])
    assert back["v"].tolist() == [0.1, 0.2]
    assert back.index.tolist() == [("a", 1), ("b", 2)]


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "", ".hidden", "_x", "a b", "t?"])
def test_bad_table_names_are_refused(cfg, tmp_path, bad):
    """Table names must be plain file names; nothing is written when one is not."""
    with pytest.raises(ValueError) as info:
        results.save("nb", cfg, {}, tables={bad: pd.DataFrame({"x": [1]})}, results_dir=tmp_path)
    assert f"table name {bad!r} must be a plain file name" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "x.csv").exists()


def test_table_name_with_trailing_newline_is_refused(cfg, tmp_path):
    """A newline at the end of a table name is not a plain file name either."""
    with pytest.raises(ValueError, match="must be a plain file name"):
        results.save("nb", cfg, {}, tables={"t\n": pd.DataFrame({"x": [1]})}, results_dir=tmp_path)


# --- where results go -----------------------------------------------------------------------------


def test_default_folder_is_runs_profile_notebook(runs, tmp_path):
    """Without any results_dir, save() writes to $REACTLIB_RUNS_DIR/<profile>/<notebook>/."""
    path = results.save("03_eval", resolve("lab"), {"x": 1})
    assert path == runs / "lab" / "03_eval" / "metrics.json"
    assert path.is_file()
    assert results.default_results_dir("03_eval", resolve("lab")) == runs / "lab" / "03_eval"


def test_cfg_results_dir_beats_the_default(runs, tmp_path):
    """cfg.results_dir overrides runs/<profile>/<notebook>/."""
    target = tmp_path / "from_cfg"
    cfg = resolve("ci", results_dir=str(target))
    path = results.save("nb", cfg, {"x": 1})
    assert path == target / "metrics.json"
    assert path.is_file()
    assert not runs.exists()


def test_explicit_results_dir_beats_cfg(runs, tmp_path):
    """The results_dir argument wins over cfg.results_dir and the default."""
    cfg = resolve("ci", results_dir=str(tmp_path / "from_cfg"))
    explicit = tmp_path / "explicit" / "deeper"
    path = results.save("nb", cfg, {"x": 1}, results_dir=str(explicit))
    assert path == explicit / "metrics.json"
    assert path.is_file()
    assert not (tmp_path / "from_cfg").exists()
    assert not runs.exists()


def test_save_overwrites_a_previous_run(cfg, tmp_path):
    """Saving again to the same folder replaces metrics.json."""
    results.save("nb", cfg, {"x": 1}, results_dir=tmp_path)
    results.save("nb", cfg, {"x": 2}, results_dir=tmp_path)
    assert results.load(tmp_path)["metrics"] == {"x": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


# --- atomic writes -------------------------------------------------------------------------------


def test_no_temporary_files_are_left(cfg, tmp_path):
    """After a save, only the final files exist: no .*.tmp-* names."""
    results.save("nb", cfg, {"x": 1}, tables={"t": pd.DataFrame({"a": [1]})}, results_dir=tmp_path)
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "t.csv"]


class _BrokenFrame:
    """A table whose writer fails half way through."""

    index = pd.RangeIndex(2)

    def to_csv(self, path, index):
        Path(path).write_text("partial", encoding="utf-8")
        raise OSError("disk full")


def test_failed_write_leaves_previous_files_intact(cfg, tmp_path):
    """A write that fails leaves no temporary file and does not touch the previous results."""
    results.save("nb", cfg, {"x": 1}, tables={"t": pd.DataFrame({"a": [1]})}, results_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OSError, match="disk full"):
        results.save("nb", cfg, {"x": 2}, tables={"t": _BrokenFrame()}, results_dir=tmp_path)
    assert _leftovers(tmp_path) == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_write_goes_through_a_temporary_name(cfg, tmp_path, monkeypatch):
    """Files are written under a hidden temporary name and renamed over the target."""
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(paths.os, "replace", spy)
    results.save("nb", cfg, {}, tables={"t": pd.DataFrame({"a": [1]})}, results_dir=tmp_path)
    pid = os.getpid()
    assert renames == [
        (f".t.tmp-{pid}.csv", "t.csv"),
        (f".metrics.tmp-{pid}.json", "metrics.json"),
    ]


# --- git_state and package_versions ---------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-C",
            str(repo),
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """No user or system git configuration, and no repository discovery above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def repo(tmp_path, git_env):
    """A fresh repository with one committed file."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "tracked.txt").write_text("one\n", encoding="utf-8")
    _git(root, "add", "tracked.txt")
    _git(root, "commit", "-q", "-m", "first")
    return root


def test_git_state_outside_a_repository(tmp_path, git_env):
    """A folder that is not a checkout gives unknown commit and dirtiness."""
    plain = tmp_path / "plain"
    plain.mkdir()
    assert REAL_GIT_STATE(plain) == {"commit": None, "dirty": None}


def test_git_state_without_commits(tmp_path, git_env):
    """A repository with no commit yet has no commit to report."""
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert REAL_GIT_STATE(empty) == {"commit": None, "dirty": None}


def test_git_state_clean_then_dirty(repo):
    """The commit is HEAD's full hash; editing a tracked file makes the tree dirty."""
    head = _git(repo, "rev-parse", "HEAD")
    state = REAL_GIT_STATE(repo)
    assert HEX40.match(state["commit"])
    assert state == {"commit": head, "dirty": False}

    (repo / "untracked.txt").write_text("new\n", encoding="utf-8")
    assert REAL_GIT_STATE(repo) == {"commit": head, "dirty": False}

    (repo / "tracked.txt").write_text("two\n", encoding="utf-8")
    assert REAL_GIT_STATE(repo) == {"commit": head, "dirty": True}


def test_git_state_defaults_to_the_checkout(repo, monkeypatch):
    """With no folder given, the repository root from reactlib.paths is asked."""
    monkeypatch.setattr(results.paths, "repo_root", lambda: repo)
    assert REAL_GIT_STATE() == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}


def test_git_state_without_git_installed(repo, monkeypatch):
    """No git executable means unknown state, not a crash."""
    monkeypatch.setenv("PATH", str(repo / "no-bin-here"))
    assert REAL_GIT_STATE(repo) == {"commit": None, "dirty": None}


def test_package_versions():
    """Python, platform and every tracked package are reported, with installed versions."""
    found = results.package_versions()
    assert list(found) == ["python", "platform", *results.TRACKED_PACKAGES]
    assert found["python"] == platform.python_version()
    assert found["platform"] == platform.platform(terse=True)
    assert found["numpy"] == version("numpy")
    assert found["torch"] == version("torch")
    assert found["reactlib"] == version("reactlib")


def test_package_versions_missing_package_is_none(monkeypatch):
    """A package that is not installed is listed as None rather than failing."""
    monkeypatch.setattr(results, "TRACKED_PACKAGES", ("numpy", "surely-not-installed-xyz"))
    found = results.package_versions()
    assert found["surely-not-installed-xyz"] is None
    assert found["numpy"] == version("numpy")


@pytest.mark.parametrize("name", ["../../escape", "a/b", ".hidden", "x\n"])
def test_notebook_name_cannot_leave_the_runs_folder(runs, name):
    """The notebook name becomes a folder name: separators and dot-names are refused."""
    with pytest.raises(ValueError, match="notebook name .* must be a plain file name"):
        results.save(name, resolve("ci"), {"a": 1})
    assert not any(runs.parent.rglob("metrics.json"))


def test_bad_table_name_writes_nothing(cfg, tmp_path):
    """Names are checked before any table is written, not halfway through."""
    tables = {"good": pd.DataFrame({"x": [1]}), "../bad": pd.DataFrame({"x": [2]})}
    with pytest.raises(ValueError, match="table name '../bad'"):
        results.save("nb", cfg, {}, tables=tables, results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_names_a_file_that_is_not_utf8(tmp_path):
    """Binary garbage gives a ValueError that names the file."""
    path = tmp_path / "metrics.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        results.load(path)


# --- Benchmark provenance ------------------------------------------------------------------------


def test_benchmark_provenance_records_commit_command_machine_threads_versions(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", ["python", "benchmarks/x.py", "--steps", "5 6"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        doc = results.benchmark_provenance()
    finally:
        torch.set_num_threads(before)
    assert set(doc) == {"created", "git", "command", "machine", "threads", "versions"}
    assert dt.datetime.fromisoformat(doc["created"]).tzinfo is not None
    assert doc["git"] == results.git_state()
    assert doc["command"] == "python benchmarks/x.py --steps '5 6'"  # exact, shell-quoted
    machine = doc["machine"]
    assert machine["cores"] == os.cpu_count() and 1 <= machine["usable_cores"] <= os.cpu_count()
    assert isinstance(machine["cpu"], str) and machine["cpu"]
    assert machine["memory_bytes"] is None or machine["memory_bytes"] > 2**20
    load = machine["load_average"]
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
    assert doc["threads"]["torch"] == 1
    assert doc["threads"]["env"]["OMP_NUM_THREADS"] == "1"
    assert doc["versions"] == results.package_versions()
    assert doc["versions"]["torch"] == version("torch")
    json.dumps(doc, allow_nan=False)  # plain JSON


def test_thread_settings_leave_unloaded_libraries_as_none(monkeypatch):
    monkeypatch.delitem(sys.modules, "cv2", raising=False)
    assert results.thread_settings()["opencv"] is None


def test_machine_reads_the_cpu_model_from_proc_cpuinfo():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.lower().startswith("model name")
    ]
    if names:
        assert results.machine()["cpu"] == names[0]


def test_committed_results_are_valid_and_traceable():
    """Figures the README quotes from results/<profile>/<notebook>/metrics.json must be real runs:
    schema-valid, from a named commit with a clean tree, filed under their own profile and
    notebook, and for a notebook that exists."""
    found = sorted((paths.repo_root() / "results").rglob("metrics.json"))
    assert found, "results/ holds no metrics.json"
    book = notebooks.load_manifest()
    listed = {Path(e.file).stem for e in book.notebooks}
    for path in found:
        doc = results.load(path)
        where = path.relative_to(paths.repo_root())
        assert re.fullmatch(r"[0-9a-f]{40}", doc["git"]["commit"] or ""), where
        assert doc["git"]["dirty"] is False, f"{where} comes from an uncommitted tree"
        assert path.parent.parent.name == doc["profile"], where
        assert path.parent.name == doc["notebook"] and doc["notebook"] in listed, where
        # A committed table must be the one the run wrote, byte for byte.
        for name, digest in doc.get("table_sha256", {}).items():
            table = path.parent / doc["tables"][name]
            if table.exists():
                assert results.file_sha256(table) == digest, f"{table} differs from the run's"


def test_saved_tables_carry_their_digest(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index(["x", "y"], name="row"))
    path = results.save(
        "03_eval", resolve("ci"), {"x": 1}, tables={"t": frame}, results_dir=tmp_path
    )
    doc = results.load(path)
    assert doc["table_sha256"]["t"] == results.file_sha256(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("row,a\nx,1.0\ny,2.5\n")  # an edited table no longer matches
    assert results.file_sha256(tmp_path / "t.csv") != doc["table_sha256"]["t"]


# --- results/README.md, the generated page of every committed figure ---------------------------


def test_the_committed_results_page_is_what_the_committed_results_give():
    root = paths.repo_root()
    page = (root / report.REPORT).read_text(encoding="utf-8")
    assert page == report.render(root), "results/README.md is stale: python -m reactlib results"


def _fake_checkout(root: Path, value: float) -> None:
    run = root / "results" / "lab" / "10_posnet"
    run.mkdir(parents=True)
    doc = {
        "notebook": "10_posnet",
        "profile": "lab",
        "created": "2026-11-29T03:50:35+00:00",
        "git": {"commit": "b1ccd7a6ea3e7a0", "dirty": False},
        "device": "cpu (2 threads, 2 cores)",
        "wall_times": {"total": 120.0},
        "metrics": {"seams": {"Trans-VAE": {"seam_ratio": value}}, "items": list(range(10))},
        "tables": {"fixes": "fixes.csv"},
        "table_sha256": {"fixes": "ab" * 32},
    }
    (run / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    bench = root / "benchmarks" / "results"
    bench.mkdir(parents=True)
    prov = {"created": "2026-11-29", "git": {"commit": "5f27c6f", "dirty": True},
            "command": "python benchmarks/x_speed.py", "machine": {"cpu": "AMD", "cores": 2,
            "load_average": [1.5, 1.0, 0.5]}}  # fmt: skip
    bench_doc = {"benchmark": "x", "provenance": prov, "settings": {"n": 3}, "figures": {"s": 2.5}}
    (bench / "x_speed.json").write_text(json.dumps(bench_doc), encoding="utf-8")


def test_the_results_page_names_each_figure_with_its_profile_commit_and_command(tmp_path):
    _fake_checkout(tmp_path, 9.6117)
    page = report.render(tmp_path)
    assert "### lab / 10_posnet" in page
    assert "Commit b1ccd7a, 2026-11-29, cpu (2 threads, 2 cores), 2.0 min." in page
    assert "`python -m reactlib run --profile lab --only 10`" in page
    assert "| `seams/Trans-VAE/seam_ratio` | 9.612 |" in page
    assert "[0, 1, 2, 3, 4, 5, ... (10 values)]" in page
    assert "[fixes.csv](lab/10_posnet/fixes.csv) (sha256 abababababab)" in page
    assert "Commit 5f27c6f (dirty tree)" in page and "load average 1.50, 1.00, 0.50" in page
    assert "Re-run: `python benchmarks/x_speed.py`." in page and "| `s` | 2.5 |" in page


def test_the_results_page_goes_stale_when_a_figure_changes(tmp_path):
    _fake_checkout(tmp_path / "a", 9.6115)
    _fake_checkout(tmp_path / "b", 9.7)
    assert report.render(tmp_path / "a") != report.render(tmp_path / "b")
    assert report.render(tmp_path / "a") == report.render(tmp_path / "a")  # no clock in it
