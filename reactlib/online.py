"""The online window loop that every generator shares, and the one interface every generator has.

A conversation of T frames is cut into non-overlapping windows of ``w`` frames; the last window
absorbs the remainder (``T = 750, w = 16``: 45 windows of 16 and a last one of 30), so no frame is
dropped. For each window, in order, the loop (:func:`generate`, the paper's eq 6) hands the
generator a :class:`WindowContext`:

- the speaker's face coefficients and audio features of frames ``0 .. stop - 1`` only, where
  ``stop`` is the end of the window: nothing after the window exists for the generator, so no
  generator plugged in here can look ahead further than its own window; a generator that must be
  causal frame by frame (ReactDiff) masks inside the window itself;
- the listener's last frame of the previous window (``None`` for the first window), after the
  post-processing hook, as the next window must continue from what was shown;
- the global frame indices of the window, and the items the streams belong to;
- one seed per stream for this window, derived from the run's seed, the item, the reaction and
  the window, so reaction m of item n is the same whatever else is in the batch.

The M reactions to every speaker run as one batch of ``N * M`` streams. A window generator is any
callable ``generator(ctx) -> (N * M, stop - start, 58)``; a post-processor is any callable
``post(window, ctx) -> window`` (PosNet and the seam fixes plug in here).

Every generator of the package (ReactDiff, the diffusion model, Trans-VAE, the baselines)
subclasses :class:`Generator` and so answers one call, :meth:`Generator.react`: the reactions
``(N, M, T, 58)`` to :class:`SpeakerInputs` (:func:`speaker_inputs` of a split's items), a few
speakers at a time through :func:`generate`. :func:`reactlib.models.load_generator` gives the
generator a checkpoint was trained as.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from reactlib.data.corpus import Split
from reactlib.errors import UsageError
from reactlib.face import coeffs

WINDOW = 16
"""ReactDiff's window length w (Table 7)."""


def windows(frames: int, window: int = WINDOW) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0 .. frames``: windows of ``window`` frames, the last
    one absorbing the remainder (one window when ``frames < window``)."""
    if frames < 1 or window < 1:
        raise ValueError(f"need frames >= 1 and window >= 1, got {frames}, {window}")
    n = max(1, frames // window)
    bounds = [(i * window, (i + 1) * window) for i in range(n)]
    bounds[-1] = (bounds[-1][0], frames)
    return bounds


def stream_seeds(seed: int, items: Sequence[int], m: int) -> list[int]:
    """One seed per stream ``(item, reaction)``, item-major, from the run's ``seed``."""
    return [
        int(np.random.SeedSequence([seed, int(n), r]).generate_state(1)[0])
        for n in items
        for r in range(m)
    ]


def window_seeds(streams: Sequence[int], index: int) -> list[int]:
    """The seeds of window ``index`` of every stream."""
    return [int(np.random.SeedSequence([s, index]).generate_state(1)[0]) for s in streams]


@dataclass(frozen=True)
class WindowContext:
    """What a generator may use for one window of every stream."""

    index: int
    """The window's number (0 for the first)."""
    start: int
    stop: int
    """The window's listener frames are ``start .. stop - 1``."""
    speaker: torch.Tensor
    """``(S, stop, 58)`` speaker coefficients up to the window's end, one row per stream."""
    audio: torch.Tensor | None
    """``(S, stop, A)`` speaker audio features up to the window's end, or None."""
    past: torch.Tensor | None
    """``(S, 58)`` each stream's last listener frame before the window; None for the first."""
    seeds: list[int]
    """One seed per stream for this window."""
    m: int
    """Reactions per item (streams are item-major: stream ``n * m + r``)."""
    items: tuple[int, ...] | None = None
    """The item of each speaker in the batch (stream ``n * m + r`` belongs to ``items[n]``);
    None: ``0 .. N - 1``."""

    @property
    def frames(self) -> torch.Tensor:
        """The window's global frame indices ``(stop - start,)``."""
        return torch.arange(self.start, self.stop, device=self.speaker.device)


WindowGenerator = Callable[[WindowContext], torch.Tensor]
"""What :func:`generate` drives: one window of every stream per call."""
PostProcess = Callable[[torch.Tensor, WindowContext], torch.Tensor]


