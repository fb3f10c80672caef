"""Tests for reactlib.config: profile resolution, overrides, validation and the profile table."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib import config
from reactlib.config import OVERRIDABLE, PROFILES, Config, ConfigError, resolve

EXPECTED_OVERRIDABLE = (
    "seed",
    "device",
    "data_root",
    "results_dir",
    "progress",
    "synth_sessions",
    "synth_listeners",
    "clip_frames",
    "synth_videos",
    "model_channels",
    "train_steps",
    "batch_size",
    "learning_rate",
    "window",
    "sample_steps",
    "num_reactions",
    "eval_items",
)

INT_SETTINGS = tuple(k for k in OVERRIDABLE if config._field_types()[k] is int)


@pytest.fixture
def no_env(monkeypatch):
    """No REACTLIB_PROFILE and no CUDA, whatever the shell running the tests has."""
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    monkeypatch.setattr(config, "_cuda_available", lambda: False)


def _cuda_must_not_be_asked():
    raise AssertionError("_cuda_available() consulted for a concrete profile")


# --- profiles ----------------------------------------------------------------------------------


def test_profile_names():
    """The three concrete profiles plus auto, in the documented order."""
    assert config.PROFILE_NAMES == ("ci", "lab", "full")
    assert config.VALID_PROFILES == ("ci", "lab", "full", "auto")
    assert tuple(PROFILES) == ("ci", "lab", "full")


@pytest.mark.parametrize("name", ["ci", "lab", "full"])
def test_each_profile_resolves_to_its_table_values(name, monkeypatch):
    """Every setting a profile names ends up in the resolved Config unchanged."""
    monkeypatch.setattr(config, "_cuda_available", _cuda_must_not_be_asked)
    cfg = resolve(name)
    assert cfg.profile == name
    assert cfg.requested == name
    assert cfg.source == "parameter"
    for key, value in PROFILES[name].items():
        assert getattr(cfg, key) == value, key


def test_profile_key_values():
    """Spot checks of the budgets that the notebooks and CI rely on."""
    ci, lab, full = resolve("ci"), resolve("lab"), resolve("full")
    assert (ci.train_steps, lab.train_steps, full.train_steps) == (300, 3000, 30_000)
    assert (ci.budget_minutes, lab.budget_minutes, full.budget_minutes) == (10, 90, None)
    assert (ci.eval_items, lab.eval_items, full.eval_items) == (8, 64, None)
    assert ci.progress is False
    assert lab.progress is True
    assert full.progress is True
    # Defaults declared on the dataclass apply where a profile is silent.
    assert (lab.sample_steps, lab.num_reactions, lab.window) == (50, 10, 16)
    assert (ci.seed, ci.device, ci.data_root, ci.results_dir) == (0, "auto", None, None)


def test_profiles_mapping_is_read_only():
    """PROFILES cannot be edited, neither the outer table nor a profile's settings."""
    with pytest.raises(TypeError):
        PROFILES["ci"]["train_steps"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        PROFILES["gpu"] = {}  # type: ignore[index]
    assert PROFILES["ci"]["train_steps"] == 300


def test_overrides_do_not_leak_into_later_resolves():
    """An override affects only the Config it was given to."""
    assert resolve("ci", train_steps=7).train_steps == 7
    assert resolve("ci").train_steps == 300
    assert PROFILES["ci"]["train_steps"] == 300


def test_config_is_frozen():
    """A resolved Config cannot be changed in place."""
    cfg = resolve("ci")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train_steps = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.profile = "full"  # type: ignore[misc]
    assert cfg.train_steps == 300


def test_as_dict_holds_every_field():
    """as_dict() is a plain copy of every field, including the fixed ones."""
    cfg = resolve("ci", seed=3)
    data = cfg.as_dict()
    assert set(data) == {f.name for f in dataclasses.fields(Config)}
    assert data["seed"] == 3
    assert data["profile"] == "ci"
    data["seed"] = 99
    assert cfg.seed == 3


def test_overridable_keys():
    """OVERRIDABLE lists the run settings in declaration order and none of the fixed fields."""
    assert OVERRIDABLE == EXPECTED_OVERRIDABLE
    for fixed in ("profile", "requested", "source", "description", "budget_minutes"):
        assert fixed not in OVERRIDABLE


# --- where the profile comes from ----------------------------------------------------------------


def test_parameter_beats_environment(monkeypatch):
    """The profile argument wins over REACTLIB_PROFILE."""
    monkeypatch.setenv("REACTLIB_PROFILE", "full")
    monkeypatch.setattr(config, "_cuda_available", _cuda_must_not_be_asked)
    cfg = resolve("ci")
    assert (cfg.profile, cfg.requested, cfg.source) == ("ci", "ci", "parameter")


def test_parameter_wins_even_over_a_bad_environment_value(monkeypatch):
    """A broken REACTLIB_PROFILE is not even looked at when the argument is given."""
    monkeypatch.setenv("REACTLIB_PROFILE", "bogus")
    assert resolve("lab").profile == "lab"


def test_environment_beats_auto_default(monkeypatch):
    """With no argument, REACTLIB_PROFILE is used and CUDA is not consulted."""
    monkeypatch.setenv("REACTLIB_PROFILE", "full")
    monkeypatch.setattr(config, "_cuda_available", _cuda_must_not_be_asked)
    cfg = resolve()
    assert (cfg.profile, cfg.requested, cfg.source) == ("full", "full", "REACTLIB_PROFILE")


def test_default_is_auto(no_env):
    """No argument and no environment variable: auto, i.e. lab without CUDA."""
    cfg = resolve()
    assert (cfg.profile, cfg.requested, cfg.source) == ("lab", "auto", "default")


def test_empty_environment_variable_counts_as_unset(no_env, monkeypatch):
    """REACTLIB_PROFILE= (empty) falls back to auto instead of failing."""
    monkeypatch.setenv("REACTLIB_PROFILE", "")
    cfg = resolve()
    assert (cfg.profile, cfg.requested, cfg.source) == ("lab", "auto", "default")


@pytest.mark.parametrize(("cuda", "expected"), [(False, "lab"), (True, "full")])
def test_auto_follows_cuda(cuda, expected, monkeypatch):
    """auto means full with CUDA and lab without, whichever way auto was asked for."""
    monkeypatch.setattr(config, "_cuda_available", lambda: cuda)
    monkeypatch.delenv("REACTLIB_PROFILE", raising=False)
    assert resolve("auto").profile == expected
    assert resolve("auto").requested == "auto"
    assert resolve().profile == expected
    monkeypatch.setenv("REACTLIB_PROFILE", "auto")
    cfg = resolve()
    assert (cfg.profile, cfg.requested, cfg.source) == (expected, "auto", "REACTLIB_PROFILE")


def test_auto_takes_the_auto_profile_settings(monkeypatch):
    """auto resolved to full carries full's settings, not lab's."""
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    assert resolve("auto").train_steps == PROFILES["full"]["train_steps"]


# --- unknown profiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["gpu", "CI", " ci", "", "Lab"])
def test_unknown_profile_argument(bad):
    """An unknown profile argument names itself, its origin and every valid profile."""
    with pytest.raises(ConfigError) as info:
        resolve(bad)
    msg = str(info.value)
    assert f"unknown profile {bad!r}" in msg
    assert "the profile argument" in msg
    assert "valid profiles: ci, lab, full, auto" in msg


def test_non_string_profile_argument():
    """A profile that is not a string is rejected the same way."""
    with pytest.raises(ConfigError, match="valid profiles: ci, lab, full, auto"):
        resolve(3)  # type: ignore[arg-type]


def test_unknown_profile_in_environment(monkeypatch):
    """A bad REACTLIB_PROFILE value names the variable, the value and the valid profiles."""
    monkeypatch.setenv("REACTLIB_PROFILE", "gpu")
    with pytest.raises(ConfigError) as info:
        resolve()
    msg = str(info.value)
    assert "REACTLIB_PROFILE" in msg
    assert "'gpu'" in msg
    assert "ci, lab, full, auto" in msg


def test_config_error_is_a_value_error():
    """Callers that catch ValueError also catch ConfigError."""
    assert issubclass(ConfigError, ValueError)


# --- overrides -----------------------------------------------------------------------------------


def test_overrides_apply():
    """Keyword overrides replace the profile's values; the rest stay as the profile has them."""
    cfg = resolve(
        "ci",
        seed=5,
        device="cpu",
        data_root="/data/react",
        results_dir="/tmp/out",
        progress=True,
        train_steps=12,
        learning_rate=0.5,
        eval_items=3,
    )
    assert cfg.seed == 5
    assert cfg.device == "cpu"
    assert cfg.data_root == "/data/react"
    assert cfg.results_dir == "/tmp/out"
    assert cfg.progress is True
    assert cfg.train_steps == 12
    assert cfg.learning_rate == 0.5
    assert cfg.eval_items == 3
    assert cfg.batch_size == PROFILES["ci"]["batch_size"]
    assert cfg.profile == "ci"


def test_none_overrides_are_ignored():
    """None keeps the profile's value, so a parameters cell can be passed through as is."""
    cfg = resolve("ci", **{key: None for key in OVERRIDABLE})
    assert cfg == resolve("ci")
    assert cfg.eval_items == 8
    assert cfg.progress is False


def test_unknown_override_lists_valid_keys():
    """A misspelt override is named, with every valid key listed."""
    with pytest.raises(ConfigError) as info:
        resolve("ci", trian_steps=5)
    msg = str(info.value)
    assert msg.startswith("unknown override trian_steps;")
    assert "valid keys: " + ", ".join(EXPECTED_OVERRIDABLE) in msg
    assert "train_steps" in msg


def test_several_unknown_overrides_are_all_named():
    """Several unknown keys are reported together, sorted."""
    with pytest.raises(ConfigError, match=r"^unknown overrides alpha, zeta; valid keys: seed"):
        resolve("ci", zeta=1, alpha=2)


def test_unknown_override_with_none_value_is_still_rejected():
    """A misspelt key is an error even when its value is None (it would otherwise be lost)."""
    with pytest.raises(ConfigError, match="unknown override trainsteps"):
        resolve("ci", trainsteps=None)


@pytest.mark.parametrize("fixed", ["description", "budget_minutes", "requested", "source"])
def test_fixed_fields_are_not_overridable(fixed):
    """The profile's identity and budget cannot be changed by keyword."""
    with pytest.raises(ConfigError, match=f"unknown override {fixed};"):
        resolve("ci", **{fixed: "x"})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("train_steps", True, "override train_steps=True must be int, not bool"),
        ("train_steps", False, "override train_steps=False must be int, not bool"),
        ("train_steps", 1.5, "override train_steps=1.5 must be int, not float"),
        ("train_steps", "100", "override train_steps='100' must be int, not str"),
        ("seed", 2.0, "override seed=2.0 must be int, not float"),
        ("learning_rate", True, "override learning_rate=True must be float, not bool"),
        ("learning_rate", "1e-3", "override learning_rate='1e-3' must be float, not str"),
        ("progress", 1, "override progress=1 must be bool, not int"),
        ("progress", "yes", "override progress='yes' must be bool, not str"),
        ("device", 0, "override device=0 must be str, not int"),
        ("eval_items", "all", "override eval_items='all' must be int or None, not str"),
        ("eval_items", True, "override eval_items=True must be int or None, not bool"),
        ("data_root", 1, "override data_root=1 must be str or None, not int"),
        ("results_dir", [], "override results_dir=[] must be str or None, not list"),
    ],
)
def test_wrongly_typed_override(key, value, expected):
    """A value of the wrong type is refused with the expected type in the message."""
    with pytest.raises(ConfigError) as info:
        resolve("ci", **{key: value})
    assert str(info.value) == expected


