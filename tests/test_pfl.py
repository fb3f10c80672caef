"""Tests for reactlib.pfl's mathematics (no video files): the kinematics of eqs 2-4 and 9-10 against
their closed forms and sympy, the box convention, tracking, the PFL and floating windows (eqs 5,
7, 8), cropping geometry, retention and the coefficient views."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib import coeffs, pfl
from reactlib.coeffs import ROTATION, TRANSLATION
from reactlib.render import FaceRenderer

EXACT = 1e-9
FEW = settings(max_examples=25, deadline=None)


def motion(frames: int = 7, keypoints: int = 5, seed: int = 0):
    """Random keypoints (K, 3), rotations Q (T, 3, 3), translations T (T, 3) and a reference."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.1, (keypoints, 3))
    angles = rng.uniform(-0.6, 0.6, (frames, 3))
    t = rng.normal(0.0, 0.2, (frames, 3)) + [0.0, 0.0, 2.0]
    ref = rng.normal(0.0, 0.05, 3)
    return x, pfl.rotations(angles), t, ref


def rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def detections(boxes, frame_size=(480, 640), candidates=None) -> pfl.Detections:
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    n = np.where(np.isnan(b[:, 0]), 0, 1) if candidates is None else np.asarray(candidates)
    return pfl.Detections(b, n, tuple(frame_size))


NAN = [np.nan] * 4


# --- Kinematics ------------------------------------------------------------------------------


def test_rotations_follow_the_renderer_convention():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-np.pi, np.pi, (2, 4, 3))
    q = pfl.rotations(angles)
    assert q.shape == (2, 4, 3, 3)
    for idx in np.ndindex(2, 4):
        pitch, yaw, roll = angles[idx]
        np.testing.assert_allclose(q[idx], rz(roll) @ ry(yaw) @ rx(pitch), atol=EXACT)
    eye = np.broadcast_to(np.eye(3), q.shape)
    np.testing.assert_allclose(q @ np.swapaxes(q, -1, -2), eye, atol=EXACT)
    np.testing.assert_allclose(np.linalg.det(q), 1.0, atol=EXACT)
    np.testing.assert_allclose(pfl.rotations([0.0, 0.0, 0.0]), np.eye(3), atol=0)


def test_positive_roll_turns_x_toward_y_down():
    """Positive roll is clockwise in the image (y down): the x axis turns toward +y."""
    q = pfl.rotations([0.0, 0.0, 0.3])
    np.testing.assert_allclose(q @ [1, 0, 0], [math.cos(0.3), math.sin(0.3), 0], atol=EXACT)


def test_global_points_closed_form():
    x, q, t, _ = motion()
    got = pfl.global_points(x, q, t)
    assert got.shape == (len(q), len(x), 3)
    for i in range(len(q)):
        for k in range(len(x)):
            np.testing.assert_allclose(got[i, k], q[i] @ x[k] + t[i], atol=EXACT, rtol=0)


def test_floating_centre_is_eq2():
    _, q, t, ref = motion()
    want = np.stack([q[i] @ ref + t[i] for i in range(len(q))])
    np.testing.assert_allclose(pfl.floating_centre(ref, q, t), want, atol=EXACT, rtol=0)


def test_floating_local_is_eq3_and_independent_of_translation():
    x, q, t, ref = motion()
    local = pfl.floating_local(x, ref, q, t)
    want = np.einsum("tij,kj->tki", q, x - ref)
    np.testing.assert_allclose(local, want, atol=EXACT, rtol=0)
    other = np.random.default_rng(9).normal(0.0, 5.0, t.shape)
    assert np.abs(pfl.floating_local(x, ref, q, other) - local).max() <= EXACT


def test_pfl_local_keeps_the_translation():
    """Pure translation (Q = I): the fixed window sees the displacement Delta T exactly."""
    x, _, t, ref = motion()
    q = np.broadcast_to(np.eye(3), (len(t), 3, 3))
    origin = pfl.pfl_origin(ref, q, t)
    local = pfl.pfl_local(x, q, t, origin)
    np.testing.assert_allclose(local, x[None] + t[:, None] - origin, atol=EXACT, rtol=0)
    for t1, t2 in [(0, 1), (2, 6), (5, 3)]:
        d = pfl.displacement(local, t1, t2)
        np.testing.assert_allclose(d, np.broadcast_to(t[t2] - t[t1], d.shape), atol=EXACT, rtol=0)
        # ... while the floating window sees no motion at all.
        assert np.abs(pfl.displacement(pfl.floating_local(x, ref, q, t), t1, t2)).max() <= EXACT


