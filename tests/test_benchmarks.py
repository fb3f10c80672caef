"""Tests for benchmarks/harness.py (interleaved paired timing on a fake clock, results files),
benchmarks/wall.py (a whole command timed, its status and test counts kept) and
benchmarks/reactdiff_speed.py (a tiny run: its figures' shape and closed-form checks)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from reactlib import config, paths, runtime
from reactlib.models import reactdiff, reactdiff_net
from reactlib.suite import results


def _load(name: str):
    """A script of benchmarks/ as a module, with that folder importable while it loads (the
    scripts import their sibling ``harness``, as they do when run)."""
    folder = paths.repo_root() / "benchmarks"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


harness = _load("harness")
wall = _load("wall")


class FakeMachine:
    """A clock that only moves when a fake workload runs: a call costs ``cost`` units times the
    machine's current slowness, plus any one-off spike queued for that call."""

    def __init__(self):
        self.now = 0.0
        self.slowness = 1.0
        self.spikes: dict[int, float] = {}
        self.log: list[str] = []

    def clock(self) -> float:
        return self.now

    def workload(self, name: str, cost: float):
        def run():
            self.now += cost * self.slowness + self.spikes.pop(len(self.log), 0.0)
            self.log.append(name)

        return run


def test_paired_ratio_recovers_a_known_cost_ratio():
    machine = FakeMachine()
    paired = harness.paired_times(
        machine.workload("ours", 3.0), machine.workload("ref", 1.0), 5, clock=machine.clock
    )
    assert paired.ours == [3.0] * 5 and paired.reference == [1.0] * 5
    assert paired.ratio == 3.0 and paired.ratio_quartiles == (3.0, 3.0)
    summary = paired.summary()
    assert summary["ratio_median"] == 3.0 and summary["repeats"] == 5
    assert summary["ours_median_s"] == 3.0 and summary["reference_median_s"] == 1.0


def test_paired_timing_alternates_which_runs_first():
    machine = FakeMachine()
    harness.paired_times(
        machine.workload("ours", 1.0), machine.workload("ref", 1.0), 4, clock=machine.clock
    )
    assert machine.log == ["ours", "ref", "ref", "ours", "ours", "ref", "ref", "ours"]


def _slowing(machine: FakeMachine, fn, every: int = 2):
    """``fn``, after which the machine gets 1.5x slower every ``every`` calls."""

    def run():
        fn()
        if len(machine.log) % every == 0:
            machine.slowness *= 1.5

    return run


def test_paired_ratio_survives_drift_and_a_spike():
    """The machine gets 1.5x slower every repetition and one call stalls: the median of the
    per-pair ratios is still the true 4, and the stalled pair is outvoted."""
    machine = FakeMachine()
    machine.spikes[4] = 50.0  # the fifth call (ours, in the third repetition) stalls
    ours = _slowing(machine, machine.workload("ours", 4.0))
    ref = _slowing(machine, machine.workload("ref", 1.0))
    paired = harness.paired_times(ours, ref, 7, clock=machine.clock)
    assert paired.ratio == pytest.approx(4.0, rel=1e-12)
    assert max(paired.ratios) > 10


def test_separate_minima_are_thrown_off_by_the_same_drift():
    """The scenario above defeats the ratio of two separately timed minima (all of ours, then all
    of the reference), which is why the harness pairs the runs."""
    machine = FakeMachine()
    ours = _slowing(machine, machine.workload("ours", 4.0), every=1)
    ref = _slowing(machine, machine.workload("ref", 1.0), every=1)
    first = [
        harness.paired_times(ours, lambda: None, 1, clock=machine.clock).ours[0] for _ in "1234567"
    ]
    second = [
        harness.paired_times(lambda: None, ref, 1, clock=machine.clock).reference[0]
        for _ in "1234567"
    ]
    assert min(first) / min(second) < 0.5


def test_paired_times_needs_a_repetition():
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        harness.paired_times(lambda: None, lambda: None, 0)


def test_single_repetition_has_degenerate_quartiles():
    machine = FakeMachine()
    paired = harness.paired_times(
        machine.workload("ours", 2.0), machine.workload("ref", 8.0), 1, clock=machine.clock
    )
    assert paired.ratio == 0.25 and paired.ratio_quartiles == (0.25, 0.25)


def test_write_results_records_provenance_settings_and_figures(tmp_path):
    path = harness.write_results(
        "toy", {"steps": 5}, {"ratio": 1.5, "rows": [{"a": 1}]}, results_dir=tmp_path
    )
    assert path == tmp_path / "toy.json"
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "toy"
    assert doc["settings"] == {"steps": 5}
    assert doc["figures"] == {"ratio": 1.5, "rows": [{"a": 1}]}
    assert set(doc["provenance"]) == set(results.benchmark_provenance())
    assert doc["provenance"]["git"] == results.git_state()
    assert [p.name for p in tmp_path.iterdir()] == ["toy.json"]  # no temporary file left


