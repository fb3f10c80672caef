"""Tests for reactlib.train: a small model learns; a resumed run equals one run straight through,
bit for bit; the EMA follows its warm-up recursion; gradient clipping; checkpoints refuse other
configurations, garbage and pickled objects; the model cache; the log and its plot; and two
processes under torchrun train the same model as one process with the whole batch."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys

import pandas as pd
import pytest
import torch
from matplotlib.axes import Axes
from torch.optim.swa_utils import AveragedModel

from reactlib import paths, train
from reactlib.errors import DataError, UsageError
from reactlib.train import CheckpointMismatch, TrainSettings

WEIGHTS = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
IDENTITY = {"model": "mlp", "width": 16}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared machine: more threads only wait for one another."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mlp(seed: int = 0, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 1)
    )


def regression(model, step, rank, world, batch=16, noise=0.0):
    """A linear target on inputs drawn from a generator seeded by the step; ``noise`` adds
    label noise from torch's global generator, which fit seeds per step."""
    x = torch.randn(batch, 4, generator=torch.Generator().manual_seed(step))
    y = x @ WEIGHTS
    x, y = x[rank::world], y[rank::world]
    y = y + noise * torch.randn_like(y)
    loss = (model(x) - y).pow(2).mean()
    return loss, {"mse": loss.item()}


def _noisy(model, step, rank, world):
    return regression(model, step, rank, world, noise=0.1)


def _fit(out, settings, *, model=None, objective=regression, **kwargs):
    return train.fit(
        _mlp() if model is None else model, objective, settings, out, identity=IDENTITY, **kwargs
    )


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --- training -------------------------------------------------------------------------------------


@pytest.mark.parametrize("improvement", [20.0])
def test_a_small_model_learns_the_regression(tmp_path, improvement):
    settings = TrainSettings(steps=150, batch_size=16, lr=1e-2, log_every=1)
    trained = _fit(tmp_path / "run", settings)
    losses = trained.log["loss"]
    assert losses.head(5).mean() > improvement * losses.tail(5).mean()
    assert trained.step == 150 and trained.trained_now and trained.resumed_from is None
    assert not trained.model.training and not trained.ema.training


def test_fit_leaves_the_callers_generator_as_it_was(tmp_path):
    before = torch.get_rng_state()
    _fit(tmp_path / "run", TrainSettings(steps=3, batch_size=16), objective=_noisy)
    assert torch.equal(torch.get_rng_state(), before)


class Stopped(Exception):
    """A run stopped in the middle (a crash, a killed job)."""


def _crash_at(step_index: int):
    def objective(model, step, rank, world):
        if step == step_index:
            raise Stopped
        return _noisy(model, step, rank, world)

    return objective


@pytest.mark.parametrize("interrupted", ["finished", "crashed"])
def test_a_resumed_run_equals_one_run_straight_through(tmp_path, interrupted):
    """10 steps, then resumed to 20, give the same weights, EMA and log rows as 20 steps.

    The model has dropout and the objective label noise from the global generator, so the
    per-step seeding is needed. A log row every 3 steps and a checkpoint every 4: the finished
    run logged its last step (10), off the grid; the crashed one (stopped in its 10th step) logged
    step 9 after its last checkpoint (8). Neither row belongs in the straight run's log.
    """
    common = dict(batch_size=16, lr=1e-2, log_every=3, checkpoint_every=4)
    twenty = TrainSettings(steps=20, **common)
    straight = _fit(tmp_path / "straight", twenty, model=_mlp(0, 0.2), objective=_noisy)
    out = tmp_path / "resumed"
    if interrupted == "finished":
        first = _fit(out, TrainSettings(steps=10, **common), model=_mlp(0, 0.2), objective=_noisy)
        assert first.log["step"].tolist() == [3, 6, 9, 10]
        start = 10
    else:
        with pytest.raises(Stopped):
            _fit(out, twenty, model=_mlp(0, 0.2), objective=_crash_at(9))
        assert pd.read_csv(out / train.LOG_FILE)["step"].tolist() == [3, 6, 9]
        start = 8
    # Other initial weights: everything must come from the checkpoint.
    resumed = _fit(out, twenty, model=_mlp(7, 0.2), objective=_noisy)
    assert resumed.resumed_from == start and resumed.trained_now and resumed.step == 20
    _assert_same(resumed.model, straight.model)
    _assert_same(resumed.ema, straight.ema)
    columns = [c for c in straight.log.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.log[columns], straight.log[columns])
    assert resumed.log["step"].tolist() == [3, 6, 9, 12, 15, 18, 20]


