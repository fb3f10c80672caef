"""Tests for reactlib.face.detect without video files: the box convention, tracking and
detections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib.face import detect

EXACT = 1e-9
FEW = settings(max_examples=25, deadline=None)


def detections(boxes, frame_size=(480, 640), candidates=None) -> detect.Detections:
    return detect.Detections.from_boxes(boxes, frame_size, candidates)


NAN = [np.nan] * 4


# --- Boxes -----------------------------------------------------------------------------------


def test_from_corner_puts_pixel_centres_on_integers():
    got = detect.from_corner([[0, 0, 1, 1], [10, 20, 4, 6], [177, 66, 95, 95]])
    want = [[0, 0, 1, 1], [11.5, 22.5, 4, 6], [224, 113, 95, 95]]
    np.testing.assert_array_equal(got, want)
    assert detect.from_corner([]).shape == (0, 4)
    assert detect.from_corner(np.array([3, 4, 5, 6])).shape == (1, 4)


@FEW
@given(st.lists(st.tuples(*[st.integers(0, 500)] * 2, *[st.integers(1, 300)] * 2), max_size=6))
def test_from_corner_spans_the_same_pixels(corner_boxes):
    b = detect.from_corner(corner_boxes)
    c = np.asarray(corner_boxes, dtype=float).reshape(-1, 4)
    e = detect.edges(b)
    # the pixels left .. left + w - 1 have their outer edges at left - 0.5 and left + w - 0.5
    np.testing.assert_allclose(e[:, :2], c[:, :2] - 0.5, atol=EXACT)
    np.testing.assert_allclose(e[:, 2:], c[:, :2] + c[:, 2:] - 0.5, atol=EXACT)


# --- Tracking --------------------------------------------------------------------------------


SMALL_TOP = [100.0, 50.0, 20.0, 20.0]  # top edge 40
BIG_LOW = [200.0, 100.0, 60.0, 60.0]  # top edge 70, the largest
HIGH_EDGE = [300.0, 60.0, 50.0, 50.0]  # top edge 35 (its centre is lower than SMALL_TOP's)


def test_tracker_first_face_largest_or_topmost():
    t = detect.Tracker()
    np.testing.assert_array_equal(t.update([SMALL_TOP, BIG_LOW]), BIG_LOW)
    t = detect.Tracker("topmost")
    np.testing.assert_array_equal(t.update([SMALL_TOP, BIG_LOW]), SMALL_TOP)
    t = detect.Tracker("topmost")
    np.testing.assert_array_equal(t.update([BIG_LOW, SMALL_TOP, HIGH_EDGE]), HIGH_EDGE)


def test_tracker_bad_first_rule():
    with pytest.raises(ValueError, match="largest"):
        detect.Tracker("leftmost")


def test_tracker_follows_the_nearest_corners_across_misses():
    last = [100.0, 100.0, 40.0, 40.0]
    same_centre_bigger = [100.0, 100.0, 80.0, 80.0]  # corners 20 px away each: L1 80
    shifted = [110.0, 100.0, 40.0, 40.0]  # centre 10 px away: L1 20
    far_large = [400.0, 300.0, 120.0, 120.0]
    t = detect.Tracker()
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
    out = detect.detect_video(frames, det)
    assert det.seen == [0, 1, 2, 3]
    assert out.frame_size == (30, 40)
    np.testing.assert_array_equal(out.candidates, [1, 0, 2, 1])
    np.testing.assert_array_equal(out.boxes[2], BIG_LOW)
    assert out.summary()["miss_frames"] == [1]
    with pytest.raises(ValueError, match="no frames"):
        detect.detect_video([], det)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)],
)
def test_detect_video_refuses_bad_frames(frame):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        detect.detect_video([frame], Scripted([[]]))


def test_detections_from_boxes_counts_one_face_per_found_frame():
    det = detect.Detections.from_boxes([[1, 2, 3, 4], NAN, [5, 6, 7, 8]], (10, 20))
    np.testing.assert_array_equal(det.candidates, [1, 0, 1])
    np.testing.assert_array_equal(det.misses, [1])
    assert det.frame_size == (10, 20) and det.boxes.shape == (3, 4)
    assert detect.Detections.from_boxes(np.ones(4), (1, 1), [3]).candidates.tolist() == [3]
