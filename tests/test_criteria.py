"""Tests for reactlib.criteria: the real listeners pass every rule criterion, each control fails
every criterion it must, and the statistics equal closed forms and hand counts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from react_fixture import make_react_fixture

from reactlib import criteria, data, rules
from reactlib.data import synth
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.suite import cli

FPS = 25


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A SynthReact corpus big enough for every criterion (30 sessions of 3 listeners, 20 s
    clips: about 6 s to write); the ci corpus has 2 test speakers, too few for re-pairing."""
    spec = synth.Spec(sessions=30, listeners=3, frames=500, videos=0, seed=0)
    return data.Corpus(synth.generate(spec, tmp_path_factory.mktemp("criteria") / "c"))


@pytest.fixture(scope="module")
def pooled(corpus):
    """Every speaker of every split, once, with all its listeners: ``speaker (S, T, 58)``,
    ``voiced (S, T)``, ``truth (S, K, T, 58)``."""
    parts = []
    for split in ("train", "val", "test"):
        speaker, voiced = rules.speaker_context(corpus, split)
        first, truth = rules.speaker_items(corpus.split(split))
        parts.append((speaker[first], voiced[first], truth))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


@pytest.fixture(scope="module")
def grid(pooled):
    speaker, voiced, truth = pooled
    groups = list(range(len(speaker)))
    methods = {"GT": truth, **criteria.controls(truth, speaker, groups, seed=0)}
    table = criteria.check_table(methods, speaker, voiced, groups=groups)
    return criteria.verdicts(table)


def test_the_real_listeners_pass_every_criterion(grid):
    assert grid.shape[1] == len(criteria.CRITERIA)
    failed = [name for name, verdict in grid.loc["GT"].items() if verdict != "pass"]
    assert failed == []


def test_each_control_fails_every_criterion_it_must(grid):
    assert set(criteria.CONTROLS) <= set(grid.index)
    assert criteria.expected_failures(grid) == []


def test_every_criterion_rejects_a_control_and_every_control_is_rejected(grid):
    for criterion in criteria.CRITERIA:
        assert criterion.must_reject, criterion.name
        assert set(criterion.must_reject) <= set(criteria.CONTROLS)
        assert (grid.loc[list(criterion.must_reject), criterion.name] == "fail").all()
    rejected = {c for criterion in criteria.CRITERIA for c in criterion.must_reject}
    assert rejected == set(criteria.CONTROLS)
    # Every response criterion rejects Random and the wrong speaker (what a response is).
    for name in criteria.RESPONSE:
        (criterion,) = [c for c in criteria.CRITERIA if c.name == name]
        assert {"Random", "wrong speaker"} <= set(criterion.must_reject)


def test_a_delayed_mirror_passes_smile_mimicry_and_fails_the_nods(grid):
    # What the smile rule is (mimicry with a delay), and what a copy of the speaker is not.
    assert grid.loc["delayed mirror", "smile_response"] == "pass"
    assert grid.loc["delayed mirror", "nods_in_pauses"] == "fail"


def test_expected_failures_names_a_control_that_passes(grid):
    broken = grid.copy()
    broken.loc["Random", "lean_in"] = "pass"
    assert criteria.expected_failures(broken) == ["Random passes lean_in"]


def test_the_wrong_speaker_of_a_model_fails_its_responses(pooled):
    speaker, voiced, truth = pooled
    groups = list(range(len(speaker)))
    wrong = criteria.wrong_speaker(truth[:, :2], groups)
    result = criteria.check(wrong, speaker, voiced, groups=groups, draws=999)
    assert all(result[name]["passes"] is False for name in criteria.RESPONSE)


# --- controls by hand --------------------------------------------------------------------------


def test_wrong_speaker_gives_every_item_another_speakers_reactions():
    reactions = np.arange(6)[:, None, None, None] * np.ones((6, 1, 2, 3))
    groups = ["a", "a", "b", "b", "b", "c"]
    moved = criteria.wrong_speaker(reactions, groups)
    source = moved[:, 0, 0, 0].astype(int)
    assert all(groups[s] != groups[i] for i, s in enumerate(source))
    assert source.tolist() == [2, 3, 5, 5, 5, 0]
    with pytest.raises(UsageError, match="two speakers"):
        criteria.wrong_speaker(reactions, ["a"] * 6)