def test_floating_displacement_is_eq4_without_a_translation_term():
    x, q, t, ref = motion(seed=3)
    local = pfl.floating_local(x, ref, q, t)
    for t1, t2 in [(0, 1), (1, 5), (6, 2)]:
        want = pfl.eq4(x, ref, q[t1], q[t2])
        np.testing.assert_allclose(pfl.displacement(local, t1, t2), want, atol=EXACT, rtol=0)
        by_hand = np.stack([(q[t2] - q[t1]) @ (xi - ref) for xi in x])
        np.testing.assert_allclose(want, by_hand, atol=EXACT, rtol=0)
        # no translation term: the same rotations under any other translation give the same.
        other = pfl.floating_local(x, ref, q, t * 7.0 - 3.0)
        np.testing.assert_allclose(pfl.displacement(other, t1, t2), want, atol=EXACT, rtol=0)


def test_pfl_displacement_is_eq10():
    x, q, t, ref = motion(seed=4)
    local = pfl.pfl_local(x, q, t, pfl.pfl_origin(ref, q, t))
    for t1, t2 in [(0, 1), (3, 6), (4, 0)]:
        want = pfl.eq10(x, q[t1], q[t2], t[t1], t[t2])
        np.testing.assert_allclose(pfl.displacement(local, t1, t2), want, atol=EXACT, rtol=0)
        by_hand = np.stack([t[t2] - t[t1] + (q[t2] - q[t1]) @ xi for xi in x])
        np.testing.assert_allclose(want, by_hand, atol=EXACT, rtol=0)


def test_pure_rotation_about_z_gives_the_textbook_displacement():
    theta = 0.4
    q = pfl.rotations([[0.0, 0.0, 0.0], [0.0, 0.0, theta]])
    t = np.zeros((2, 3))
    x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.5]])
    d = pfl.displacement(pfl.floating_local(x, np.zeros(3), q, t), 0, 1)
    c, s = math.cos(theta), math.sin(theta)
    want = np.array([[c - 1.0, s, 0.0], [-2.0 * s, 2.0 * (c - 1.0), 0.0]])
    np.testing.assert_allclose(d, want, atol=EXACT, rtol=0)


def test_pfl_origin_is_the_mean_floating_centre():
    _, q, t, ref = motion(seed=5)
    want = np.mean([q[i] @ ref + t[i] for i in range(len(q))], axis=0)
    np.testing.assert_allclose(pfl.pfl_origin(ref, q, t), want, atol=EXACT, rtol=0)
    # with the reference at the rotation centre it is the mean translation
    np.testing.assert_allclose(pfl.pfl_origin(np.zeros(3), q, t), t.mean(0), atol=EXACT, rtol=0)


@pytest.mark.parametrize(
    ("keypoints", "q", "t"),
    [
        (np.zeros((4, 2)), np.zeros((3, 3, 3)), np.zeros((3, 3))),
        (np.zeros(3), np.zeros((3, 3, 3)), np.zeros((3, 3))),
        (np.zeros((4, 3)), np.zeros((3, 3)), np.zeros((3, 3))),
        (np.zeros((4, 3)), np.zeros((3, 3, 2)), np.zeros((3, 3))),
        (np.zeros((4, 3)), np.zeros((3, 3, 3)), np.zeros((2, 3))),
        (np.zeros((4, 3)), np.zeros((3, 3, 3)), np.zeros(3)),
    ],
)
def test_motion_shapes_are_checked(keypoints, q, t):
    with pytest.raises(ValueError, match="shape"):
        pfl.global_points(keypoints, q, t)


def test_project_closed_form():
    pts = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0], [-0.3, 0.4, 4.0]])
    got = pfl.project(pts, 300.0, (63.5, 47.5))
    want = np.array([[300 * 0.05 + 63.5, -300 * 0.1 + 47.5], [63.5, 47.5], [-22.5 + 63.5, 77.5]])
    np.testing.assert_allclose(got, want, atol=EXACT, rtol=0)
    np.testing.assert_allclose(pfl.project(pts[0], 10.0), [0.5, -1.0], atol=EXACT, rtol=0)
    assert pfl.project(np.ones((2, 5, 3)), 1.0).shape == (2, 5, 2)


@pytest.mark.parametrize("z", [0.0, -1.0])
def test_project_refuses_points_behind_the_camera(z):
    with pytest.raises(ValueError, match="Z > 0"):
        pfl.project([[0.0, 0.0, 1.0], [0.1, 0.1, z]], 100.0)


# --- sympy derivations -----------------------------------------------------------------------


