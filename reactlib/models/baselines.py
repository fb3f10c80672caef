"""The non-learned references of ReactDiff's Table 1 and REACT's mean-frame baseline, as
generators of the online window loop (:class:`reactlib.online.Generator`), so they react
(:meth:`~reactlib.online.Generator.react`) exactly like ReactDiff and are scored by the same
metrics.

- ``GT`` (:class:`GroundTruth`): the real listener of each item, the same for all M reactions.
  Not a method but the *upper reference* for appropriateness and realism (what a perfect copy of
  one appropriate reaction scores); its diversity figures are 0, since all M reactions are equal.
- ``Mirror`` (:class:`Mirror`): the speaker's own coefficients, window by window. Realistic
  motion that is perfectly synchronised with the speaker: it shows how far a metric rewards
  imitation rather than reaction.
- ``Random`` (:class:`Random`): i.i.d. Gaussian frames with the training listeners'
  per-coefficient mean and standard deviation. The *lower reference* for realism and
  appropriateness; diverse by construction, so it bounds the diversity figures from above.
- ``NN motion`` (:class:`NearestMotion`) and ``NN audio`` (:class:`NearestAudio`): for each
  window, the training speaker segment nearest to the current speaker window (face coefficients,
  resp. audio features) is found, and its listener's segment is returned. Real listener motion,
  chosen from the speaker, but deterministic: all M reactions are equal (diversity 0, as the
  paper's table reports), and the windows, cut from different conversations, jump at the seams.
- ``Mean frame`` (:class:`MeanFrame`): the training listeners' mean frame at every frame (REACT's
  ``B_MeanFr``): no motion and no dependence on the speaker, what a metric gives for free.

Every generator here is causal in the loop's sense: a window's frames depend only on the speaker
frames the loop hands over for it (those up to the window's end); the NN baselines and Mirror use
only the window's own speaker frames, available at its end, and Random and Mean frame use none.
The loop's latency (one window) is the same for all of them and for ReactDiff.

:func:`reactlib.models.registry.baseline` builds any of them by name (:data:`BASELINES`).
"""

from __future__ import annotations

import numpy as np
import torch

from reactlib import diffusion, online
from reactlib.data.corpus import Split
from reactlib.errors import UsageError
from reactlib.face import coeffs

WINDOW = online.WINDOW
"""Default segment length of the NN baselines: the online loop's window."""

BASELINES = {
    "GT": "the ground-truth listener of each item, the same for every reaction (upper reference)",
    "Mirror": "the speaker's own face coefficients, window by window",
    "Random": "i.i.d. Gaussian frames with the training listeners' per-coefficient mean and std",
    "NN motion": "the listener segment of the training speaker segment nearest in face motion",
    "NN audio": "the listener segment of the training speaker segment nearest in audio features",
    "Mean frame": "the training listeners' mean frame at every frame (REACT's B_MeanFr)",
}
"""Every baseline :func:`reactlib.models.registry.baseline` builds: name -> what it returns."""

_CANDIDATES = 16
"""Nearest-neighbour candidates kept by the fast (matrix-product) screening, then re-ranked on
exact float64 distances."""
_MAX_SCREEN = 1 << 24
"""Most query-by-segment distances screened at once (64 MiB of float32)."""

D = coeffs.NUM_COEFFS


# --- Statistics -----------------------------------------------------------------------------------


def _frame_vector(value, name: str) -> torch.Tensor:
    vector = torch.as_tensor(np.asarray(value, dtype=np.float64)).float()
    if vector.shape != (D,) or not torch.isfinite(vector).all():
        raise UsageError(f"{name} must be {D} finite values, got shape {tuple(vector.shape)}")
    return vector


