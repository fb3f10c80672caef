"""Tests for reactlib.face.pfl without video files: the PFL and floating windows (eqs 5, 7, 8),
cropping geometry, analytic and closed-loop retention (on synthetic pixels), the skin-colour
detector and the coefficient views."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib.face import coeffs, detect, footage, pfl
from reactlib.face.coeffs import ROTATION, TRANSLATION
from reactlib.face.render import FaceRenderer

EXACT = 1e-9
FEW = settings(max_examples=25, deadline=None)


def detections(boxes, frame_size=(480, 640), candidates=None) -> detect.Detections:
    return detect.Detections.from_boxes(boxes, frame_size, candidates)


NAN = [np.nan] * 4


# --- The PFL window (eqs 7, 8) ---------------------------------------------------------------

# Edges (left, top, right, bottom): (80, 70, 120, 130), (120, 80, 160, 160), (90, 100, 150, 120)
HAND = [[100, 100, 40, 60], [140, 120, 40, 80], NAN, [120, 110, 60, 20], NAN]


def test_pfl_window_centre_is_the_mean_of_found_boxes():
    win = pfl.pfl_window(detections(HAND))
    assert (win.x, win.y) == pytest.approx((120.0, 110.0), abs=EXACT)


def test_pfl_window_span_padding_and_square():
    win = pfl.pfl_window(detections(HAND), square=False)
    assert win.span == pytest.approx((80.0, 90.0), abs=EXACT)
    assert (win.w, win.h) == pytest.approx((80.0 + 40.0, 90.0 + 40.0), abs=EXACT)
    assert not (win.capped or win.shifted or win.shrunk)
    np.testing.assert_allclose(win.box, [120, 110, 120, 130], atol=EXACT)
    win = pfl.pfl_window(detections(HAND), padding=5, square=False)
    assert (win.w, win.h) == pytest.approx((90.0, 100.0), abs=EXACT)
    win = pfl.pfl_window(detections(HAND))
    assert win.w == win.h == pytest.approx(130.0, abs=EXACT)
    win = pfl.pfl_window(detections(HAND), padding=0)
    assert win.w == win.h == pytest.approx(90.0, abs=EXACT)


def test_pfl_window_is_capped_at_omega():
    win = pfl.pfl_window(detections(HAND), omega=100)
    assert win.capped and win.w == win.h == pytest.approx(100.0, abs=EXACT)
    assert win.span == pytest.approx((80.0, 90.0), abs=EXACT)
    win = pfl.pfl_window(detections(HAND), omega=(200, 100), square=False)
    assert win.capped and (win.w, win.h) == pytest.approx((120.0, 100.0), abs=EXACT)
    win = pfl.pfl_window(detections(HAND), omega=(115, 200), square=False)
    assert win.capped and (win.w, win.h) == pytest.approx((115.0, 130.0), abs=EXACT)
    win = pfl.pfl_window(detections(HAND), omega=(120, 130), square=False)
    assert not win.capped and (win.w, win.h) == pytest.approx((120.0, 130.0), abs=EXACT)


def test_pfl_window_extent_omega_uses_omega_itself():
    win = pfl.pfl_window(detections(HAND), omega=(200, 150), extent="omega", square=False)
    assert (win.w, win.h) == pytest.approx((200.0, 150.0), abs=EXACT) and not win.capped
    win = pfl.pfl_window(detections(HAND), omega=(200, 150), extent="omega")
    assert win.w == win.h == pytest.approx(150.0, abs=EXACT) and not win.capped
    assert (win.x, win.y) == pytest.approx((120.0, 110.0), abs=EXACT)


def test_pfl_window_moves_inside_the_frame():
    det = detections([[10, 12, 20, 20], [14, 10, 20, 20]], frame_size=(100, 120))
    win = pfl.pfl_window(det)
    assert win.w == win.h == pytest.approx(64.0, abs=EXACT)  # span 24 + 2 * 20
    assert win.shifted and not win.shrunk and not win.capped
    # left and top edges on the frame's outer edge, -0.5
    assert (win.x - win.w / 2, win.y - win.h / 2) == pytest.approx((-0.5, -0.5), abs=EXACT)
    assert not pfl.outside(win.box, (100, 120)).any()
    det = detections([[115, 95, 20, 20]], frame_size=(100, 120))
    win = pfl.pfl_window(det, padding=10)
    assert win.shifted
    assert (win.x + win.w / 2, win.y + win.h / 2) == pytest.approx((119.5, 99.5), abs=EXACT)


def test_pfl_window_is_reduced_to_the_frame():
    det = detections([[50, 40, 60, 60], [70, 50, 60, 60]], frame_size=(100, 120))
    win = pfl.pfl_window(det, omega=500, padding=40)
    assert win.shrunk and win.w == win.h == pytest.approx(100.0, abs=EXACT)
    assert not pfl.outside(win.box, (100, 120)).any()
    win = pfl.pfl_window(det, omega=500, padding=40, square=False)
    assert win.shrunk and (win.w, win.h) == pytest.approx((120.0, 100.0), abs=EXACT)
    assert (win.x, win.y) == pytest.approx((59.5, 49.5), abs=EXACT)


def test_pfl_window_without_any_face():
    with pytest.raises(pfl.NoFaceError, match="3 frames"):
        pfl.pfl_window(detections([NAN, NAN, NAN]))
    assert issubclass(pfl.NoFaceError, ValueError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"omega": 0},
        {"omega": -10},
        {"omega": (100, 0)},
        {"omega": (1, 2, 3)},
        {"omega": float("nan")},
        {"omega": float("inf")},
        {"padding": -1},
        {"extent": "frame"},
    ],
)
def test_pfl_window_bad_options(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        pfl.pfl_window(detections(HAND), **kwargs)


@FEW
@given(
    st.lists(
        st.tuples(st.floats(-50, 700), st.floats(-50, 500), st.floats(5, 300), st.floats(5, 300)),
        min_size=1,
        max_size=8,
    ),
    st.integers(40, 480),
    st.integers(40, 640),
    st.floats(20, 400),
    st.booleans(),
)
def test_pfl_window_always_fits_the_frame_and_omega(boxes, fh, fw, omega, square):
    win = pfl.pfl_window(detections(boxes, (fh, fw)), omega=omega, square=square)
    assert not pfl.outside(win.box, (fh, fw)).any()
    assert win.w <= min(omega, fw) + EXACT and win.h <= min(omega, fh) + EXACT
    assert win.w > 0 and win.h > 0
    if square:
        assert win.w == win.h


# --- Floating windows (eq 5) -----------------------------------------------------------------


def test_fill_misses_holds_the_last_box():
    a, b = [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]
    got = pfl.fill_misses(np.array([NAN, a, NAN, NAN, b, NAN]))
    np.testing.assert_array_equal(got, [a, a, a, a, b, b])
    assert np.isnan(pfl.fill_misses(np.array([NAN, NAN]))).all()


def test_floating_windows_follow_the_boxes():
    boxes = [[100, 80, 40, 50], NAN, [120, 90, 60, 30]]
    win = pfl.floating_windows(detections(boxes), margin=0.25)
    want = [[100, 80, 75, 75], [100, 80, 75, 75], [120, 90, 90, 90]]
    np.testing.assert_allclose(win, want, atol=EXACT)
    win = pfl.floating_windows(detections(boxes))
    np.testing.assert_allclose(win[:, 2], [70.0, 70.0, 84.0], atol=EXACT)  # 1 + 2 * 0.2


def test_floating_windows_smoothing_is_an_ema():
    boxes = np.array([[100, 80, 40, 40], [110, 70, 50, 40], [130, 90, 40, 60]], dtype=float)
    a = 0.6
    win = pfl.floating_windows(detections(boxes), margin=0.0, smooth=a)
    raw = np.column_stack([boxes[:, :2], boxes[:, 2:].max(1), boxes[:, 2:].max(1)])
    w1 = a * raw[0] + (1 - a) * raw[1]
    w2 = a * w1 + (1 - a) * raw[2]
    np.testing.assert_allclose(win, [raw[0], w1, w2], atol=EXACT)
    np.testing.assert_allclose(w2, [114.4, 81.6, 50.4, 50.4], atol=EXACT)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"smooth": -0.1}, "smooth"), ({"smooth": 1.0}, "smooth"), ({"margin": -0.01}, "margin")],
)
def test_floating_windows_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pfl.floating_windows(detections([[1, 1, 2, 2]]), **kwargs)


def test_floating_windows_without_any_face():
    with pytest.raises(pfl.NoFaceError):
        pfl.floating_windows(detections([NAN, NAN]))


def test_windows_for_both_modes():
    det = detections(HAND)
    fixed = pfl.windows_for(det, "pfl", omega=100)
    assert fixed.shape == (5, 4)
    np.testing.assert_array_equal(fixed, np.tile(pfl.pfl_window(det, omega=100).box, (5, 1)))
    float_ = pfl.windows_for(det, "float", margin=0.1)
    np.testing.assert_array_equal(float_, pfl.floating_windows(det, margin=0.1))
    with pytest.raises(ValueError, match="unknown crop mode 'zoom'"):
        pfl.windows_for(det, "zoom")
    with pytest.raises(TypeError):
        pfl.windows_for(det, "float", omega=100)  # a PFL option


# --- Cropping ----------------------------------------------------------------------------------


def test_to_crop_closed_form():
    win = np.array([[45.0, 25.0, 32.0, 16.0]])
    got = pfl.to_crop([[50.0, 20.0], [45.0, 25.0], [29.0, 17.0]], win, 64)
    want = [[5 * 2 + 31.5, -5 * 4 + 31.5], [31.5, 31.5], [-16 * 2 + 31.5, -8 * 4 + 31.5]]
    np.testing.assert_allclose(got, want, atol=EXACT)


@pytest.mark.parametrize("window", [(45.0, 25.0, 32.0, 32.0), (40.3, 30.7, 23.0, 23.0)])
def test_a_bright_pixel_lands_where_to_crop_says(window):
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[20, 50] = 255
    out = pfl.crop(frame, np.array(window), 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    weight = out[..., 0].astype(float)
    assert weight.sum() > 0
    ys, xs = np.mgrid[0:64, 0:64]
    centroid = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
    peak = np.unravel_index(np.argmax(weight), weight.shape)[::-1]
    want = pfl.to_crop([[50.0, 20.0]], np.array(window), 64)[0]
    assert np.abs(centroid - want).max() <= 1.0
    assert np.abs(np.array(peak) - want).max() <= 1.0


def test_crop_outside_the_frame_is_black():
    frame = np.full((40, 50, 3), 200, np.uint8)
    out = pfl.crop(frame, np.array([0.0, 0.0, 20.0, 20.0]), 20)
    # crop pixel j sits at frame x = j - 9.5: j <= 8 lies wholly left of the frame's edge -0.5
    assert (out[:, :9] == 0).all() and (out[:9, :] == 0).all()
    assert (out[10:, 10:] == 200).all()


def test_identity_window_reproduces_the_frame():
    frame = np.random.default_rng(2).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    out = pfl.crop(frame, np.array([23.5, 23.5, 48.0, 48.0]), 48)
    assert np.abs(out.astype(int) - frame).max() <= 1
    clip = pfl.crop_array(np.stack([frame, frame[::-1]]), np.tile([23.5, 23.5, 48, 48], (2, 1)), 48)
    assert clip.shape == (2, 48, 48, 3)
    assert np.abs(clip[1].astype(int) - frame[::-1]).max() <= 1


def test_crop_frames_is_lazy():
    def frames():
        yield np.zeros((10, 10, 3), np.uint8)
        raise AssertionError("read too far")

    it = pfl.crop_frames(frames(), np.array([[4.5, 4.5, 10, 10]] * 3), 16)
    assert next(it).shape == (16, 16, 3)


def test_outside_and_contained():
    frame = (100, 200)
    win = np.array(
        [
            [99.5, 49.5, 200, 100],  # exactly the frame
            [99.5, 49.5, 201, 100],  # a hair wider
            [10, 10, 20, 20],  # top-left edges at 0 (inside)
            [10, 10, 22, 20],  # left edge -1
            [190, 90, 20, 20],  # right edge 200 > 199.5
        ]
    )
    np.testing.assert_array_equal(pfl.outside(win, frame), [False, True, False, True, True])
    boxes = np.array([[10, 10, 20, 20], [10, 10, 20, 20], NAN, [30, 30, 10, 10], [30, 30, 40, 8]])
    wins = np.array(
        [
            [10, 10, 20, 20],  # the box itself: edges touch, still inside
            [12, 10, 20, 20],  # 2 px to the right: the box's left edge sticks out
            [10, 10, 20, 20],  # no face (NaN) is never inside
            [0, 0, 100, 100],
            [30, 30, 40, 10],
        ]
    )
    np.testing.assert_array_equal(pfl.contained(boxes, wins), [True, False, False, True, True])


# --- Retention -----------------------------------------------------------------------------------


def test_r2_of_an_affine_copy_is_one():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(200, 2))
    seen = truth @ np.array([[2.0, -1.0, 0.5], [0.3, 4.0, 1.0]]) + [5.0, -7.0, 1.0]
    assert pfl.r2(truth, seen) == pytest.approx(1.0, abs=EXACT)
    assert pfl.r2(truth[:, 0], 3 * truth[:, 0] - 1) == pytest.approx(1.0, abs=EXACT)


def test_r2_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(4)
    value = pfl.r2(rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2)))
    assert abs(value) < 0.005


def test_r2_of_a_constant_truth_is_undefined():
    with pytest.raises(ValueError, match="does not move"):
        pfl.r2(np.ones((10, 2)), np.arange(20.0).reshape(10, 2))


def moving_boxes(n: int = 50) -> np.ndarray:
    s = np.linspace(0, 2 * np.pi, n)
    side = 90 + 20 * np.cos(s)
    return np.column_stack([320 + 40 * np.sin(s), 240 + 25 * np.sin(2 * s + 1), side, side])


def test_analytic_retention_of_following_and_fixed_windows():
    boxes = moving_boxes()
    follow = pfl.analytic_retention(boxes, boxes.copy(), size=128)
    assert abs(follow["translation"]) <= EXACT and abs(follow["scale"]) <= EXACT
    assert follow["inside"] == 1.0
    fixed = np.tile([320.0, 240.0, 256.0, 256.0], (len(boxes), 1))
    kept = pfl.analytic_retention(boxes, fixed)
    assert kept["translation"] == pytest.approx(1.0, abs=EXACT)
    assert kept["scale"] == pytest.approx(1.0, abs=EXACT)
    assert kept["inside"] == 1.0


def test_analytic_retention_inside_share_and_constant_size():
    boxes = np.array(
        [[100, 100, 20, 20], [150, 100, 20, 20], [200, 100, 20, 20], [300, 90, 20, 20]]
    )
    fixed = np.tile([150.0, 100.0, 120.0, 120.0], (4, 1))
    out = pfl.analytic_retention(boxes, fixed)
    # the window spans x 90 .. 210: the box at x = 200 touches its edge, the one at 300 is out
    assert out["inside"] == 0.75
    assert math.isnan(out["scale"])  # the face never changes size
    assert out["translation"] == pytest.approx(1.0, abs=EXACT)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        pfl.analytic_retention(boxes, fixed[:3])


@given(
    x=st.floats(0, 600),
    y=st.floats(0, 400),
    side=st.floats(8, 500),
)
@FEW
def test_analytic_retention_is_one_for_any_fixed_window(x, y, side):
    """Why it is labelled analytic: where a fixed window sits does not change its R^2."""
    boxes = moving_boxes()
    window = np.tile([x, y, side, side], (len(boxes), 1))
    out = pfl.analytic_retention(boxes, window)
    assert out["translation"] == pytest.approx(1.0, abs=1e-6)
    assert out["scale"] == pytest.approx(1.0, abs=1e-6)


def test_coverage_is_the_share_of_the_face_inside_the_window():
    box = [100.0, 100.0, 40.0, 40.0]  # edges 80 .. 120
    windows = [
        [80.0, 100.0, 40.0, 200.0],  # edges 60 .. 100: the left half
        [100.0, 100.0, 200.0, 200.0],  # all of it
        [100.0, 90.0, 200.0, 20.0],  # rows 80 .. 100: the top half
        [300.0, 300.0, 50.0, 50.0],  # none of it
        [90.0, 90.0, 20.0, 20.0],  # a quarter
    ]
    np.testing.assert_allclose(pfl.coverage([box] * 5, windows), [0.5, 1.0, 0.5, 0.0, 0.25])
    assert np.isnan(pfl.coverage([NAN], [box])[0])
    boxes = moving_boxes()  # x 280 .. 360, sides 70 .. 110
    whole = pfl.analytic_retention(boxes, np.tile([320.0, 240.0, 400.0, 400.0], (50, 1)))
    assert whole["coverage"] == 1.0 and whole["inside"] == 1.0
    left = pfl.analytic_retention(boxes, np.tile([0.0, 240.0, 2 * 320.0, 400.0], (50, 1)))
    assert left["translation"] == pytest.approx(1.0)  # the analytic fit cannot see the cut
    assert 0.3 < left["coverage"] < 0.7 and left["inside"] == 0.0


# --- Closed-loop retention on synthetic pixels ---------------------------------------------------

SKIN = (200, 150, 120)


def squares(boxes, frame_size=(480, 640), colour=SKIN) -> np.ndarray:
    """Frames with one filled square of ``colour`` per box (centre form, integer pixel centres)
    on a grey background: a face whose box a colour detector can find exactly."""
    h, w = frame_size
    out = np.full((len(boxes), h, w, 3), 90, dtype=np.uint8)
    for frame, (x, y, bw, bh) in zip(out, np.asarray(boxes), strict=True):
        left, top = round(x - (bw - 1) / 2), round(y - (bh - 1) / 2)
        frame[max(top, 0) : max(top + round(bh), 0), max(left, 0) : max(left + round(bw), 0)] = (
            colour
        )
    return out


def integer_boxes(n: int = 40) -> np.ndarray:
    """A moving, zooming square with odd integer sides (so its centre is a pixel centre)."""
    s = np.linspace(0, 2 * np.pi, n)
    side = 2 * np.round(30 + 8 * np.cos(s)) + 1
    return np.column_stack(
        [np.round(320 + 60 * np.sin(s)), np.round(240 + 40 * np.sin(2 * s)), side, side]
    )


def test_skin_detector_finds_a_square_exactly():
    boxes = integer_boxes(5)
    det = detect.SkinDetector(SKIN)
    for frame, box in zip(squares(boxes), boxes, strict=True):
        np.testing.assert_allclose(det.detect(frame), [box])


def test_skin_detector_keeps_the_largest_region_and_ignores_small_ones():
    frame = squares([[100, 100, 41, 41]])[0]
    frame[300:310, 500:510] = SKIN  # a smaller skin-coloured patch elsewhere
    np.testing.assert_allclose(detect.SkinDetector(SKIN).detect(frame), [[100, 100, 41, 41]])
    tiny = squares([[100, 100, 5, 5]])[0]
    assert detect.SkinDetector(SKIN, min_area=26).detect(tiny).shape == (0, 4)
    assert detect.SkinDetector(SKIN, min_area=25).detect(tiny).shape == (1, 4)


def test_skin_detector_tolerance():
    frame = squares([[100, 100, 41, 41]], colour=(210, 150, 120))[0]  # 10 levels off in red
    assert detect.SkinDetector(SKIN, tolerance=9).detect(frame).shape == (0, 4)
    assert detect.SkinDetector(SKIN, tolerance=10).detect(frame).shape == (1, 4)
    assert detect.SkinDetector.for_identity(FaceRenderer(64).identity).colour == (226, 184, 156)
    assert detect.SkinDetector(SKIN).settings() == {
        "colour": list(SKIN),
        "tolerance": 8,
        "min_area": 64,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"colour": (1, 2)}, "RGB triple"),
        ({"colour": (1, 2, 300)}, "RGB triple"),
        ({"colour": SKIN, "tolerance": -1}, "tolerance"),
        ({"colour": SKIN, "min_area": 0}, "min_area"),
    ],
)
def test_skin_detector_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        detect.SkinDetector(**kwargs)


def test_closed_loop_retention_of_a_fixed_crop_is_exact():
    """A fixed window and an exact detector: the seen path is an affine copy of the truth."""
    boxes = integer_boxes()
    window = np.tile([320.0, 240.0, 256.0, 256.0], (len(boxes), 1))
    crops = pfl.crop_array(squares(boxes), window, 256)
    out = pfl.retention(crops, boxes, detect.SkinDetector(SKIN))
    assert out["found"] == 1.0 and out["found_frames"] == out["frames"] == len(boxes)
    assert out["translation"] == pytest.approx(1.0, abs=1e-3)
    assert out["scale"] == pytest.approx(1.0, abs=1e-3)
    assert out["face_pixels"] == pytest.approx(np.median(boxes[:, 2]), abs=1)
    np.testing.assert_allclose(
        out["boxes"][:, :2], pfl.to_crop(boxes[:, :2], window, 256), atol=0.6
    )


def test_closed_loop_retention_of_a_following_crop_is_near_zero():
    boxes = integer_boxes()
    crops = pfl.crop_array(squares(boxes), boxes * [1, 1, 1.4, 1.4], 128)
    out = pfl.retention(iter(crops), boxes, detect.SkinDetector(SKIN))  # any iterable of frames
    assert out["found"] == 1.0
    assert out["translation"] < 0.1 and out["scale"] < 0.1


def test_closed_loop_retention_counts_the_frames_where_the_face_is_lost():
    """A fixed window over the left part of the path: the face is found only there, while the
    analytic retention of the same window is 1."""
    boxes = integer_boxes()
    window = np.tile([230.0, 240.0, 160.0, 160.0], (len(boxes), 1))
    crops = pfl.crop_array(squares(boxes), window, 128)
    out = pfl.retention(crops, boxes, detect.SkinDetector(SKIN, min_area=200))
    inside_share = pfl.analytic_retention(boxes, window)["inside"]
    assert 0.0 < out["found"] < 1.0
    assert out["found"] >= inside_share  # a face wholly inside the window is always found
    assert pfl.analytic_retention(boxes, window)["translation"] == pytest.approx(1.0, abs=EXACT)


def test_retention_falls_when_the_window_cuts_half_the_face():
    """The control: a face moving up and down and zooming, and a fixed window whose right edge
    runs through the face's centre in every frame. The detector finds the half that is left in
    every crop, and its path is an affine copy of the truth (R^2 1, found 1), so the fit alone
    would call this crop perfect; the coverage of the face is 0.5 and the retention with it."""
    s = np.linspace(0, 2 * np.pi, 40)
    side = 2 * np.round(30 + 6 * np.cos(s)) + 1
    boxes = np.column_stack([np.full(40, 320.0), np.round(240 + 60 * np.sin(s)), side, side])
    frames = squares(boxes)
    det = detect.SkinDetector(SKIN)
    cut_window = np.array([220.0, 240.0, 200.0, 400.0])  # x 120 .. 320: the face's left half
    full_window = np.array([320.0, 240.0, 400.0, 400.0])
    cut = pfl.retention(
        pfl.crop_array(frames, np.tile(cut_window, (40, 1)), 128), boxes, det, windows=cut_window
    )
    full = pfl.retention(
        pfl.crop_array(frames, np.tile(full_window, (40, 1)), 128),
        boxes,
        det,
        windows=np.tile(full_window, (40, 1)),
    )
    assert cut["found"] == 1.0 and cut["translation"] > 0.99  # what the fit alone says
    assert cut["coverage"] == pytest.approx(0.5, abs=0.01)
    assert cut["retained"] < 0.55
    assert full["coverage"] == 1.0 and full["retained"] > 0.99
    no_windows = pfl.retention(
        pfl.crop_array(frames, np.tile(cut_window, (40, 1)), 128), boxes, det
    )
    assert math.isnan(no_windows["coverage"]) and math.isnan(no_windows["retained"])
    with pytest.raises(ValueError, match="windows must be"):
        pfl.retention(frames[:, :64, :64], boxes, det, windows=np.zeros((3, 4)))


def test_closed_loop_retention_without_enough_faces_is_nan():
    boxes = integer_boxes()
    window = np.tile([40.0, 40.0, 60.0, 60.0], (len(boxes), 1))  # far from the path
    out = pfl.retention(
        pfl.crop_array(squares(boxes), window, 64), boxes, detect.SkinDetector(SKIN)
    )
    assert out["found"] == 0.0 and out["found_frames"] == 0
    assert math.isnan(out["translation"]) and math.isnan(out["scale"])
    assert math.isnan(out["face_pixels"]) and np.isnan(out["boxes"]).all()
    few = boxes[: pfl.MIN_FOUND - 1]
    crops = pfl.crop_array(squares(few), np.tile([320.0, 240.0, 256.0, 256.0], (len(few), 1)), 64)
    out = pfl.retention(crops, few, detect.SkinDetector(SKIN, min_area=4))
    assert out["found"] == 1.0 and math.isnan(out["translation"])


def test_closed_loop_retention_refuses_bad_input():
    boxes = integer_boxes(12)
    crops = squares(boxes)
    with pytest.raises(ValueError, match="oracle"):
        pfl.retention(crops, boxes, detect.OracleDetector(boxes))
    with pytest.raises(ValueError, match="12 crops but 11 true boxes"):
        pfl.retention(crops, boxes[:11], detect.SkinDetector(SKIN))
    with pytest.raises(ValueError, match=r"finite \(N, 4\)"):
        pfl.retention(crops, boxes[:, :3], detect.SkinDetector(SKIN))
    with pytest.raises(ValueError, match="uint8"):
        pfl.retention(crops.astype(float), boxes, detect.SkinDetector(SKIN))


# --- Coefficient views ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moving_clip() -> np.ndarray:
    """The neutral face swaying: tx +-0.08, ty +-0.04, tz in 1.7 .. 2.0."""
    n = 60
    s = np.linspace(0, 2 * np.pi, n)
    x = coeffs.neutral(n).astype(np.float64)
    x[:, TRANSLATION] = np.column_stack(
        [0.08 * np.sin(s), 0.04 * np.cos(2 * s), 1.85 + 0.15 * np.sin(3 * s + 0.3)]
    )
    return x


@pytest.fixture(scope="module")
def renderer128() -> FaceRenderer:
    return FaceRenderer(128)


def test_floating_view_loses_the_translation(moving_clip, renderer128):
    view = pfl.coeff_view(moving_clip, "float", renderer=renderer128, size=64)
    truth = moving_clip[:, TRANSLATION]
    seen = view[:, TRANSLATION]
    ratio = seen.std(axis=0) / truth.std(axis=0)
    assert (ratio < 0.1).all(), ratio
    assert np.abs(seen[:, :2]).max() < 0.01  # tx', ty' stay near 0
    np.testing.assert_array_equal(view[:, : ROTATION.stop], moving_clip[:, : ROTATION.stop])


def test_pfl_view_keeps_the_translation(moving_clip, renderer128):
    view = pfl.coeff_view(moving_clip, "pfl", renderer=renderer128, size=64)
    truth = moving_clip[:, TRANSLATION]
    assert pfl.r2(truth, view[:, TRANSLATION]) > 0.999
    for k in range(3):
        assert pfl.r2(truth[:, k], view[:, TRANSLATION.start + k]) > 0.999
    np.testing.assert_array_equal(view[:, : ROTATION.stop], moving_clip[:, : ROTATION.stop])


def test_crop_coeffs_closed_form():
    x = coeffs.neutral(2).astype(np.float64)
    x[:, TRANSLATION] = [[0.1, -0.05, 2.0], [0.0, 0.0, 1.5]]
    frame_size, focal = (240, 320), 400.0
    win = np.array([[200.0, 100.0, 80.0, 80.0], [159.5, 119.5, 160.0, 160.0]])
    out = pfl.crop_coeffs(x, win, frame_size, focal, size=64, out_focal=100.0)
    want0 = [0.1 + 2.0 * (159.5 - 200.0) / 400, -0.05 + 2.0 * (119.5 - 100.0) / 400]
    want0 += [2.0 * 80 * 100 / (400 * 64)]
    np.testing.assert_allclose(out[0, TRANSLATION], want0, atol=EXACT)
    np.testing.assert_allclose(
        out[1, TRANSLATION], [0, 0, 1.5 * 160 * 100 / (400 * 64)], atol=EXACT
    )
    # one window for every frame, and the float32 dtype kept
    one = pfl.crop_coeffs(x.astype(np.float32), win[:1], frame_size, focal, 64, out_focal=100.0)
    assert one.dtype == np.float32 and one.shape == x.shape


@pytest.mark.parametrize(
    ("x", "win", "match"),
    [
        (np.zeros((3, 58)), [[10, 10, 20, 30]] * 3, "square"),
        (np.zeros((3, 57)), [[10, 10, 20, 20]] * 3, r"\(T, 58\)"),
        (np.zeros(58), [[10, 10, 20, 20]], r"\(T, 58\)"),
        (np.zeros((3, 58)), [[10, 10, 20, 20]] * 2, "one window"),
    ],
)
def test_crop_coeffs_bad_input(x, win, match):
    with pytest.raises(ValueError, match=match):
        pfl.crop_coeffs(x, np.array(win, dtype=float), (64, 64), 100.0)


# --- The photograph's path -------------------------------------------------------------------


def test_photo_path_stays_in_its_bounds():
    centres, scales, rolls = footage.photo_path(90, (360, 480), roll_max=12.0, amplitude=(40, 20))
    assert centres.shape == (90, 2) and scales.shape == rolls.shape == (90,)
    assert np.abs(centres[:, 0] - 239.5).max() <= 40 + EXACT
    assert np.abs(centres[:, 1] - 179.5).max() <= 20 + EXACT
    assert np.abs(rolls).max() <= 12.0 + EXACT and np.abs(rolls).max() > 6.0
    assert scales.min() >= 0.8 - EXACT and scales.max() <= 1.2 + EXACT
    # it does move: most of the amplitude is used
    assert np.ptp(centres[:, 0]) > 40 and np.ptp(centres[:, 1]) > 20


def test_photo_path_is_deterministic_per_seed():
    a = footage.photo_path(30, seed=5)
    b = footage.photo_path(30, seed=5)
    c = footage.photo_path(30, seed=6)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 1}, "frames"),
        ({"frames": 10, "zoom": (0.0, 1.0)}, "zoom"),
        ({"frames": 10, "zoom": (1.2, 0.8)}, "zoom"),
    ],
)
def test_photo_path_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        footage.photo_path(**kwargs)


def test_crop_area_averages_a_window_larger_than_the_output():
    """Black/white pixel noise shrunk 4x: an area average of 16 pixels has a standard deviation
    near 127.5 / 4; sampling (bilinear warp alone, which aliases) keeps about twice that."""
    rng = np.random.default_rng(0)
    noise = (rng.integers(0, 2, (256, 256)) * 255).astype(np.uint8)
    frame = np.repeat(noise[..., None], 3, axis=2)
    out = pfl.crop(frame, (127.5, 127.5, 256.0, 256.0), size=64)
    assert out.shape == (64, 64, 3)
    assert 25 < out.std() < 40
    assert abs(out.mean() - noise.mean()) < 2


def test_crop_of_a_large_window_keeps_the_geometry_of_to_crop():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[148:152, 248:252] = 255  # a 4x4 bright square centred at (249.5, 149.5)
    window = (200.0, 150.0, 240.0, 240.0)
    out = pfl.crop(frame, window, size=60).astype(float)[..., 0]
    ys, xs = np.indices(out.shape)
    centre = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
    expected = pfl.to_crop(np.array([[249.5, 149.5]]), np.array([window]), 60)[0]
    assert np.abs(centre - expected).max() < 0.3
