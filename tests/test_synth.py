"""Tests for reactlib.data.synth: the social rules of SynthReact, measured on generated data, and
the
corpus it writes in the REACT 2024 layout."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from reactlib import config, data, paths, rules
from reactlib.data import audio, behaviour, synth
from reactlib.face import coeffs
from reactlib.face.coeffs import index
from reactlib.suite import cli

STATS_SPEC = synth.Spec(sessions=30, listeners=3, frames=750, seed=7)
"""Big enough for stable statistics (90 listeners, 30 s clips), generated in memory in < 1 s."""
TINY = {"sessions": 3, "listeners": 1, "frames": 50}
CLIP = re.compile(r"^SynthReact/session_\d{4}/P\d{4}/1$")


@pytest.fixture(scope="module")
def stats():
    return synth.sessions(STATS_SPEC)


@pytest.fixture(scope="module")
def ci_spec():
    return synth.Spec.from_config(config.resolve("ci"), videos=0)


@pytest.fixture(scope="module")
def corpus(ci_spec, tmp_path_factory):
    """The ci-size corpus written to disk once (read-only for the tests)."""
    return synth.generate(ci_spec, tmp_path_factory.mktemp("synth") / "corpus")


def _listeners(sessions):
    """(session, person, coefficients, placed nods) of every listener."""
    for s in sessions:
        streams = zip(s.listeners, s.streams["listeners"], s.streams["nods"], strict=True)
        for person, x, nods in streams:
            yield s, person, x, nods


def _smile(x: np.ndarray) -> np.ndarray:
    return x[:, index("mouthSmileLeft")] + x[:, index("mouthSmileRight")]


def _all_frames(sessions) -> np.ndarray:
    streams = [s.streams["speaker"]["coeffs"] for s in sessions]
    streams += [x for s in sessions for x in s.streams["listeners"]]
    return np.concatenate(streams)


# --- Spec and determinism -------------------------------------------------------------------------


def test_spec_from_the_ci_profile(ci_spec):
    cfg = config.resolve("ci")
    assert ci_spec.sessions == cfg.synth_sessions
    assert ci_spec.listeners == cfg.synth_listeners
    assert ci_spec.frames == cfg.clip_frames
    assert ci_spec.videos == 0 and ci_spec.version == synth.VERSION


def test_spec_digest_is_stable_and_covers_every_field():
    spec = synth.Spec(sessions=12, listeners=3, frames=256, videos=0, seed=0, version=2)
    # Golden: a content hash, the same in every process (caches on disk are named by it).
    assert spec.digest() == "5551212017e3"
    assert synth.Spec(**dataclasses.asdict(spec)).digest() == spec.digest()
    changed = {
        "sessions": 13,
        "listeners": 4,
        "frames": 257,
        "videos": 1,
        "seed": 1,
        "sample_rate": 22050,
        "version": 3,
        "anatomy": "anatomical",
    }
    assert set(changed) == {f.name for f in dataclasses.fields(synth.Spec)}
    digests = {dataclasses.replace(spec, **{k: v}).digest() for k, v in changed.items()}
    assert len(digests) == len(changed) and spec.digest() not in digests


@pytest.mark.parametrize(
    "bad",
    [
        {"sessions": 2},
        {"listeners": 0},
        {"frames": 49},
        {"videos": -1},
        {"frames": 50.0},
        {"anatomy": "Table17"},
    ],
)
def test_spec_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        synth.Spec(**{**TINY, **bad})


def test_same_spec_same_corpus_other_seed_other_corpus(ci_spec):
    a, b = synth.sessions(ci_spec), synth.sessions(ci_spec)
    assert [s.name for s in a] == [s.name for s in b]
    for s, t in zip(a, b, strict=True):
        assert s.speaker == t.speaker and s.listeners == t.listeners
        np.testing.assert_array_equal(
            s.streams["speaker"]["coeffs"], t.streams["speaker"]["coeffs"]
        )
        for x, y in zip(s.streams["listeners"], t.streams["listeners"], strict=True):
            np.testing.assert_array_equal(x, y)
    other = synth.sessions(dataclasses.replace(ci_spec, seed=ci_spec.seed + 1))
    assert not np.allclose(_all_frames(a), _all_frames(other))


def test_sessions_have_the_spec_sizes(stats):
    counts = synth.session_counts(STATS_SPEC)
    assert sum(counts.values()) == STATS_SPEC.sessions
    assert counts["train"] > counts["val"] >= 1 and counts["train"] > counts["test"] >= 1
    assert len(stats) == STATS_SPEC.sessions
    for split, count in counts.items():
        assert sum(s.split == split for s in stats) == count >= 1
    for s in stats:
        assert s.streams["speaker"]["coeffs"].shape == (STATS_SPEC.frames + 1, 58)
        assert len(s.listeners) == STATS_SPEC.listeners
        for x in s.streams["listeners"]:
            assert x.shape == (STATS_SPEC.frames + 1, 58) and x.dtype == np.float32
            assert np.all(np.isfinite(x))


# --- held-out identities --------------------------------------------------------------------------


def test_splits_use_disjoint_people(stats):
    pids = {split: set() for split in synth.SPLIT_FRACTIONS}
    people = {split: set() for split in synth.SPLIT_FRACTIONS}
    for s in stats:
        for person in [s.speaker, *s.listeners]:
            pids[s.split].add(person.pid)
            people[s.split].add(person)
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not pids[a] & pids[b], (a, b)
        assert not people[a] & people[b], (a, b)
    assert all(len(p) >= STATS_SPEC.listeners + 1 for p in pids.values())


def test_each_session_has_distinct_listeners_other_than_the_speaker(stats):
    for s in stats:
        ids = [p.pid for p in s.listeners]
        assert len(set(ids)) == len(ids) == STATS_SPEC.listeners
        assert s.speaker.pid not in ids
        assert s.speaker not in s.listeners


def test_written_splits_use_disjoint_people(corpus):
    pids = {}
    for split in ("train", "val", "test"):
        clips = {c for pair in data.read_pairs(corpus, split) for c in pair}
        pids[split] = {c.split("/")[2] for c in clips}
    assert not pids["train"] & pids["val"]
    assert not pids["train"] & pids["test"]
    assert not pids["val"] & pids["test"]


# --- the listener rules ---------------------------------------------------------------------------


def test_xcorr_peak_lag_finds_a_known_delay():
    rng = np.random.default_rng(0)
    leader = behaviour.smooth_noise(rng, 500, 0.5)
    for lag in (0, 5, 13):
        assert rules.xcorr_peak_lag(leader, behaviour.delayed(leader, lag), max_lag=30) == lag


def test_every_listener_smiles_after_its_own_delay(stats):
    delays = set()
    for s, person, x, _ in _listeners(stats):
        speaker = s.streams["speaker"]
        lag = rules.xcorr_peak_lag(np.diff(speaker["smile"]), np.diff(_smile(x)), max_lag=40)
        assert abs(lag - person.delay_frames) <= 1, (s.name, person.pid, lag, person.delay_frames)
        # The same from the coefficients alone.
        lag = rules.smile_delay(speaker["coeffs"], x, max_lag=40)
        assert abs(lag - person.delay_frames) <= 1, (s.name, person.pid, lag, person.delay_frames)
        delays.add(person.delay_frames)
    low, high = (round(d * behaviour.FPS) for d in behaviour.DELAY_RANGE_S)
    assert min(delays) >= low and max(delays) <= high
    assert len(delays) >= 5  # delays are personal, not one constant


def test_nods_follow_speaker_pauses(stats):
    pause_nods = speech_nods = pause_s = speech_s = 0.0
    for s, person, x, _ in _listeners(stats):
        voiced = s.streams["speaker"]["voiced"]
        in_pause, in_speech = rules.nod_rates(x[:, index("pitch")], voiced, person.delay_frames)
        pause_nods += in_pause * (~voiced).sum() * behaviour.DT
        speech_nods += in_speech * voiced.sum() * behaviour.DT
        pause_s += (~voiced).sum() * behaviour.DT
        speech_s += voiced.sum() * behaviour.DT
    pause_rate, speech_rate = pause_nods / pause_s, speech_nods / speech_s
    assert pause_rate > 0.2  # listeners do nod
    assert pause_rate >= 2 * speech_rate, (pause_rate, speech_rate)


def test_nod_onsets_find_the_placed_nods(stats):
    found = placed = detected = 0
    for _, _, x, nods in _listeners(stats):
        onsets = rules.nod_onsets(x[:, index("pitch")])
        detected += len(onsets)
        for t in nods:
            placed += 1
            # The envelope rises over the nod's smooth window: onsets come a few frames late.
            found += bool(np.any((onsets >= t - 2) & (onsets <= t + 6)))
    assert placed > 100
    assert found / placed >= 0.8, found / placed
    assert detected <= 1.3 * placed  # few detections that are not placed nods


def test_speakers_do_not_nod_at_backchannel_amplitude(stats):
    """The nod detector does not fire on a speaker's emphasis and sway as often as listeners."""
    speaker_onsets = sum(
        len(rules.nod_onsets(s.streams["speaker"]["coeffs"][:, index("pitch")])) for s in stats
    )
    listener_onsets = sum(
        len(rules.nod_onsets(x[:, index("pitch")])) for _, _, x, _ in _listeners(stats)
    )
    per_speaker = speaker_onsets / len(stats)
    per_listener = listener_onsets / (len(stats) * STATS_SPEC.listeners)
    assert per_speaker < 0.5 * per_listener


