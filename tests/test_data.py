"""Tests for reactlib.data against a small corpus in the real REACT 2024 layout."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
from hypothesis import given, settings
from hypothesis import strategies as st
from react_fixture import (
    AUDIO_RATE,
    EMOTION_SPELLING,
    MP4_CLIP,
    NOXI_A,
    PNG_CLIP,
    TRAIN_PAIRS,
    VAL_PAIRS,
    expected_video_frame,
    make_react_fixture,
    train_neighbours,
)

from reactlib import data
from reactlib.data import DataError, audio
from reactlib.data import corpus as corpora
from reactlib.errors import UsageError
from reactlib.face import coeffs

SMALL = 60
"""Stored frames of the function-scoped fixtures that tests modify (fast to build)."""
SMALL_USED = 50


@pytest.fixture(scope="module")
def react(tmp_path_factory):
    """The full-size fixture (751 stored frames, audio and video), shared and read-only."""
    return make_react_fixture(tmp_path_factory.mktemp("react"))


@pytest.fixture
def small(tmp_path):
    """A fresh small fixture (60 stored frames, no video) that a test may break."""
    return make_react_fixture(tmp_path / "react", frames=SMALL, video=False, seed=1)


@pytest.fixture
def train(react):
    return data.Split(react.root, "train")


# --- resolve_root ---------------------------------------------------------------------------------


def test_resolve_root_prefers_the_parameter(tmp_path, monkeypatch):
    (tmp_path / "param").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "env"))
    assert data.resolve_root(tmp_path / "param") == (tmp_path / "param").resolve()
    assert data.resolve_root(str(tmp_path / "param")) == (tmp_path / "param").resolve()


def test_resolve_root_falls_back_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.resolve_root() == tmp_path.resolve()
    assert data.resolve_root("") == tmp_path.resolve()


def test_resolve_root_is_none_without_either(monkeypatch):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    assert data.resolve_root() is None
    monkeypatch.setenv(data.DATA_ENV, "")
    assert data.resolve_root(None) is None


def test_resolve_root_rejects_a_non_folder(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-copy"
    with pytest.raises(DataError, match="no-such-copy") as err:
        data.resolve_root(missing)
    assert "data_root" in str(err.value)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    monkeypatch.setenv(data.DATA_ENV, str(a_file))
    with pytest.raises(DataError, match="REACT_DATA") as err:
        data.resolve_root()
    assert "file.txt" in str(err.value)


# --- person-id spellings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clip", "variants"),
    [
        (f"{NOXI_A}/Expert_video/1", [f"{NOXI_A}/P1/1"]),
        (f"{NOXI_A}/Novice_video/7", [f"{NOXI_A}/P2/7"]),
        (f"{NOXI_A}/P1/1", [f"{NOXI_A}/Expert_video/1"]),
        (f"{NOXI_A}/P2/3", [f"{NOXI_A}/Novice_video/3"]),
        ("RECOLA/group-1/P25/1", ["RECOLA/group-1/P1/1"]),
        ("RECOLA/group-1/P26/1", ["RECOLA/group-1/P2/1"]),
        ("RECOLA/group-4/P43/2", ["RECOLA/group-4/P1/2"]),
        ("UDIVA/talk/FC1_A/1", []),
        ("short/1", []),
    ],
)
def test_person_variants(clip, variants):
    assert data.person_variants(clip) == variants


def test_clip_file_finds_other_spellings(tmp_path):
    for clip in ("RECOLA/group-1/P25/1", "RECOLA/group-1/P26/1", f"{NOXI_A}/P1/1"):
        path = tmp_path / "3D_FV_files" / f"{clip}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    folder = tmp_path / "3D_FV_files"
    found = data.clip_file(tmp_path, "coeffs", f"{NOXI_A}/Expert_video/1")
    assert found == folder / NOXI_A / "P1" / "1.npy"
    # RECOLA P1/P2 resolve to the group's odd/even-numbered person folders.
    assert data.clip_file(tmp_path, "coeffs", "RECOLA/group-1/P1/1") == (
        folder / "RECOLA/group-1/P25/1.npy"
    )
    assert data.clip_file(tmp_path, "coeffs", "RECOLA/group-1/P2/1") == (
        folder / "RECOLA/group-1/P26/1.npy"
    )
    # The exact spelling wins when it exists.
    assert data.clip_file(tmp_path, "coeffs", "RECOLA/group-1/P25/1") == (
        folder / "RECOLA/group-1/P25/1.npy"
    )


def test_clip_file_missing_lists_the_tried_paths(tmp_path):
    clip = f"{NOXI_A}/Novice_video/1"
    with pytest.raises(DataError) as err:
        data.clip_file(tmp_path, "emotion", clip)
    message = str(err.value)
    assert "missing emotion" in message
    assert str(tmp_path / "Emotion" / f"{clip}.csv") in message
    assert str(tmp_path / "Emotion" / NOXI_A / "P2" / "1.csv") in message
    # Without must_exist, the exact path is returned.
    assert data.clip_file(tmp_path, "emotion", clip, must_exist=False) == (
        tmp_path / "Emotion" / f"{clip}.csv"
    )


def test_clip_file_rejects_an_unknown_modality(tmp_path):
    with pytest.raises(ValueError, match="coeffs, emotion, audio, video"):
        data.clip_file(tmp_path, "depth", "a/b/c")


# --- read_pairs -----------------------------------------------------------------------------------


def test_read_pairs_of_the_fixture(react):
    assert data.read_pairs(react.root, "train") == TRAIN_PAIRS
    assert data.read_pairs(react.root, "val") == VAL_PAIRS


def test_read_pairs_cleans_cells_and_skips_blank_lines(tmp_path):
    (tmp_path / "test.csv").write_text(
        "index, listener_path ,speaker_path\n"
        "0,NoXI/a/Novice_video/1.npy,/NoXI/a/Expert_video/1.mp4\n"
        "\n"
        ",,\n"
        "1,RECOLA\\group-2\\P28\\1.wav,RECOLA/group-2/P27/1\n",
        encoding="utf-8",
    )
    assert data.read_pairs(tmp_path, "test") == [
        ("NoXI/a/Expert_video/1", "NoXI/a/Novice_video/1"),
        ("RECOLA/group-2/P27/1", "RECOLA/group-2/P28/1"),
    ]


def test_read_pairs_in_paper_list(tmp_path):
    (tmp_path / "paper-list").mkdir()
    (tmp_path / "paper-list" / "val.csv").write_text(",speaker_path,listener_path\n0,a/b/1,a/c/1\n")
    assert data.pairs_file(tmp_path, "val") == tmp_path / "paper-list" / "val.csv"
    assert data.read_pairs(tmp_path, "val") == [("a/b/1", "a/c/1")]
    # A top-level file takes precedence.
    (tmp_path / "val.csv").write_text(",speaker_path,listener_path\n0,x/y/1,x/z/1\n")
    assert data.read_pairs(tmp_path, "val") == [("x/y/1", "x/z/1")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (",speaker,listener\n0,a/b/1,a/c/1\n", "lacks speaker_path and listener_path"),
        ("", "empty split file"),
        (",speaker_path,listener_path\n\n", "no pairs"),
        (",speaker_path,listener_path\n0,a/b/1\n", "line 2"),
    ],
)
def test_read_pairs_bad_files_name_the_file(tmp_path, text, problem):
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(DataError, match=problem) as err:
        data.read_pairs(tmp_path, "train")
    assert str(tmp_path / "train.csv") in str(err.value)


def test_read_pairs_missing_file(tmp_path):
    with pytest.raises(DataError, match="split file not found") as err:
        data.read_pairs(tmp_path, "test")
    assert str(tmp_path / "test.csv") in str(err.value)


# --- Split ----------------------------------------------------------------------------------------


def test_split_defaults_for_react(train):
    assert train.mirror is True
    assert train.frames == data.USED_FRAMES == 750
    assert train.pairs == TRAIN_PAIRS
    assert len(train) == 2 * len(TRAIN_PAIRS)
    first, second = train.items[: len(TRAIN_PAIRS)], train.items[len(TRAIN_PAIRS) :]
    assert [(i.speaker, i.listener, i.mirrored) for i in first] == [
        (s, ls, False) for s, ls in TRAIN_PAIRS
    ]
    assert [(i.speaker, i.listener, i.mirrored) for i in second] == [
        (ls, s, True) for s, ls in TRAIN_PAIRS
    ]
    assert train.clips == list(dict.fromkeys(c for p in TRAIN_PAIRS for c in p))
    assert "6 items" in repr(train) and "mirror=True" in repr(train)


def test_split_without_mirroring(react):
    split = data.Split(react.root, "train", mirror=False, frames=100)
    assert len(split) == len(TRAIN_PAIRS) and split.frames == 100
    assert not any(i.mirrored for i in split.items)
    np.testing.assert_array_equal(split.neighbours, train_neighbours()[:3, :3])


def test_neighbours_come_from_the_matrix(train):
    np.testing.assert_array_equal(train.neighbours, train_neighbours())
    assert train.neighbour_source == "neighbour_emotion_train.npy"
    assert train.appropriate(0).tolist() == [0, 2]
    assert train.appropriate(1).tolist() == [1, 4]
    assert train.appropriate(4).tolist() == [4]
    assert train.appropriate(5).tolist() == [3, 5]


def test_missing_neighbours_use_the_named_fallback(react):
    with pytest.warns(data.NeighbourFallbackWarning, match="same_speaker") as caught:
        val = data.Split(react.root, "val")
    assert "neighbour_emotion_val.npy" in str(caught[0].message)
    assert val.neighbour_source == "fallback:same_speaker"
    # Items: A->B, A->C, B->A, C->A; the two items with speaker A share their set.
    assert [val.appropriate(k).tolist() for k in range(4)] == [[0, 1], [0, 1], [2], [3]]
    with pytest.warns(data.NeighbourFallbackWarning, match="'self'"):
        alone = data.Split(react.root, "val", fallback="self")
    assert alone.neighbour_source == "fallback:self"
    np.testing.assert_array_equal(alone.neighbours, np.eye(4, dtype=bool))
    with pytest.raises(ValueError, match="nearest"):
        data.Split(react.root, "val", fallback="nearest")


def test_wrong_shaped_neighbour_matrix(small):
    np.save(small.root / "neighbour_emotion_train.npy", np.eye(4, dtype=bool))
    with pytest.raises(DataError, match=r"expected \(6, 6\)") as err:
        data.Split(small.root, "train")
    assert "neighbour_emotion_train.npy" in str(err.value) and "(4, 4)" in str(err.value)


def test_unreadable_neighbour_matrix(small):
    (small.root / "neighbour_emotion_train.npy").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DataError, match="not a readable .npy"):
        data.Split(small.root, "train")


# --- loading --------------------------------------------------------------------------------------


def test_coefficients_both_storage_shapes(react, train):
    stored = {c: np.load(react.path("coeffs", c)).shape for c in train.clips}
    assert (751, 58) in stored.values() and (751, 1, 58) in stored.values()
    for clip in train.clips:
        x = train.coeffs(clip)
        assert x.shape == (750, 58) and x.dtype == np.float32
        np.testing.assert_array_equal(x, react.coeffs[clip][:750])
    assert train.coeffs(train.clips[0]) is train.coeffs(train.clips[0])  # cached


def test_emotion_skips_the_header_and_finds_person_id_spellings(react, train):
    for clip in train.clips:
        e = train.emotion(clip)
        assert e.shape == (750, 25) and e.dtype == np.float32
        np.testing.assert_allclose(e, react.emotion[clip][:750], atol=1e-6)
    for clip, spelled in EMOTION_SPELLING.items():
        assert data.clip_file(react.root, "emotion", clip) == (
            react.root / "Emotion" / f"{spelled}.csv"
        )
        assert not (react.root / "Emotion" / f"{clip}.csv").exists()


def test_audio_features_from_44k_stereo(react, train):
    clip = TRAIN_PAIRS[0][1]
    features = train.audio_features(clip)
    assert features.shape == (750, 78) and features.dtype == np.float32
    assert np.all(np.isfinite(features))
    pcm = react.audio[clip].astype(np.float64) / 32768
    mono = pcm.mean(axis=1).astype(np.float32)
    expected = audio.mfcc78(mono, AUDIO_RATE, num_frames=750)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-3)


def test_stack(train):
    speakers = train.stack("coeffs", "speaker")
    assert speakers.shape == (6, 750, 58)
    np.testing.assert_array_equal(speakers[4], train.coeffs(train.items[4].speaker))
    assert train.stack("emotion", "listener").shape == (6, 750, 25)
    with pytest.raises(ValueError, match="role"):
        train.stack("coeffs", "audience")
    with pytest.raises(ValueError, match="video"):
        train.stack("video", "speaker")


def test_video_mp4_and_png_folder(react, train):
    png = train.video(PNG_CLIP)
    assert data.clip_file(react.root, "video", PNG_CLIP).is_dir()
    assert png.shape == (750, 32, 32, 3) and png.dtype == np.uint8
    for k in (0, 1, 100, 749):
        np.testing.assert_array_equal(png[k], expected_video_frame(k))
    mp4 = train.video(MP4_CLIP)
    assert data.clip_file(react.root, "video", MP4_CLIP).suffix == ".mp4"
    assert mp4.shape == (750, 32, 32, 3) and mp4.dtype == np.uint8
    for k in (0, 1, 100, 749):  # lossy: the mean colour of each frame survives
        np.testing.assert_allclose(
            mp4[k].reshape(-1, 3).mean(axis=0),
            expected_video_frame(k)[0, 0].astype(float),
            atol=8,
        )
    with pytest.raises(DataError, match="missing video"):
        train.video(TRAIN_PAIRS[0][1])


# --- bad input ------------------------------------------------------------------------------------


def _npy(tmp_path, array, name="clip.npy"):
    path = tmp_path / name
    np.save(path, array)
    return path


def test_wrong_coefficient_shape(tmp_path):
    path = _npy(tmp_path, np.zeros((751, 57), np.float32))
    with pytest.raises(DataError, match=r"\(751, 57\)") as err:
        data.load_coeffs(path, 750)
    assert str(path) in str(err.value)


def test_nan_coefficients_name_the_first_bad_frame(tmp_path):
    x = np.zeros((751, 58), np.float32)
    x[123, 7] = np.nan
    x[400, 0] = np.inf
    path = _npy(tmp_path, x)
    with pytest.raises(DataError, match="NaN") as err:
        data.load_coeffs(path, 750)
    assert "frame 123" in str(err.value) and str(path) in str(err.value)
    assert "2 NaN or infinite" in str(err.value)


def test_too_few_frames(tmp_path):
    path = _npy(tmp_path, np.zeros((700, 58), np.float32))
    with pytest.raises(DataError, match="700 frames, expected at least 750") as err:
        data.load_coeffs(path, 750)
    assert str(path) in str(err.value)
    assert data.load_coeffs(path, 700).shape == (700, 58)
    assert data.load_coeffs(path).shape == (700, 58)


def test_garbage_npy(tmp_path):
    path = tmp_path / "clip.npy"
    path.write_bytes(os.urandom(64) + b"not numpy")
    with pytest.raises(DataError, match="not a readable .npy") as err:
        data.load_coeffs(path, 750)
    assert str(path) in str(err.value)


def test_missing_coefficient_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.load_coeffs(tmp_path / "absent.npy")


def _csv(tmp_path, text):
    path = tmp_path / "clip.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_emotion_with_24_columns(tmp_path):
    row = ",".join(["0.5"] * 24)
    path = _csv(tmp_path, ",".join(f"c{i}" for i in range(24)) + "\n" + (row + "\n") * 751)
    with pytest.raises(DataError, match="24 columns, expected 25") as err:
        data.load_emotion(path, 750)
    assert str(path) in str(err.value)


def test_emotion_with_only_a_header(tmp_path):
    path = _csv(tmp_path, ",".join(coeffs.EMOTION_NAMES) + "\n")
    with pytest.raises(DataError, match="no data rows") as err:
        data.load_emotion(path, 750)
    assert str(path) in str(err.value)


def test_emotion_not_numeric(tmp_path):
    path = _csv(tmp_path, "h\n" + ",".join(["x"] * 25) + "\n")
    with pytest.raises(DataError, match="not a numeric emotion CSV") as err:
        data.load_emotion(path)
    assert str(path) in str(err.value)


def test_emotion_too_short(tmp_path):
    path = _csv(tmp_path, "h\n" + (",".join(["0.1"] * 25) + "\n") * 10)
    with pytest.raises(DataError, match="10 frames, expected at least 750"):
        data.load_emotion(path, 750)
    assert data.load_emotion(path).shape == (10, 25)


def test_audio_too_short(tmp_path):
    path = tmp_path / "clip.wav"
    scipy.io.wavfile.write(path, AUDIO_RATE, np.zeros((10 * AUDIO_RATE, 2), np.int16))
    with pytest.raises(DataError, match="audio lasts 10.00 s") as err:
        data.load_audio_features(path, 750)
    assert str(path) in str(err.value) and "30.00 s" in str(err.value)
    assert data.load_audio_features(path, 250).shape == (250, 78)


def test_unreadable_audio(tmp_path):
    path = tmp_path / "clip.wav"
    path.write_bytes(b"RIFF" + os.urandom(40))
    with pytest.raises(DataError, match="unreadable wav") as err:
        data.load_audio_features(path, 10)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        data.load_audio_features(tmp_path / "absent.wav", 10)


def test_validate_passes_on_the_small_fixture(small):
    split = data.Split(small.root, "train", frames=SMALL_USED)
    split.validate()
    assert split.coeffs(TRAIN_PAIRS[0][0]).shape == (SMALL_USED, 58)
    # The stored clips are 60 frames long: asking for more fails on every clip.
    with pytest.raises(DataError, match="6 problem"):
        data.Split(small.root, "train", frames=SMALL + 1).validate(["coeffs"])


def test_validate_names_a_missing_modality(small):
    clip = TRAIN_PAIRS[2][1]
    missing = small.path("emotion", clip)
    missing.unlink()
    split = data.Split(small.root, "train", frames=SMALL_USED)
    with pytest.raises(DataError) as err:
        split.validate()
    message = str(err.value)
    assert "1 problem(s)" in message and str(missing) in message and "missing emotion" in message


def test_validate_collects_every_problem_into_one_error(small):
    small.path("emotion", TRAIN_PAIRS[2][1]).unlink()
    bad = np.zeros((SMALL, 58), np.float32)
    bad[3, 3] = np.nan
    np.save(small.path("coeffs", TRAIN_PAIRS[1][0]), bad)
    small.path("audio", TRAIN_PAIRS[0][1]).unlink()
    split = data.Split(small.root, "train", frames=SMALL_USED)
    with pytest.raises(DataError) as err:
        split.validate()
    message = str(err.value)
    assert "3 problem(s)" in message and "'train'" in message
    assert str(small.path("emotion", TRAIN_PAIRS[2][1])) in message
    assert str(small.path("coeffs", TRAIN_PAIRS[1][0])) in message and "frame 3" in message
    assert "missing audio" in message
    # Only the requested modalities are checked.
    with pytest.raises(DataError, match="1 problem"):
        split.validate(["coeffs"])


def test_validate_video_reports_missing_videos(small):
    split = data.Split(small.root, "train", frames=SMALL_USED)
    with pytest.raises(DataError, match="6 problem") as err:
        split.validate(["video"])
    assert "missing video" in str(err.value)


# --- writers --------------------------------------------------------------------------------------


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_writers_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (40, 58)).astype(np.float32)
    e = rng.uniform(-1, 1, (40, 25)) * 10.0 ** rng.integers(-3, 2, (40, 25))
    clips_dir = tmp_path / "3D_FV_files" / "a" / "b"
    written = data.save_coeffs(clips_dir / "1.npy", x)
    assert written == clips_dir / "1.npy"
    np.testing.assert_array_equal(data.load_coeffs(written), x)
    assert _leftovers(clips_dir, {"1.npy"}) == []

    path = data.save_emotion(tmp_path / "Emotion" / "a" / "b" / "1.csv", e)
    assert path.read_text().splitlines()[0] == ",".join(coeffs.EMOTION_NAMES)
    np.testing.assert_allclose(data.load_emotion(path), e, rtol=1e-4, atol=1e-12)
    assert _leftovers(path.parent, {"1.csv"}) == []

    pairs = [("S/s1/P1/1", "S/s1/P2/1"), ("S/s2/P3/1", "S/s2/P4/1")]
    csv_path = data.write_pairs(tmp_path, "test", pairs)
    assert csv_path.read_text().splitlines()[0] == ",speaker_path,listener_path"
    assert data.read_pairs(tmp_path, "test") == pairs

    matrix = rng.uniform(0, 1, (4, 4)) > 0.5
    data.save_neighbours(tmp_path, "test", matrix)
    stored = np.load(data.neighbours_file(tmp_path, "test"))
    assert stored.dtype == bool
    np.testing.assert_array_equal(stored, matrix)
    split = data.Split(tmp_path, "test")
    np.testing.assert_array_equal(split.neighbours, matrix)
    assert (
        _leftovers(tmp_path, {"test.csv", "neighbour_emotion_test.npy", "3D_FV_files", "Emotion"})
        == []
    )


def test_writers_reject_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="finite"):
        data.save_emotion(tmp_path / "e.csv", np.full((3, 25), np.nan))
    with pytest.raises(ValueError, match=r"\(3, 24\)"):
        data.save_emotion(tmp_path / "e.csv", np.zeros((3, 24)))
    with pytest.raises(ValueError, match="even side"):
        data.save_neighbours(tmp_path, "train", np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match="even side"):
        data.save_neighbours(tmp_path, "train", np.zeros((2, 4), dtype=bool))
    assert list(tmp_path.iterdir()) == []


def test_failing_writes_leave_no_file(tmp_path, monkeypatch):
    def half_written(file, *args, **kwargs):
        Path(file).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", half_written)
    monkeypatch.setattr(np, "savetxt", half_written)
    with pytest.raises(OSError, match="disk full"):
        data.save_coeffs(tmp_path / "x.npy", np.zeros((5, 58)))
    with pytest.raises(OSError, match="disk full"):
        data.save_emotion(tmp_path / "e.csv", np.zeros((5, 25)))
    with pytest.raises(OSError, match="disk full"):
        data.save_neighbours(tmp_path, "val", np.eye(2, dtype=bool))
    assert list(tmp_path.iterdir()) == []


def test_failing_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    old = np.ones((5, 58), np.float32)
    path = data.save_coeffs(tmp_path / "x.npy", old)

    def boom(file, *args, **kwargs):
        Path(file).write_bytes(b"partial")
        raise OSError("interrupted")

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError, match="interrupted"):
        data.save_coeffs(path, np.zeros((5, 58)))
    monkeypatch.undo()
    np.testing.assert_array_equal(data.load_coeffs(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


# --- Corpus ---------------------------------------------------------------------------------------


def test_corpus_describe(react):
    corpus = data.Corpus(react.root)
    assert corpus.kind == "REACT 2024"
    assert corpus.splits == ["train", "val"]
    assert "REACT 2024" in repr(corpus)
    table = corpus.describe()
    assert list(table.index) == ["train", "val"]
    train, val = table.loc["train"], table.loc["val"]
    assert (train["pairs"], train["items"], train["clips"]) == (3, 6, 6)
    assert (val["pairs"], val["items"], val["clips"]) == (2, 4, 3)
    assert train["people"] == 4  # Expert, Novice of one NoXI session; P25, P26 of RECOLA
    assert val["people"] == 2
    assert bool(train["mirrored"]) and train["frames used"] == 750
    for modality in ("coeffs", "emotion", "audio"):
        assert train[f"{modality} files"] == 6 and val[f"{modality} files"] == 3
    assert train["video files"] == 2 and val["video files"] == 0
    assert train["neighbours"] == "neighbour_emotion_train.npy"
    assert val["neighbours"] == "fallback:same_speaker"
    assert train["mean appropriate set"] == pytest.approx(train_neighbours().sum() / 6)
    assert val["mean appropriate set"] == pytest.approx((2 + 2 + 1 + 1) / 4)


def test_corpus_counts_missing_files(small):
    small.path("audio", TRAIN_PAIRS[0][0]).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # describe() silences its own fallback warnings
        table = data.Corpus(small.root).describe()
    assert table.loc["train", "audio files"] == 5
    assert table.loc["train", "frames used"] == 750


def test_corpus_without_split_files(tmp_path):
    with pytest.raises(DataError, match="no split files") as err:
        data.Corpus(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DataError, match="corpus folder not found"):
        data.Corpus(tmp_path / "absent")


def test_corpus_unknown_split(react):
    corpus = data.Corpus(react.root)
    with pytest.raises(DataError, match="no split 'nope'; available: train, val"):
        corpus.split("nope")
    with pytest.raises(DataError, match="'test'"):
        corpus.split("test")
    split = corpus.split("train", frames=10)
    assert split.frames == 10 and split.name == "train"


def test_open_corpus_uses_the_given_copy(react, monkeypatch):
    from reactlib import config

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    assert corpora.open_corpus(react.root).root == react.root.resolve()
    cfg = config.resolve("ci", data_root=str(react.root))
    assert corpora.open_corpus(cfg=cfg).root == react.root.resolve()
    monkeypatch.setenv(data.DATA_ENV, str(react.root))
    assert corpora.open_corpus().root == react.root.resolve()
    monkeypatch.delenv(data.DATA_ENV)
    with pytest.raises(ValueError, match="cfg"):
        corpora.open_corpus()


def test_corrupt_corpus_file(small):
    (small.root / data.CORPUS_FILE).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        data.Corpus(small.root)


def _corpus_record(frames: int = SMALL_USED) -> dict:
    """A minimal valid reactlab.json."""
    person = {"delay_s": 0.4, "expressivity": 1.0, "brow_gain": 0.5, "lean_gain": 0.1}
    return {
        "corpus": "SynthReact",
        "version": 2,
        "digest": "0123456789ab",
        "spec": {"sessions": 3},
        "fps": 25,
        "frames": frames,
        "stored_frames": frames + 1,
        "mirror": False,
        "generation_seconds": 1.5,
        "sessions": [
            {
                "name": "session_0000",
                "split": "train",
                "speaker": "P0000",
                "listeners": ["P0001"],
                "voiced": [[0, 10], [20, frames]],
            }
        ],
        "people": {
            "P0000": {**person, "appearance_seed": 1},
            "P0001": {**person, "appearance_seed": 2},
        },
    }


def test_a_valid_corpus_record_is_read(small):
    record = _corpus_record()
    (small.root / data.CORPUS_FILE).write_text(json.dumps(record))
    assert data.read_corpus_meta(small.root) == record
    corpus = data.Corpus(small.root)
    assert corpus.kind == "SynthReact"
    assert corpus.split("train", mirror=True).frames == SMALL_USED


def _broken(change):
    record = _corpus_record()
    change(record)
    return record


MALFORMED_RECORDS = {
    "a list": ([1, 2], "must be a JSON object, got list"),
    "no frames": (_broken(lambda r: r.pop("frames")), "lacks the key 'frames'"),
    "frames a string": (_broken(lambda r: r.update(frames="50")), r"\['frames'\] must be int"),
    "mirror a number": (_broken(lambda r: r.update(mirror=0)), r"\['mirror'\] must be bool"),
    "frames a bool": (_broken(lambda r: r.update(frames=True)), r"\['frames'\] must be int"),
    "frames > stored": (_broken(lambda r: r.update(frames=99)), "between 1 and stored_frames"),
    "sessions a dict": (_broken(lambda r: r.update(sessions={})), r"\['sessions'\] must be list"),
    "no people": (_broken(lambda r: r.pop("people")), "lacks the key 'people'"),
    "session without speaker": (
        _broken(lambda r: r["sessions"][0].pop("speaker")),
        r"sessions\[0\] lacks the key 'speaker'",
    ),
    "unknown listener": (
        _broken(lambda r: r["sessions"][0].update(listeners=["P0042"])),
        "names person 'P0042', who is not in people",
    ),
    "bad speech run": (
        _broken(lambda r: r["sessions"][0].update(voiced=[[0, 10, 20]])),
        r"holds \[0, 10, 20\], not a \[start, stop\] pair",
    ),
    "speech run past the end": (
        _broken(lambda r: r["sessions"][0].update(voiced=[[0, 900]])),
        "outside the 51 stored frames",
    ),
    "person without delay": (
        _broken(lambda r: r["people"]["P0001"].pop("delay_s")),
        r"people\['P0001'\] lacks the key 'delay_s'",
    ),
    "person a string": (
        _broken(lambda r: r["people"].update(P0001="x")),
        r"people\['P0001'\] must be a JSON object, got str",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_RECORDS))
def test_a_malformed_corpus_record_names_the_file_and_the_problem(small, case):
    record, problem = MALFORMED_RECORDS[case]
    path = small.root / data.CORPUS_FILE
    path.write_text(json.dumps(record))
    for read in (data.read_corpus_meta, data.Corpus, lambda root: data.Split(root, "train")):
        with pytest.raises(DataError, match=problem) as err:
            read(small.root)
        assert str(err.value).startswith(f"{path}: ")


# --- property: shapes -----------------------------------------------------------------------------

_DIMS = st.sampled_from([0, 1, 2, 3, 57, 58, 59])


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(_DIMS, min_size=0, max_size=4),
    poison=st.sampled_from([None, np.nan, np.inf, -np.inf]),
)
def test_save_coeffs_accepts_only_finite_t_by_58(shape, poison):
    x = np.zeros(shape)
    if poison is not None and x.size:
        x.flat[x.size // 2] = poison
    valid = x.ndim == 2 and x.shape[1] == 58 and (poison is None or x.size == 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        if valid:
            data.save_coeffs(path, x)
            assert data.load_coeffs(path).shape == x.shape
        else:
            with pytest.raises(ValueError, match="coefficients must be finite"):
                data.save_coeffs(path, x)
            assert os.listdir(tmp) == []


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(_DIMS, min_size=0, max_size=4),
    dtype=st.sampled_from(["float32", "float64", "int16", "bool", "complex64", "U3"]),
    frames=st.sampled_from([None, 1, 2, 3]),
    poison=st.booleans(),
)
def test_load_coeffs_raises_data_error_on_anything_bad(shape, dtype, frames, poison):
    x = np.zeros(shape, dtype=dtype)
    if poison and x.size and x.dtype.kind == "f":
        x.flat[0] = np.nan
    squeezed = x[:, 0] if x.ndim == 3 and x.shape[1] == 1 else x
    valid = (
        squeezed.ndim == 2
        and squeezed.shape[1] == 58
        and x.dtype.kind in "fiu"
        and not (poison and x.size and x.dtype.kind == "f")
        and (frames is None or squeezed.shape[0] >= frames)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        np.save(path, x)
        if valid:
            out = data.load_coeffs(path, frames)
            assert out.dtype == np.float32
            assert out.shape == (squeezed.shape[0] if frames is None else frames, 58)
        else:
            with pytest.raises(DataError) as err:
                data.load_coeffs(path, frames)
            assert str(path) in str(err.value)


# --- audio features: mfcc78 or precomputed per-frame arrays ---------------------------------------

FEATURE_WIDTH = 7
"""Width of the precomputed features the tests write (any D >= 1 is allowed)."""


def _write_features(fx, name: str, rows: int = SMALL, width: int = FEATURE_WIDTH, seed: int = 3):
    """Write ``Audio_files/<clip>.<name>.npy`` for every clip; return the arrays by clip."""
    rng = np.random.default_rng(seed)
    written = {}
    for clip in fx.clips:
        path = data.audio_feature_file(fx.root, clip, name, must_exist=False)
        written[clip] = rng.normal(0, 1, (rows, width)).astype(np.float32)
        np.save(path, written[clip])
    return written


def test_default_audio_features_are_the_wav_mfcc(small):
    assert data.AUDIO_FEATURES_DEFAULT == "mfcc78"
    default = data.Split(small.root, "train", frames=SMALL_USED)
    named = data.Split(small.root, "train", frames=SMALL_USED, audio_features="mfcc78")
    assert default.audio_dim == named.audio_dim == 78
    for clip in {item.speaker for item in default.items}:
        expected = data.load_audio_features(small.path("audio", clip), SMALL_USED)
        np.testing.assert_array_equal(default.audio_features(clip), expected)
        np.testing.assert_array_equal(named.audio_features(clip), expected)


def test_precomputed_audio_features_are_read_back_exactly(small):
    written = _write_features(small, "wav2vec2")
    split = data.Split(small.root, "train", frames=SMALL_USED, audio_features="wav2vec2")
    assert split.audio_features_name == "wav2vec2" and "audio_features=wav2vec2" in repr(split)
    assert split.audio_dim == FEATURE_WIDTH
    for item in split.items:
        features = split.audio_features(item.speaker)
        assert features.dtype == np.float32
        np.testing.assert_array_equal(features, written[item.speaker][:SMALL_USED])
    clip = split.items[0].speaker
    assert split.audio_features(clip) is split.audio_features(clip)  # cached
    split.validate()


def test_precomputed_audio_features_are_converted_to_float32(tmp_path):
    x = np.arange(12, dtype=np.int16).reshape(6, 2)
    path = _npy(tmp_path, x, "clip.hubert.npy")
    out = data.load_feature_array(path, 5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x[:5].astype(np.float32))
    wide = _npy(tmp_path, np.ones((4, 1), np.float64), "clip.one.npy")
    assert data.load_feature_array(wide, 4).shape == (4, 1)


def test_precomputed_audio_features_use_the_person_id_spellings(small):
    written = _write_features(small, "hubert")
    folder = small.root / "Audio_files"
    renamed = {
        f"{NOXI_A}/Expert_video/1": f"{NOXI_A}/P1/1",
        "RECOLA/group-1/P25/1": "RECOLA/group-1/P1/1",
        "RECOLA/group-1/P26/1": "RECOLA/group-1/P2/1",
    }
    for clip, spelled in renamed.items():
        target = folder / f"{spelled}.hubert.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{clip}.hubert.npy").rename(target)
    split = data.Split(small.root, "train", frames=SMALL_USED, audio_features="hubert")
    for clip, spelled in renamed.items():
        assert data.audio_feature_file(small.root, clip, "hubert") == (
            folder / f"{spelled}.hubert.npy"
        )
        np.testing.assert_array_equal(split.audio_features(clip), written[clip][:SMALL_USED])


def test_missing_precomputed_features_name_the_features_and_every_path(small):
    clip = f"{NOXI_A}/Expert_video/1"
    split = data.Split(small.root, "train", frames=SMALL_USED, audio_features="wav2vec2")
    with pytest.raises(DataError) as err:
        split.audio_features(clip)
    message = str(err.value)
    folder = small.root / "Audio_files"
    assert "'wav2vec2'" in message and repr(clip) in message
    assert str(folder / f"{clip}.wav2vec2.npy") in message
    assert str(folder / NOXI_A / "P1" / "1.wav2vec2.npy") in message
    with pytest.raises(DataError, match="'wav2vec2'"):
        split.audio_dim  # noqa: B018 - the property reads the first speaker's file


BAD_FEATURE_ARRAYS = {
    "NaN": (np.where(np.arange(SMALL)[:, None] == 17, np.nan, np.zeros((SMALL, 4))), "frame 17"),
    "inf": (np.full((SMALL, 4), np.inf), "infinite"),
    "one dimension": (np.zeros(SMALL), r"shape \(60,\), expected \(T, D\)"),
    "three dimensions": (np.zeros((1, SMALL, 4)), r"shape \(1, 60, 4\)"),
    "no columns": (np.zeros((SMALL, 0)), r"shape \(60, 0\).*D >= 1"),
    "text": (np.full((SMALL, 4), "a"), "dtype <U1, expected numbers"),
    "booleans": (np.ones((SMALL, 4), bool), "dtype bool, expected numbers"),
    "too few frames": (np.zeros((SMALL_USED - 1, 4)), "49 frames, expected at least 50"),
    "50 Hz tokens": (np.zeros((2 * SMALL - 1, 4)), "per-frame features"),
}


@pytest.mark.parametrize("case", sorted(BAD_FEATURE_ARRAYS))
def test_bad_precomputed_features_name_the_file_and_the_problem(small, case):
    array, problem = BAD_FEATURE_ARRAYS[case]
    clip = TRAIN_PAIRS[1][0]
    path = data.audio_feature_file(small.root, clip, "w2v", must_exist=False)
    np.save(path, array)
    split = data.Split(small.root, "train", frames=SMALL_USED, audio_features="w2v")
    with pytest.raises(DataError, match=problem) as err:
        split.audio_features(clip)
    assert str(err.value).startswith(f"{path}: ")


def test_token_arrays_are_told_how_to_pool(tmp_path):
    path = _npy(tmp_path, np.zeros((1501, 768), np.float32), "clip.wav2vec2.npy")
    with pytest.raises(DataError) as err:
        data.load_feature_array(path, 750, clip_frames=751)
    message = str(err.value)
    assert str(path) in message and "1501 rows" in message and "751 video frames" in message
    assert "per-frame features" in message and "mean" in message and "max" in message
    # Without clip_frames the frames asked for are the clip's length.
    with pytest.raises(DataError, match="per-frame features"):
        data.load_feature_array(path, 750)


def test_tokens_are_judged_against_the_clip_not_the_frames_used(small):
    """A split using fewer than half of the stored frames still reads per-frame features and
    still refuses tokens: the clip's length comes from its coefficient file."""
    written = _write_features(small, "perframe")
    _write_features(small, "tokens", rows=2 * SMALL - 1)
    short = SMALL // 3
    per_frame = data.Split(small.root, "train", frames=short, audio_features="perframe")
    clip = TRAIN_PAIRS[0][0]
    np.testing.assert_array_equal(per_frame.audio_features(clip), written[clip][:short])
    tokens = data.Split(small.root, "train", frames=short, audio_features="tokens")
    with pytest.raises(DataError, match=f"{2 * SMALL - 1} rows for a clip of {SMALL} video"):
        tokens.audio_features(clip)