def _listener_array(listener, what: str = "listener") -> torch.Tensor:
    """``listener`` (an array ``(N, T, 58)`` or ``(T, 58)``, or a :class:`Split`, whose
    items' listeners are taken) as a float32 tensor ``(N, T, 58)``."""
    if isinstance(listener, Split):
        listener = listener.stack("coeffs", "listener")
    x = torch.as_tensor(np.asarray(listener, dtype=np.float32))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != D or 0 in x.shape:
        raise UsageError(f"{what} must be (N, T, {D}) coefficients, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise UsageError(f"{what} holds NaN or infinite values")
    return x


# --- Generators -----------------------------------------------------------------------------------


class GroundTruth(online.Generator):
    """The real listeners ``listener (N, T, 58)`` (or a :class:`~reactlib.data.corpus.Split`, its
    items' listeners): stream ``n * m + r`` of a window gets the frames of listener
    ``ctx.items[n]`` for every reaction ``r``, so ``baseline("GT", listener=test).react(
    speaker_inputs(test, items))`` gives every item its own listener. Built on a split, it refuses
    the speakers of another split."""

    name = "GT"

    uses_audio = False

    def __init__(self, listener):
        self.split = listener if isinstance(listener, Split) else None
        self.listener = _listener_array(listener)

    def react(self, inputs: online.SpeakerInputs, *args, **kwargs) -> np.ndarray:
        source = getattr(inputs, "split", None)
        if self.split is not None and source is not None and source is not self.split:
            mine, theirs = self.split, source
            if (mine.root, mine.name, mine.frames, mine.view) != (
                theirs.root,
                theirs.name,
                theirs.frames,
                theirs.view,
            ):
                raise UsageError(
                    f"GT holds the listeners of split {mine.name!r} of {mine.root} but the "
                    f"speakers come from split {theirs.name!r} of {theirs.root}: build it with "
                    "the listeners of the split you generate (baseline('GT', listener=split))"
                )
        return super().react(inputs, *args, **kwargs)

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        n, frames = self.listener.shape[:2]
        streams = ctx.speaker.shape[0]
        items = list(range(streams // ctx.m)) if ctx.items is None else list(ctx.items)
        if len(items) * ctx.m != streams:
            raise UsageError(f"{streams} streams for {len(items)} items of {ctx.m} reactions")
        if max(items) >= n:
            raise UsageError(
                f"GT holds {n} listeners but the loop asks for item {max(items)}: pass the "
                "listeners of the speakers generated, in the same order"
            )
        if ctx.stop > frames:
            raise UsageError(
                f"GT's listeners have {frames} frames but window {ctx.index} ends at frame "
                f"{ctx.stop}: the listeners must cover the speakers' frames"
            )
        window = self.listener[items, ctx.start : ctx.stop]
        return window.repeat_interleave(ctx.m, dim=0).to(ctx.speaker.device)


class Mirror(online.Generator):
    """The speaker's own coefficients of the window (``ctx.speaker[:, start:stop]``)."""

    name = "Mirror"

    uses_audio = False

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        return ctx.speaker[:, ctx.start : ctx.stop].clone()


class Random(online.Generator):
    """i.i.d. Gaussian frames, ``mean + std * z`` per frame and coefficient, with ``z`` drawn
    from each stream's window seed (:attr:`reactlib.online.WindowContext.seeds`), so reaction
    ``r`` of item ``n`` is the same whatever else is in the batch."""

    name = "Random"

    uses_audio = False

    def __init__(self, mean, std):
        self.mean = _frame_vector(mean, "mean")
        self.std = _frame_vector(std, "std")
        if (self.std < 0).any():
            raise UsageError("std must be >= 0 for every coefficient")

    @classmethod
    def from_split(cls, train_split: Split) -> Random:
        """The training listeners' per-coefficient mean and (population) standard deviation."""
        listeners = train_split.stack("coeffs", "listener").reshape(-1, D).astype(np.float64)
        return cls(listeners.mean(axis=0), listeners.std(axis=0))

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        z = diffusion.ItemNoise(ctx.seeds, (ctx.stop - ctx.start, D)).randn()
        return (self.mean + self.std * z).to(ctx.speaker.device)


class MeanFrame(online.Generator):
    """The training listeners' global mean frame at every frame (REACT's ``B_MeanFr``)."""

    name = "Mean frame"

    uses_audio = False

    def __init__(self, mean):
        self.mean = _frame_vector(mean, "mean")

    @classmethod
    def from_split(cls, train_split: Split) -> MeanFrame:
        return cls(coeffs.mean_frame(train_split.stack("coeffs", "listener")))

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        shape = (ctx.speaker.shape[0], ctx.stop - ctx.start, D)
        return self.mean.expand(shape).clone().to(ctx.speaker.device)


class _Nearest(online.Generator):
    """Shared by the NN baselines: an index of training speaker segments and the listener
    segments that go with them."""

    uses_audio: bool
    modality: str

    def __init__(self, train_split: Split, window: int = WINDOW, *, stride: int | None = None):
        if not isinstance(train_split, Split):
            raise UsageError(f"{type(self).__name__} needs a Split, got {type(train_split)}")
        # One key per distinct speaker clip: items that share a speaker share its segments, and
        # the first such item (split order) gives the listener.
        first: dict[str, int] = {}
        for k, item in enumerate(train_split.items):
            first.setdefault(item.speaker, k)
        items = [train_split.items[k] for k in first.values()]
        keys = np.stack([self._features(train_split, item.speaker) for item in items])
        listeners = np.stack([train_split.coeffs(item.listener) for item in items])
        self._index(keys, listeners, window, stride)

    @classmethod
    def from_arrays(cls, speakers, listeners, window: int = WINDOW, *, stride: int | None = None):
        """The index of hand-made training data: ``speakers (N, T, C)`` (coefficients for NN
        motion, audio features for NN audio) and their listeners ``(N, T, 58)``."""
        self = cls.__new__(cls)
        self._index(speakers, listeners, window, stride)
        return self

    def _features(self, split: Split, clip: str) -> np.ndarray:
        raise NotImplementedError

    def _query(self, ctx: online.WindowContext) -> torch.Tensor:
        raise NotImplementedError

    def _index(self, keys, listeners, window: int, stride: int | None) -> None:
        keys = np.asarray(keys, dtype=np.float32)
        listener = _listener_array(listeners, "training listeners")
        for name, value in (("window", window), ("stride", window if stride is None else stride)):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
        stride = window if stride is None else int(stride)
        if keys.ndim != 3 or keys.shape[:2] != listener.shape[:2] or 0 in keys.shape:
            raise UsageError(
                f"training speakers {keys.shape} and listeners {tuple(listener.shape)} must be "
                "(N, T, C) and (N, T, 58) with the same N and T"
            )
        if not np.isfinite(keys).all():
            raise UsageError(f"the training speakers' {self.modality} holds NaN or infinite values")
        n, frames, channels = keys.shape
        if frames < window:
            raise UsageError(f"training clips of {frames} frames are shorter than the window")
        norm = coeffs.Normalizer.fit(keys)
        self.window, self.stride, self.channels = int(window), stride, channels
        self._mean = torch.from_numpy(norm.mean)
        self._std = torch.from_numpy(norm.std)
        starts = torch.arange(0, frames - window + 1, stride)
        z = self._normalize(torch.from_numpy(keys))
        # (N, S, window, C) -> one row per segment: (N * S, window * C), frames then channels
        segments = z.unfold(1, window, stride).transpose(-1, -2)
        segments = segments.reshape(n * len(starts), window * channels).contiguous()
        # Identical segments (a silence's constant features) are kept once, the earliest, so
        # that an exact tie always resolves to the earliest segment in training order.
        rows = segments.numpy().view(np.dtype((np.void, 4 * window * channels)))[:, 0]
        keep = torch.from_numpy(np.sort(np.unique(rows, return_index=True)[1]))
        self._keys = segments[keep]
        self._norms = self._keys.square().sum(dim=1)
        self._clip = torch.arange(n).repeat_interleave(len(starts))[keep]
        self._start = starts.repeat(n)[keep]
        self._listener = listener

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean) / self._std

    def nearest(self, query: torch.Tensor) -> torch.Tensor:
        """Row of the training segment nearest to each query ``(Q, q, C)`` (``q <= window``
        frames, compared with each segment's first ``q`` frames), by Euclidean distance on the
        z-scored, flattened segments; exact ties go to the earliest segment in training order."""
        q, width = query.shape[1], query.shape[1] * self.channels
        flat = self._normalize(query.float()).reshape(len(query), width)
        keys = self._keys if q == self.window else self._keys[:, :width]
        norms = self._norms if q == self.window else keys.square().sum(dim=1)
        k = min(_CANDIDATES, len(keys))
        per = max(1, _MAX_SCREEN // max(len(keys), k * width))
        rows = []
        for begin in range(0, len(flat), per):
            part = flat[begin : begin + per]
            # screening on |a|^2 + |b|^2 - 2ab (fast, float32 rounding), then exact distances
            screen = norms[None] - 2 * part @ keys.T
            candidates = screen.topk(k, dim=1, largest=False).indices.sort(dim=1).values
            exact = (keys[candidates].double() - part[:, None].double()).square().sum(dim=-1)
            best = exact.argmin(dim=1)  # the first minimum: the earliest candidate
            rows.append(candidates.gather(1, best[:, None])[:, 0])
        return torch.cat(rows)

    def window_frames(self, ctx: online.WindowContext) -> torch.Tensor:
        if ctx.start != ctx.index * self.window:
            raise UsageError(
                f"{type(self).__name__} was built for windows of {self.window} frames but "
                f"window {ctx.index} starts at frame {ctx.start}: run the loop with "
                f"window={self.window}"
            )
        length = ctx.stop - ctx.start
        # The streams are item-major and the M reactions to one speaker share its input: search
        # once per speaker.
        query = self._query(ctx)[:: ctx.m, ctx.start : ctx.start + min(length, self.window)]
        rows = self.nearest(query.cpu())
        frames = self._start[rows, None] + torch.arange(length)
        frames = frames.clamp(max=self._listener.shape[1] - 1)  # past the clip: hold its end
        out = self._listener[self._clip[rows, None], frames]
        return out.repeat_interleave(ctx.m, dim=0).to(ctx.speaker.device)


class NearestMotion(_Nearest):
    """NN motion: the listener segment of the training speaker segment nearest to the current
    speaker window in face coefficients.

    The index holds every ``window``-frame segment of the distinct training speaker clips that
    starts at a multiple of ``stride`` (default ``window``: non-overlapping segments aligned with
    the loop's windows, no shifted segments, so the index is one float32 copy of the training
    speakers; a smaller stride adds shifted segments at ``window / stride`` times the memory).
    Channels are z-scored with the training speakers' statistics; the distance is Euclidean on
    the flattened ``(window, 58)`` segment; a training speaker with several listeners answers
    with the listener of its first item (split order), and exact ties go to the earliest segment
    (identical segments are indexed once). The search screens every segment with one matrix
    product per chunk of queries (bounded memory) and re-ranks the best few on exact distances.

    The last window of the loop, longer than ``window`` (it absorbs the remainder), is compared
    on its first ``window`` frames and answered with the matched listener's frames from the
    segment's start on, as many as the window has: the listener's own continuation, holding its
    last frame where the training clip ends. (A clip shorter than one window is compared on all
    its frames against the segments' first frames.) Only the window's speaker frames are used,
    all available at its end: the baseline is causal. It is deterministic: all M reactions to
    one speaker are equal.
    """

    name = "NN motion"

    uses_audio = False
    modality = "coefficients"

    def _features(self, split: Split, clip: str) -> np.ndarray:
        return split.coeffs(clip)

    def _query(self, ctx: online.WindowContext) -> torch.Tensor:
        return ctx.speaker


class NearestAudio(_Nearest):
    """NN audio: :class:`NearestMotion`'s search on the speaker's audio features (the split's
    ``audio_features``, z-scored per feature with the training speakers' statistics) instead of
    the face coefficients; the same index, last-window rule, causality and determinism."""

    name = "NN audio"

    uses_audio = True
    modality = "audio features"

    def _features(self, split: Split, clip: str) -> np.ndarray:
        return split.audio_features(clip)

    def _query(self, ctx: online.WindowContext) -> torch.Tensor:
        if ctx.audio is None:
            raise UsageError("NN audio needs the speaker's audio features: pass audio")
        if ctx.audio.shape[-1] != self.channels:
            raise UsageError(
                f"NN audio was indexed on {self.channels} audio features per frame, got "
                f"{ctx.audio.shape[-1]}: use the same audio features as the training split"
            )
        return ctx.audio
