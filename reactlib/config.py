"""Run profiles: ``ci``, ``lab`` and ``full`` in one place, plus ``auto``.

A notebook's third cell calls ``cfg = rl.config.resolve(profile, seed=seed, ...)``. The profile is
taken from, in order: the ``profile`` argument (the papermill parameter), the ``REACTLIB_PROFILE``
environment variable (how nbval and CI select ``ci``), and finally ``auto``, which means ``full``
when CUDA is available and ``lab`` otherwise. Every other setting starts at the profile's value and
can be overridden by keyword; ``None`` means "keep the profile's value", so a notebook can pass its
whole parameters cell through unchanged.

| profile | where | budget for the whole suite |
|---|---|---|
| ci   | CI on every commit, 2 CPU cores | 10 minutes |
| lab  | a student's laptop CPU          | 90 minutes |
| full | one GPU; paper-sized models     | hours      |
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import typing
from dataclasses import dataclass
from types import MappingProxyType

from reactlib.errors import UsageError

PROFILE_ENV = "REACTLIB_PROFILE"

PROFILE_NAMES = ("ci", "lab", "full")
VALID_PROFILES = (*PROFILE_NAMES, "auto")


@dataclass(frozen=True, kw_only=True)
class Config:
    """A resolved run configuration. Frozen: change it with :func:`resolve` overrides."""

    profile: str
    """The concrete profile: ``ci``, ``lab`` or ``full``."""
    requested: str
    """What was asked for (may be ``auto``)."""
    source: str
    """Where the request came from: ``parameter``, ``REACTLIB_PROFILE`` or ``default``."""
    description: str
    budget_minutes: float | None
    """Wall-time budget for the whole suite under this profile (None: no fixed budget)."""

    # Run settings, shared by every notebook's parameters cell.
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    """REACT 2024 copy to use instead of SynthReact (None: SynthReact)."""
    results_dir: str | None = None
    """Where ``rl.results.save`` writes (None: ``runs/<profile>/<notebook>/``)."""
    progress: bool = True
    """Show progress bars (off in ``ci``, where they only clutter logs)."""

    # SynthReact corpus size.
    synth_sessions: int
    synth_listeners: int
    clip_frames: int
    synth_videos: int

    # Model and training budget.
    model_channels: int
    train_steps: int
    batch_size: int
    learning_rate: float

    # Online generation and evaluation.
    window: int = 16
    sample_steps: int = 50
    num_reactions: int = 10
    eval_items: int | None = None
    """Test items scored (None: all of them)."""

    def as_dict(self) -> dict[str, typing.Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """A short human-readable account of what was resolved and why."""
        why = {
            "parameter": "the notebook's `profile` parameter",
            "REACTLIB_PROFILE": f"the {PROFILE_ENV} environment variable",
            "default": "no parameter and no environment variable",
        }[self.source]
        head = f"profile {self.profile!r}"
        if self.requested != self.profile:
            head += f" (asked for {self.requested!r})"
        lines = [f"{head}, chosen by {why}: {self.description}"]
        for name in OVERRIDABLE:
            lines.append(f"  {name:<15} = {getattr(self, name)!r}")
        return "\n".join(lines)


_FIXED_FIELDS = ("profile", "requested", "source", "description", "budget_minutes")

OVERRIDABLE: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Config) if f.name not in _FIXED_FIELDS
)
"""The keys :func:`resolve` accepts as overrides, in declaration order."""

_PROFILES: dict[str, dict[str, typing.Any]] = {
    "ci": dict(
        description="CI on every commit: tiny SynthReact, a 0.16 M-parameter denoiser, "
        "a few hundred steps",
        budget_minutes=10,
        progress=False,
        synth_sessions=12,
        synth_listeners=3,
        clip_frames=256,
        synth_videos=2,
        model_channels=16,
        train_steps=300,
        batch_size=16,
        learning_rate=1e-3,
        sample_steps=20,
        num_reactions=4,
        eval_items=8,
    ),
    "lab": dict(
        description="a student's laptop CPU: medium SynthReact, a 0.37 M-parameter denoiser "
        "trained in minutes, ablation directions visible",
        budget_minutes=90,
        synth_sessions=120,
        synth_listeners=4,
        clip_frames=750,
        synth_videos=8,
        model_channels=32,
        train_steps=3000,
        batch_size=32,
        learning_rate=1e-3,
        eval_items=64,
    ),
    "full": dict(
        description="one GPU: REACT 2024 when present (else large SynthReact), paper-sized "
        "models and the papers' hyperparameters",
        budget_minutes=None,
        synth_sessions=1600,
        synth_listeners=4,
        clip_frames=750,
        synth_videos=32,
        model_channels=128,
        train_steps=30_000,
        batch_size=100,
        learning_rate=1e-4,
    ),
}

PROFILES = MappingProxyType({k: MappingProxyType(v) for k, v in _PROFILES.items()})
"""The profile table, read-only."""


class ConfigError(UsageError):
    """A profile or override that does not exist, or an override of the wrong type or range."""


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _check_profile(name: object, origin: str) -> str:
    if name not in VALID_PROFILES:
        raise ConfigError(
            f"unknown profile {name!r} (from {origin}); valid profiles: {', '.join(VALID_PROFILES)}"
        )
    return typing.cast(str, name)


def _field_types() -> dict[str, typing.Any]:
    return typing.get_type_hints(Config)


_MINIMUM = {"seed": 0, "synth_videos": 0}
"""Smallest allowed value of an integer setting; every other count must be at least 1."""
_SEED_LIMIT = 2**32


def _coerce(key: str, value: object, annotation: typing.Any) -> object:
    """Check an override against its field's type and range; return it as that type.

    NumPy scalars are accepted and converted (``np.int64(3)`` -> ``3``); an int is accepted for a
    float setting (``1`` -> ``1.0``); a bool is never taken for a number.
    """
    allowed = typing.get_args(annotation) or (annotation,)
    names = " or ".join("None" if k is type(None) else k.__name__ for k in allowed)
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif int in allowed and isinstance(value, numbers.Integral):
        number = int(value)
        low = _MINIMUM.get(key, 1)
        high = _SEED_LIMIT - 1 if key == "seed" else None
        if number < low or (high is not None and number > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ConfigError(f"override {key}={value!r} must be {bound}")
        return number
    elif float in allowed and isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(f"override {key}={value!r} must be a finite number > 0")
        return number
    elif str in allowed and isinstance(value, str):
        return value
    raise ConfigError(f"override {key}={value!r} must be {names}, not {type(value).__name__}")


def resolve(profile: str | None = None, **overrides: typing.Any) -> Config:
    """Resolve a profile and apply overrides.

    ``profile``: ``ci``, ``lab``, ``full``, ``auto`` or None (then ``$REACTLIB_PROFILE``, then
    ``auto``). Overrides whose value is None are ignored, so a parameters cell can be passed as is.
    Unknown profiles, unknown override keys, wrongly typed values and out-of-range values (a seed
    outside [0, 2**32), a count below 1, a non-finite or non-positive rate) raise
    :class:`ConfigError` with the valid choices in the message.
    """
    if profile is not None:
        requested, source = _check_profile(profile, "the profile argument"), "parameter"
    elif os.environ.get(PROFILE_ENV):
        requested = _check_profile(os.environ[PROFILE_ENV], f"${PROFILE_ENV}")
        source = PROFILE_ENV
    else:
        requested, source = "auto", "default"
    concrete = ("full" if _cuda_available() else "lab") if requested == "auto" else requested

    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError(
            f"unknown override{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"valid keys: {', '.join(OVERRIDABLE)}"
        )
    types = _field_types()
    given = {k: _coerce(k, v, types[k]) for k, v in overrides.items() if v is not None}
    return Config(
        profile=concrete, requested=requested, source=source, **{**_PROFILES[concrete], **given}
    )


def profiles_table() -> list[dict[str, typing.Any]]:
    """One row per profile and setting, for tables in notebooks and the README."""
    defaults = {f.name: f.default for f in dataclasses.fields(Config)}
    rows = []
    for key in ("budget_minutes", *OVERRIDABLE):
        row: dict[str, typing.Any] = {"setting": key}
        for name in PROFILE_NAMES:
            row[name] = _PROFILES[name].get(key, defaults.get(key))
        rows.append(row)
    return rows