def test_two_listeners_of_one_speaker_react_differently(stats):
    for s in stats:
        xs = s.streams["listeners"]
        for i in range(len(xs)):
            for j in range(i + 1, len(xs)):
                difference = np.abs(xs[i][:, coeffs.EXPRESSION] - xs[j][:, coeffs.EXPRESSION])
                assert difference.mean() > 0.01, (s.name, i, j)
                assert not np.allclose(xs[i], xs[j], atol=0.05)
        speaker = s.streams["speaker"]
        for person, x in zip(s.listeners, xs, strict=True):  # ... and both follow the rule
            lag = rules.smile_delay(speaker["coeffs"], x, max_lag=40)
            assert abs(lag - person.delay_frames) <= 1


# --- Table 17 statistics --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_stats(stats):
    return rules.pair_statistics(_all_frames(stats))


def test_pair_statistics_table(pair_stats):
    assert list(pair_stats.columns) == ["kind", "a", "b", "corr", "both_active"]
    assert pair_stats["kind"].value_counts().to_dict() == {
        "mutually_exclusive": 58,
        "co_occurring": 30,
        "symmetric": 20,
    }


def test_symmetric_pairs_match(pair_stats):
    sym = pair_stats[pair_stats["kind"] == "symmetric"]
    assert not sym["corr"].isna().any(), sym[sym["corr"].isna()]
    assert (sym["corr"] >= 0.9).all(), sym.sort_values("corr").head()


