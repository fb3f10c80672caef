"""One trainer for every model: ReactDiff's denoiser, PosNet and the learned baselines.

:func:`fit` runs a fixed number of optimiser steps of AdamW or SGD with a constant learning rate,
clips the global gradient norm, keeps an exponential moving average (EMA) of the weights with a
warm-up, logs to ``log.csv``, draws ``loss.png`` and checkpoints to ``checkpoint.pt``. The same
call trains on a laptop CPU, on a GPU (optionally under bfloat16 autocast) and on several GPUs
under ``torchrun`` (DistributedDataParallel).

The model's data come from an *objective*, ``objective(model, step, rank, world) -> (loss,
logs)``, which draws its own batch for that step: its share of the step's global batch, items
``rank::world``. Every step is also seeded from ``(seed, step, rank)``, so a step does not depend
on what ran before it: a run stopped and resumed from its checkpoint ends with the same weights,
bit for bit on CPU, as one that ran straight through, and no data-loader state is saved.

:func:`cached` keeps finished runs under ``data/models/<name>-<hash of identity>/`` (or
``$REACTLIB_MODELS``) so a notebook trains a model once and later runs load it.

Why one module of about 730 lines: the settings, the step loop, the checkpoint format and the
resume rules depend on each other line by line (a resumed run must end bit for bit where an
uninterrupted one does), so they are read together.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import distributed as dist
from torch.optim.swa_utils import AveragedModel

from reactlib import paths, runtime
from reactlib.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from reactlib.config import Config

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout :func:`fit` writes and :func:`load_checkpoint` reads."""

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"
PLOT_FILE = "loss.png"

MODELS_ENV = "REACTLIB_MODELS"
"""Environment variable naming the folder :func:`cached` keeps trained models in."""

_CHECKPOINT_KEYS = frozenset(
    {
        "format",
        "identity",
        "identity_hash",
        "settings",
        "step",
        "seconds",
        "model",
        "ema",
        "optimizer",
    }
)
_LOG_OWN_COLUMNS = ("step", "loss", "grad_norm", "lr", "seconds")
_NOT_PLOTTED = ("step", "lr", "seconds")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How to train: optimiser, EMA, precision, logging and checkpoints.

    The defaults are ReactDiff's (Table 7 of the paper: AdamW, learning rate 1e-4, betas
    (0.95, 0.999), weight decay 1e-3); ``eps`` is torch's default because the paper gives none.
    """

    steps: int
    """Optimiser steps in the whole run (a resumed run continues up to this many)."""
    batch_size: int
    """The global batch: items per optimiser step over all processes. The objective draws the
    batch itself; this is recorded with the run and checked to split evenly over processes."""
    optimizer: str = "adamw"
    """``adamw`` or ``sgd``."""
    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-3
    eps: float = 1e-8
    momentum: float = 0.0
    """SGD's momentum (AdamW has none: a non-zero value with ``adamw`` is refused)."""
    grad_clip: float | None = 1.0
    """Largest global gradient norm (``torch.nn.utils.clip_grad_norm_``); None: no clipping."""
    ema_power: float = 2 / 3
    """EMA warm-up: the decay after ``n`` averaged steps is ``min(ema_max, 1 - (1 + n) **
    -ema_power)``, k-diffusion's EMAWarmup with ``inv_gamma = 1``."""
    ema_max: float = 0.9999
    bf16: bool = False
    """Run the objective under ``torch.autocast(bfloat16)``; CUDA only."""
    log_every: int = 10
    """Write a row of ``log.csv`` every this many steps, and at the last step."""
    checkpoint_every: int = 500
    """Write ``checkpoint.pt`` every this many steps, and at the last step."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            _require(
                _is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}"
            )
        _require(
            _is_int(self.seed) and 0 <= self.seed < 2**63,
            f"seed must be an integer in [0, 2**63), got {self.seed!r}",
        )
        _require(
            self.optimizer in ("adamw", "sgd"),
            f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}",
        )
        _require(self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        _require(self.eps > 0, f"eps must be > 0, got {self.eps!r}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _require(self.momentum >= 0, f"momentum must be >= 0, got {self.momentum!r}")
        _require(
            self.optimizer == "sgd" or self.momentum == 0,
            f"momentum applies to optimizer 'sgd' only, got momentum={self.momentum!r} "
            f"with {self.optimizer!r}",
        )
        betas = tuple(float(b) for b in self.betas)
        _require(
            len(betas) == 2 and all(0 <= b < 1 for b in betas),
            f"betas must be two numbers in [0, 1), got {self.betas!r}",
        )
        object.__setattr__(self, "betas", betas)
        _require(
            self.grad_clip is None or self.grad_clip > 0,
            f"grad_clip must be > 0 or None (no clipping), got {self.grad_clip!r}",
        )
        _require(self.ema_power > 0, f"ema_power must be > 0, got {self.ema_power!r}")
        _require(0 <= self.ema_max <= 1, f"ema_max must be in [0, 1], got {self.ema_max!r}")

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types (``betas`` as a list)."""
        return {**dataclasses.asdict(self), "betas": list(self.betas)}

    def ema_decay(self, averaged: int) -> float:
        """The EMA's decay for the update after ``averaged`` steps have been averaged."""
        return min(self.ema_max, 1 - (1 + averaged) ** -self.ema_power)


