"""Tests for reactlib.metrics.emotion (coefficients -> emotion), reactlib.metrics.evaluation (one
call from predictions to every figure) and the `evaluate` and `bench metrics` commands.

The exact map must reproduce SynthReact's emotion files; the fitted map must recover a map it can
represent and report a low R^2 when there is nothing to learn; evaluation must tell a good
prediction from a bad one, refuse wrong shapes and NaN naming the file, and say which
appropriate-reaction sets it used."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from react_fixture import make_react_fixture

from reactlib import data
from reactlib.errors import DataError, UsageError
from reactlib.face import coeffs
from reactlib.metrics import emotion, evaluation
from reactlib.suite import cli


@pytest.fixture(scope="module")
def split(corpus):
    return corpus.split("test")


def _truth(split, m: int = 3) -> np.ndarray:
    listener = split.stack("coeffs", "listener")
    return np.repeat(listener[:, None], m, axis=1).astype(np.float32)


# --- the emotion maps -------------------------------------------------------------------------


def test_exact_map_reproduces_synthreact_emotion_files(split):
    x, e = emotion.split_frames(split, stride=1)
    np.testing.assert_allclose(emotion.ExactMap()(x), e, atol=1e-5)


def test_fitted_map_recovers_a_map_it_can_represent():
    rng = np.random.default_rng(0)
    x = rng.random((4000, 58))
    weights = rng.normal(size=(1 + 2 * 52, 25))
    truth = emotion._features(x) @ weights
    half = len(x) // 2
    fitted = emotion.FittedMap.fit(x[:half], truth[:half], x[half:], truth[half:])
    assert fitted.heldout_r2["overall"] > 0.999
    np.testing.assert_allclose(fitted.raw(x[half:]), truth[half:], atol=1e-2 * np.abs(truth).max())


def test_fitted_map_reports_that_noise_cannot_be_learned():
    rng = np.random.default_rng(1)
    x, y = rng.random((2000, 58)), rng.random((2000, 25))
    fitted = emotion.FittedMap.fit(x[:1000], y[:1000], x[1000:], y[1000:])
    assert fitted.heldout_r2["overall"] < 0.1


def test_fitted_map_outputs_valid_emotion_vectors():
    rng = np.random.default_rng(2)
    x = rng.random((600, 58))
    y = 5 * rng.normal(size=(600, 25))  # far outside every valid range
    out = emotion.FittedMap.fit(x[:300], y[:300], x[300:], y[300:])(3 * x)
    assert out[:, emotion.AU].min() >= 0 and out[:, emotion.AU].max() <= 1
    assert np.abs(out[:, emotion.VALENCE_AROUSAL]).max() <= 1
    assert (out[:, emotion.EXPRESSIONS] >= 0).all()
    np.testing.assert_allclose(out[:, emotion.EXPRESSIONS].sum(axis=1), 1, atol=1e-5)


def test_r2_scores_closed_form():
    truth = np.zeros((4, 25))
    truth[:, 0] = [0, 1, 2, 3]  # variance 5 in sum of squares about the mean
    predicted = truth.copy()
    predicted[:, 0] = [0, 1, 2, 4]  # squared error 1
    scores = emotion.r2_scores(truth, predicted)
    assert scores["overall"] == pytest.approx(1 - 1 / 5)
    assert scores["au"] == pytest.approx(1 - 1 / 5)
    assert np.isnan(scores["valence_arousal"])  # constant truth: undefined


def test_emotion_map_choice(corpus):
    assert isinstance(emotion.emotion_map(corpus), emotion.ExactMap)
    fitted = emotion.emotion_map(corpus, kind="fitted")
    assert isinstance(fitted, emotion.FittedMap)
    # SynthReact's emotion is a smooth function of the expression coefficients.
    assert fitted.heldout_r2["overall"] > 0.8
    with pytest.raises(UsageError, match="auto, exact or fitted"):
        emotion.emotion_map(corpus, kind="magic")


def test_fitted_map_rejects_bad_frames():
    with pytest.raises(UsageError, match="NaN"):
        emotion.FittedMap.fit(
            np.full((5, 58), np.nan), np.zeros((5, 25)), np.zeros((5, 58)), np.zeros((5, 25))
        )
    with pytest.raises(UsageError, match="58 values"):
        emotion.FittedMap.fit(
            np.zeros((5, 57)), np.zeros((5, 25)), np.zeros((5, 58)), np.zeros((5, 25))
        )


# --- evaluate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["react2024", "reactface", "clean"])
def test_the_real_listeners_score_better_than_other_speakers_listeners(split, convention):
    truth = _truth(split)
    shuffled = np.roll(truth, 1, axis=0)  # item k gets item k-1's listener
    good = evaluation.evaluate(truth, split, convention=convention)
    bad = evaluation.evaluate(shuffled, split, convention=convention)
    assert good["metrics"]["FRDist"] < bad["metrics"]["FRDist"]
    assert good["metrics"]["FRCorr"] > bad["metrics"]["FRCorr"]
    assert good["metrics"]["FRDiv"] == pytest.approx(0, abs=1e-9)  # M copies of one reaction
    # Realism compares distributions of windows: shuffling items leaves it, freezing does not.
    assert good["realism_fd"] < 1e-4
    assert bad["realism_fd"] == pytest.approx(good["realism_fd"], abs=1e-4)
    frozen = np.broadcast_to(truth[:, :, :1], truth.shape)
    assert evaluation.evaluate(frozen, split, convention=convention)["realism_fd"] > 1e-2
    assert good["neighbours"] == "neighbour_emotion_test.npy"
    assert good["space"] == ("coefficients" if convention != "react2024" else "emotion")


def test_emotion_predictions_are_scored_without_a_map(split):
    truth = np.repeat(split.stack("emotion", "listener")[:, None], 2, axis=1)
    result = evaluation.evaluate(truth, split, convention="react2024")
    assert result["emotion_map"] is None and result["realism_fd"] is None
    mapped = evaluation.evaluate(_truth(split, 2), split, convention="react2024")
    assert mapped["emotion_map"]["map"].startswith("exact")
    # SynthReact's emotion files are the exact map of its coefficients: the same numbers.
    for name, value in result["metrics"].items():
        assert mapped["metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-3)


def test_gt_through_map_uses_the_map_on_both_sides(split):
    result = evaluation.evaluate(_truth(split), split, gt_through_map=True)
    assert result["gt_through_map"] is True
    with pytest.raises(UsageError, match="gt_through_map"):
        evaluation.evaluate(_truth(split), split, convention="clean", gt_through_map=True)


def test_items_scores_a_prefix_of_the_split(split):
    truth = _truth(split)[:3]
    result = evaluation.evaluate(truth, split, convention="clean", items=3)
    assert result["items"] == 3
    with pytest.raises(UsageError, match="items must be"):
        evaluation.evaluate(truth, split, items=len(split) + 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[1:], "items but"),
        (lambda p: p[:, :, 1:], "frames per reaction"),
        (lambda p: p[..., :50], "values per frame"),
        (lambda p: p[0], r"\(N, M, T, D\)"),
        (
            lambda p: np.where(np.arange(58) == 3, np.nan, p),
            "NaN or infinite values, first at item 0",
        ),
    ],
)
def test_bad_predictions_are_refused_naming_the_file(split, change, message):
    with pytest.raises(DataError, match=message) as caught:
        evaluation.evaluate(change(_truth(split)), split, source="mine.npy")
    assert "mine.npy" in str(caught.value)


def test_reactface_needs_coefficients(split):
    truth = np.repeat(split.stack("emotion", "listener")[:, None], 2, axis=1)
    with pytest.raises(UsageError, match="58-d coefficients"):
        evaluation.evaluate(truth, split, convention="reactface")


# --- the commands ---------------------------------------------------------------------------------


def test_evaluate_command_writes_every_figure(corpus, split, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REACT_DATA", "")
    pred = tmp_path / "pred.npy"
    np.save(pred, _truth(split))
    out = tmp_path / "scores.json"
    code = cli.main(
        ["evaluate", "--pred", str(pred), "--data", str(corpus.root), "--convention", "clean",
         "--json", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "FRSyn"}
    assert result["neighbours"] == "neighbour_emotion_test.npy"
    assert result["pred"] == str(pred)
    assert "FRCorr" in capsys.readouterr().out


def test_evaluate_command_names_the_fallback_without_a_neighbour_matrix(tmp_path, capsys):
    fx = make_react_fixture(tmp_path / "react", video=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = data.Corpus(fx.root).split("val")
    truth = np.repeat(split.stack("emotion", "listener")[:, None], 2, axis=1)
    pred = tmp_path / "pred.npy"
    np.save(pred, truth)
    out = tmp_path / "scores.json"
    code = cli.main(
        ["evaluate", "--pred", str(pred), "--data", str(fx.root), "--split", "val",
         "--json", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    assert json.loads(out.read_text())["neighbours"] == "fallback:same_speaker"
    assert "fallback" in capsys.readouterr().err


def test_evaluate_command_errors(corpus, split, tmp_path, capsys):
    missing = tmp_path / "none.npy"
    assert cli.main(["evaluate", "--pred", str(missing), "--data", str(corpus.root)]) == 1
    assert "not found" in capsys.readouterr().err
    broken = tmp_path / "broken.npy"
    broken.write_text("not an array")
    assert cli.main(["evaluate", "--pred", str(broken), "--data", str(corpus.root)]) == 1
    assert "not a readable .npy" in capsys.readouterr().err
    short = tmp_path / "short.npy"
    np.save(short, _truth(split)[:, :, :10])
    assert cli.main(["evaluate", "--pred", str(short), "--data", str(corpus.root)]) == 1
    assert "frames per reaction" in capsys.readouterr().err
    assert cli.main(["evaluate", "--pred", str(short), "--split", "nope"]) == 2


def test_bench_metrics_command_writes_its_figures(tmp_path):
    code = cli.main(
        ["bench", "metrics", "--n", "3", "--m", "2", "--frames", "60", "--neighbours", "2",
         "--repeats", "1", "--quiet", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "metrics_speed.json").read_text())
    figures = result["figures"]
    assert figures["pair_values_agree"] is True
    assert figures["pairs"] == 3 * 2 * 2
    assert result["provenance"]["git"]
    assert cli.main(["bench", "metrics", "--n", "0"]) == 2


def test_coefficient_and_emotion_sizes_are_the_papers():
    assert evaluation.SPACES == {coeffs.NUM_COEFFS: "coefficients", coeffs.NUM_EMOTION: "emotion"}


# --- the spread over speakers ------------------------------------------------------------------


def test_speaker_changes_add_up_to_the_whole_change(split):
    """Changing only speaker k's reactions moves the per-speaker means by 1/N of speaker k's
    own change, so the mean of the per-speaker changes is the whole change; a speaker whose
    reactions did not change contributes 0."""
    base = _truth(split, m=2)[:3]
    rng = np.random.default_rng(5)
    other = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
    other[1] = base[1]
    changes = evaluation.speaker_changes(base, other, split, convention="clean")
    assert list(changes.index) == [0, 1, 2] and list(changes.columns) == list(
        evaluation.TABLE_COLUMNS
    )
    table = evaluation.method_table({"a": base, "b": other}, split, convention="clean", items=3)
    whole = table.loc["b"] - table.loc["a"]
    for column in ("FRCorr", "FRDist", "FRDiv", "FRVar"):
        assert changes[column].mean() == pytest.approx(whole[column], rel=1e-6, abs=1e-9)
    assert np.allclose(changes.loc[1, ["FRCorr", "FRDist", "FRDiv", "FRVar"]], 0, atol=1e-9)
    with pytest.raises(UsageError, match="one shape"):
        evaluation.speaker_changes(base, other[:2], split)


def test_bootstrap_over_speakers_gives_the_mean_and_an_interval_that_can_exclude_zero():
    import pandas as pd

    rng = np.random.default_rng(0)
    shifted = pd.DataFrame({"a": 1.0 + rng.normal(0, 0.1, 20), "b": rng.normal(0, 1.0, 20)})
    out = evaluation.bootstrap_over_speakers(shifted, seed=1)
    assert list(out.index) == ["mean", "low", "high"] and list(out.columns) == ["a", "b"]
    assert out.loc["mean", "a"] == pytest.approx(shifted["a"].mean())
    assert out.loc["low", "a"] > 0.9 and out.loc["high", "a"] < 1.1  # a change beyond its spread
    assert out.loc["low", "b"] < 0 < out.loc["high", "b"]  # one within it
    two = evaluation.bootstrap_over_speakers(pd.DataFrame({"x": [1.0, 3.0]}))
    assert two.loc["low", "x"] == 1.0 and two.loc["high", "x"] == 3.0
    with pytest.raises(UsageError, match="level"):
        evaluation.bootstrap_over_speakers(shifted, level=1.5)