def test_mutually_exclusive_pairs_rarely_coactivate(pair_stats):
    excl = pair_stats[pair_stats["kind"] == "mutually_exclusive"]
    assert (excl["both_active"] < 0.02).all(), excl.sort_values("both_active").tail()


def test_exclusive_pairs_hold_in_speech_at_the_documented_threshold(stats, ci_spec):
    """While speakers talk the exclusive pairs hold at SPEECH_EXCLUSIVE_THRESHOLD, in long and in
    short clips, and (as documented) not at 0.1, where speech visemes meet smiles."""

    def speaking(sessions):
        return np.concatenate(
            [s.streams["speaker"]["coeffs"][s.streams["speaker"]["voiced"]] for s in sessions]
        )

    for sessions in (stats, synth.sessions(ci_spec)):
        table = rules.pair_statistics(speaking(sessions), rules.SPEECH_EXCLUSIVE_THRESHOLD)
        excl = table[table["kind"] == "mutually_exclusive"]
        assert (excl["both_active"] < 0.02).all(), excl.sort_values("both_active").tail()
    low = rules.pair_statistics(speaking(stats), 0.1).set_index(["a", "b"])
    assert low.loc[("mouthLowerDownLeft", "mouthSmileLeft"), "both_active"] > 0.02
    assert low.loc[("mouthFunnel", "jawOpen"), "both_active"] > 0.02


def test_co_occurring_pairs_rise_together(pair_stats):
    co = pair_stats[pair_stats["kind"] == "co_occurring"]
    assert not co["corr"].isna().any()
    assert (co["corr"] > 0).all(), co.sort_values("corr").head()


def test_pair_statistics_detect_violations():
    """The statistic itself can fail: a face whose left and right smiles disagree."""
    rng = np.random.default_rng(1)
    x = np.zeros((500, 58))
    x[:, index("mouthSmileLeft")] = rng.uniform(0, 1, 500)
    x[:, index("mouthSmileRight")] = rng.uniform(0, 1, 500)
    x[:, index("jawOpen")] = 0.5
    x[:, index("mouthClose")] = 0.5
    table = rules.pair_statistics(x).set_index(["a", "b"])
    assert abs(table.loc[("mouthSmileLeft", "mouthSmileRight"), "corr"]) < 0.2
    assert table.loc[("jawOpen", "mouthClose"), "both_active"] == 1.0
    assert np.isnan(table.loc[("jawOpen", "mouthClose"), "corr"])  # constant columns


# --- head translation -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tx", "ty", "tz"])
def test_head_translation_stays_in_range_and_moves_smoothly(stats, name):
    low, high = behaviour.TRANSLATION_RANGE[name]
    clips = [s.streams["speaker"]["coeffs"] for s in stats]
    clips += [x for s in stats for x in s.streams["listeners"]]
    values = [x[:, index(name)].astype(np.float64) for x in clips]
    everything = np.concatenate(values)
    assert everything.min() >= low - 1e-6 and everything.max() <= high + 1e-6
    assert everything.max() - everything.min() >= 0.6 * (high - low)  # it uses the range
    assert all(v.std() > 1e-3 for v in values)  # every clip moves
    # Smooth: measured maxima are about 0.012 / frame and 0.004 / frame^2 over this corpus.
    assert max(np.abs(np.diff(v)).max() for v in values) < 0.015
    assert max(np.abs(np.diff(v, 2)).max() for v in values) < 0.006


LEAN_MIN_CORR = 0.5
"""Every listener's depth follows its lean drive at least this closely (the generator puts most
of a listener's depth motion in the lean; its own drift is small)."""


def test_every_listener_leans_in_with_the_speaker_arousal(stats):
    """Per listener, from the speaker's coefficients only (through its emotion arousal)."""
    measured = []
    for s, person, x, _ in _listeners(stats):
        r = rules.lean_in(s.streams["speaker"]["coeffs"], x, person.delay_frames)
        assert r > LEAN_MIN_CORR, (s.name, person.pid, r)
        measured.append(r)
        # The same from the written emotion, or from the arousal itself.
        emotion = coeffs.emotion_from_coeffs(s.streams["speaker"]["coeffs"])
        assert rules.lean_in(emotion, x, person.delay_frames) == pytest.approx(r, abs=1e-9)
        arousal = s.streams["speaker"]["arousal"]
        assert rules.lean_in(arousal, x, person.delay_frames) == pytest.approx(r, abs=1e-9)
    assert len(measured) == STATS_SPEC.sessions * STATS_SPEC.listeners


def test_lean_in_is_measured_at_the_listener_delay(stats):
    """The measure is not blind: another speaker's arousal, or a wrong delay, scores lower."""
    s, other = stats[0], stats[1]
    for person, x in zip(s.listeners, s.streams["listeners"], strict=True):
        own = rules.lean_in(s.streams["speaker"]["coeffs"], x, person.delay_frames)
        foreign = rules.lean_in(other.streams["speaker"]["coeffs"], x, person.delay_frames)
        assert foreign < own - 0.2, (own, foreign)