Objective = Callable[[torch.nn.Module, int, int, int], tuple[torch.Tensor, dict[str, float]]]
"""``objective(model, step, rank, world) -> (loss, logs)``: the scalar loss to minimise at 0-based
``step`` and a dict of floats to log beside it.

The objective draws its own batch for ``(step, rank, world)`` deterministically: process
``rank`` of ``world`` takes items ``rank::world`` of the step's global batch. Under
DistributedDataParallel ``model`` is the DDP wrapper, whose ``forward`` averages the gradients
over processes: compute the loss through ``model(...)``, since a method reached through
``model.module`` bypasses that averaging.
"""


@dataclass
class Trained:
    """What :func:`fit` and :func:`cached` return."""

    model: torch.nn.Module
    """The trained (not averaged) weights, in eval mode, unwrapped from DDP."""
    ema: torch.nn.Module
    """The EMA of the weights (the module inside the ``AveragedModel``), in eval mode."""
    out: Path
    """The run folder: ``checkpoint.pt``, ``log.csv``, ``loss.png``."""
    step: int
    """Optimiser steps done."""
    log: pd.DataFrame
    """``log.csv``."""
    identity: dict
    """What defines the run (see :func:`fit`), as plain JSON types."""
    resumed_from: int | None
    """The step a resume started from; None when trained from scratch or not at all."""
    trained_now: bool
    """False when the finished run was found and nothing was trained."""


class CheckpointMismatch(UsageError):
    """The checkpoint was written by another configuration (identity or settings)."""