def test_delayed_mirror_is_the_speaker_late():
    speaker = np.random.default_rng(0).normal(size=(2, 40, coeffs.NUM_COEFFS))
    mirror = criteria.delayed_mirror(speaker, m=3, delay_s=0.2)
    assert mirror.shape == (2, 3, 40, coeffs.NUM_COEFFS)
    np.testing.assert_array_equal(mirror[:, 1, 5:], speaker[:, :-5])
    np.testing.assert_array_equal(mirror[:, 2, :5], np.repeat(speaker[:, :1], 5, axis=1))


def test_jitter_has_the_asked_spread():
    truth = np.random.default_rng(1).normal(size=(4, 2, 300, coeffs.NUM_COEFFS)) * 3.0
    noise = criteria.jitter(truth, scale=0.1, seed=2) - truth
    assert noise.std() == pytest.approx(0.3, rel=0.02)


# --- closed forms --------------------------------------------------------------------------------


@pytest.mark.parametrize("f", [0.5, 1.0, 2.0, 4.0])
def test_roughness_of_a_sinusoid_is_2_sin_pi_f_over_fps(f):
    t = np.arange(20 * FPS)
    x = np.sin(2 * np.pi * f * t / FPS + 0.3)[:, None]
    # Over whole periods the mean |second difference| is 2 sin(pi f / fps) times the mean |first|.
    period = round(FPS / f) if FPS % f == 0 else None
    expected = 2 * math.sin(math.pi * f / FPS)
    value = criteria.roughness(x[: len(x) - (len(x) % period)] if period else x)
    assert value == pytest.approx(expected, rel=0.02)


def test_roughness_of_white_noise_is_sqrt_3_and_of_a_ramp_0():
    noise = np.random.default_rng(0).normal(size=(200_000, 1))
    assert criteria.roughness(noise) == pytest.approx(math.sqrt(3), rel=0.01)
    assert criteria.roughness(np.arange(50.0)[:, None]) == 0.0
    assert math.isnan(criteria.roughness(np.ones((50, 2))))


def test_rate_ratio_and_its_interval_by_hand():
    ratio, (low, high) = criteria._rate_ratio(20, 10, 10.0, 20.0)
    assert ratio == pytest.approx(4.0)  # 2 per s against 0.5 per s
    assert low < 4.0 < high
    # The exact binomial interval of 20 / 30 turned into odds times 20 / 10.
    from scipy import stats

    ci = stats.binomtest(20, 30).proportion_ci(0.95, method="exact")
    assert low == pytest.approx(ci.low / (1 - ci.low) * 2)
    assert criteria._poisson_interval(0, 1.0) == pytest.approx([0.0, 3.6889], abs=1e-4)


def test_a_permutation_null_is_exact_for_few_speakers():
    # Seven speakers: all 5040 re-pairings; the true pairing is the only one with a perfect
    # correlation, so p = 1 / 7!.
    rng = np.random.default_rng(3)
    lead = rng.normal(size=(7, 200))
    owner = np.arange(7)
    pairings = criteria._pairings(7, 10, rng)
    assert pairings.shape == (5040, 7)
    result = criteria._lag0_tested(lead, lead.copy(), owner, pairings, alpha=0.001)
    assert result["p"] == pytest.approx(1 / 5040)
    assert result["passes"] is True
    few = criteria._lag0_tested(
        lead[:6], lead[:6], owner[:6], criteria._pairings(6, 10, rng), 0.001
    )
    assert few["passes"] is None  # 6! = 720 re-pairings cannot reach p <= 0.001