def test_int_is_accepted_for_a_float_setting():
    """learning_rate=1 is a valid float setting."""
    cfg = resolve("ci", learning_rate=1)
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)


def test_optional_int_accepts_int():
    """eval_items is int or None; an int override is kept."""
    assert resolve("full", eval_items=5).eval_items == 5


# --- property tests ------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(steps=st.integers(min_value=1, max_value=10**12))
def test_any_positive_train_steps_round_trips(steps):
    """Any positive int override of train_steps is kept exactly."""
    cfg = resolve("ci", train_steps=steps)
    assert cfg.train_steps == steps
    assert cfg.as_dict()["train_steps"] == steps


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(INT_SETTINGS), value=st.integers(min_value=1, max_value=2**31))
def test_any_int_setting_round_trips(key, value):
    """Every int setting accepts an int and keeps it; the rest of the profile is untouched."""
    cfg = resolve("lab", **{key: value})
    assert getattr(cfg, key) == value
    others = {k: v for k, v in cfg.as_dict().items() if k != key}
    assert others == {k: v for k, v in resolve("lab").as_dict().items() if k != key}


@settings(max_examples=50, deadline=None)
@given(key=st.text(max_size=20).filter(lambda k: k not in {*OVERRIDABLE, "profile"}))
def test_any_unknown_key_is_rejected(key):
    """Any string key outside OVERRIDABLE raises ConfigError naming the valid keys."""
    with pytest.raises(ConfigError) as info:
        resolve("ci", **{key: 1})
    msg = str(info.value)
    assert msg.startswith(f"unknown override {key};")
    assert "valid keys: " in msg
    assert "train_steps" in msg


