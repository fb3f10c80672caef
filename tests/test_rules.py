"""Tests for reactlib.rules: SynthReact's rule figures on hand-made reactions with known answers,
and on a small SynthReact corpus whose listeners follow the rules."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from reactlib import config, data, rules
from reactlib.data import behaviour, synth
from reactlib.errors import DataError, UsageError
from reactlib.face import coeffs
from reactlib.face.coeffs import index

SMILE = [index("mouthSmileLeft"), index("mouthSmileRight")]
PITCH = index("pitch")
FIGURES = (
    "smile_delay_s",
    "smile_delay_in_range",
    "smile_peak_corr",
    "nods_pause_per_s",
    "nods_speech_per_s",
    "nod_pause_ratio",
    "brow_corr",
    "lean_in_corr",
    "within_speaker_spread",
    "between_speaker_spread",
    "spread_ratio",
    "seam_step",
    "within_step",
    "seam_ratio",
    "symmetric_corr",
    "co_occurring_corr",
    "exclusive_both_active",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The ci-size SynthReact corpus, written once (read-only for the tests)."""
    cfg = config.resolve("ci")
    return data.Corpus(synth.ensure(cfg, tmp_path_factory.mktemp("rules") / "c", videos=0))


def _turns(n: int, frames: int, period: int = 200) -> np.ndarray:
    """``(n, frames)`` speech turns: the speaker talks for half of each period, then pauses."""
    voiced = (np.arange(frames) % period) < period // 2
    return np.broadcast_to(voiced, (n, frames)).copy()


def _distinct_speakers(n: int, frames: int) -> np.ndarray:
    """``(n, frames, 58)`` speakers that differ from each other (and never move their smile)."""
    speaker = np.zeros((n, frames, coeffs.NUM_COEFFS))
    speaker[:, :, index("tz")] = np.arange(n)[:, None]
    return speaker


# --- smile delay ----------------------------------------------------------------------------------


def test_a_smile_delayed_by_12_frames_is_found_at_0_48_s():
    frames = 200
    smile = behaviour.smooth_noise(np.random.default_rng(1), frames, 0.5)
    speaker = np.zeros((1, frames, 58))
    speaker[0][:, SMILE] = smile[:, None]
    reaction = np.zeros((1, 1, frames, 58))
    reaction[0, 0][:, SMILE] = behaviour.delayed(smile, 12)[:, None]
    figures = rules.rule_figures(reaction, speaker, _turns(1, frames))
    assert figures["smile_delay_s"] == 0.48
    assert figures["smile_delay_in_range"] == 1.0
    # Past the first 12 frames the reaction's smile velocity is the speaker's, 12 frames late.
    assert figures["smile_peak_corr"] == pytest.approx(1.0, abs=1e-12)


def test_a_constant_reaction_has_no_smile_delay():
    frames = 200
    speaker = np.zeros((2, frames, 58))
    speaker[:, :, SMILE] = behaviour.smooth_noise(np.random.default_rng(2), frames, 0.5)[:, None]
    reaction = np.full((2, 3, frames, 58), 0.2)
    figures = rules.rule_figures(reaction, speaker, _turns(2, frames))
    assert math.isnan(figures["smile_delay_s"])
    assert math.isnan(figures["smile_peak_corr"])
    assert math.isnan(figures["smile_delay_in_range"])


def test_a_reaction_whose_smile_stays_still_counts_as_outside_the_range():
    frames = 200
    smile = behaviour.smooth_noise(np.random.default_rng(3), frames, 0.5)
    speaker = np.zeros((1, frames, 58))
    speaker[0][:, SMILE] = smile[:, None]
    reaction = np.zeros((1, 2, frames, 58))
    reaction[0, 0][:, SMILE] = behaviour.delayed(smile, 10)[:, None]
    figures = rules.rule_figures(reaction, speaker, _turns(1, frames))
    assert figures["smile_delay_s"] == 0.4  # the median over the one reaction that smiles
    assert figures["smile_delay_in_range"] == 0.5