def test_unreadable_precomputed_features(tmp_path):
    path = tmp_path / "clip.w2v.npy"
    path.write_bytes(b"\x93NUMPY" + os.urandom(30))
    with pytest.raises(DataError, match="not a readable .npy") as err:
        data.load_feature_array(path, 10)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="not found") as err:
        data.load_feature_array(tmp_path / "absent.w2v.npy", 10)
    assert "absent.w2v.npy" in str(err.value)


@pytest.mark.parametrize("name", ["", "wav2vec2.npy", "a/b", "../up", "wav 2", "hübert", None])
def test_bad_audio_feature_names_are_refused(small, name):
    with pytest.raises(UsageError, match="letters, digits, '_' and '-'") as err:
        data.Split(small.root, "train", audio_features=name)
    assert isinstance(err.value, ValueError)
    with pytest.raises(UsageError, match="letters, digits"):
        data.audio_feature_file(small.root, TRAIN_PAIRS[0][0], name)


def test_audio_feature_names(small):
    assert data.check_audio_features("HuBERT_large-24") == "HuBERT_large-24"
    with pytest.raises(UsageError, match="computed from the wav"):
        data.audio_feature_file(small.root, TRAIN_PAIRS[0][0], "mfcc78")


def test_validate_checks_precomputed_features_of_speaker_clips_only(small):
    _write_features(small, "w2v")
    listener = TRAIN_PAIRS[0][1]
    data.audio_feature_file(small.root, listener, "w2v").unlink()
    unmirrored = data.Split(
        small.root, "train", frames=SMALL_USED, mirror=False, audio_features="w2v"
    )
    unmirrored.validate()  # the missing clip is only a listener
    mirrored = data.Split(small.root, "train", frames=SMALL_USED, audio_features="w2v")
    with pytest.raises(DataError, match="1 problem") as err:
        mirrored.validate(["audio"])
    assert "missing audio features 'w2v'" in str(err.value) and repr(listener) in str(err.value)