def test_eq3_follows_from_eq2():
    d = pfl.derive_eq3()
    assert d.holds
    assert d.residual.shape == (3, 1)


def test_eq10_follows_from_eq9():
    assert pfl.derive_eq10().holds


def test_eq10_as_printed_misses_the_reference_term():
    import sympy as sp

    d = pfl.derive_eq10(printed=True)
    assert not d.holds

    def vec(name):
        return sp.Matrix(sp.symbols(f"{name}_x {name}_y {name}_z", real=True))

    def rot(name):
        return sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))

    q1, q2, ref = rot("Q1"), rot("Q2"), vec("X_ref")
    assert sp.simplify(d.residual + (q2 - q1) * ref) == sp.zeros(3, 1)
    # it vanishes when the reference sits at the rotation centre (X_ref = 0)
    at_zero = d.residual.subs({s: 0 for s in ref})
    assert sp.simplify(at_zero) == sp.zeros(3, 1)
    # and it is not zero in general: one numeric instance
    numeric = {s: v for s, v in zip(ref, (1, 2, 3), strict=True)}
    numeric |= {q1[i, j]: int(i == j) for i in range(3) for j in range(3)}
    numeric |= {q2[i, j]: 2 * int(i == j) for i in range(3) for j in range(3)}
    assert d.residual.subs(numeric) == sp.Matrix([-1, -2, -3])


# --- Boxes -----------------------------------------------------------------------------------


def test_from_corner_puts_pixel_centres_on_integers():
    got = pfl.from_corner([[0, 0, 1, 1], [10, 20, 4, 6], [177, 66, 95, 95]])
    want = [[0, 0, 1, 1], [11.5, 22.5, 4, 6], [224, 113, 95, 95]]
    np.testing.assert_array_equal(got, want)
    assert pfl.from_corner([]).shape == (0, 4)
    assert pfl.from_corner(np.array([3, 4, 5, 6])).shape == (1, 4)


@FEW
@given(st.lists(st.tuples(*[st.integers(0, 500)] * 2, *[st.integers(1, 300)] * 2), max_size=6))
def test_from_corner_spans_the_same_pixels(corner_boxes):
    b = pfl.from_corner(corner_boxes)
    c = np.asarray(corner_boxes, dtype=float).reshape(-1, 4)
    e = pfl._edges(b)
    # the pixels left .. left + w - 1 have their outer edges at left - 0.5 and left + w - 0.5
    np.testing.assert_allclose(e[:, :2], c[:, :2] - 0.5, atol=EXACT)
    np.testing.assert_allclose(e[:, 2:], c[:, :2] + c[:, 2:] - 0.5, atol=EXACT)


# --- Tracking --------------------------------------------------------------------------------


SMALL_TOP = [100.0, 50.0, 20.0, 20.0]  # top edge 40
BIG_LOW = [200.0, 100.0, 60.0, 60.0]  # top edge 70, the largest
HIGH_EDGE = [300.0, 60.0, 50.0, 50.0]  # top edge 35 (its centre is lower than SMALL_TOP's)


def test_tracker_first_face_largest_or_topmost():
    t = pfl.Tracker()
    np.testing.assert_array_equal(t.update([SMALL_TOP, BIG_LOW]), BIG_LOW)
    t = pfl.Tracker("topmost")
    np.testing.assert_array_equal(t.update([SMALL_TOP, BIG_LOW]), SMALL_TOP)
    t = pfl.Tracker("topmost")
    np.testing.assert_array_equal(t.update([BIG_LOW, SMALL_TOP, HIGH_EDGE]), HIGH_EDGE)


def test_tracker_bad_first_rule():
    with pytest.raises(ValueError, match="largest"):
        pfl.Tracker("leftmost")


def test_tracker_follows_the_nearest_corners_across_misses():
    last = [100.0, 100.0, 40.0, 40.0]
    same_centre_bigger = [100.0, 100.0, 80.0, 80.0]  # corners 20 px away each: L1 80
    shifted = [110.0, 100.0, 40.0, 40.0]  # centre 10 px away: L1 20
    far_large = [400.0, 300.0, 120.0, 120.0]
    t = pfl.Tracker()
    t.update([last])
    assert np.isnan(t.update([])).all()
    assert np.isnan(t.update(np.zeros((0, 4)))).all()
    np.testing.assert_array_equal(t.update([far_large, same_centre_bigger, shifted]), shifted)
    np.testing.assert_array_equal(t.update([far_large, [112.0, 101.0, 40.0, 42.0]])[:2], [112, 101])
    det = t.result((480, 640))
    assert det.frame_size == (480, 640)
    np.testing.assert_array_equal(det.candidates, [1, 0, 0, 3, 2])
    np.testing.assert_array_equal(det.found, [True, False, False, True, True])
    np.testing.assert_array_equal(det.misses, [1, 2])


