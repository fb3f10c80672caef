"""The online window loop that every generator shares (ReactDiff, the baselines, PosNet's input).

A conversation of T frames is cut into non-overlapping windows of ``w`` frames; the last window
absorbs the remainder (``T = 750, w = 16``: 45 windows of 16 and a last one of 30), so no frame is
dropped. For each window, in order, the loop hands the generator a :class:`WindowContext`:

- the speaker's face coefficients and audio features of frames ``0 .. stop - 1`` only, where
  ``stop`` is the end of the window: nothing after the window exists for the generator, so no
  generator plugged in here can look ahead further than its own window; a generator that must be
  causal frame by frame (ReactDiff) masks inside the window itself;
- the listener's last frame of the previous window (``None`` for the first window), after the
  post-processing hook, as the next window must continue from what was shown;
- the global frame indices of the window;
- one seed per stream for this window, derived from the run's seed, the item, the reaction and
  the window, so reaction m of item n is the same whatever else is in the batch.

The M reactions to every speaker run as one batch of ``N * M`` streams. A generator is any
callable ``generator(ctx) -> (N * M, stop - start, 58)``; a post-processor is any callable
``post(window, ctx) -> window`` (PosNet plugs in here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from reactlib import coeffs

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

    @property
    def frames(self) -> torch.Tensor:
        """The window's global frame indices ``(stop - start,)``."""
        return torch.arange(self.start, self.stop, device=self.speaker.device)


Generator = Callable[[WindowContext], torch.Tensor]


class ModelGenerator:
    """Base of the generators backed by a network: ``__call__`` runs :meth:`window_frames` in
    ``torch.inference_mode`` (a few per cent faster than ``no_grad``) and returns an ordinary
    tensor (cloned outside it), so that post-processing may change it in place. The model
    z-scores coefficients with ``normalize`` / ``denormalize``."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()

    def __call__(self, ctx: WindowContext) -> torch.Tensor:
        with torch.inference_mode():
            frames = self.window_frames(ctx)
        return frames.clone()

    def window_frames(self, ctx: WindowContext) -> torch.Tensor:
        raise NotImplementedError

    def past(self, ctx: WindowContext, device) -> torch.Tensor:
        """The normalised last frame before the window ``(S, 58)``; zeros for the first window
        (the normalised mean frame), as in training."""
        if ctx.past is None:
            return torch.zeros(ctx.speaker.shape[0], coeffs.NUM_COEFFS, device=device)
        return self.model.normalize(ctx.past.to(device))


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
    generator: Generator,
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