def test_a_finished_run_trains_nothing(tmp_path):
    settings = TrainSettings(steps=5, batch_size=16)
    first = _fit(tmp_path / "run", settings)
    again = _fit(tmp_path / "run", settings, model=_mlp(seed=3))
    assert not again.trained_now and again.step == 5 and again.resumed_from is None
    _assert_same(again.model, first.model)
    _assert_same(again.ema, first.ema)
    pd.testing.assert_frame_equal(again.log, first.log)


def test_restarting_replaces_the_run(tmp_path):
    settings = TrainSettings(steps=4, batch_size=16)
    _fit(tmp_path / "run", settings)
    fresh = _fit(tmp_path / "run", TrainSettings(steps=2, batch_size=16, log_every=1), resume=False)
    assert fresh.trained_now and fresh.resumed_from is None
    assert fresh.log["step"].tolist() == [1, 2]
    assert train.load_checkpoint(tmp_path / "run")["step"] == 2


# --- EMA ------------------------------------------------------------------------------------------


@pytest.fixture
def averaged_models(monkeypatch):
    """Every AveragedModel fit makes."""
    made = []

    class Recorded(AveragedModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(train, "AveragedModel", Recorded)
    return made


def test_after_one_step_the_ema_is_the_model(tmp_path, averaged_models):
    trained = _fit(tmp_path / "run", TrainSettings(steps=1, batch_size=16, lr=0.1))
    _assert_same(trained.ema, trained.model)
    assert not torch.equal(trained.model[0].weight, _mlp()[0].weight)  # it did move
    (made,) = averaged_models
    assert isinstance(made, AveragedModel) and made.module is trained.ema


@pytest.mark.parametrize(("power", "cap"), [(2 / 3, 0.9999), (0.5, 0.6)])
def test_the_ema_follows_the_warm_up_recursion(tmp_path, averaged_models, power, cap):
    """e_1 = w_1, e_(k+1) = d_k e_k + (1 - d_k) w_(k+1) with d_k = min(cap, 1 - (1 + k)^-power),
    from the weights w_k after k steps, in float64 (with cap 0.6 the cap is reached at k = 3)."""
    n = 6
    seen = []  # the weights the objective sees at step k: those after k updates

    def recording(model, step, rank, world):
        seen.append(_tensors(model))
        return regression(model, step, rank, world)

    settings = TrainSettings(
        steps=n, batch_size=16, optimizer="sgd", lr=0.1, ema_power=power, ema_max=cap
    )
    trained = _fit(tmp_path / "run", settings, objective=recording)
    weights = [*seen[1:], _tensors(trained.model)]  # w_1 .. w_n
    expected = {k: v.double() for k, v in weights[0].items()}
    for k, w in enumerate(weights[1:], start=1):
        decay = min(cap, 1 - (1 + k) ** -power)
        expected = {key: decay * expected[key] + (1 - decay) * w[key].double() for key in w}
    for key, value in trained.ema.state_dict().items():
        torch.testing.assert_close(value.double(), expected[key], rtol=0, atol=1e-6)
    assert not torch.allclose(trained.ema[0].weight, trained.model[0].weight, atol=1e-4)
    assert averaged_models[0].n_averaged.item() == n
    assert train.load_checkpoint(trained.out)["ema"]["n_averaged"].item() == n


# --- gradient clipping ----------------------------------------------------------------------------


@pytest.mark.parametrize(("clip", "tolerance"), [(1.0, 1e-5), (0.25, 1e-5), (None, 1e-6)])
def test_gradient_clipping_bounds_the_update(tmp_path, clip, tolerance):
    """loss = w . a has gradient a = (3, 4), norm 5: one SGD step of lr 1 moves w by
    min(5, clip); the log keeps the norm before clipping."""
    direction = torch.tensor([[3.0, 4.0]])
    model = torch.nn.Linear(2, 1, bias=False)
    before = model.weight.detach().clone()

    def linear(model, step, rank, world):
        return model(direction).sum(), {}

    settings = TrainSettings(
        steps=1, batch_size=1, optimizer="sgd", lr=1.0, weight_decay=0.0, grad_clip=clip
    )
    trained = train.fit(model, linear, settings, tmp_path / "run", identity={})
    moved = (trained.model.weight.detach() - before).norm().item()
    assert moved == pytest.approx(5.0 if clip is None else clip, rel=tolerance)
    assert trained.log["grad_norm"].tolist() == pytest.approx([5.0], rel=1e-6)


# --- checkpoints ----------------------------------------------------------------------------------


@pytest.fixture
def finished(tmp_path):
    return _fit(tmp_path / "run", TrainSettings(steps=2, batch_size=16))


def test_another_identity_is_refused(finished):
    other = {**IDENTITY, "width": 32}
    with pytest.raises(CheckpointMismatch, match=r"width: 16 \(checkpoint\) vs 32 \(now\)"):
        train.fit(
            _mlp(), regression, TrainSettings(steps=4, batch_size=16), finished.out, identity=other
        )
    with pytest.raises(CheckpointMismatch, match="width"):
        train.load_checkpoint(finished.out, identity=other)
    assert train.load_checkpoint(finished.out)["step"] == 2  # nothing was overwritten


def test_other_settings_are_refused(finished):
    with pytest.raises(CheckpointMismatch, match=r"lr: 0\.0001 \(checkpoint\) vs 0\.001"):
        _fit(finished.out, TrainSettings(steps=4, batch_size=16, lr=1e-3))
    with pytest.raises(CheckpointMismatch, match="2 steps, more than the 1"):
        _fit(finished.out, TrainSettings(steps=1, batch_size=16))


def test_the_checkpoint_holds_the_run(finished):
    state = train.load_checkpoint(finished.out / train.CHECKPOINT_FILE, identity=IDENTITY)
    assert state["format"] == 1 and state["step"] == 2
    assert state["identity"] == IDENTITY
    assert state["identity_hash"] == train.identity_hash(IDENTITY)
    assert state["settings"] == TrainSettings(steps=2, batch_size=16).as_dict()
    assert state["model"].keys() == finished.model.state_dict().keys()
    assert state["optimizer"]["param_groups"][0]["lr"] == 1e-4


def test_a_missing_or_garbage_file_is_a_data_error(tmp_path, finished):
    missing = tmp_path / "none.pt"
    with pytest.raises(DataError, match="none.pt"):
        train.load_checkpoint(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="garbage.pt"):
        train.load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(DataError, match="foreign.pt: not a ReactLab checkpoint"):
        train.load_checkpoint(foreign)


class Arbitrary:
    """A class a weights-only load must refuse to rebuild."""


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path, finished):
    state = torch.load(finished.out / train.CHECKPOINT_FILE, weights_only=True)
    tainted = tmp_path / "tainted.pt"
    torch.save({**state, "extra": Arbitrary()}, tainted)
    assert isinstance(torch.load(tainted, weights_only=False)["extra"], Arbitrary)
    with pytest.raises(DataError, match="tainted.pt: refused"):
        train.load_checkpoint(tainted)
    with pytest.raises(DataError):
        train.restore(_mlp(), tainted)


