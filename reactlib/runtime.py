"""Seeding, device choice, parameter counts, progress bars and timers.

Every model in ReactLab is moved with ``.to(rl.runtime.select_device(cfg.device))``; nothing in
the package or the notebooks hard-codes a GPU, so the same code runs on a laptop and on a GPU.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from reactlib.config import Config


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU).

    Returns the seed, so a notebook can write ``seed = rl.runtime.seed_everything(cfg.seed)``.
    On CPU the same seed gives the same numbers in every run of the suite.
    """
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global generator, for code that still uses it
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def select_device(choice: str = "auto") -> torch.device:
    """``auto`` picks CUDA only when it is present, else the CPU; ``cpu``, ``cuda`` or ``cuda:N``
    are taken literally and fail clearly when that device does not exist."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {choice!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {choice!r} was asked for, but this torch ({torch.__version__}) sees no "
                "CUDA GPU; use device='auto' or 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {choice!r} was asked for, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {choice!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def describe_device(device: torch.device) -> str:
    """A human-readable name for provenance: the GPU model, or the CPU with its thread count."""
    import torch

    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def parameter_count(module: torch.nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def progress(iterable: Iterable | None = None, *, cfg: Config, **tqdm_kwargs: Any):
    """A tqdm progress bar that honours the profile: silent when ``cfg.progress`` is False (``ci``).

    ``tqdm.auto`` draws a notebook widget in Jupyter and a text bar in a terminal. The profile is
    checked explicitly because ``TQDM_DISABLE`` does not silence notebook bars.
    """
    from tqdm.auto import tqdm

    disable = tqdm_kwargs.pop("disable", False) or not cfg.progress
    return tqdm(iterable, disable=disable, **tqdm_kwargs)


class Timer:
    """Wall-clock timer with named sections; ``rl.results.save`` records it as provenance.

    >>> timer = Timer()
    >>> with timer("train"):
    ...     pass
    >>> sorted(timer.as_dict())
    ['total', 'train']
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.sections: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if name == "total":
            raise ValueError("'total' is the timer's own overall time; name the section otherwise")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sections[name] = self.sections.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self._start

    def as_dict(self) -> dict[str, float]:
        """Section times and the total, in seconds, rounded to milliseconds."""
        return {**{k: round(v, 3) for k, v in self.sections.items()}, "total": round(self.total, 3)}