def distributed() -> tuple[int, int]:
    """``(rank, world)``: from the process group when one exists, else from ``torchrun``'s
    ``RANK`` and ``WORLD_SIZE``; ``(0, 1)`` in a plain process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _plain_identity(identity: Mapping[str, Any]) -> dict:
    """``identity`` as plain JSON types (tuples become lists), so that a stored identity and a
    new one compare equal exactly when their JSON does."""
    if not isinstance(identity, Mapping):
        raise UsageError(f"identity must be a mapping, got {type(identity).__name__}")
    try:
        return json.loads(json.dumps(dict(identity), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise UsageError(f"identity must hold JSON values only (no NaN): {err}") from err


def identity_hash(identity: Mapping[str, Any]) -> str:
    """16 hex characters of the SHA-256 of ``identity``'s canonical JSON (sorted keys)."""
    text = json.dumps(_plain_identity(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def models_dir() -> Path:
    """Where :func:`cached` keeps trained models: ``$REACTLIB_MODELS``, else ``data/models/``
    under the checkout (:func:`reactlib.paths.env_dir`)."""
    return paths.env_dir(MODELS_ENV, Path("data") / "models")


def _checkpoint_path(path: str | Path) -> Path:
    """A run folder's checkpoint, or ``path`` itself when it names a file."""
    path = Path(path)
    return path / CHECKPOINT_FILE if path.is_dir() else path


def _differences(old: Mapping, new: Mapping, skip: tuple[str, ...] = ()) -> list[str]:
    keys = sorted((set(old) | set(new)) - set(skip))
    missing = "<absent>"
    return [
        f"{key}: {old.get(key, missing)!r} (checkpoint) vs {new.get(key, missing)!r} (now)"
        for key in keys
        if old.get(key, missing) != new.get(key, missing)
    ]


def load_checkpoint(
    path: str | Path, *, identity: Mapping[str, Any] | None = None, map_location: Any = "cpu"
) -> dict:
    """Read a checkpoint written by :func:`fit` (``path``: the file or its run folder).

    Always loaded with ``weights_only=True``: a file holding anything but tensors and plain
    values is refused rather than unpickled. Raises :class:`~reactlib.errors.DataError` naming the
    file when it is missing, unreadable or not a ReactLab checkpoint, and
    :class:`CheckpointMismatch` naming the differing keys when ``identity`` is given and differs
    from the one the checkpoint was written with.
    """
    path = _checkpoint_path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise DataError(
            f"{path}: refused: it holds objects other than tensors and plain values, which "
            f"weights-only loading does not unpickle ({err})"
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise DataError(f"{path}: not a readable torch checkpoint ({err})") from err
    if (
        not isinstance(state, dict)
        or state.get("format") != CHECKPOINT_FORMAT
        or not _CHECKPOINT_KEYS.issubset(state)
    ):
        raise DataError(
            f"{path}: not a ReactLab checkpoint (format {CHECKPOINT_FORMAT} with keys "
            f"{sorted(_CHECKPOINT_KEYS)})"
        )
    if identity is not None:
        differences = _differences(state["identity"], _plain_identity(identity))
        if differences:
            raise CheckpointMismatch(
                f"{path} was written for another identity: {'; '.join(differences)}"
            )
    return state


def _ema_weights(averaged_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The averaged module's own state dict out of an ``AveragedModel`` state dict."""
    prefix = "module."
    return {k[len(prefix) :]: v for k, v in averaged_state.items() if k.startswith(prefix)}


def restore(
    model: torch.nn.Module,
    path: str | Path,
    *,
    identity: Mapping[str, Any] | None = None,
    ema: bool = True,
) -> torch.nn.Module:
    """Load a checkpoint's weights into ``model``, the EMA by default (``ema=False``: the
    trained weights), and return it in eval mode. ``identity`` is checked as in
    :func:`load_checkpoint`."""
    model.load_state_dict(checkpoint_weights(load_checkpoint(path, identity=identity), ema=ema))
    return model.eval()


def checkpoint_weights(state: Mapping[str, Any], *, ema: bool = True) -> dict[str, torch.Tensor]:
    """The model weights in a checkpoint read by :func:`load_checkpoint`: the EMA's (default) or
    the trained ones, as a state dict for the model itself."""
    return _ema_weights(state["ema"]) if ema else state["model"]


def trained_module(
    state: Mapping[str, Any], module: torch.nn.Module, *, ema: bool = True, device="cpu"
) -> torch.nn.Module:
    """``module`` (a freshly built network of the checkpoint's configuration) with the weights of
    a checkpoint read by :func:`load_checkpoint` (the EMA's by default), in eval mode on
    ``device``."""
    module.load_state_dict(checkpoint_weights(state, ema=ema))
    return module.to(device).eval()


def load_model(
    path: str | Path,
    kind: str,
    from_checkpoint: Callable[..., torch.nn.Module],
    *,
    label: str,
    ema: bool = True,
    device="cpu",
) -> tuple[torch.nn.Module, dict]:
    """A trained model and its identity from a checkpoint or run folder whose identity names the
    model ``kind`` (``label`` names it in the error when it does not);
    ``from_checkpoint(state, ema=, device=)`` rebuilds it."""
    state = load_checkpoint(path)
    found = state["identity"].get("model")
    if found != kind:
        raise UsageError(f"{path}: a {found!r} checkpoint, not a {label} one")
    return from_checkpoint(state, ema=ema, device=device), state["identity"]


def _optimizer(params, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(
            params,
            lr=settings.lr,
            betas=settings.betas,
            eps=settings.eps,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.SGD(
        params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )


def _averaged(model: torch.nn.Module, settings: TrainSettings) -> AveragedModel:
    """torch's ``AveragedModel`` (weights and buffers) with the warm-up decay of ``settings``."""

    @torch.no_grad()
    def ema_update(averaged: list[torch.Tensor], current: list[torch.Tensor], n) -> None:
        # One call per device and dtype, after n (>= 1) updates: the first one copies.
        decay = settings.ema_decay(int(n))
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            torch._foreach_lerp_(averaged, current, 1 - decay)  # as torch's own EMA helper
        else:  # integer buffers (a batch counter) are not averaged: they follow the model
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=ema_update, use_buffers=True)


def coerce_setting(value, like):
    """A ``--set`` string (or any value) converted to the type of ``like``, a field's default:
    ``true``/``false`` for booleans, comma-separated tuples, ``none`` for an optional number."""
    if not isinstance(value, str):
        return value
    if isinstance(like, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"expected true or false, got {value!r}")
        return value.lower() in ("true", "1")
    if isinstance(like, tuple):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        return tuple(type(like[0])(p) if like else p for p in parts)
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float) or like is None:
        return float(value) if value.lower() != "none" else None
    return value


def apply_settings(what: str, overrides: Mapping[str, Any], bases: Mapping[str, Any]) -> dict:
    """Each dataclass of ``bases`` (a name -> instance, e.g. the network's configuration, the
    loss's and :class:`TrainSettings`) with the ``overrides`` among its fields replaced, values
    converted to the field's type (:func:`coerce_setting`). An override that is no field of any
    of them, or a value that does not convert or validate, is a :class:`UsageError` naming
    ``what`` (the model) and the valid settings."""
    fields = {name: {f.name for f in dataclasses.fields(base)} for name, base in bases.items()}
    chosen: dict[str, dict] = {name: {} for name in bases}
    for key, value in overrides.items():
        owner = next((name for name, names in fields.items() if key in names), None)
        if owner is None:
            valid = sorted(set().union(*fields.values()))
            raise UsageError(f"unknown {what} setting {key!r}; valid: {', '.join(valid)}")
        try:
            chosen[owner][key] = coerce_setting(value, getattr(bases[owner], key))
        except ValueError as err:
            raise UsageError(f"{what} setting {key}={value!r}: {err}") from err
    return {name: dataclasses.replace(base, **chosen[name]) for name, base in bases.items()}


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A 64-bit seed for ``(seed, step, rank)`` through NumPy's SeedSequence, so that nearby
    steps get independent streams: what the trainer seeds each step with, and what objectives
    draw their batch of a step from (with ``rank`` 0: the global batch is the same on every
    rank, and each rank takes its share)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0])


def _seed_step(seed: int, step: int, rank: int, device: torch.device) -> None:
    """Seed torch's generators for the CPU and ``device`` with :func:`step_seed`.

    Only these two: ``torch.manual_seed`` also visits every other backend, which costs more
    than a small model's whole step.
    """
    value = step_seed(seed, step, rank)
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.manual_seed(value)  # the current device, which _resolve_device set


def _resolve_device(device: torch.device | str, world: int) -> torch.device:
    """The device to train on; under ``torchrun`` a bare ``cuda`` means this process's GPU."""
    try:
        device = runtime.select_device(str(device))
    except ValueError as err:
        raise UsageError(str(err)) from err
    if device.type == "cuda" and world > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


class _Log:
    """``log.csv``, one row appended per logged step (a crashed run keeps its rows)."""

    def __init__(self, path: Path, keep_through: int | None, log_every: int):
        """A new log, or with ``keep_through`` (a resume's first step) the rows of the old one
        that a run straight through would also have written."""
        self.path = path
        self.fields: list[str] | None = None
        rows: list[dict] = []
        if keep_through is not None and path.is_file():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                # Rows after the checkpoint are trained again; a row off the log_every grid was
                # the last step of a shorter run.
                rows = [
                    row
                    for row in reader
                    if int(row["step"]) <= keep_through and int(row["step"]) % log_every == 0
                ]
        if self.fields is None:
            path.unlink(missing_ok=True)
        else:
            paths.write_atomically(path, lambda tmp: self._write(tmp, rows, "w"))

    def _write(self, path: Path, rows: list[dict], mode: str) -> None:
        with path.open(mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if mode == "w" or f.tell() == 0:
                writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, float]) -> None:
        if self.fields is None:
            self.fields = list(row)
        if list(row) != self.fields:
            raise UsageError(
                f"the objective's logs changed: {self.path} has columns {self.fields}, "
                f"step {row['step']} gives {list(row)}"
            )
        self._write(self.path, [row], "a")


def _read_log(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=list(_LOG_OWN_COLUMNS))


def _check_resumable(state: dict, settings: TrainSettings, path: Path) -> None:
    differences = _differences(state["settings"], settings.as_dict(), skip=("steps",))
    if differences:
        raise CheckpointMismatch(
            f"{path} was trained with other settings: {'; '.join(differences)}. Train into "
            "another folder, or pass resume=False to start this one again."
        )
    if state["step"] > settings.steps:
        raise CheckpointMismatch(
            f"{path} holds {state['step']} steps, more than the {settings.steps} asked for"
        )


def _reduce_mean(values: list[float], world: int, device: torch.device) -> list[float]:
    """The mean of ``values`` over the processes (every process gets it)."""
    if world == 1:
        return values
    summed = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(summed)
    return (summed / world).tolist()


def fit(
    model: torch.nn.Module,
    objective: Objective,
    settings: TrainSettings,
    out: str | Path,
    *,
    identity: Mapping[str, Any],
    cfg: Config | None = None,
    device: torch.device | str = "cpu",
    resume: bool = True,
) -> Trained:
    """Train ``model`` (in place) for ``settings.steps`` optimiser steps of ``objective``, into
    the run folder ``out``.

    ``identity`` is what defines the run besides ``settings``: the model's configuration, the
    data's digest, the objective's name, as JSON values. It is stored in the checkpoint and
    checked on resume. With ``resume`` (the default), a checkpoint in ``out`` with the same
    identity and settings (``steps`` may have grown) is continued from its step, and a finished
    one trains nothing; another identity or other settings raise :class:`CheckpointMismatch`
    rather than overwrite the run. ``resume=False`` starts again from ``model``'s weights.

    Each step seeds torch's generator from ``(settings.seed, step, rank)`` before calling the
    objective; torch's generator is restored afterwards, as the caller had it. When launched by
    ``torchrun`` the processes train one model with DistributedDataParallel (a process group is
    made when none exists, and removed at the end); only rank 0 writes files, every rank returns.
    ``cfg`` (a :class:`~reactlib.config.Config`) decides whether a progress bar is shown; None:
    no bar.
    """
    identity = _plain_identity(identity)
    out = Path(out)
    rank, world = distributed()
    device = _resolve_device(device, world)
    if settings.bf16 and device.type != "cuda":
        raise UsageError(
            f"bf16 autocast needs a CUDA device, and training runs on {device}; "
            "set bf16=False to train in float32"
        )
    _require(
        settings.batch_size % world == 0,
        f"batch_size {settings.batch_size} does not split evenly over {world} processes",
    )
    made_group = world > 1 and not dist.is_initialized()
    if made_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        if world > 1:  # every process reads the checkpoint after rank 0 made the folder
            dist.barrier()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            ema, step, resumed_from, trained_now = _train(
                model, objective, settings, out, identity, cfg, device, resume
            )
        if world > 1:  # return once rank 0 has written the run
            dist.barrier()
    finally:
        if made_group:
            dist.destroy_process_group()
    return Trained(
        model=model.eval(),
        ema=ema.eval(),
        out=out,
        step=step,
        log=_read_log(out / LOG_FILE),
        identity=identity,
        resumed_from=resumed_from,
        trained_now=trained_now,
    )


def _train(
    model: torch.nn.Module,
    objective: Objective,
    settings: TrainSettings,
    out: Path,
    identity: dict,
    cfg: Config | None,
    device: torch.device,
    resume: bool,
) -> tuple[torch.nn.Module, int, int | None, bool]:
    """:func:`fit` once the processes and the device are set up: trains ``model`` in place and
    returns ``(EMA module, steps done, step resumed from, whether anything was trained)``."""
    rank, world = distributed()
    model.to(device)
    optimizer = _optimizer(model.parameters(), settings)
    ema = _averaged(model, settings)
    checkpoint = out / CHECKPOINT_FILE
    start = 0
    seconds_before = 0.0
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, identity=identity, map_location=device)
        _check_resumable(state, settings, checkpoint)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start, seconds_before = state["step"], state["seconds"]
    if start == settings.steps:
        return ema.module, start, None, False
    resumed_from = start or None

    log = _Log(out / LOG_FILE, resumed_from, settings.log_every) if rank == 0 else None
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16) if settings.bf16 else nullcontext()
    )
    max_norm = math.inf if settings.grad_clip is None else settings.grad_clip
    steps = range(start, settings.steps)
    bar_options = {"desc": "train", "initial": start, "total": settings.steps}
    if cfg is None or rank != 0:
        from tqdm.auto import tqdm

        bar = tqdm(steps, disable=True, **bar_options)
    else:
        bar = runtime.progress(steps, cfg=cfg, **bar_options)
    started = time.perf_counter()
    net.train()
    for step in bar:
        _seed_step(settings.seed, step, rank, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, logs = objective(net, step, rank, world)
        _require(
            isinstance(loss, torch.Tensor) and loss.numel() == 1,
            f"the objective must return a one-element loss tensor, got {loss!r}",
        )
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        ema.update_parameters(model)
        done = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            _require(
                not set(logs) & set(_LOG_OWN_COLUMNS),
                f"the objective's logs may not use the names {_LOG_OWN_COLUMNS}, got {list(logs)}",
            )
            values = _reduce_mean(
                [float(loss.detach()), *(float(v) for v in logs.values())], world, device
            )
            if log is not None:
                log.append(
                    {
                        "step": done,
                        "loss": values[0],
                        **dict(zip(logs, values[1:], strict=True)),
                        "grad_norm": float(grad_norm),
                        "lr": optimizer.param_groups[0]["lr"],
                        "seconds": seconds_before + time.perf_counter() - started,
                    }
                )
            bar.set_postfix(loss=f"{values[0]:.4g}", refresh=False)
        if rank == 0 and (done % settings.checkpoint_every == 0 or done == settings.steps):
            state = {
                "format": CHECKPOINT_FORMAT,
                "identity": identity,
                "identity_hash": identity_hash(identity),
                "settings": settings.as_dict(),
                "step": done,
                "seconds": seconds_before + time.perf_counter() - started,
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
            }
            paths.write_atomically(checkpoint, lambda tmp, state=state: torch.save(state, tmp))
    bar.close()
    if rank == 0:
        _save_plot(out)
    return ema.module, settings.steps, resumed_from, True


def _save_plot(out: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    plot_log(out / LOG_FILE, ax=figure.add_subplot())
    paths.write_atomically(out / PLOT_FILE, lambda tmp: figure.savefig(tmp, dpi=100))


def plot_log(log_or_path: pd.DataFrame | str | Path, ax: Axes | None = None) -> Axes:
    """Loss curves from a training log (a DataFrame, ``log.csv`` or its run folder): every
    numeric column but step, lr and seconds against the step, on a log scale (symmetric log
    when a curve reaches zero or below)."""
    import pandas as pd

    if isinstance(log_or_path, pd.DataFrame):
        log = log_or_path
    else:
        path = Path(log_or_path)
        log = _read_log(path / LOG_FILE if path.is_dir() else path)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    curves = [
        c for c in log.columns if c not in _NOT_PLOTTED and pd.api.types.is_numeric_dtype(log[c])
    ]
    for column in curves:
        ax.plot(log["step"], log[column], label=column)
    positive = bool(len(log)) and all((log[c] > 0).all() for c in curves)
    ax.set_yscale("log" if positive else "symlog")
    ax.set_xlabel("step")
    if curves:
        ax.legend()
    return ax


def cached(
    name: str,
    build: Callable[[], torch.nn.Module],
    objective: Objective,
    settings: TrainSettings,
    *,
    identity: Mapping[str, Any],
    cfg: Config | None = None,
    device: torch.device | str = "cpu",
) -> Trained:
    """Train ``build()`` once and keep it: the run lives in ``models_dir() / f"{name}-{hash}"``
    with ``hash`` = :func:`identity_hash` of ``identity``, so another identity trains another
    model. A finished run is loaded (``trained_now`` False), an unfinished one resumed.

    ``build`` runs with torch's generator seeded from ``settings.seed``, so the initial weights
    do not depend on what ran before. Processes take turns on the folder
    (:func:`reactlib.paths.file_lock`): when two ask for the same model, one trains it and the
    other loads it. Under ``torchrun`` rank 0 takes the lock for the whole job.
    """
    _require(
        bool(name) and "/" not in name and not name.startswith("."),
        f"name must be a plain folder name, got {name!r}",
    )
    out = models_dir() / f"{name}-{identity_hash(identity)}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    rank, _ = distributed()
    with paths.file_lock(out) if rank == 0 else nullcontext():
        return fit(
            model, objective, settings, out, identity=identity, cfg=cfg, device=device, resume=True
        )
