"""Tests for reactlib.models.baselines: the non-learned references of ReactDiff's Table 1 and
REACT's mean-frame baseline, as generators of the online loop, on the ci-size SynthReact corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reactlib import online, rules
from reactlib.errors import UsageError
from reactlib.models import baselines, registry

torch.set_num_threads(1)

W = 16
NAMES = tuple(baselines.BASELINES)
DETERMINISTIC = ("GT", "Mirror", "NN motion", "NN audio", "Mean frame")


@pytest.fixture(scope="module")
def train(corpus):
    return corpus.split("train")


@pytest.fixture(scope="module")
def test_split(corpus):
    return corpus.split("test")


@pytest.fixture(scope="module")
def made(train, test_split):
    """Every baseline by name, fitted on the training split (GT on the test split)."""
    return {name: registry.baseline(name, train, listener=test_split) for name in NAMES}


def react(generator, split, items=None, **kwargs):
    """``generator``'s reactions to the speakers of ``split``'s ``items`` (default all)."""
    return generator.react(online.speaker_inputs(split, items), **kwargs)


def _first_items(split):
    """For each item, the first item (split order) with the same speaker clip."""
    first: dict[str, int] = {}
    return [first.setdefault(item.speaker, k) for k, item in enumerate(split.items)]


def _earliest_identical(split, modality, query):
    """The listener segment an NN baseline must return for a query window ``(W, C)`` that is
    some training speaker segment: that of the earliest identical training segment (distinct
    speaker clips in split order, then segments in time)."""
    first = sorted(set(_first_items(split)))
    for k in first:
        item = split.items[k]
        source = split.coeffs(item.speaker) if modality == 0 else split.audio_features(item.speaker)
        for start in range(0, split.frames - W + 1, W):
            if np.array_equal(source[start : start + W], query):
                return split.coeffs(item.listener)[start : start + W]
    raise AssertionError("the query is no training segment")


def _inputs(split, items=None, frames=None):
    speaker, audio = online.speaker_inputs(split, items).arrays()
    listener = np.stack([split.coeffs(split.items[k].listener) for k in items or range(len(split))])
    return speaker[:, :frames], audio[:, :frames], listener[:, :frames]


# --- shapes, names, the shared loop ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_baseline_runs_through_the_loop_and_the_last_window_takes_the_remainder(
    name, train, test_split
):
    frames = 250  # 15 windows: 14 of 16 frames and a last one of 26
    speaker, audio, listener = _inputs(test_split, [0, 1, 2], frames)
    generator = registry.baseline(name, train, listener=listener)
    out = online.generate(generator, speaker, audio, m=3, seed=1, window=W)
    assert out.shape == (3, 3, frames, 58) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert online.windows(frames, W)[-1] == (224, 250)


@pytest.mark.parametrize("name", NAMES)
def test_react_gives_the_contract_shape(name, made, test_split):
    out = react(made[name], test_split, m=2, seed=0, chunk=4)
    assert out.shape == (len(test_split), 2, test_split.frames, 58)
    assert out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_baselines_give_m_equal_reactions(name, made, test_split):
    out = react(made[name], test_split, m=3, seed=5, items=[0, 4])
    for r in (1, 2):
        np.testing.assert_array_equal(out[:, r], out[:, 0])


def test_make_reads_names_loosely_and_describes_every_baseline(train):
    assert isinstance(registry.baseline("nn_motion", train), baselines.NearestMotion)
    assert isinstance(registry.baseline("MEAN-FRAME", train), baselines.MeanFrame)
    assert isinstance(registry.baseline("mirror"), baselines.Mirror)
    assert set(baselines.BASELINES) == {
        "GT",
        "Mirror",
        "Random",
        "NN motion",
        "NN audio",
        "Mean frame",
    }
    assert all(isinstance(text, str) and text for text in baselines.BASELINES.values())


# --- GT, Mirror, Mean frame -----------------------------------------------------------------------


def test_gt_returns_each_items_own_listener_whatever_the_chunks(made, test_split):
    listeners = test_split.stack("coeffs", "listener")
    out = react(made["GT"], test_split, m=2, chunk=4)  # chunks of 4 and 2
    for r in range(2):
        np.testing.assert_array_equal(out[:, r], listeners)
    some = react(made["GT"], test_split, m=1, items=[5, 1], chunk=1)
    np.testing.assert_array_equal(some[:, 0], listeners[[5, 1]])


def test_mirror_returns_the_speaker(made, test_split):
    speaker, _ = online.speaker_inputs(test_split).arrays()
    out = react(made["Mirror"], test_split, m=2, chunk=5)
    np.testing.assert_array_equal(out, np.repeat(speaker[:, None], 2, axis=1))


def test_mean_frame_is_the_training_listeners_mean_at_every_frame(made, train, test_split):
    out = react(made["Mean frame"], test_split, m=2, items=[0, 3])
    expected = train.stack("coeffs", "listener").reshape(-1, 58).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), rtol=1e-6, atol=1e-6)
    assert (out == out[:, :, :1]).all()  # constant over time
    # rules' trivial baseline is the same frame
    np.testing.assert_allclose(
        rules.mean_listener(train.stack("coeffs", "listener"), 1, 1, 1)[0, 0, 0], expected
    )


# --- Random ---------------------------------------------------------------------------------------


def test_random_matches_the_training_statistics(made, train, test_split):
    listeners = train.stack("coeffs", "listener").reshape(-1, 58).astype(np.float64)
    mean, std = listeners.mean(axis=0), listeners.std(axis=0)
    draw = react(made["Random"], test_split, m=8).reshape(-1, 58)
    assert len(draw) == len(test_split) * 8 * test_split.frames
    # 12288 draws per coefficient: the mean is within 4 standard errors (~0.04 std)
    np.testing.assert_array_less(np.abs(draw.mean(axis=0) - mean), 0.05 * std + 1e-6)
    np.testing.assert_array_less(np.abs(draw.std(axis=0) - std), 0.05 * std + 1e-6)


def test_random_is_reproducible_differs_by_reaction_and_ignores_chunking(made, test_split):
    generator = made["Random"]
    a = react(generator, test_split, m=3, seed=7, chunk=8)
    b = react(generator, test_split, m=3, seed=7, chunk=1)
    np.testing.assert_array_equal(a, b)
    alone = react(generator, test_split, m=3, seed=7, items=[4])
    np.testing.assert_array_equal(alone[0], a[4])
    moving = generator.std > 0  # SynthReact's listeners hold some coefficients constant
    assert moving.sum() > 40
    assert (a[:, 0] != a[:, 1])[..., moving].all()  # reactions differ
    other = react(generator, test_split, m=3, seed=8, items=[4])
    assert (other[0] != a[4])[..., moving].all()


def test_random_refuses_bad_statistics():
    with pytest.raises(UsageError, match="58 finite values"):
        baselines.Random(np.zeros(57), np.ones(57))
    with pytest.raises(UsageError, match=">= 0"):
        baselines.Random(np.zeros(58), -np.ones(58))


# --- NN motion, NN audio --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "modality"), [("NN motion", 0), ("NN audio", 1)])
def test_nn_on_a_training_speaker_returns_that_training_listener(name, modality, made, train):
    """A training conversation as the query: every window is a training segment, so each is
    answered with its listener's segment (with exact duplicates, as SynthReact's silences are
    in audio, the earliest duplicate's), and mostly with the item's own listener."""
    items = [0, 4, 10]
    inputs = _inputs(train, items)
    out = online.generate(made[name], inputs[0], inputs[1], m=2, window=W).numpy()
    first = _first_items(train)
    own = 0
    for row, k in enumerate(items):
        listener = train.coeffs(train.items[first[k]].listener)
        for start in range(0, train.frames, W):
            window = out[row, 0, start : start + W]
            query = inputs[modality][row, start : start + W]
            np.testing.assert_array_equal(window, _earliest_identical(train, modality, query))
            own += np.array_equal(window, listener[start : start + W])
    assert own >= 0.75 * len(items) * train.frames // W


@pytest.mark.parametrize(("name", "modality"), [("NN motion", 0), ("NN audio", 1)])
def test_nn_finds_a_training_segment_anywhere_in_the_query(name, modality, made, train, test_split):
    """Window 2 of a test query replaced by segment 5 of a training speaker: the answer at
    window 2 is that training listener's segment 5."""
    speaker, audio, _ = _inputs(test_split, [0])
    k = 7
    train_inputs = _inputs(train, [k])
    query = [speaker.copy(), audio.copy()]
    query[modality][0, 2 * W : 3 * W] = train_inputs[modality][0, 5 * W : 6 * W]
    out = online.generate(made[name], query[0], query[1], m=1, window=W)
    listener = train.coeffs(train.items[_first_items(train)[k]].listener)
    np.testing.assert_array_equal(out[0, 0, 2 * W : 3 * W].numpy(), listener[5 * W : 6 * W])