def test_lean_drive_is_causal_and_delayed():
    rng = np.random.default_rng(3)
    arousal = np.tanh(behaviour.smooth_noise(rng, 300, 0.5))
    delay, cut = 12, 150
    changed = arousal.copy()
    changed[cut:] += rng.uniform(-1, 1, 300 - cut)  # the future changes...
    a, b = behaviour.lean_drive(arousal, delay), behaviour.lean_drive(changed, delay)
    np.testing.assert_array_equal(a[: cut + delay], b[: cut + delay])  # ...the past does not
    assert not np.allclose(a[cut + delay :], b[cut + delay :])
    # A speaker at the neutral face's arousal draws nobody closer; a unit step in arousal is
    # followed by the step response of two one-pole stages, 1 - p^(n+1) - (n+1)(1-p)p^(n+1)
    # n frames after the step, with pole p = exp(-DT / (LEAN_TAU_S / 2)).
    assert np.allclose(behaviour.lean_drive(np.full(50, behaviour.LEAN_REFERENCE), 5), 0)
    step = np.where(np.arange(200) < 20, behaviour.LEAN_REFERENCE, behaviour.LEAN_REFERENCE + 1.0)
    drive = behaviour.lean_drive(step, 7)
    assert np.all(drive[:27] == 0) and drive[27] > 0
    p, n = np.exp(-behaviour.DT / (behaviour.LEAN_TAU_S / 2)), np.arange(200 - 27)
    expected = 1 - p ** (n + 1) - (n + 1) * (1 - p) * p ** (n + 1)
    np.testing.assert_allclose(drive[27:], expected, atol=1e-12)


def test_lean_in_rejects_bad_shapes():
    x = np.zeros((40, 58))
    with pytest.raises(ValueError, match="listener must be"):
        rules.lean_in(x, x[:, :52], 3)
    with pytest.raises(ValueError, match="expected"):
        rules.lean_in(np.zeros((40, 7)), x, 3)
    with pytest.raises(ValueError, match="frames"):
        rules.lean_in(np.zeros(39), x, 3)


BROW_MIN_CORR = 0.8
BROW_GAIN_RTOL = 0.15
"""A listener's own small brow motion leaves the measured gain within this of the recorded one."""


def test_every_listener_raises_the_brows_at_speaker_surprise(stats):
    """Per listener: its browInnerUp follows the speaker's by its own delay and gain."""
    for s, person, x, _ in _listeners(stats):
        measured = rules.brow_response(s.streams["speaker"]["coeffs"], x, person.delay_frames)
        assert measured["corr"] > BROW_MIN_CORR, (s.name, person.pid, measured)
        recorded = person.expressivity * person.brow_gain
        assert measured["gain"] == pytest.approx(recorded, rel=BROW_GAIN_RTOL), (s.name, person.pid)


def test_brow_response_recovers_a_known_gain_and_sees_no_response():
    rng = np.random.default_rng(4)
    speaker = np.zeros((400, 58))
    speaker[:, index("browInnerUp")] = behaviour.events(rng, 400, 0.1, (0.6, 1.2), (0.5, 1), 3)
    listener = np.zeros((400, 58))
    listener[:, index("browInnerUp")] = 0.05 + 0.7 * behaviour.delayed(
        speaker[:, index("browInnerUp")], 9
    )
    found = rules.brow_response(speaker, listener, 9)
    assert found["corr"] == pytest.approx(1) and found["gain"] == pytest.approx(0.7)
    assert rules.brow_response(speaker, listener, 0)["corr"] < found["corr"]
    listener[:, index("browInnerUp")] = behaviour.smooth_noise(rng, 400, 0.3)
    assert abs(rules.brow_response(speaker, listener, 9)["corr"]) < 0.5
    still = np.zeros((400, 58))
    assert np.isnan(rules.brow_response(still, listener, 9)["corr"])


# --- no one-frame steps ---------------------------------------------------------------------------


def test_step_jumps_finds_a_one_frame_step_and_only_that():
    t = np.arange(100)
    smooth = 0.3 * np.sin(2 * np.pi * t / 50)
    assert len(rules.step_jumps(smooth)["frames"]) == 0
    stepped = smooth.copy()
    stepped[40:] += 0.2  # switched on at frame 40
    found = rules.step_jumps(np.stack([smooth, stepped], axis=1))
    assert found["frames"].tolist() == [40] and found["channels"].tolist() == [1]
    assert found["sizes"][0] == pytest.approx(0.2 + abs(smooth[40] - smooth[39]), abs=0.05)
    # The definition's two parameters decide, not constants of the generator.
    assert len(rules.step_jumps(stepped, min_change=0.3)["frames"]) == 0
    assert len(rules.step_jumps(stepped, ratio=100)["frames"]) == 0
    # A raised-cosine rise over MIN_RAMP frames is not a step, however tall.
    rise = np.concatenate([np.zeros(10), behaviour.bump(30, behaviour.MIN_RAMP), np.zeros(10)])
    assert len(rules.step_jumps(rise)["frames"]) == 0
    with pytest.raises(ValueError, match="ratio"):
        rules.step_jumps(smooth, ratio=0.5)
    with pytest.raises(ValueError, match="shape"):
        rules.step_jumps(np.zeros((3, 4, 5)))


def _step_counts(sessions) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in sessions:
        for x in [s.streams["speaker"]["coeffs"], *s.streams["listeners"]]:
            for channel in rules.step_jumps(x)["channels"]:
                name = coeffs.COEFF_NAMES[channel]
                counts[name] = counts.get(name, 0) + 1
    return counts