def test_write_results_refuses_nonfinite_figures_and_bad_names(tmp_path):
    with pytest.raises(ValueError, match=r"toy\.json: figures are not plain finite JSON"):
        harness.write_results("toy", {}, {"ratio": float("nan")}, results_dir=tmp_path)
    with pytest.raises(ValueError, match=r"toy\.json: figures are not plain finite JSON"):
        harness.write_results("toy", {}, {"when": object()}, results_dir=tmp_path)
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="must be a plain file name"):
            harness.write_results(bad, {}, {}, results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_committed_results_files_carry_provenance():
    """Every committed figure file names its benchmark, command, commit and machine."""
    files = sorted(harness.RESULTS_DIR.glob("*.json"))
    for path in files:
        doc = json.loads(path.read_text())
        assert doc["benchmark"] == path.stem
        provenance = doc["provenance"]
        # the script that wrote it, or `python -m reactlib bench NAME`, which runs that script
        command = provenance["command"]
        assert (
            "benchmarks/" in command
            or f"reactlib bench {path.stem.removesuffix('_speed')}" in command
        )
        assert set(provenance["machine"]) >= {"cpu", "cores", "memory_bytes"}
        assert set(provenance["git"]) == {"commit", "dirty"}
        assert doc["figures"]


# --- wall.py -------------------------------------------------------------------------------


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


# --- reactdiff_speed.py ----------------------------------------------------------------------

SPEED_RUN = {"steps": 2, "m": 2, "windows": 2, "train_steps": 2}
"""The tiny ci run the tests below share."""
WINDOW_FRAMES = 16


@pytest.fixture(scope="module")
def speed_doc(tmp_path_factory):
    """The JSON of one tiny ``ci`` run of benchmarks/reactdiff_speed.py, run as a script."""
    out = tmp_path_factory.mktemp("speed")
    script = paths.repo_root() / "benchmarks" / "reactdiff_speed.py"
    options = [f"--{key.replace('_', '-')}={value}" for key, value in SPEED_RUN.items()]
    command = [sys.executable, str(script), "--profile=ci", *options, "--threads=1", "--quick"]
    done = subprocess.run(
        [*command, f"--results-dir={out}"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "fps/stream" in done.stdout
    return json.loads((out / "reactdiff_speed_ci.json").read_text())


def test_speed_records_settings_and_every_figure(speed_doc):
    assert speed_doc["benchmark"] == "reactdiff_speed_ci"
    settings = speed_doc["settings"]
    assert settings["profile"] == "ci" and settings["steps"] == [SPEED_RUN["steps"]]
    assert settings["threads"] == 1 and settings["repeats"] == 1
    assert settings["frames"] == SPEED_RUN["windows"] * WINDOW_FRAMES
    figures = speed_doc["figures"]
    expected = {"generation", "prepared_conditions", "flops", "parameters", "training"}
    expected |= {"real_time_fps", "paper"}
    assert set(figures) == expected
    paper = figures["paper"]
    assert paper["parameters_M"] == 83.95 and paper["gflops"] == 669.88
    assert paper["fps"] == {"50": 10.4, "10": 36.9} and "does not say" in paper["note"]


def test_speed_generation_counts_every_network_call(speed_doc):
    """One call per sampler step and window; fps per stream is the frames over the median time."""
    frames = speed_doc["settings"]["frames"]
    generation = speed_doc["figures"]["generation"]
    assert set(generation) == {"sde", "ode"}
    for rows in generation.values():
        row = rows[str(SPEED_RUN["steps"])]
        assert row["network_calls"] == SPEED_RUN["windows"] * SPEED_RUN["steps"]
        paired = row["paired"]
        assert row["fps_per_stream"] * paired["ours_median_s"] == pytest.approx(frames)
        assert row["real_time_factor"] == pytest.approx(row["fps_per_stream"] / 25)
        assert row["network_only_fps_per_stream"] > 0 and paired["reference_median_s"] > 0
        assert row["overhead_per_call"] == pytest.approx(paired["ratio_median"] - 1)


def test_speed_times_prepared_conditions_against_recomputing_them(speed_doc):
    prepared = speed_doc["figures"]["prepared_conditions"]
    assert prepared["calls"] == SPEED_RUN["steps"] and prepared["streams"] == SPEED_RUN["m"]
    paired = prepared["paired"]
    assert paired["ours_median_s"] > 0 and paired["reference_median_s"] > 0
    assert prepared["time_ratio"] == pytest.approx(paired["ratio_median"])


@pytest.mark.parametrize("factor", [3.0])
def test_speed_flops_match_the_dense_layer_estimate(speed_doc, factor):
    """A dense layer costs 2 x in x out FLOPs per frame, so one call on one stream of a window
    costs about 2 x parameters x frames; the count grows with the streams and steps exactly."""
    parameters = runtime.parameter_count(reactdiff.ReactDiff(reactdiff_net.profile_config("ci")))
    counts = speed_doc["figures"]["parameters"]
    assert counts["ci"] == parameters and counts["ci"] < counts["lab"] < counts["full"]
    flops = speed_doc["figures"]["flops"]
    one = flops["per_call"]["1"]
    estimate = 2 * parameters * WINDOW_FRAMES
    assert estimate / factor < one < estimate * factor
    steps, m = SPEED_RUN["steps"], SPEED_RUN["m"]
    assert flops["per_call"][str(m)] == m * one
    assert flops["per_window_one_reaction"][str(steps)] == steps * one
    assert flops["per_window_m_reactions"][str(steps)] == steps * m * one


def test_speed_training_rate_implies_the_profile_minutes(speed_doc):
    training = speed_doc["figures"]["training"]
    cfg = config.resolve("ci")
    assert training["steps_per_second"] > 0 and training["timed_steps"] == SPEED_RUN["train_steps"]
    assert training["steps_per_second"] * training["seconds_per_step"] == pytest.approx(1)
    assert training["batch_size"] == cfg.batch_size
    assert training["profile_train_steps"] == cfg.train_steps
    minutes = cfg.train_steps / training["steps_per_second"] / 60
    assert training["implied_minutes_for_profile_train_steps"] == pytest.approx(minutes)
    assert training["corpus"]["kind"] in {"SynthReact", "REACT 2024"}