def _as_batch(x, name: str, width: int | None = None) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or (width is not None and x.shape[-1] != width):
        want = f"(T, {width}) or (N, T, {width})" if width else "(T, A) or (N, T, A)"
        raise ValueError(f"{name} must be {want}, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x.float()


def generate(
    generator: WindowGenerator,
    speaker,
    audio=None,
    *,
    m: int = 10,
    seed: int = 0,
    window: int = WINDOW,
    post: PostProcess | None = None,
    items: Sequence[int] | None = None,
    progress: Callable | None = None,
) -> torch.Tensor:
    """``m`` reactions to each speaker, window by window: ``(M, T, 58)`` for one speaker
    ``(T, 58)``, ``(N, M, T, 58)`` for ``N`` speakers ``(N, T, 58)``.

    ``audio`` (same leading shape, any width) is handed to the generator alongside; ``items``
    names the speakers for the seeds (default ``0 .. N - 1``); ``progress`` wraps the window
    iterator (e.g. a tqdm bar). The result is on the CPU.
    """
    single = np.ndim(speaker) == 2
    speaker = _as_batch(speaker, "speaker", coeffs.NUM_COEFFS)
    n, frames = speaker.shape[:2]
    if audio is not None:
        audio = _as_batch(audio, "audio")
        if audio.shape[:2] != (n, frames):
            raise ValueError(
                f"audio covers {tuple(audio.shape[:2])} (items, frames), speaker {(n, frames)}"
            )
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    items = list(range(n)) if items is None else list(items)
    if len(items) != n:
        raise ValueError(f"{len(items)} item ids for {n} speakers")
    streams = stream_seeds(seed, items, m)
    speaker_streams = speaker.repeat_interleave(m, dim=0)
    audio_streams = None if audio is None else audio.repeat_interleave(m, dim=0)
    bounds = windows(frames, window)
    out = torch.empty(n * m, frames, coeffs.NUM_COEFFS)
    past = None
    for index, (start, stop) in enumerate(progress(bounds) if progress else bounds):
        ctx = WindowContext(
            index=index,
            start=start,
            stop=stop,
            speaker=speaker_streams[:, :stop],
            audio=None if audio_streams is None else audio_streams[:, :stop],
            past=past,
            seeds=window_seeds(streams, index),
            m=m,
            items=tuple(items),
        )
        frames_out = generator(ctx)
        if post is not None:
            frames_out = post(frames_out, ctx)
        expected = (n * m, stop - start, coeffs.NUM_COEFFS)
        if tuple(frames_out.shape) != expected:
            raise ValueError(
                f"generator returned {tuple(frames_out.shape)} for window {index}, "
                f"expected {expected}"
            )
        out[:, start:stop] = frames_out.detach().float().cpu()
        past = frames_out[:, -1].detach()
    out = out.view(n, m, frames, coeffs.NUM_COEFFS)
    return out[0] if single else out


# --- Speaker inputs ---------------------------------------------------------------------------


class SpeakerInputs:
    """The speaker side of N conversations, what every generator reacts to: each item's speaker
    coefficients ``(T, 58)`` and audio features ``(T, A)``, and the item ids that seed its
    reactions. Built from a split (:func:`speaker_inputs`: arrays are read a few items at a time,
    when a generator asks for them) or from arrays (:meth:`from_arrays`)."""

    def __init__(self, items: Sequence[int], frames: int, load, *, split: Split | None = None):
        self.items = tuple(int(k) for k in items)
        self.frames = int(frames)
        self._load = load
        self.split = split
        """The split the speakers come from, when they do (the GT baseline checks it)."""

    @classmethod
    def from_arrays(cls, speaker, audio=None, *, items: Sequence[int] | None = None):
        """Inputs from arrays: ``speaker (N, T, 58)`` (or ``(T, 58)``), ``audio (N, T, A)`` or
        None; ``items`` default ``0 .. N - 1``."""
        speaker = _as_batch(speaker, "speaker", coeffs.NUM_COEFFS).numpy()
        if audio is not None:
            audio = _as_batch(audio, "audio").numpy()
            if audio.shape[:2] != speaker.shape[:2]:
                raise UsageError(
                    f"audio covers {audio.shape[:2]} (items, frames), speaker {speaker.shape[:2]}"
                )
        items = range(len(speaker)) if items is None else items
        if len(items) != len(speaker):
            raise UsageError(f"{len(items)} item ids for {len(speaker)} speakers")

        def load(positions, with_audio):
            if with_audio and audio is None:
                raise UsageError("this generator needs the speaker's audio features: pass audio")
            return speaker[positions], audio[positions] if with_audio else None

        return cls(items, speaker.shape[1], load)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        source = "arrays" if self.split is None else f"split {self.split.name!r}"
        return f"SpeakerInputs({len(self)} items of {self.frames} frames, from {source})"

    def arrays(self, positions: Sequence[int] | None = None, *, audio: bool = True):
        """``(speaker (n, T, 58), audio (n, T, A) or None)`` float32 of the items at
        ``positions`` (indices into :attr:`items`; default all); audio is not read when
        ``audio`` is False."""
        chosen = list(range(len(self)) if positions is None else positions)
        return self._load(chosen, audio)


def speaker_inputs(split: Split, items: Sequence[int] | None = None) -> SpeakerInputs:
    """The speakers of ``split``'s items (all, or ``items``: indices into ``split.items``), read
    when a generator asks for them; item ``k``'s reactions are seeded by ``k``."""
    chosen = list(range(len(split)) if items is None else items)
    bad = [k for k in chosen if not isinstance(k, int | np.integer) or not 0 <= k < len(split)]
    if bad:
        raise UsageError(f"items must be indices 0 .. {len(split) - 1} of the split, got {bad[:3]}")

    def load(positions, with_audio):
        clips = [split.items[chosen[p]].speaker for p in positions]
        speaker = np.stack([split.coeffs(c) for c in clips]).astype(np.float32, copy=False)
        audio = None
        if with_audio:
            audio = np.stack([split.audio_features(c) for c in clips]).astype(
                np.float32, copy=False
            )
        return speaker, audio

    return SpeakerInputs(chosen, split.frames, load, split=split)


# --- Generators ------------------------------------------------------------------------------


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class Generator:
    """Base of every generator: a subclass gives :meth:`window_frames`, one window of every
    stream; :meth:`react` runs the online loop over it.

    - ``name``: what tables call it;
    - ``window``: the loop's window ``w`` for this generator;
    - ``uses_audio``: False when the generator never reads audio (then it is not loaded);
    - ``identity``: the checkpoint identity of a trained generator (None for the baselines).
    """

    name: str = ""
    window: int = WINDOW
    uses_audio: bool = True
    identity: dict | None = None

    def __call__(self, ctx: WindowContext) -> torch.Tensor:
        return self.window_frames(ctx)

    def window_frames(self, ctx: WindowContext) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        """What generated the reactions, in a few words."""
        return self.name or type(self).__name__

    def react(
        self,
        inputs: SpeakerInputs,
        m: int = 10,
        seed: int = 0,
        *,
        post: PostProcess | None = None,
        chunk: int = 8,
        progress: Callable | None = None,
    ) -> np.ndarray:
        """``(N, M, T, 58)`` float32: ``m`` reactions to each speaker of ``inputs``, ``chunk``
        speakers at a time through :func:`generate` (``post``: its post-processor, e.g. a
        :mod:`reactlib.models.posnet` seam fix; ``progress`` wraps the chunks). Item ``k``'s
        reactions do not depend on the chunking: the seeds follow the item."""
        if not isinstance(inputs, SpeakerInputs):
            raise UsageError(
                f"react takes SpeakerInputs (rl.online.speaker_inputs(split, items)), got "
                f"{type(inputs).__name__}"
            )
        m, chunk = _positive_int("m", m), _positive_int("chunk", chunk)
        out = [np.empty((0, m, inputs.frames, coeffs.NUM_COEFFS), dtype=np.float32)]
        starts = range(0, len(inputs), chunk)
        for begin in progress(starts) if progress else starts:
            part = list(range(begin, min(begin + chunk, len(inputs))))
            speaker, audio = inputs.arrays(part, audio=self.uses_audio)
            reactions = generate(
                self,
                speaker,
                audio,
                m=m,
                seed=seed,
                window=self.window,
                post=post,
                items=[inputs.items[p] for p in part],
            )
            out.append(reactions.numpy())
        return np.concatenate(out).astype(np.float32)


class ModelGenerator(Generator):
    """Base of the generators backed by a network: ``__call__`` runs :meth:`window_frames` in
    ``torch.inference_mode`` (a few per cent faster than ``no_grad``) and returns an ordinary
    tensor (cloned outside it), so that post-processing may change it in place. The model
    z-scores coefficients with ``normalize`` / ``denormalize``; its window is its config's."""

    def __init__(self, model: torch.nn.Module, identity: dict | None = None):
        self.model = model.eval()
        self.window = int(model.config.window)
        self.identity = identity

    def __call__(self, ctx: WindowContext) -> torch.Tensor:
        with torch.inference_mode():
            frames = self.window_frames(ctx)
        return frames.clone()

    def past(self, ctx: WindowContext, device) -> torch.Tensor:
        """The normalised last frame before the window ``(S, 58)``; zeros for the first window
        (the normalised mean frame), as in training."""
        if ctx.past is None:
            return torch.zeros(ctx.speaker.shape[0], coeffs.NUM_COEFFS, device=device)
        return self.model.normalize(ctx.past.to(device))