def test_no_coefficient_steps_within_one_frame(stats, ci_spec):
    """Every program switches on and off smoothly: not one step in any of the 58 channels."""
    assert _step_counts(stats) == {}
    assert _step_counts(synth.sessions(ci_spec)) == {}


def test_blinks_close_over_at_least_three_frames(stats):
    """Blinks reach 0.9-1.0; closing in two frames would change one frame by >= 0.45."""
    closed = 0
    for s in stats:
        for x in [s.streams["speaker"]["coeffs"], *s.streams["listeners"]]:
            blink = x[:, index("eyeBlinkLeft")].astype(np.float64)
            assert np.abs(np.diff(blink)).max() < 0.45
            closed += int(np.sum((blink[1:] > 0.85) & (blink[:-1] <= 0.85)))
    assert closed > 100  # and the eyes do close


# --- anatomy --------------------------------------------------------------------------------------

LATERAL_STEMS = ("jaw", "mouth", "eyeLookIn", "eyeLookOut")
"""The Table 17 symmetric pairs that move in opposite directions in a real face."""


@pytest.fixture(scope="module")
def anatomical(ci_spec):
    return synth.sessions(dataclasses.replace(ci_spec, anatomy="anatomical"))


def test_anatomical_corpus_breaks_the_opposed_symmetric_pairs(anatomical, ci_spec):
    default = rules.pair_statistics(_all_frames(synth.sessions(ci_spec))).set_index(["a", "b"])
    frames = _all_frames(anatomical)
    table = rules.pair_statistics(frames).set_index(["a", "b"])
    for stem in LATERAL_STEMS:
        pair = (f"{stem}Left", f"{stem}Right")
        assert default.loc[pair, "corr"] >= 0.9, pair  # Table 17 holds by construction
        assert table.loc[pair, "corr"] < 0, pair  # anatomy: one side or the other
        both = (frames[:, index(pair[0])] > 0) & (frames[:, index(pair[1])] > 0)
        assert not both.any(), pair
        assert (frames[:, index(pair[0])] > 0.01).any() and (frames[:, index(pair[1])] > 0.01).any()
    # Conjugate gaze: the left eye looks in exactly while the right eye looks out.
    np.testing.assert_array_equal(
        frames[:, index("eyeLookInLeft")], frames[:, index("eyeLookOutRight")]
    )
    np.testing.assert_array_equal(
        frames[:, index("eyeLookOutLeft")], frames[:, index("eyeLookInRight")]
    )


def test_anatomy_changes_only_the_lateral_channels(anatomical, ci_spec):
    lateral = [index(f"{stem}{side}") for stem in LATERAL_STEMS for side in ("Left", "Right")]
    others = [k for k in range(58) if k not in lateral]
    a, b = _all_frames(synth.sessions(ci_spec)), _all_frames(anatomical)
    np.testing.assert_array_equal(a[:, others], b[:, others])
    assert not np.array_equal(a[:, lateral], b[:, lateral])
    assert _step_counts(anatomical) == {}


def test_expression_rejects_an_unknown_anatomy(stats):
    s = stats[0]
    with pytest.raises(ValueError, match="anatomy"):
        behaviour.speaker_stream(s.speaker, 60, np.random.default_rng(0), anatomy="cartoon")


# --- the written corpus ---------------------------------------------------------------------------


def test_generate_writes_the_react_layout(corpus, ci_spec):
    counts = synth.session_counts(ci_spec)
    stored = ci_spec.frames + 1
    speakers_all = set()
    for split in ("train", "val", "test"):
        assert (corpus / f"{split}.csv").read_text().splitlines()[
            0
        ] == ",speaker_path,listener_path"
        pairs = data.read_pairs(corpus, split)
        assert len(pairs) == counts[split] * ci_spec.listeners
        speakers = [sp for sp, _ in pairs]
        speakers_all |= set(speakers)
        for clip in {c for pair in pairs for c in pair}:
            assert CLIP.match(clip), clip
            x = np.load(corpus / "3D_FV_files" / f"{clip}.npy")
            assert x.shape == (stored, 58) and x.dtype == np.float32
            lines = (corpus / "Emotion" / f"{clip}.csv").read_text().splitlines()
            assert len(lines) == stored + 1 and len(lines[1].split(",")) == 25
        matrix = np.load(corpus / f"neighbour_emotion_{split}.npy")
        n = len(pairs)
        assert matrix.shape == (2 * n, 2 * n) and matrix.dtype == bool
        same_speaker = np.array(speakers)[:, None] == np.array(speakers)[None, :]
        np.testing.assert_array_equal(matrix[:n, :n], same_speaker)
        np.testing.assert_array_equal(matrix[n:, n:], np.eye(n, dtype=bool))
        assert not matrix[:n, n:].any() and not matrix[n:, :n].any()
    wavs = {
        str(p.relative_to(corpus / "Audio_files").with_suffix(""))
        for p in (corpus / "Audio_files").rglob("*.wav")
    }
    assert wavs == speakers_all  # speakers only: listeners are silent
    assert not (corpus / "Video_files").exists()
    meta = json.loads((corpus / data.CORPUS_FILE).read_text())
    assert meta["mirror"] is False and meta["digest"] == ci_spec.digest()
    assert meta["frames"] == ci_spec.frames and meta["stored_frames"] == stored
    assert meta["spec"] == dataclasses.asdict(ci_spec)
    assert len(meta["sessions"]) == ci_spec.sessions
    # Nothing else lies around: no temporary files or folders.
    assert not [p for p in corpus.rglob("*") if ".tmp" in p.name or ".old" in p.name]
    assert [p.name for p in corpus.parent.iterdir()] == [corpus.name]


