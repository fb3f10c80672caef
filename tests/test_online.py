"""Tests for reactlib.online: the window loop every generator shares.

Windows cover every frame once; a generator sees the speaker up to its window's end and never
further, the listener's previous frame after post-processing, and seeds that make reaction r of
item n the same whatever else is generated with it; and the loop with a real (untrained,
randomised) ReactDiff generator never lets a speaker frame change an earlier listener frame."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models import randomise

from reactlib.face import coeffs
from reactlib.models import reactdiff, reactdiff_net
from reactlib.online import WindowContext, generate, windows

torch.set_num_threads(1)

D = coeffs.NUM_COEFFS
AUDIO = 8


def test_windows_of_a_react_clip():
    bounds = windows(750, 16)
    assert len(bounds) == 46
    assert bounds[0] == (0, 16) and bounds[-2] == (704, 720) and bounds[-1] == (720, 750)


def test_a_clip_shorter_than_a_window_is_one_window():
    assert windows(10, 16) == [(0, 10)]


@settings(max_examples=50, deadline=None)
@given(frames=st.integers(1, 2000), window=st.integers(1, 64))
def test_windows_cover_every_frame_once(frames, window):
    bounds = windows(frames, window)
    covered = np.concatenate([np.arange(start, stop) for start, stop in bounds])
    assert np.array_equal(covered, np.arange(frames))
    sizes = [stop - start for start, stop in bounds]
    assert all(s == window for s in sizes[:-1])
    assert window <= sizes[-1] < 2 * window or (len(bounds) == 1 and frames < window)


@pytest.mark.parametrize("frames, window", [(0, 16), (10, 0)])
def test_windows_reject_empty_input(frames, window):
    with pytest.raises(ValueError):
        windows(frames, window)


# --- The loop with recording generators ----------------------------------------------------------


class Recorder:
    """A generator that keeps every context it is handed and answers with frames that depend on
    the window's seeds and the speaker's last frame."""

    def __init__(self):
        self.contexts: list[WindowContext] = []

    def __call__(self, ctx: WindowContext) -> torch.Tensor:
        self.contexts.append(ctx)
        return seeded_frames(ctx) + ctx.speaker[:, -1:]


def seeded_frames(ctx: WindowContext) -> torch.Tensor:
    """``(streams, stop - start, 58)`` standard normal frames, each stream from its own seed."""
    shape = (ctx.stop - ctx.start, D)
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in ctx.seeds]
    )


def speakers(n: int, frames: int, seed: int = 0, width: int = D) -> torch.Tensor:
    return torch.randn(n, frames, width, generator=torch.Generator().manual_seed(seed))


def test_the_generator_sees_the_speaker_up_to_its_window_end():
    recorder, frames = Recorder(), 50
    speaker, audio = speakers(2, frames), speakers(2, frames, 1, AUDIO)
    generate(recorder, speaker, audio, m=3, window=16)
    assert [(c.start, c.stop) for c in recorder.contexts] == [(0, 16), (16, 32), (32, 50)]
    for ctx in recorder.contexts:
        assert ctx.speaker.shape == (6, ctx.stop, D)
        assert ctx.audio.shape == (6, ctx.stop, AUDIO)
        # streams are item-major: stream n * m + r is a reaction to speaker n
        assert torch.equal(ctx.speaker, speaker.repeat_interleave(3, dim=0)[:, : ctx.stop])
        assert torch.equal(ctx.audio, audio.repeat_interleave(3, dim=0)[:, : ctx.stop])
        assert torch.equal(ctx.frames, torch.arange(ctx.start, ctx.stop))
        assert ctx.m == 3


def test_past_is_the_previous_window_last_frame():
    recorder = Recorder()
    out = generate(recorder, speakers(2, 40), m=2, window=16)
    first, *rest = recorder.contexts
    assert first.past is None
    streams = out.flatten(0, 1)  # (N * M, T, 58), item-major
    for ctx in rest:
        assert torch.equal(ctx.past, streams[:, ctx.start - 1])


def test_seeds_differ_per_stream_and_per_window():
    recorder = Recorder()
    generate(recorder, speakers(2, 48), m=3, window=16)
    seeds = [s for ctx in recorder.contexts for s in ctx.seeds]
    assert len(seeds) == 3 * 6
    assert len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("m", [1, 4])
def test_output_shapes(m):
    assert generate(Recorder(), speakers(1, 35)[0], m=m, window=16).shape == (m, 35, D)
    assert generate(Recorder(), speakers(3, 35), m=m, window=16).shape == (3, m, 35, D)


def test_a_reaction_does_not_depend_on_the_other_reactions():
    speaker = speakers(3, 40)
    two = generate(seeded_frames, speaker, m=2, seed=11, window=16)
    five = generate(seeded_frames, speaker, m=5, seed=11, window=16)
    assert torch.equal(two, five[:, :2])
    other_run = generate(seeded_frames, speaker, m=2, seed=12, window=16)
    assert not torch.equal(two, other_run)


def test_a_reaction_does_not_depend_on_the_other_items():
    speaker = speakers(3, 40)
    whole = generate(seeded_frames, speaker, m=2, seed=11, window=16)
    chunks = [
        generate(seeded_frames, speaker[:1], m=2, seed=11, window=16, items=[0]),
        generate(seeded_frames, speaker[1:], m=2, seed=11, window=16, items=[1, 2]),
    ]
    assert torch.equal(whole, torch.cat(chunks))
    alone = generate(seeded_frames, speaker[2], m=2, seed=11, window=16, items=[2])
    assert torch.equal(whole[2], alone)
    assert not torch.equal(whole[0], whole[1])


def test_post_processing_is_applied_and_carried():
    recorder = Recorder()
    seen: list[torch.Tensor] = []

    def shift(frames, ctx):
        seen.append(frames.clone())
        return frames + 100.0

    out = generate(recorder, speakers(1, 40), m=2, window=16, post=shift).flatten(0, 1)
    for ctx, raw in zip(recorder.contexts, seen, strict=True):
        assert torch.equal(out[:, ctx.start : ctx.stop], raw + 100.0)
    for ctx in recorder.contexts[1:]:
        assert torch.equal(ctx.past, out[:, ctx.start - 1])
        assert (ctx.past >= 50).all()  # what was shown, not what the generator returned


def test_a_wrong_window_shape_is_reported():
    def short_third_window(ctx):
        frames = seeded_frames(ctx)
        return frames[:, :-1] if ctx.index == 2 else frames

    with pytest.raises(ValueError, match="window 2"):
        generate(short_third_window, speakers(1, 64), m=2, window=16)


@pytest.mark.parametrize("bad", ["speaker", "audio"])
def test_nan_input_is_rejected(bad):
    speaker, audio = speakers(1, 32), speakers(1, 32, 1, AUDIO)
    {"speaker": speaker, "audio": audio}[bad][0, 20, 3] = float("nan")
    with pytest.raises(ValueError, match=bad):
        generate(Recorder(), speaker, audio, m=2)


# --- Causality through the loop with ReactDiff ---------------------------------------------------

FRAMES = 64
W = 16


@functools.cache
def reactdiff_model(context: str) -> reactdiff.ReactDiff:
    """An untrained ``ci``-sized ReactDiff with randomised output layers."""
    torch.manual_seed(0)
    config = reactdiff_net.profile_config(
        "ci",
        window=W,
        speaker_context=context,
        lookback=16 if context == "lookback" else 0,
        audio_dim=AUDIO,
    )
    model = reactdiff.ReactDiff(config)
    randomise(model.denoiser.inner, seed=1)
    return model.eval()


def reactions(context: str, sampler: str, speaker, audio) -> torch.Tensor:
    generator = reactdiff.ReactDiffGenerator(reactdiff_model(context), steps=3, sampler=sampler)
    return generate(generator, speaker, audio, m=2, seed=5, window=W)


def changed_after(h: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A speaker (coefficients and audio), and the same speaker with new frames after ``h``."""
    speaker, audio = speakers(1, FRAMES, 2)[0], speakers(1, FRAMES, 3, AUDIO)[0]
    speaker_b, audio_b = speaker.clone(), audio.clone()
    speaker_b[h + 1 :] = speakers(1, FRAMES - h - 1, 4)[0]
    audio_b[h + 1 :] = speakers(1, FRAMES - h - 1, 5, AUDIO)[0]
    return speaker, audio, speaker_b, audio_b


@pytest.mark.parametrize("context", ["window", "lookback"])
@pytest.mark.parametrize("sampler", ["sde", "ode"])
@pytest.mark.parametrize("h", [37, 47])
def test_later_speaker_frames_change_no_earlier_reaction_frame(context, sampler, h, atol=1e-6):
    """``h = 47`` is the last frame of a window; ``h = 37`` lies inside the window 32 .. 47."""
    speaker, audio, speaker_b, audio_b = changed_after(h)
    a = reactions(context, sampler, speaker, audio)
    b = reactions(context, sampler, speaker_b, audio_b)
    change = (a - b).abs().amax(dim=(0, 2))
    assert change[: h + 1].max() <= atol
    assert change[h + 1 :].max() > 1e3 * atol


def test_reactdiff_reactions_follow_the_seed():
    speaker, audio, _, _ = changed_after(FRAMES - 1)
    a = reactions("window", "sde", speaker, audio)
    assert torch.isfinite(a).all()
    assert torch.equal(a, reactions("window", "sde", speaker, audio))
    assert (a[0] - a[1]).abs().max() > 1e-3  # the two reactions differ