def test_validate_reports_features_of_different_widths(small):
    _write_features(small, "w2v")
    odd = TRAIN_PAIRS[2][0]
    np.save(data.audio_feature_file(small.root, odd, "w2v"), np.zeros((SMALL, 3), np.float32))
    split = data.Split(small.root, "train", frames=SMALL_USED, audio_features="w2v")
    with pytest.raises(DataError, match="1 problem") as err:
        split.validate(["audio"])
    message = str(err.value)
    assert "differ in width" in message and f"3 in {odd!r}" in message
    assert f"{FEATURE_WIDTH} in" in message


def test_coefficient_views_change_translation_only_and_are_named(corpus):
    from reactlib.errors import UsageError
    from reactlib.face import pfl
    from reactlib.suite.cli import models as model_verbs

    assert model_verbs.COEFF_VIEWS == data.COEFF_VIEWS
    stored = corpus.split("test")
    clip = stored.items[0].listener
    raw = stored.coeffs(clip)
    for view in data.COEFF_VIEWS:
        seen = corpus.with_view(view).split("test")
        x = seen.coeffs(clip)
        assert seen.view == view and f"view={view}" in repr(seen)
        assert x.dtype == raw.dtype and x.shape == raw.shape
        assert np.array_equal(x[:, :55], raw[:, :55])  # expressions and rotation unchanged
        assert np.allclose(x, pfl.coeff_view(raw, view), atol=1e-6)
        assert not np.allclose(x[:, 55:], raw[:, 55:])
    floating = corpus.with_view("float").split("test").coeffs(clip)
    fixed = corpus.with_view("pfl").split("test").coeffs(clip)
    # A floating crop follows the face: the head's sideways travel is (nearly) gone.
    assert floating[:, 55].std() < 0.5 * fixed[:, 55].std()
    assert corpus.identity() == {
        "kind": "SynthReact",
        "digest": corpus.meta["digest"],
    }
    assert corpus.with_view("pfl").identity()["view"] == "pfl"
    with pytest.raises(UsageError, match="unknown coefficient view"):
        corpus.with_view("zoom")