def test_corpus_reads_back_without_warnings(corpus, ci_spec):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = data.Corpus(corpus)
        assert c.kind == "SynthReact" and c.splits == ["train", "val", "test"]
        for name in c.splits:
            split = c.split(name)
            assert split.mirror is False
            assert split.frames == ci_spec.frames
            assert len(split) == len(split.pairs)
            assert split.neighbour_source == f"neighbour_emotion_{name}.npy"
            split.validate()
            speakers = [item.speaker for item in split.items]
            for k in range(len(split)):
                same = [j for j, sp in enumerate(speakers) if sp == speakers[k]]
                assert split.appropriate(k).tolist() == same
                assert len(same) == ci_spec.listeners
        table = c.describe()
    counts = synth.session_counts(ci_spec)
    for name, count in counts.items():
        row = table.loc[name]
        assert row["pairs"] == row["items"] == count * ci_spec.listeners
        assert row["audio files"] == count
        assert row["coeffs files"] == row["emotion files"] == row["clips"]
        assert row["mean appropriate set"] == ci_spec.listeners


def test_emotion_files_equal_the_emotion_map(corpus):
    split = data.Corpus(corpus).split("val")
    for clip in split.clips:
        np.testing.assert_allclose(
            split.emotion(clip),
            coeffs.emotion_from_coeffs(split.coeffs(clip)),
            rtol=1e-4,
            atol=1e-7,
        )
    clip = split.clips[0]
    whole = data.load_emotion(data.clip_file(corpus, "emotion", clip))
    x = data.load_coeffs(data.clip_file(corpus, "coeffs", clip))
    assert len(whole) == len(x) == split.frames + 1
    np.testing.assert_allclose(whole, coeffs.emotion_from_coeffs(x), rtol=1e-4, atol=1e-7)


def test_speaker_audio_follows_the_jaw(corpus, ci_spec):
    meta = json.loads((corpus / data.CORPUS_FILE).read_text())
    stored = ci_spec.frames + 1
    for session in meta["sessions"][:4]:
        clip = f"SynthReact/{session['name']}/{session['speaker']}/1"
        wav, rate = audio.read_wav(corpus / "Audio_files" / f"{clip}.wav")
        assert rate == ci_spec.sample_rate
        assert len(wav) == round(stored * rate / behaviour.FPS)
        x = data.load_coeffs(corpus / "3D_FV_files" / f"{clip}.npy")
        per_frame = rate // behaviour.FPS
        rms = np.sqrt(np.mean(wav.reshape(stored, per_frame).astype(np.float64) ** 2, axis=1))
        voiced = synth.voiced_from_runs(session["voiced"], stored)
        assert voiced.sum() > 25 and (~voiced).sum() > 0
        r = np.corrcoef(rms[voiced], x[voiced, index("jawOpen")])[0, 1]
        assert r > 0.5, (clip, r)
        assert rms[~voiced].mean() < 0.2 * rms[voiced].mean()  # pauses are (nearly) silent
        for listener in session["listeners"]:
            path = corpus / "Audio_files" / f"SynthReact/{session['name']}/{listener}/1.wav"
            assert not path.exists()


def test_meta_records_the_hidden_rules(corpus, ci_spec):
    """reactlab.json holds what a notebook needs to check the rules on disk."""
    meta = json.loads((corpus / data.CORPUS_FILE).read_text())
    memory = {s.name: s for s in synth.sessions(ci_spec)}
    for session in meta["sessions"]:
        s = memory[session["name"]]
        assert session["speaker"] == s.speaker.pid and session["split"] == s.split
        assert session["nods"] == [n.tolist() for n in s.streams["nods"]]
        voiced = synth.voiced_from_runs(session["voiced"], ci_spec.frames + 1)
        np.testing.assert_array_equal(voiced, s.streams["speaker"]["voiced"])
    person = meta["people"][memory["session_0000"].listeners[0].pid]
    assert person["delay_s"] == memory["session_0000"].listeners[0].delay_s
    assert "listener" in person["roles"]


def test_rules_hold_when_read_back_from_disk(corpus, ci_spec):
    """The rules survive writing: measured on the files through the REACT-layout reader."""
    c = data.Corpus(corpus)
    counts = synth.session_counts(ci_spec)
    pause_nods = speech_nods = pause_s = speech_s = 0.0
    for split in c.splits:
        views = rules.read_sessions(c, split)
        assert len(views) == counts[split]
        assert all(v.speaker.shape == (ci_spec.frames, 58) for v in views)
        report = rules.rule_report(views)
        assert len(report) == counts[split] * ci_spec.listeners
        assert (report["delay_error"].abs() <= 1).all(), report
        # Lean-in and brows, per listener, from the written speaker coefficients alone.
        assert (report["lean_in"] > LEAN_MIN_CORR).all(), report[["listener", "lean_in"]]
        assert (report["brow_corr"] > BROW_MIN_CORR).all(), report[["listener", "brow_corr"]]
        np.testing.assert_allclose(
            report["brow_gain"], report["brow_gain_recorded"], rtol=BROW_GAIN_RTOL
        )
        pause_nods += report["nods_pause"].sum()
        speech_nods += report["nods_speech"].sum()
        pause_s += report["pause_s"].sum()
        speech_s += report["speech_s"].sum()
    assert pause_nods / pause_s >= 2 * speech_nods / speech_s