def test_nn_last_window_holds_the_training_listeners_last_frame():
    """The longer last window is matched on its first frames; past the training clip's end the
    answer holds the listener's last frame."""
    rng = np.random.default_rng(0)
    speakers, listeners = rng.standard_normal((2, 3, 64, 58)).astype(np.float32)
    generator = baselines.NearestMotion.from_arrays(speakers, listeners, W)
    query = rng.standard_normal((40, 58)).astype(np.float32)  # windows (0, 16), (16, 40)
    query[16:32] = speakers[1, 48:64]  # the last window starts with clip 1's last segment
    out = online.generate(generator, query, m=1, window=W)[0].numpy()
    np.testing.assert_array_equal(out[16:32], listeners[1, 48:64])
    np.testing.assert_array_equal(out[32:40], np.repeat(listeners[1, 63:64], 8, axis=0))


def test_nn_with_shifted_segments_finds_an_unaligned_segment():
    rng = np.random.default_rng(1)
    speakers, listeners = rng.standard_normal((2, 2, 64, 58)).astype(np.float32)
    query = rng.standard_normal((32, 58)).astype(np.float32)
    query[16:32] = speakers[0, 5:21]
    aligned = baselines.NearestMotion.from_arrays(speakers, listeners, W)
    shifted = baselines.NearestMotion.from_arrays(speakers, listeners, W, stride=1)
    found = online.generate(shifted, query, m=1, window=W)[0, 16:32].numpy()
    np.testing.assert_array_equal(found, listeners[0, 5:21])
    missed = online.generate(aligned, query, m=1, window=W)[0, 16:32].numpy()
    assert not np.array_equal(missed, listeners[0, 5:21])


