"""Tests for reactlib.face.coeffs: names, AU pairs, the emotion map, normalisation, pose
conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib.face import coeffs
from reactlib.face.coeffs import index


def _face(**weights: float) -> np.ndarray:
    """The neutral face with some blendshapes (or pose values) set."""
    x = coeffs.neutral().astype(np.float64)
    for name, value in weights.items():
        x[index(name)] = value
    return x


# --- names and layout -----------------------------------------------------------------------------


def test_name_lists_have_the_documented_sizes_and_order():
    assert len(coeffs.EXPRESSION_NAMES) == coeffs.NUM_EXPRESSION == 52
    assert len(coeffs.COEFF_NAMES) == coeffs.NUM_COEFFS == 58
    assert len(set(coeffs.COEFF_NAMES)) == 58
    assert list(coeffs.EXPRESSION_NAMES) == sorted(coeffs.EXPRESSION_NAMES)  # alphabetical ARKit
    assert coeffs.COEFF_NAMES[52:] == ("pitch", "yaw", "roll", "tx", "ty", "tz")


def test_slices_select_the_named_blocks():
    names = np.array(coeffs.COEFF_NAMES)
    assert tuple(names[coeffs.EXPRESSION]) == coeffs.EXPRESSION_NAMES
    assert tuple(names[coeffs.ROTATION]) == coeffs.ROTATION_NAMES
    assert tuple(names[coeffs.TRANSLATION]) == coeffs.TRANSLATION_NAMES
    assert tuple(names[coeffs.POSE]) == coeffs.ROTATION_NAMES + coeffs.TRANSLATION_NAMES


@pytest.mark.parametrize(
    ("name", "position"),
    [
        ("browDownLeft", 0),
        ("jawOpen", 24),
        ("mouthClose", 26),
        ("mouthSmileLeft", 43),
        ("mouthSmileRight", 44),
        ("tongueOut", 51),
        ("pitch", 52),
        ("yaw", 53),
        ("tz", 57),
    ],
)
def test_index_golden_positions(name, position):
    """Positions as the official ReactDiff code indexes them."""
    assert index(name) == position
    assert coeffs.COEFF_NAMES[position] == name


def test_every_name_round_trips_through_index():
    assert [index(n) for n in coeffs.COEFF_NAMES] == list(range(58))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError) as err:
        index("jawOpened")
    message = str(err.value)
    assert "jawOpened" in message
    assert "jawOpen" in message and "tongueOut" in message and "tz" in message


def test_neutral_face():
    x = coeffs.neutral()
    assert x.shape == (58,) and x.dtype == np.float32
    assert x[index("tz")] == pytest.approx(coeffs.NEUTRAL_DISTANCE)
    assert np.count_nonzero(x) == 1
    batch = coeffs.neutral(5)
    assert batch.shape == (5, 58)
    np.testing.assert_array_equal(batch, np.tile(x, (5, 1)))


# --- AU pairs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "count"), [("symmetric", 20), ("co_occurring", 30), ("mutually_exclusive", 58)]
)
def test_pair_counts_and_names(kind, count):
    pairs = coeffs.pairs(kind)
    assert len(pairs) == count
    assert len(set(pairs)) == count  # no duplicates
    for a, b in pairs:
        assert a in coeffs.EXPRESSION_NAMES and b in coeffs.EXPRESSION_NAMES
        assert a != b
    idx = coeffs.pair_indices(kind)
    assert idx.shape == (count, 2) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < 52
    assert [(coeffs.COEFF_NAMES[i], coeffs.COEFF_NAMES[j]) for i, j in idx] == list(pairs)


def test_pair_golden_values():
    assert coeffs.pair_indices("symmetric")[0].tolist() == [0, 1]
    for a, b in coeffs.SYMMETRIC_PAIRS:
        assert a.endswith("Left") and b.endswith("Right")
        assert a.removesuffix("Left") == b.removesuffix("Right")
    frown = ("mouthFrownLeft", "mouthFrownRight")
    assert frown in coeffs.SYMMETRIC_PAIRS
    assert frown in coeffs.MUTUALLY_EXCLUSIVE_PAIRS
    assert ("jawOpen", "mouthClose") in coeffs.MUTUALLY_EXCLUSIVE_PAIRS
    assert ("cheekSquintLeft", "mouthSmileLeft") in coeffs.CO_OCCURRING_PAIRS
    assert ("cheekSquintRight", "mouthSmileRight") in coeffs.CO_OCCURRING_PAIRS


def test_unknown_pair_kind():
    with pytest.raises(ValueError, match="symmetric, co_occurring, mutually_exclusive"):
        coeffs.pairs("antisymmetric")


# --- emotion --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(58,), (7, 58), (2, 3, 5, 58)])
def test_emotion_shape(shape):
    x = np.random.default_rng(0).uniform(0, 1, shape)
    e = coeffs.emotion_from_coeffs(x)
    assert e.shape == (*shape[:-1], 25)
    assert e.dtype == np.float32
    # Frame by frame: the batched result equals the per-frame one.
    flat = x.reshape(-1, 58)
    np.testing.assert_array_equal(
        e.reshape(-1, 25), np.stack([coeffs.emotion_from_coeffs(f) for f in flat])
    )


def test_emotion_names_and_blocks():
    assert len(coeffs.EMOTION_NAMES) == coeffs.NUM_EMOTION == 25
    names = np.array(coeffs.EMOTION_NAMES)
    assert tuple(names[coeffs.EMOTION_BLOCKS["au"]]) == coeffs.AU_NAMES
    assert tuple(names[coeffs.EMOTION_BLOCKS["affect"]]) == ("valence", "arousal")
    assert tuple(names[coeffs.EMOTION_BLOCKS["expression"]]) == coeffs.EXPRESSION_CLASSES
    assert set(coeffs.AU_SOURCES) == set(coeffs.AU_NAMES)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 20))
def test_emotion_ranges(seed, frames):
    x = np.random.default_rng(seed).uniform(0, 1, (frames, 58))
    e = coeffs.emotion_from_coeffs(x)
    au, affect, expression = (
        e[:, coeffs.EMOTION_BLOCKS[k]] for k in ("au", "affect", "expression")
    )
    assert np.all((au > 0) & (au < 1))
    assert np.all((affect > -1) & (affect < 1))
    assert np.all(expression >= 0)
    np.testing.assert_allclose(expression.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("au", coeffs.AU_NAMES)
def test_au_occurrence_is_one_half_at_the_threshold(au):
    x = _face(**{name: coeffs.AU_THRESHOLD for name in coeffs.AU_SOURCES[au]})
    e = coeffs.emotion_from_coeffs(x)
    k = coeffs.AU_NAMES.index(au)
    assert e[k] == 0.5
    below = coeffs.emotion_from_coeffs(_face(**{n: 0.1 for n in coeffs.AU_SOURCES[au]}))[k]
    above = coeffs.emotion_from_coeffs(_face(**{n: 0.3 for n in coeffs.AU_SOURCES[au]}))[k]
    assert below < 0.5 < above
    assert below < 0.2 and above > 0.8  # sharp: near 0 or 1 away from the threshold


def test_neutral_face_is_mostly_neutral():
    e = coeffs.emotion_from_coeffs(coeffs.neutral())
    expression = e[coeffs.EMOTION_BLOCKS["expression"]]
    assert coeffs.EXPRESSION_CLASSES[int(np.argmax(expression))] == "Neutral"
    assert np.all(e[coeffs.EMOTION_BLOCKS["au"]] < 0.05)


def test_smiling_raises_valence_and_happiness():
    valence, happy = coeffs.EMOTION_NAMES.index("valence"), coeffs.EMOTION_NAMES.index("Happy")
    rest = coeffs.emotion_from_coeffs(coeffs.neutral())
    smile = coeffs.emotion_from_coeffs(
        _face(mouthSmileLeft=0.8, mouthSmileRight=0.8, cheekSquintLeft=0.4, cheekSquintRight=0.4)
    )
    assert smile[valence] > rest[valence] + 0.5
    assert smile[happy] > rest[happy] + 0.5
    assert coeffs.EXPRESSION_CLASSES[int(np.argmax(smile[17:]))] == "Happy"


def test_lowered_brows_lower_valence():
    valence = coeffs.EMOTION_NAMES.index("valence")
    rest = coeffs.emotion_from_coeffs(coeffs.neutral())
    brows = coeffs.emotion_from_coeffs(_face(browDownLeft=0.7, browDownRight=0.7))
    assert brows[valence] < rest[valence] - 0.3
    assert brows[valence] < 0


def test_pose_does_not_change_emotion():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (10, 58))
    y = x.copy()
    y[:, coeffs.POSE] = rng.normal(0, 2, (10, 6))
    np.testing.assert_array_equal(coeffs.emotion_from_coeffs(x), coeffs.emotion_from_coeffs(y))
    # ... while the expression block does.
    z = x.copy()
    z[:, index("mouthSmileLeft")] = 1 - z[:, index("mouthSmileLeft")]
    assert not np.allclose(coeffs.emotion_from_coeffs(x), coeffs.emotion_from_coeffs(z))


@pytest.mark.parametrize("shape", [(57,), (10, 52), (3, 59)])
def test_emotion_rejects_wrong_last_dimension(shape):
    with pytest.raises(ValueError, match="58"):
        coeffs.emotion_from_coeffs(np.zeros(shape))


# --- normalisation --------------------------------------------------------------------------------


@pytest.fixture
def frames():
    rng = np.random.default_rng(11)
    return (rng.normal(0, 1, (200, 58)) * rng.uniform(0.1, 3, 58) + rng.normal(0, 5, 58)).astype(
        np.float32
    )


@pytest.mark.parametrize("mode", coeffs.NORMALISATION_MODES)
def test_normalizer_round_trip_numpy(frames, mode):
    norm = coeffs.Normalizer.fit(frames, mode=mode)
    z = norm.normalize(frames)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32 and z.shape == frames.shape
    assert not np.allclose(z, frames)
    np.testing.assert_allclose(norm.denormalize(z), frames, atol=1e-4)


@pytest.mark.parametrize("mode", coeffs.NORMALISATION_MODES)
def test_normalizer_round_trip_torch(frames, mode):
    norm = coeffs.Normalizer.fit(frames, mode=mode)
    t = torch.from_numpy(frames).reshape(4, 50, 58)
    z = norm.normalize(t)
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float32 and z.shape == t.shape
    np.testing.assert_allclose(z.reshape(200, 58).numpy(), norm.normalize(frames), atol=1e-5)
    np.testing.assert_allclose(norm.denormalize(z).numpy(), t.numpy(), atol=1e-4)


def test_mean_mode_keeps_the_scale(frames):
    norm = coeffs.Normalizer.fit(frames, mode="mean")
    z = norm.normalize(frames)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), frames.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(z, frames - frames.mean(axis=0), atol=1e-4)


def test_zscore_gives_zero_mean_unit_std_on_the_fit_data(frames):
    norm = coeffs.Normalizer.fit(frames)
    assert norm.mode == "zscore"
    z = norm.normalize(frames)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(norm.mean, frames.mean(axis=0), atol=1e-4)


def test_fit_over_batched_frames(frames):
    flat = coeffs.Normalizer.fit(frames)
    batched = coeffs.Normalizer.fit(frames.reshape(4, 50, 58))
    np.testing.assert_allclose(batched.mean, flat.mean)
    np.testing.assert_allclose(batched.std, flat.std)


def test_constant_columns_stay_finite(frames):
    frames = frames.copy()
    frames[:, 5] = 0.25
    frames[:, 57] = coeffs.NEUTRAL_DISTANCE
    norm = coeffs.Normalizer.fit(frames)
    assert norm.std[5] == pytest.approx(coeffs.STD_FLOOR)
    assert norm.std[57] == pytest.approx(coeffs.STD_FLOOR)
    z = norm.normalize(frames)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z[:, [5, 57]], 0, atol=1e-3)
    np.testing.assert_allclose(norm.denormalize(z)[:, 5], 0.25, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fit_rejects_non_finite_data(frames, bad):
    frames = frames.copy()
    frames[17, 3] = bad
    with pytest.raises(ValueError, match="NaN"):
        coeffs.Normalizer.fit(frames)


def test_unknown_mode():
    with pytest.raises(ValueError, match="minmax"):
        coeffs.Normalizer(np.zeros(58), np.ones(58), mode="minmax")
    with pytest.raises(ValueError, match="mean, zscore"):
        coeffs.Normalizer.fit(np.zeros((4, 58)), mode="minmax")


def test_invalid_statistics():
    with pytest.raises(ValueError, match="positive"):
        coeffs.Normalizer(np.zeros(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="differ"):
        coeffs.Normalizer(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        coeffs.Normalizer(np.array([0.0, np.nan]), np.ones(2))


@pytest.mark.parametrize("name", ["norm.npz", "norm"])
@pytest.mark.parametrize("mode", coeffs.NORMALISATION_MODES)
def test_normalizer_save_load_round_trip(tmp_path, frames, mode, name):
    norm = coeffs.Normalizer.fit(frames, mode=mode)
    saved = norm.save(tmp_path / name)
    assert saved.is_file()
    back = coeffs.Normalizer.load(saved)
    assert back.mode == mode
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)
    np.testing.assert_array_equal(back.normalize(frames), norm.normalize(frames))


# --- pose conventions -----------------------------------------------------------------------------


def test_faceverse_to_camera_wraps_pitch_and_keeps_the_rest():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (4, 58)).astype(np.float32)
    x[:, index("pitch")] = [np.pi + 0.1, -np.pi + 0.1, np.pi, np.pi - 0.2]
    original = x.copy()
    y = coeffs.faceverse_to_camera(x)
    np.testing.assert_allclose(y[:, index("pitch")], [0.1, 0.1, 0.0, -0.2], atol=1e-6)
    others = [i for i in range(58) if i != index("pitch")]
    np.testing.assert_array_equal(y[:, others], x[:, others])
    np.testing.assert_array_equal(x, original)  # the input is not modified
    assert y.dtype == np.float32


def test_faceverse_to_camera_single_frame():
    x = coeffs.neutral()
    x[index("pitch")] = np.pi + 0.3
    y = coeffs.faceverse_to_camera(x)
    assert y.shape == (58,)
    assert y[index("pitch")] == pytest.approx(0.3, abs=1e-6)
    assert y[index("tz")] == pytest.approx(coeffs.NEUTRAL_DISTANCE)