def test_read_sessions_needs_a_synthreact_corpus(tmp_path):
    (tmp_path / "train.csv").write_text(",speaker_path,listener_path\n0,a/b/1,a/c/1\n")
    with pytest.raises(ValueError, match="not a SynthReact corpus"):
        rules.read_sessions(data.Corpus(tmp_path), "train")


# --- caching and safety ---------------------------------------------------------------------------


def test_second_generate_is_a_cache_hit(corpus, ci_spec, monkeypatch):
    meta = corpus / data.CORPUS_FILE
    before = meta.stat().st_mtime_ns

    def regenerate(spec):
        raise AssertionError("the corpus was regenerated")

    monkeypatch.setattr(synth, "sessions", regenerate)
    assert synth.generate(ci_spec, corpus) == corpus
    assert meta.stat().st_mtime_ns == before
    with pytest.raises(AssertionError, match="regenerated"):
        synth.generate(ci_spec, corpus, force=True)  # force does not reuse it
    assert meta.stat().st_mtime_ns == before


def test_a_different_spec_replaces_the_corpus(tmp_path):
    out = tmp_path / "corpus"
    first, second = synth.Spec(**TINY, seed=1), synth.Spec(**TINY, seed=2)
    synth.generate(first, out)
    clip = data.read_pairs(out, "train")[0][0]
    old = data.load_coeffs(out / "3D_FV_files" / f"{clip}.npy")
    synth.generate(second, out)
    assert data.read_corpus_meta(out)["digest"] == second.digest()
    new_clips = {c for pair in data.read_pairs(out, "train") for c in pair}
    new = data.load_coeffs(out / "3D_FV_files" / f"{data.read_pairs(out, 'train')[0][0]}.npy")
    assert not np.array_equal(old, new)
    written = {
        str(p.relative_to(out / "3D_FV_files").with_suffix(""))
        for p in (out / "3D_FV_files").rglob("*.npy")
    }
    assert new_clips <= written
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no .old or .tmp folders