@pytest.mark.parametrize("ema", [True, False])
def test_restore_loads_the_ema_or_the_weights(finished, ema):
    model = train.restore(_mlp(seed=5).train(), finished.out, identity=IDENTITY, ema=ema)
    assert not model.training
    _assert_same(model, finished.ema if ema else finished.model)


# --- cache ----------------------------------------------------------------------------------------


def test_identity_hash_is_canonical():
    digest = train.identity_hash({"a": 1, "b": (1, 2)})
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert train.identity_hash({"b": [1, 2], "a": 1}) == digest
    assert train.identity_hash({"a": 2, "b": (1, 2)}) != digest
    with pytest.raises(UsageError, match="JSON"):
        train.identity_hash({"a": object()})


def test_the_cache_trains_once_per_identity(tmp_path, monkeypatch):
    monkeypatch.setenv(train.MODELS_ENV, str(tmp_path / "models"))
    builds = []

    def build():
        builds.append(1)
        return _mlp(seed=len(builds))  # other weights on every call: they must be loaded

    settings = TrainSettings(steps=4, batch_size=16, lr=1e-2)
    first = train.cached("mlp", build, regression, settings, identity=IDENTITY)
    assert first.trained_now
    assert first.out == tmp_path / "models" / f"mlp-{train.identity_hash(IDENTITY)}"
    assert train.models_dir() == tmp_path / "models"
    again = train.cached("mlp", build, regression, settings, identity=IDENTITY)
    assert not again.trained_now and again.out == first.out and again.step == 4
    _assert_same(again.model, first.model)
    _assert_same(again.ema, first.ema)
    longer = train.cached(
        "mlp", build, regression, TrainSettings(steps=6, batch_size=16, lr=1e-2), identity=IDENTITY
    )
    assert longer.trained_now and longer.resumed_from == 4 and longer.out == first.out
    other = train.cached("mlp", build, regression, settings, identity={**IDENTITY, "width": 8})
    assert other.trained_now and other.out != first.out and other.resumed_from is None
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(
        [first.out.name, other.out.name]
    )  # no lock file left behind


# --- settings and misuse --------------------------------------------------------------------------


