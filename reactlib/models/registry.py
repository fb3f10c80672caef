"""One road to every generator: a checkpoint names the model that wrote it, and
:func:`load_generator` gives that model back as a :class:`reactlib.online.Generator`;
:func:`baseline` gives the non-learned ones by name. Whatever comes out answers the same call,
``generator.react(speaker_inputs, m, seed)``, so the CLI, the notebooks and the evaluation never
branch on the kind of model.

A new trained generator plugs in with one entry in :data:`KINDS`: the ``"model"`` its checkpoint
identity records, the function that rebuilds the model from a checkpoint, and its generator class.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from reactlib import online, train
from reactlib.data.corpus import Split
from reactlib.errors import UsageError
from reactlib.models import baselines, reactdiff, transvae


class Kind(NamedTuple):
    """How a checkpoint's model becomes a generator."""

    from_checkpoint: Callable
    """``(state, *, ema, device) -> model``."""
    generator: type[online.ModelGenerator]
    """``generator(model, identity=..., **options)``."""

    @property
    def options(self) -> tuple[str, ...]:
        """The generation options the generator takes (a sampler's settings), read off its
        signature."""
        named = inspect.signature(self.generator).parameters
        return tuple(name for name in named if name not in ("model", "identity"))


KINDS: dict[str, Kind] = {
    "reactdiff": Kind(reactdiff.from_checkpoint, reactdiff.ReactDiffGenerator),
    "transvae": Kind(transvae.from_checkpoint, transvae.TransVAEGenerator),
}
"""The trained generators, by the ``"model"`` of their checkpoint identity. (ReactDiff trained
with :data:`reactlib.models.reactdiff.DIFFUSION_MODEL` is Table 1's "Diffusion model".)"""


def load_generator(
    source: str | Path | train.Trained, *, device=None, ema: bool = True, **options
) -> online.ModelGenerator:
    """The generator a checkpoint was trained as, its model in eval mode.

    ``source`` is a ``checkpoint.pt`` or a run folder (read once, the model put on ``device``,
    default the CPU), or a run that :func:`reactlib.train.fit` or :func:`reactlib.train.cached`
    returned (its weights used as they are, moved to ``device`` when one is given). ``ema`` picks
    the averaged weights (default) or the trained ones; ``options`` are the generator's own
    (ReactDiff's sampler: ``steps``, ``sampler``, ``guidance``, ``noise``, ``callback``)."""
    trained = isinstance(source, train.Trained)
    state = None if trained else train.load_checkpoint(source)
    identity = source.identity if trained else state["identity"]
    kind = _kind(identity.get("model"), source, options)
    if trained:
        model = source.ema if ema else source.model
        model = model.eval() if device is None else model.to(device).eval()
    else:
        model = kind.from_checkpoint(state, ema=ema, device="cpu" if device is None else device)
    return kind.generator(model, identity=identity, **options)


def _kind(name: str | None, source, options: dict) -> Kind:
    if name == "posnet":
        raise UsageError(
            f"{source}: a PosNet checkpoint smooths another generator's head pose; it is not a "
            "generator: pass it as the post-processor (--posnet, or post=rl.posnet.PosNetFix)"
        )
    if name not in KINDS:
        raise UsageError(
            f"{source}: no generator for a {name!r} checkpoint; known: {', '.join(KINDS)}"
        )
    kind = KINDS[name]
    unknown = sorted(set(options) - set(kind.options))
    if unknown:
        takes = ", ".join(kind.options) if kind.options else "no options"
        raise UsageError(f"a {name} generator takes {takes}; got {', '.join(unknown)}")
    return kind


def baseline(
    name: str,
    train_split: Split | None = None,
    *,
    listener=None,
    window: int = online.WINDOW,
) -> online.Generator:
    """The baseline ``name`` (a key of :data:`reactlib.models.baselines.BASELINES`; case, ``_``
    and ``-`` are ignored) fitted on ``train_split``. ``GT`` needs ``listener``: the listeners
    ``(N, T, 58)`` of the speakers to be generated, or the split they come from; ``window`` is
    the segment length of the NN baselines (the loop's window)."""
    wanted = " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())
    key = next((known for known in baselines.BASELINES if known.lower() == wanted), None)
    if key is None:
        raise UsageError(f"unknown baseline {name!r}; valid: {', '.join(baselines.BASELINES)}")
    if key == "GT":
        if listener is None:
            raise UsageError(
                "the GT baseline needs listener=: the listeners (N, T, 58) of the speakers "
                "generated, or the split they come from"
            )
        return baselines.GroundTruth(listener)
    if key == "Mirror":
        return baselines.Mirror()
    if not isinstance(train_split, Split):
        raise UsageError(f"the {key} baseline needs the training split, got {train_split!r}")
    if key == "Random":
        return baselines.Random.from_split(train_split)
    if key == "Mean frame":
        return baselines.MeanFrame.from_split(train_split)
    if key == "NN motion":
        return baselines.NearestMotion(train_split, window)
    return baselines.NearestAudio(train_split, window)