@settings(max_examples=30, deadline=None)
@given(rate=st.floats(min_value=1e-12, max_value=10.0) | st.integers(1, 1000))
def test_any_number_is_accepted_for_learning_rate(rate):
    """learning_rate takes any int or float and keeps it."""
    assert resolve("ci", learning_rate=rate).learning_rate == rate


# --- table and summary ---------------------------------------------------------------------------


def test_profiles_table_matches_resolved_profiles():
    """profiles_table() has one row per setting, and each cell is what resolve() gives."""
    rows = config.profiles_table()
    assert [row["setting"] for row in rows] == ["budget_minutes", *EXPECTED_OVERRIDABLE]
    resolved = {name: resolve(name) for name in ("ci", "lab", "full")}
    for row in rows:
        assert set(row) == {"setting", "ci", "lab", "full"}
        for name, cfg in resolved.items():
            assert row[name] == getattr(cfg, row["setting"]), (row["setting"], name)


def test_profiles_table_spot_values():
    """A few cells that come from profile values and from dataclass defaults."""
    rows = {row["setting"]: row for row in config.profiles_table()}
    assert rows["train_steps"] == {"setting": "train_steps", "ci": 300, "lab": 3000, "full": 30000}
    assert rows["progress"] == {"setting": "progress", "ci": False, "lab": True, "full": True}
    assert rows["sample_steps"] == {"setting": "sample_steps", "ci": 20, "lab": 50, "full": 50}
    assert rows["eval_items"] == {"setting": "eval_items", "ci": 8, "lab": 64, "full": None}