def test_bf16_on_the_cpu_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="CUDA"):
        _fit(tmp_path / "run", TrainSettings(steps=1, batch_size=16, bf16=True))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": 0},
        {"batch_size": 2.5},
        {"optimizer": "adam"},
        {"lr": 0.0},
        {"betas": (0.9, 1.0)},
        {"grad_clip": 0.0},
        {"momentum": 0.9},  # AdamW has no momentum
        {"ema_max": 1.5},
        {"log_every": 0},
        {"seed": -1},
    ],
)
def test_bad_settings_are_usage_errors(bad):
    with pytest.raises(UsageError, match=next(iter(bad))):
        TrainSettings(**{"steps": 1, "batch_size": 1, **bad})


def test_settings_round_trip_through_json():
    settings = TrainSettings(steps=3, batch_size=8, optimizer="sgd", momentum=0.9, grad_clip=None)
    assert TrainSettings(**json.loads(json.dumps(settings.as_dict()))) == settings


def test_an_objective_must_return_a_scalar_loss(tmp_path):
    def vector(model, step, rank, world):
        return model(torch.zeros(3, 4)).squeeze(1), {}

    with pytest.raises(UsageError, match="one-element loss"):
        _fit(tmp_path / "run", TrainSettings(steps=1, batch_size=3), objective=vector)


# --- log and plot ---------------------------------------------------------------------------------


def test_the_log_and_its_plot_are_written(tmp_path):
    trained = _fit(tmp_path / "run", TrainSettings(steps=10, batch_size=16, log_every=3))
    log = pd.read_csv(trained.out / train.LOG_FILE)
    assert log.columns.tolist() == ["step", "loss", "mse", "grad_norm", "lr", "seconds"]
    assert log["step"].tolist() == [3, 6, 9, 10]
    assert (log["lr"] == 1e-4).all() and log["seconds"].is_monotonic_increasing
    pd.testing.assert_frame_equal(log, trained.log)
    assert (trained.out / train.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = train.plot_log(trained.out)
    assert isinstance(ax, Axes) and ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "mse", "grad_norm"]


def test_a_curve_at_or_below_zero_is_drawn_on_a_symmetric_log_scale():
    log = pd.DataFrame({"step": [1, 2], "loss": [-1.0, -2.0], "lr": [0.1, 0.1]})
    ax = train.plot_log(log)
    assert ax.get_yscale() == "symlog" and len(ax.get_lines()) == 1


# --- two processes --------------------------------------------------------------------------------

_DDP_SCRIPT = """
import sys

import torch

from reactlib import train

WEIGHTS = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
SETTINGS = train.TrainSettings(steps=12, batch_size=32, lr=1e-2, log_every=4)


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))


def objective(model, step, rank, world):
    x = torch.randn(SETTINGS.batch_size, 4, generator=torch.Generator().manual_seed(step))
    y = torch.sin(x @ WEIGHTS)
    loss = (model(x[rank::world]) - y[rank::world]).pow(2).mean()
    return loss, {"mse": loss.item()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    trained = train.fit(build(), objective, SETTINGS, sys.argv[1], identity={"test": "ddp"})
    print("rank", train.distributed()[0], "of", sys.argv[2], "done", trained.step)
"""


@pytest.mark.timeout(120)
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch without gloo")
@pytest.mark.parametrize("tolerance", [1e-5])
def test_two_processes_train_as_one_with_the_whole_batch(tmp_path, tolerance):
    script = tmp_path / "ddp_fit.py"
    script.write_text(_DDP_SCRIPT)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(paths.repo_root()))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*command, "--standalone", str(script), str(tmp_path / "ddp"), "2"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2 done 12",
        "rank 1 of 2 done 12",
    ]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        [train.CHECKPOINT_FILE, train.LOG_FILE, train.PLOT_FILE]
    )

    one = runpy.run_path(str(script), run_name="single")
    identity = {"test": "ddp"}
    single = train.fit(
        one["build"](), one["objective"], one["SETTINGS"], tmp_path / "one", identity=identity
    )
    for ema, expected in ((False, single.model), (True, single.ema)):
        pair = train.restore(one["build"](), tmp_path / "ddp", identity=identity, ema=ema)
        for key, value in expected.state_dict().items():
            torch.testing.assert_close(pair.state_dict()[key], value, rtol=0, atol=tolerance)
    assert not torch.allclose(single.model[0].weight, one["build"]()[0].weight, atol=1e-3)
    ddp_log = pd.read_csv(tmp_path / "ddp" / train.LOG_FILE)
    assert ddp_log["step"].tolist() == single.log["step"].tolist() == [4, 8, 12]
    for column in ("loss", "mse", "grad_norm"):  # the loss over both halves of the batch
        assert ddp_log[column].tolist() == pytest.approx(
            single.log[column].tolist(), rel=0, abs=tolerance
        )
    assert train.load_checkpoint(tmp_path / "ddp")["ema"]["n_averaged"].item() == 12