@pytest.mark.parametrize(("name", "modality"), [("NN motion", 0), ("NN audio", 1)])
def test_nn_is_causal(name, modality, made, test_split):
    """Changing the speaker's input from frame h on changes no output frame before the start of
    the window holding h (and does change later ones)."""
    speaker, audio, _ = _inputs(test_split, [1, 2])
    h = 100  # in window (96, 112)
    changed = [speaker.copy(), audio.copy()]
    rng = np.random.default_rng(3)
    changed[modality][:, h:] = rng.permutation(changed[modality][:, h:], axis=1)
    a = online.generate(made[name], speaker, audio, m=2, window=W)
    b = online.generate(made[name], changed[0], changed[1], m=2, window=W)
    start = (h // W) * W
    torch.testing.assert_close(a[:, :, :start], b[:, :, :start], rtol=0, atol=0)
    assert not torch.equal(a[:, :, start:], b[:, :, start:])


def test_nn_audio_ignores_the_face_and_nn_motion_the_audio(made, test_split):
    speaker, audio, _ = _inputs(test_split, [0])
    other_speaker, other_audio, _ = _inputs(test_split, [3])
    by_audio = made["NN audio"]
    by_motion = made["NN motion"]
    a = online.generate(by_audio, speaker, audio, m=1, window=W)
    torch.testing.assert_close(a, online.generate(by_audio, other_speaker, audio, m=1, window=W))
    b = online.generate(by_motion, speaker, audio, m=1, window=W)
    torch.testing.assert_close(b, online.generate(by_motion, speaker, other_audio, m=1, window=W))


# --- bad input ------------------------------------------------------------------------------------


def test_an_unknown_name_lists_the_valid_ones(train):
    with pytest.raises(UsageError, match="unknown baseline 'NN video'; valid: GT, Mirror, Random"):
        registry.baseline("NN video", train)


def test_gt_needs_its_listeners(train, test_split):
    with pytest.raises(UsageError, match="GT baseline needs listener="):
        registry.baseline("GT", train)
    with pytest.raises(UsageError, match=r"must be \(N, T, 58\)"):
        registry.baseline("GT", train, listener=np.zeros((2, 30, 57)))


def test_gt_refuses_listeners_that_do_not_match_the_speakers(made, train, test_split):
    speaker, audio, listener = _inputs(test_split, [0, 1])
    with pytest.raises(UsageError, match="GT holds 2 listeners but the loop asks for item 2"):
        online.generate(baselines.GroundTruth(listener), np.concatenate([speaker, speaker[:1]]))
    with pytest.raises(UsageError, match="listeners have 100 frames"):
        online.generate(baselines.GroundTruth(listener[:, :100]), speaker)
    with pytest.raises(UsageError, match="speakers come from split 'train'"):
        react(made["GT"], train, m=1)


def test_baselines_that_learn_need_the_training_split():
    with pytest.raises(UsageError, match="Random baseline needs the training split"):
        registry.baseline("Random", None)


def test_nn_refuses_mismatched_inputs(made, test_split):
    speaker, audio, _ = _inputs(test_split, [0])
    with pytest.raises(UsageError, match="needs the speaker's audio features"):
        online.generate(made["NN audio"], speaker, m=1, window=W)
    with pytest.raises(UsageError, match="indexed on 78 audio features per frame, got 10"):
        online.generate(made["NN audio"], speaker, audio[..., :10], m=1, window=W)
    with pytest.raises(UsageError, match="built for windows of 16 frames"):
        online.generate(made["NN motion"], speaker, m=1, window=8)
    with pytest.raises(UsageError, match="same N and T"):
        baselines.NearestMotion.from_arrays(np.zeros((2, 64, 58)), np.zeros((3, 64, 58)))


def test_react_refuses_bad_items_and_chunks(made, test_split):
    with pytest.raises(UsageError, match="items must be indices 0 .. 5"):
        react(made["Mirror"], test_split, items=[6])
    with pytest.raises(UsageError, match="chunk must be an integer >= 1"):
        react(made["Mirror"], test_split, chunk=0)