def test_xcorr_curves_peak_where_smile_delay_does(corpus):
    """The vectorised curves give rules.smile_delay's lag, and their value there is the Pearson
    correlation of the overlapping smile velocities at that lag."""
    split = corpus.split("test")
    speakers = split.stack("coeffs", "speaker").astype(np.float64)
    listeners = split.stack("coeffs", "listener").astype(np.float64)
    noisy = listeners + 0.05 * np.random.default_rng(4).standard_normal(listeners.shape)
    max_lag = 30
    for speaker, *reactions in zip(speakers, listeners, noisy, strict=True):
        leader = np.diff(rules.smile_signal(speaker))
        followers = np.diff(rules.smile_signal(np.stack(reactions)), axis=-1)
        curves = rules._xcorr_curves(leader, followers, max_lag)
        for reaction, curve in zip(reactions, curves, strict=True):
            lag = rules.smile_delay(speaker, reaction, max_lag)
            assert np.nanargmax(curve) == lag
            n = len(leader)
            expected = np.corrcoef(leader[: n - lag], np.diff(rules.smile_signal(reaction))[lag:])
            assert curve[lag] == pytest.approx(expected[0, 1], abs=1e-12)


# --- window seams ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "window"), [(192, 16), (200, 16), (100, 10)])
def test_a_jump_at_every_window_start_is_measured(frames, window):
    slope, jump = 0.25, 2.0  # exact in binary, so the steps are exact
    windows = frames // window
    start = np.minimum(np.arange(frames) // window, windows - 1)  # the last absorbs the rest
    ramp_with_jumps = slope * np.arange(frames) + jump * start
    reaction = np.broadcast_to(ramp_with_jumps[:, None], (1, 2, frames, 58))
    figures = rules.rule_figures(
        reaction, _distinct_speakers(1, frames), _turns(1, frames), window=window
    )
    assert figures["seam_step"] == slope + jump
    assert figures["within_step"] == slope
    assert figures["seam_ratio"] == 9.0


def test_a_jump_inside_the_absorbing_last_window_is_no_seam():
    frames, window = 200, 16  # 12 windows, the last from frame 176 to 199
    reaction = np.zeros((1, 1, frames, 58))
    reaction[0, 0, 192:, 0] = 58.0  # a jump where a 13th window would have started
    figures = rules.rule_figures(
        reaction, _distinct_speakers(1, frames), _turns(1, frames), window=window
    )
    assert figures["seam_step"] == 0.0
    assert figures["within_step"] == pytest.approx(1.0 / (frames - 1 - 11))
    assert figures["seam_ratio"] == 0.0


def test_a_smooth_ramp_has_seam_ratio_one():
    frames = 200
    reaction = np.broadcast_to(0.01 * np.arange(frames)[:, None], (2, 3, frames, 58))
    figures = rules.rule_figures(reaction, _distinct_speakers(2, frames), _turns(2, frames))
    assert figures["seam_ratio"] == pytest.approx(1.0, rel=1e-9)


# --- spread ---------------------------------------------------------------------------------------


def test_identical_reactions_have_no_within_speaker_spread():
    frames = 50
    one = np.random.default_rng(5).standard_normal((3, 1, frames, 58))
    figures = rules.rule_figures(
        np.repeat(one, 4, axis=1), _distinct_speakers(3, frames), _turns(3, frames)
    )
    assert figures["within_speaker_spread"] == pytest.approx(0.0, abs=1e-12)
    assert figures["between_speaker_spread"] > 1.0
    assert figures["spread_ratio"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("max_ratio", [0.1])
def test_speaker_specific_reactions_spread_less_within_than_between(max_ratio):
    frames = 50
    rng = np.random.default_rng(6)
    per_speaker = rng.standard_normal((6, 1, frames, 58))
    reactions = per_speaker + 0.01 * rng.standard_normal((6, 5, frames, 58))
    figures = rules.rule_figures(reactions, _distinct_speakers(6, frames), _turns(6, frames))
    assert figures["spread_ratio"] < max_ratio
    # Closed forms: noise 0.01 on both sides, unit signals on both sides (per coefficient).
    assert figures["within_speaker_spread"] == pytest.approx(0.01 * math.sqrt(2), rel=0.05)
    assert figures["between_speaker_spread"] == pytest.approx(math.sqrt(2), rel=0.05)


def test_spread_of_two_items_by_hand():
    frames = 40
    reactions = np.zeros((2, 2, frames, 58))
    reactions[0, 1] = 1.0  # item 0: reactions 0 and 1, RMS distance 1
    reactions[1] = 2.0
    reactions[1, 1, :, :29] += 2.0  # item 1: half the coefficients 2 apart: RMS sqrt(2)
    figures = rules.rule_figures(reactions, _distinct_speakers(2, frames), _turns(2, frames))
    within = (1.0 + math.sqrt(2)) / 2
    # reaction 0: 0 vs 2 everywhere; reaction 1: 1 vs 4 on half, 1 vs 2 on the other half
    between = (2.0 + math.sqrt((9 + 1) / 2)) / 2
    assert figures["within_speaker_spread"] == pytest.approx(within, rel=1e-12)
    assert figures["between_speaker_spread"] == pytest.approx(between, rel=1e-12)
    assert figures["spread_ratio"] == pytest.approx(within / between, rel=1e-12)


def test_spread_is_undefined_without_a_second_reaction_or_speaker():
    frames = 40
    reactions = np.random.default_rng(7).standard_normal((3, 1, frames, 58))
    same_speaker = np.zeros((3, frames, 58))
    figures = rules.rule_figures(reactions, same_speaker, _turns(3, frames))
    assert math.isnan(figures["within_speaker_spread"])
    assert math.isnan(figures["between_speaker_spread"])
    assert math.isnan(figures["spread_ratio"])


@pytest.mark.parametrize("tolerance", [2.0])
def test_between_spread_of_many_items_uses_a_seeded_draw(tolerance):
    """Item i reacts with the constant i, so two items are |i - j| apart; over all pairs of
    n items that averages (n + 1) / 3, and a drawn subset of the items comes close to it."""
    n, frames = 80, 40
    reactions = np.broadcast_to(np.arange(n, dtype=float)[:, None, None, None], (n, 1, frames, 58))
    speaker, voiced = _distinct_speakers(n, frames), _turns(n, frames)
    drawn = rules.rule_figures(reactions, speaker, voiced, seed=3)["between_speaker_spread"]
    again = rules.rule_figures(reactions, speaker, voiced, seed=3)["between_speaker_spread"]
    assert drawn == again
    assert drawn == pytest.approx((n + 1) / 3, abs=tolerance)
    assert drawn != (n + 1) / 3  # a subset, not every pair


# --- nods -----------------------------------------------------------------------------------------


def _nodding(frames: int, starts: list[int]) -> np.ndarray:
    """A pitch track ``(frames,)`` at rest but for a backchannel nod starting at each frame."""
    pitch = np.zeros(frames)
    for start in starts:
        pitch[start : start + 20] += behaviour.nod(20, 0.08)
    return pitch


def test_nods_only_in_pauses():
    frames, delay = 1000, round(rules.DEFAULT_DELAY_S * behaviour.FPS)
    voiced = _turns(2, frames)  # talks 0-99, pauses 100-199, ... : 5 pauses of 4 s
    pauses = range(100, frames, 200)
    reactions = np.zeros((2, 1, frames, 58))
    reactions[0, 0, :, PITCH] = _nodding(frames, [p + 40 + delay for p in pauses])
    figures = rules.rule_figures(reactions, _distinct_speakers(2, frames), voiced)
    # Pooled over both reactions: 5 nods in 2 x 20 s of pause, none in 2 x 20 s of speech.
    assert figures["nods_pause_per_s"] == pytest.approx(5 / 40)
    assert figures["nods_speech_per_s"] == 0.0
    assert figures["nod_pause_ratio"] == math.inf


def test_nods_in_speech_give_a_ratio_below_one():
    frames, delay = 1000, round(rules.DEFAULT_DELAY_S * behaviour.FPS)
    reactions = np.zeros((1, 2, frames, 58))
    reactions[0, :, :, PITCH] = _nodding(frames, [s + 40 + delay for s in range(0, frames, 200)])
    reactions[0, 1, :, PITCH] += _nodding(frames, [140 + delay])
    figures = rules.rule_figures(reactions, _distinct_speakers(1, frames), _turns(1, frames))
    assert figures["nods_speech_per_s"] == pytest.approx(10 / 40)
    assert figures["nods_pause_per_s"] == pytest.approx(1 / 40)
    assert figures["nod_pause_ratio"] == pytest.approx(0.1)


def test_no_nods_at_all_leave_the_ratio_undefined():
    frames = 200
    figures = rules.rule_figures(
        np.zeros((1, 1, frames, 58)), _distinct_speakers(1, frames), _turns(1, frames)
    )
    assert figures["nods_pause_per_s"] == 0.0
    assert math.isnan(figures["nod_pause_ratio"])


# --- Table 17 -------------------------------------------------------------------------------------


def test_left_right_copies_are_perfectly_symmetric():
    frames = 100
    reactions = np.random.default_rng(8).uniform(0, 0.2, (2, 3, frames, 58))
    for left, right in coeffs.pairs("symmetric"):
        reactions[..., index(right)] = reactions[..., index(left)]
    figures = rules.rule_figures(reactions, _distinct_speakers(2, frames), _turns(2, frames))
    assert figures["symmetric_corr"] == pytest.approx(1.0, abs=1e-12)
    # independent uniform noise below the threshold: no pair co-occurs or is ever both active
    assert abs(figures["co_occurring_corr"]) < 0.1
    assert figures["exclusive_both_active"] == 0.0


def test_every_expression_on_for_a_quarter_of_the_frames():
    frames = 100
    reactions = np.zeros((1, 2, frames, 58))
    reactions[0, 0, :50, coeffs.EXPRESSION] = 0.9
    figures = rules.rule_figures(reactions, _distinct_speakers(1, frames), _turns(1, frames))
    assert figures["symmetric_corr"] == pytest.approx(1.0)
    assert figures["co_occurring_corr"] == pytest.approx(1.0)
    assert figures["exclusive_both_active"] == 0.25


# --- baseline, table and checks -------------------------------------------------------------------


def test_mean_listener_repeats_the_mean_training_frame():
    train = np.zeros((2, 3, 58))
    train[0, :, 5] = [1.0, 2.0, 3.0]
    train[1, :, 5] = 6.0
    train[..., 57] = 1.8
    baseline = rules.mean_listener(train, 4, 3, 10)
    assert baseline.shape == (4, 3, 10, 58) and baseline.dtype == np.float64
    expected = np.zeros(58)
    expected[5], expected[57] = 4.0, 1.8  # (1 + 2 + 3 + 3 * 6) / 6
    np.testing.assert_allclose(baseline, np.broadcast_to(expected, baseline.shape))
    baseline[0, 0, 0, 0] = 7.0  # writable, and its frames are not shared
    assert baseline[1, 1, 1, 0] == 0.0


@pytest.mark.parametrize(
    ("shape", "n", "m", "frames"),
    [((5, 57), 1, 1, 10), ((0, 58), 1, 1, 10), ((5, 58), 0, 1, 10), ((5, 58), 1, 1, 2.5)],
)
def test_mean_listener_refuses_bad_input(shape, n, m, frames):
    with pytest.raises(UsageError):
        rules.mean_listener(np.zeros(shape), n, m, frames)


def test_rule_table_has_one_row_per_method():
    frames = 60
    rng = np.random.default_rng(9)
    methods = {
        "noise": rng.standard_normal((2, 2, frames, 58)),
        "still": np.zeros((2, 2, frames, 58)),
    }
    speaker, voiced = _distinct_speakers(2, frames), _turns(2, frames)
    table = rules.rule_table(methods, speaker, voiced, window=10)
    assert list(table.index) == ["noise", "still"] and table.index.name == "method"
    assert tuple(table.columns) == FIGURES
    expected = rules.rule_figures(methods["noise"], speaker, voiced, window=10)
    assert table.loc["noise"].to_dict() == pytest.approx(expected, nan_ok=True)
    with pytest.raises(UsageError):
        rules.rule_table({}, speaker, voiced)


@pytest.mark.parametrize(
    ("reactions", "speaker", "voiced", "options"),
    [
        ((2, 50, 58), (2, 50, 58), (2, 50), {}),  # reactions without the M axis
        ((2, 1, 50, 57), (2, 50, 58), (2, 50), {}),
        ((2, 1, 50, 58), (3, 50, 58), (2, 50), {}),
        ((2, 1, 50, 58), (2, 50, 58), (2, 49), {}),
        ((2, 1, 50, 58), (2, 50, 58), (2, 50), {"window": 0}),
        ((2, 1, 50, 58), (2, 50, 58), (2, 50), {"max_lag_s": 2.0}),
        ((2, 1, 50, 58), (2, 50, 58), (2, 50), {"delay_s": -1.0}),
    ],
)
def test_rule_figures_refuse_mismatched_input(reactions, speaker, voiced, options):
    with pytest.raises(UsageError):
        rules.rule_figures(np.zeros(reactions), np.zeros(speaker), np.zeros(voiced), **options)


# --- on SynthReact ----------------------------------------------------------------------------


def test_speaker_context_is_aligned_with_the_split_items(corpus):
    split = corpus.split("test")
    speaker, voiced = rules.speaker_context(corpus, "test")
    assert speaker.shape == (len(split), split.frames, 58) and speaker.dtype == np.float64
    assert voiced.shape == (len(split), split.frames) and voiced.dtype == bool
    sessions = rules.read_sessions(corpus, "test")
    views = {f"{synth.SITE}/{v.name}/{v.speaker_id}/1": v for v in sessions}
    for k, item in enumerate(split.items):
        np.testing.assert_array_equal(speaker[k], split.coeffs(item.speaker))
        np.testing.assert_array_equal(voiced[k], views[item.speaker].voiced)
    assert voiced.any() and not voiced.all()


@pytest.mark.parametrize(("delay_range_s", "min_nod_ratio"), [((0.3, 0.8), 1.0)])
def test_ground_truth_listeners_follow_the_rules(corpus, delay_range_s, min_nod_ratio):
    speaker, voiced = rules.speaker_context(corpus, "test")
    listeners = corpus.split("test").stack("coeffs", "listener")[:, None]
    figures = rules.rule_figures(listeners, speaker, voiced)
    assert delay_range_s[0] <= figures["smile_delay_s"] <= delay_range_s[1]
    assert figures["nod_pause_ratio"] > min_nod_ratio
    assert figures["between_speaker_spread"] > 0


def test_brows_and_lean_follow_the_own_speaker_not_another(corpus):
    """The real listeners raise their brows and lean in with their own speaker; scored against
    another item's speaker the same reactions do not (the figures can drop)."""
    speaker, voiced = rules.speaker_context(corpus, "test")
    listeners = corpus.split("test").stack("coeffs", "listener")[:, None]
    n, faces = len(speaker), listeners[:, 0]
    # The smallest shift of the items that gives every item a speaker clip other than its own
    # and other than its listener's own face (in a mirrored split, that is another item's speaker).
    shift = next(
        s
        for s in range(1, n)
        if all(
            (speaker[k] != speaker[(k + s) % n]).any() and (faces[k] != speaker[(k + s) % n]).any()
            for k in range(n)
        )
    )
    own = rules.rule_figures(listeners, speaker, voiced)
    other = rules.rule_figures(
        listeners, np.roll(speaker, shift, axis=0), np.roll(voiced, shift, axis=0)
    )
    # Speakers' brows share some slow structure across conversations (0.5 to 0.7 against another
    # speaker in the ci corpus), so the margins are what matter.
    assert own["brow_corr"] > other["brow_corr"] + 0.15
    assert own["lean_in_corr"] > other["lean_in_corr"] + 0.3


def test_the_mean_listener_follows_no_rule(corpus):
    speaker, voiced = rules.speaker_context(corpus, "test")
    train = corpus.split("train").stack("coeffs", "listener")
    baseline = rules.mean_listener(train, len(speaker), 2, speaker.shape[1])
    figures = rules.rule_figures(baseline, speaker, voiced)
    assert math.isnan(figures["smile_delay_s"])
    assert figures["within_speaker_spread"] == pytest.approx(0.0, abs=1e-12)
    assert figures["between_speaker_spread"] == pytest.approx(0.0, abs=1e-12)
    assert figures["nods_pause_per_s"] == figures["nods_speech_per_s"] == 0.0
    for name in ("brow_corr", "lean_in_corr"):  # a constant face: no (or a rounding) correlation
        assert math.isnan(figures[name]) or abs(figures[name]) < 1e-6


def test_speaker_context_needs_synthreact(tmp_path):
    data.write_pairs(tmp_path, "test", [("NoXI/a/Expert_video/1", "NoXI/a/Novice_video/1")])
    with pytest.raises(ValueError, match="SynthReact"):
        rules.speaker_context(data.Corpus(tmp_path), "test")


def test_speaker_context_names_the_corpus_file_when_turns_are_missing(corpus, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(corpus.root, copy)
    meta_file = copy / data.CORPUS_FILE
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["sessions"] = [entry for entry in meta["sessions"] if entry["split"] != "test"]
    meta_file.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(DataError, match=data.CORPUS_FILE):
        rules.speaker_context(data.Corpus(copy), "test")


def test_speaker_items_pick_one_item_per_speaker_with_all_its_listeners(corpus):
    split = corpus.split("test")
    items, truth = rules.speaker_items(split)
    speakers = [split.items[k].speaker for k in items]
    assert len(set(speakers)) == len(speakers) == len({i.speaker for i in split.items})
    k = items[0]
    mine = [i.listener for i in split.items if i.speaker == split.items[k].speaker]
    assert truth.shape == (len(items), len(mine), split.frames, 58)
    for j, clip in enumerate(mine):
        np.testing.assert_array_equal(truth[0, j], split.coeffs(clip))