def test_detections_summary_and_per_frame():
    boxes = [[1, 2, 3, 4], [5, 6, 7, 8], NAN, [1, 1, 2, 2], [9.12345, 2, 3, 4], NAN]
    det = detections(boxes, candidates=[1, 2, 0, 1, 3, 0])
    assert det.summary() == {
        "frames": 6,
        "found": 4,
        "missed": 2,
        "miss_rate": 0.333333,
        "miss_frames": [2, 5],
        "multiple_frames": 2,
    }
    rows = det.per_frame()
    assert [r["frame"] for r in rows] == list(range(6))
    assert [r["candidates"] for r in rows] == [1, 2, 0, 1, 3, 0]
    assert rows[2]["box"] is None and rows[5]["box"] is None
    assert rows[4]["box"] == [9.123, 2.0, 3.0, 4.0]
    assert det.miss_rate == pytest.approx(2 / 6, abs=EXACT)


class Scripted:
    """A detector that answers from a list, one entry per frame."""

    name = "scripted"

    def __init__(self, answers):
        self.answers = answers
        self.seen = []

    def detect(self, frame, index):
        self.seen.append(index)
        return np.asarray(self.answers[index], dtype=float).reshape(-1, 4)

    def settings(self):
        return {}


def test_detect_video_tracks_over_any_iterable():
    frames = (np.zeros((30, 40, 3), np.uint8) for _ in range(4))
    det = Scripted([[BIG_LOW], [], [BIG_LOW, SMALL_TOP], [SMALL_TOP]])
    out = pfl.detect_video(frames, det)
    assert det.seen == [0, 1, 2, 3]
    assert out.frame_size == (30, 40)
    np.testing.assert_array_equal(out.candidates, [1, 0, 2, 1])
    np.testing.assert_array_equal(out.boxes[2], BIG_LOW)
    assert out.summary()["miss_frames"] == [1]
    with pytest.raises(ValueError, match="no frames"):
        pfl.detect_video([], det)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)],
)
def test_detect_video_refuses_bad_frames(frame):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        pfl.detect_video([frame], Scripted([[]]))


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


def test_retention_of_following_and_fixed_windows():
    boxes = moving_boxes()
    follow = pfl.retention(boxes, boxes.copy(), size=128)
    assert abs(follow["translation"]) <= EXACT and abs(follow["scale"]) <= EXACT
    assert follow["inside"] == 1.0
    fixed = np.tile([320.0, 240.0, 256.0, 256.0], (len(boxes), 1))
    kept = pfl.retention(boxes, fixed)
    assert kept["translation"] == pytest.approx(1.0, abs=EXACT)
    assert kept["scale"] == pytest.approx(1.0, abs=EXACT)
    assert kept["inside"] == 1.0


def test_retention_inside_share_and_constant_size():
    boxes = np.array(
        [[100, 100, 20, 20], [150, 100, 20, 20], [200, 100, 20, 20], [300, 90, 20, 20]]
    )
    fixed = np.tile([150.0, 100.0, 120.0, 120.0], (4, 1))
    out = pfl.retention(boxes, fixed)
    # the window spans x 90 .. 210: the box at x = 200 touches its edge, the one at 300 is out
    assert out["inside"] == 0.75
    assert math.isnan(out["scale"])  # the face never changes size
    assert out["translation"] == pytest.approx(1.0, abs=EXACT)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        pfl.retention(boxes, fixed[:3])


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
    centres, scales, rolls = pfl.photo_path(90, (360, 480), roll_max=12.0, amplitude=(40, 20))
    assert centres.shape == (90, 2) and scales.shape == rolls.shape == (90,)
    assert np.abs(centres[:, 0] - 239.5).max() <= 40 + EXACT
    assert np.abs(centres[:, 1] - 179.5).max() <= 20 + EXACT
    assert np.abs(rolls).max() <= 12.0 + EXACT and np.abs(rolls).max() > 6.0
    assert scales.min() >= 0.8 - EXACT and scales.max() <= 1.2 + EXACT
    # it does move: most of the amplitude is used
    assert np.ptp(centres[:, 0]) > 40 and np.ptp(centres[:, 1]) > 20


def test_photo_path_is_deterministic_per_seed():
    a = pfl.photo_path(30, seed=5)
    b = pfl.photo_path(30, seed=5)
    c = pfl.photo_path(30, seed=6)
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
        pfl.photo_path(**kwargs)


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