def test_the_nod_criterion_on_hand_made_nods():
    # Six speakers' worth of reactions is too few for re-pairing; the counts are what is checked.
    frames = 500
    voiced = np.ones((8, frames), dtype=bool)
    voiced[:, 100:200] = False
    voiced[:, 300:400] = False
    x = np.zeros((8, frames, coeffs.NUM_COEFFS))
    pitch = coeffs.index("pitch")
    t = np.arange(12)
    for start in (130, 330):  # one nod in each pause, 0.55 s after it starts (response frame)
        x[:, start : start + 12, pitch] = 0.1 * np.sin(np.pi * t / 6)
    pairings = criteria._pairings(8, 99, np.random.default_rng(0))
    result = criteria._nods(x, voiced, np.arange(8), pairings, delay=14, alpha=0.001)
    found = rules.nod_onsets(x[0, :, pitch])
    assert len(found) >= 2
    assert result["nods_speech"] == 0
    assert result["nods_pause"] == 8 * len(found)
    assert math.isinf(result["figure"])


# --- bad input -----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    m=st.integers(1, 2),
    frames=st.integers(1, 60),
    bad=st.sampled_from(["speaker", "voiced", "alpha", "draws", "short"]),
)
def test_bad_input_is_refused_with_a_usage_error(n, m, frames, bad):
    reactions = np.zeros((n, m, max(frames, 60), coeffs.NUM_COEFFS))
    speaker = np.zeros((n, reactions.shape[2], coeffs.NUM_COEFFS))
    voiced = np.zeros((n, reactions.shape[2]), dtype=bool)
    kwargs = {}
    if bad == "speaker":
        speaker = speaker[:, :-1]
    elif bad == "voiced":
        voiced = voiced[:, :, None]
    elif bad == "alpha":
        kwargs["alpha"] = 1.5
    elif bad == "draws":
        kwargs["draws"] = 0
    else:
        reactions, speaker, voiced = reactions[:, :, :40], speaker[:, :40], voiced[:, :40]
    with pytest.raises(UsageError):
        criteria.check(reactions, speaker, voiced, **kwargs)


def test_groups_must_name_every_item():
    x = np.zeros((2, 1, 60, coeffs.NUM_COEFFS))
    with pytest.raises(UsageError, match="groups"):
        criteria.check(x, x[:, 0], np.zeros((2, 60), bool), groups=["a"])


# --- one split, and the evaluate command ---------------------------------------------------------


def test_check_split_of_emotion_or_react_data_gives_a_reason(corpus, tmp_path):
    split = corpus.split("test")
    emotion = np.zeros((len(split), 1, split.frames, 25))
    assert "not coefficients" in criteria.check_split(emotion, corpus)["reason"]
    fx = make_react_fixture(tmp_path / "react", video=False)
    react = data.Corpus(fx.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture has no neighbour matrix: a fallback
        frames = react.split("val").frames
        pred = np.zeros((len(react.split("val")), 1, frames, 58))
        result = criteria.check_split(pred, react, "val")
    assert result["criteria"] is None and "not a SynthReact corpus" in result["reason"]


def test_evaluate_json_writes_the_rule_verdicts(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("REACT_DATA", "")
    split = corpus.split("train")
    truth = np.repeat(split.stack("coeffs", "listener")[:, None], 2, axis=1)
    for name, pred, expect in (
        ("truth", truth, True),
        ("wrong", criteria.wrong_speaker(truth, [i.speaker for i in split.items]), False),
    ):
        path, out = tmp_path / f"{name}.npy", tmp_path / f"{name}.json"
        np.save(path, pred)
        code = cli.main(
            ["evaluate", "--pred", str(path), "--data", str(corpus.root), "--split", "train",
             "--convention", "clean", "--json", str(out), "--quiet"]
        )  # fmt: skip
        assert code == 0
        checks = json.loads(out.read_text())["rules"]
        assert checks["reason"] is None and checks["speakers"] >= criteria.MIN_SPEAKERS
        assert set(checks["criteria"]) == {c.name for c in criteria.CRITERIA}
        for criterion in criteria.RESPONSE:
            verdict = checks["criteria"][criterion]
            assert {"figure", "null", "p", "passes"} <= set(verdict)
            assert verdict["passes"] is expect, (name, criterion, verdict)