def test_summary_for_parameter():
    """The summary says which profile, why, and lists every overridable setting."""
    text = resolve("ci", train_steps=11).summary()
    lines = text.splitlines()
    assert lines[0].startswith("profile 'ci', chosen by the notebook's `profile` parameter: CI")
    assert "asked for" not in lines[0]
    assert len(lines) == 1 + len(OVERRIDABLE)
    for key, line in zip(OVERRIDABLE, lines[1:], strict=True):
        assert line.split("=")[0].strip() == key
    assert "  train_steps     = 11" in lines


def test_summary_for_auto_default(no_env):
    """An auto resolution shows what was asked for and that nothing chose a profile."""
    head = resolve().summary().splitlines()[0]
    assert head.startswith(
        "profile 'lab' (asked for 'auto'), chosen by no parameter and no environment variable: "
    )
    assert PROFILES["lab"]["description"] in head


def test_summary_for_environment(monkeypatch):
    """A profile from REACTLIB_PROFILE is credited to the variable."""
    monkeypatch.setenv("REACTLIB_PROFILE", "ci")
    head = resolve().summary().splitlines()[0]
    assert head.startswith("profile 'ci', chosen by the REACTLIB_PROFILE environment variable")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("seed", -1, "override seed=-1 must be in [0, 4294967295]"),
        ("seed", 2**32, "override seed=4294967296 must be in [0, 4294967295]"),
        ("train_steps", 0, "override train_steps=0 must be >= 1"),
        ("batch_size", -8, "override batch_size=-8 must be >= 1"),
        ("eval_items", 0, "override eval_items=0 must be >= 1"),
        ("synth_videos", -1, "override synth_videos=-1 must be >= 0"),
        ("learning_rate", 0, "override learning_rate=0 must be a finite number > 0"),
        ("learning_rate", -1e-3, "override learning_rate=-0.001 must be a finite number > 0"),
        ("learning_rate", float("nan"), "override learning_rate=nan must be a finite number > 0"),
        ("learning_rate", float("inf"), "override learning_rate=inf must be a finite number > 0"),
    ],
)
def test_out_of_range_override_is_refused(key, value, expected):
    """Seeds outside [0, 2**32), counts below their minimum and bad rates fail at resolve time."""
    with pytest.raises(ConfigError) as info:
        resolve("ci", **{key: value})
    assert str(info.value) == expected


def test_boundary_values_are_accepted():
    """The edges of each range are valid."""
    cfg = resolve("ci", seed=0, synth_videos=0, train_steps=1)
    assert (cfg.seed, cfg.synth_videos, cfg.train_steps) == (0, 0, 1)
    assert resolve("ci", seed=2**32 - 1).seed == 2**32 - 1


def test_numpy_scalars_are_accepted_and_converted():
    """np.int64 / np.float32 overrides become plain int / float (JSON- and seed-friendly)."""
    np = pytest.importorskip("numpy")
    cfg = resolve("ci", seed=np.int64(3), learning_rate=np.float32(0.5))
    assert cfg.seed == 3 and type(cfg.seed) is int
    assert cfg.learning_rate == 0.5 and type(cfg.learning_rate) is float


@pytest.mark.parametrize("name", config.PROFILE_NAMES)
def test_every_profile_value_passes_its_own_checks(name):
    """The profile table itself obeys the type and range rules applied to overrides."""
    types = config._field_types()
    for key in OVERRIDABLE:
        value = getattr(resolve(name), key)
        if value is not None:
            assert config._coerce(key, value, types[key]) == value