def test_generate_never_overwrites_a_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "thesis.txt").write_text("precious")
    (out / "train.csv").write_text("not ours")
    with pytest.raises(FileExistsError, match="not a SynthReact corpus"):
        synth.generate(synth.Spec(**TINY), out)
    assert (out / "notes" / "thesis.txt").read_text() == "precious"
    assert (out / "train.csv").read_text() == "not ours"
    assert sorted(p.name for p in out.iterdir()) == ["notes", "train.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError):
        synth.generate(synth.Spec(**TINY), a_file)
    assert a_file.read_text() == "x"


def test_generate_into_an_empty_folder(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert synth.generate(synth.Spec(**TINY), out) == out
    assert data.read_corpus_meta(out)["digest"] == synth.Spec(**TINY).digest()


def _fail_on_second_session(monkeypatch):
    real = synth._write_session
    calls = []

    def flaky(root, s, spec, render_video):
        calls.append(s.name)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real(root, s, spec, render_video)

    monkeypatch.setattr(synth, "_write_session", flaky)
    return calls


def test_a_failure_midway_leaves_no_corpus(tmp_path, monkeypatch):
    calls = _fail_on_second_session(monkeypatch)
    with pytest.raises(RuntimeError, match="power cut"):
        synth.generate(synth.Spec(**TINY), tmp_path / "corpus")
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_keeps_the_previous_corpus(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    old = synth.Spec(**TINY, seed=1)
    synth.generate(old, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    _fail_on_second_session(monkeypatch)
    with pytest.raises(RuntimeError, match="power cut"):
        synth.generate(synth.Spec(**TINY, seed=2), out)
    assert data.read_corpus_meta(out)["digest"] == old.digest()
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    root = paths.repo_root()
    monkeypatch.delenv(synth.CACHE_ENV, raising=False)
    assert synth.cache_dir() == root / "data" / "synth"
    spec = synth.Spec(**TINY)
    assert synth.default_dir(spec) == root / "data" / "synth" / spec.digest()
    monkeypatch.setenv(synth.CACHE_ENV, "build/corpora")  # relative: anchored at the checkout
    assert synth.cache_dir() == root / "build" / "corpora"
    monkeypatch.setenv(synth.CACHE_ENV, str(tmp_path / "cache"))
    assert synth.default_dir(spec) == tmp_path / "cache" / spec.digest()


def test_ensure_builds_in_the_cache_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(synth.CACHE_ENV, str(tmp_path / "cache"))
    cfg = config.resolve("ci")
    out = synth.ensure(cfg, **TINY, videos=0, anatomy="anatomical")
    spec = synth.Spec.from_config(cfg, **TINY, videos=0, anatomy="anatomical")
    assert out == tmp_path / "cache" / spec.digest()
    meta = data.read_corpus_meta(out)
    assert meta["digest"] == spec.digest() and meta["spec"]["anatomy"] == "anatomical"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [spec.digest()]


_CONCURRENT = """
import os, sys, time
from pathlib import Path
from reactlib.data import synth

out, log, me, other = (Path(a) for a in sys.argv[1:5])
real = synth.sessions


def counted(spec):
    with open(log, "a") as f:
        print(os.getpid(), file=f)
    time.sleep(1.0)  # hold the lock long enough for the other process to want it
    return real(spec)


synth.sessions = counted
me.touch()
deadline = time.monotonic() + 60
while not other.exists() and time.monotonic() < deadline:  # start together
    time.sleep(0.01)
synth.generate(synth.Spec(sessions=3, listeners=1, frames=50), out)
print("ok")
"""


def test_two_processes_building_one_corpus_generate_it_once(tmp_path):
    out, log = tmp_path / "corpus", tmp_path / "generated.log"
    ready = [tmp_path / "ready-0", tmp_path / "ready-1"]
    env = {**os.environ, "PYTHONPATH": str(paths.repo_root())}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT, str(out), str(log), str(me), str(other)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for me, other in (ready, ready[::-1])
    ]
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0 and stdout.strip() == "ok", stderr
    assert len(log.read_text().split()) == 1  # one process generated, the other reused it
    spec = synth.Spec(sessions=3, listeners=1, frames=50)
    assert data.read_corpus_meta(out)["digest"] == spec.digest()
    for split in ("train", "val", "test"):
        data.Corpus(out).split(split).validate()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["corpus", "generated.log", *(r.name for r in ready)]
    )  # no lock file, temporary or old folder left behind


def test_corpus_lock_excludes_another_process(tmp_path):
    out = tmp_path / "corpus"
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('free')\n"
        "except BlockingIOError:\n    print('held')\n"
    )
    with synth.corpus_lock(out) as lock_file:
        assert lock_file.exists()
        done = subprocess.run([sys.executable, "-c", probe, str(lock_file)], **_TEXT)
        assert done.stdout.strip() == "held", done.stderr
    assert not lock_file.exists()
    with synth.corpus_lock(out):  # free again, and reusable
        pass


_TEXT = {"capture_output": True, "text": True, "timeout": 60}


def test_progress_callback_sees_every_session(tmp_path):
    seen = []

    def progress(iterable, **kwargs):
        seen.append(kwargs)
        for entry in iterable:
            seen.append(entry.name)
            yield entry

    spec = synth.Spec(**TINY)
    synth.generate(spec, tmp_path / "c", progress=progress)
    assert seen[0]["desc"] == "SynthReact"
    assert seen[1:] == [s.name for s in synth.sessions(spec)]


# --- video ----------------------------------------------------------------------------------------


def test_videos_for_the_first_sessions(tmp_path):
    """``Spec.videos``: the first sessions (train split first) are also rendered to mp4."""
    spec = synth.Spec(sessions=5, listeners=1, frames=50, videos=2)
    out = synth.generate(spec, tmp_path / "corpus")
    meta = data.read_corpus_meta(out)
    assert [s["video"] for s in meta["sessions"]] == [True, True, False, False, False]
    for session in meta["sessions"]:
        for pid in [session["speaker"], *session["listeners"]]:
            path = out / "Video_files" / f"SynthReact/{session['name']}/{pid}/1.mp4"
            assert path.is_file() == session["video"], path
            if session["video"]:
                video = data.load_video(path)
                assert video.shape == (spec.frames + 1, synth.VIDEO_SIZE, synth.VIDEO_SIZE, 3)
                assert video.dtype == np.uint8 and video.std() > 1  # not a blank picture
    corpus = data.Corpus(out)
    assert corpus.describe().loc["train", "video files"] == 4
    split = corpus.split("train")
    first = [c for c in split.clips if meta["sessions"][0]["name"] in c]
    assert len(first) == 2
    for clip in first:
        assert split.video(clip).shape[0] == spec.frames
    with pytest.raises(data.DataError, match="2 problem"):  # the third session has none
        split.validate(["video"])


# --- command line ---------------------------------------------------------------------------------


def test_cli_synth_prints_the_summary_and_the_time(tmp_path, capsys):
    out = tmp_path / "ci"
    assert cli.main(["synth", "--profile", "ci", "--out", str(out), "--videos", "0"]) == 0
    printed = capsys.readouterr().out
    spec = synth.Spec.from_config(config.resolve("ci"), videos=0)
    counts = synth.session_counts(spec)
    for split, count in counts.items():
        pairs = count * spec.listeners
        assert re.search(rf"^{split}\s+{pairs}\s+{pairs}\s+False", printed, re.M), printed
    assert "neighbour_emotion_train.npy" in printed
    summary = rf"SynthReact {spec.digest()} \(ci: .*\) in {re.escape(str(out))}: \d+\.\d s$"
    assert re.search(summary, printed, re.M), printed
    assert data.read_corpus_meta(out)["digest"] == spec.digest()


def test_cli_synth_anatomy_option(tmp_path, capsys):
    out = tmp_path / "anatomical"
    argv = ["synth", "--profile", "ci", "--out", str(out), "--videos", "0"]
    assert cli.main([*argv, "--anatomy", "anatomical"]) == 0
    spec = synth.Spec.from_config(config.resolve("ci"), videos=0, anatomy="anatomical")
    assert data.read_corpus_meta(out)["digest"] == spec.digest()
    assert f"SynthReact {spec.digest()}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # argparse refuses other values
        cli.main([*argv, "--anatomy", "cartoon"])
    assert stop.value.code == 2
    assert "invalid choice: 'cartoon'" in capsys.readouterr().err


def test_cli_synth_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert cli.main(["synth", "--profile", "ci", "--out", str(tmp_path), "--videos", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a SynthReact corpus" in err and str(tmp_path) in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
