"""Tests for reactlib.face.render: geometry and pose conventions, expressions, identities, video
I/O."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib.face import coeffs, kinematics, render
from reactlib.face.render import (
    DEFAULT_SIZE,
    FaceRenderer,
    Identity,
    render_video,
)

S = DEFAULT_SIZE


def pose(**values) -> np.ndarray:
    """The neutral frame with some coefficients set by name."""
    x = coeffs.neutral().astype(np.float64)
    for name, value in values.items():
        x[coeffs.index(name)] = value
    return x


@pytest.fixture(scope="module")
def renderer() -> FaceRenderer:
    return FaceRenderer(S)


@pytest.fixture(scope="module")
def parts(renderer) -> dict[str, np.ndarray]:
    return renderer.part_indices


@pytest.fixture(scope="module")
def neutral_image(renderer) -> np.ndarray:
    return renderer.render(pose())


def centre(box: np.ndarray) -> np.ndarray:
    return box[..., :2] + box[..., 2:] / 2


def point(landmarks, parts, name, k=0) -> np.ndarray:
    return landmarks[..., parts[name][k], :]


def eye_opening(landmarks, parts, side: str) -> float:
    """Distance between the middle points of the upper and lower lid, in pixels."""
    mid = len(parts[f"{side}_eye_upper"]) // 2
    upper = point(landmarks, parts, f"{side}_eye_upper", mid)
    return float(np.linalg.norm(upper - point(landmarks, parts, f"{side}_eye_lower", mid)))


def eye_width(landmarks, parts, side: str) -> float:
    inner = point(landmarks, parts, f"{side}_eye_inner")
    return float(np.linalg.norm(inner - point(landmarks, parts, f"{side}_eye_outer")))


def eye_centre(landmarks, parts, side: str) -> np.ndarray:
    return (
        point(landmarks, parts, f"{side}_eye_inner") + point(landmarks, parts, f"{side}_eye_outer")
    ) / 2


# --- Camera and pose ---------------------------------------------------------------------------


def test_neutral_face_is_centred_frontal_and_sized(renderer, parts, neutral_image):
    box = renderer.face_box(pose())
    assert neutral_image.shape == (S, S, 3) and neutral_image.dtype == np.uint8
    np.testing.assert_allclose(centre(box), [(S - 1) / 2, (S - 1) / 2], atol=1.0)
    assert 0.35 * S < box[2] < 0.6 * S
    assert box[3] > box[2]  # a face is taller than wide
    # The face is drawn there: skin on the forehead, background in the corner.
    forehead = neutral_image[round(box[1] + 0.27 * box[3]), round(box[0] + 0.5 * box[2])]
    assert np.abs(forehead.astype(int) - renderer.identity.skin).max() <= 2
    assert not np.array_equal(neutral_image[0, 0], neutral_image[S // 2, S // 2])


def test_neutral_landmarks_are_mirror_symmetric(renderer, parts):
    lm = renderer.landmarks(pose())
    cx = (S - 1) / 2
    pairs = [
        (parts[f"left_{n}"], parts[f"right_{n}"])
        for n in ("eye_upper", "eye_lower", "eye_inner", "eye_outer", "brow")
    ]
    for name in ("mouth_outer_upper", "mouth_inner_upper", "mouth_inner_lower"):
        pairs.append((parts[name], parts[name][::-1]))
    oval = parts["face_oval"]
    pairs.append((oval, oval[(-np.arange(len(oval))) % len(oval)]))
    for a, b in pairs:
        np.testing.assert_allclose(lm[a, 0] - cx, cx - lm[b, 0], atol=1.0)
        np.testing.assert_allclose(lm[a, 1], lm[b, 1], atol=1.0)
    # "Left" is the subject's left, which a frontal face shows on the image's right.
    assert lm[parts["left_eye_upper"], 0].min() > cx > lm[parts["right_eye_upper"], 0].max()


@pytest.mark.parametrize("axis", ["tx", "ty"])
def test_translation_moves_the_face_by_its_projection(renderer, parts, axis):
    d = 0.03
    tz = coeffs.NEUTRAL_DISTANCE
    before, after = renderer.face_box(np.stack([pose(), pose(**{axis: d})]))
    shift = centre(after) - centre(before)
    expected = renderer.focal * d / tz
    k = 0 if axis == "tx" else 1
    assert shift[k] == pytest.approx(expected, abs=1.0)
    assert abs(shift[1 - k]) < 1e-6
    np.testing.assert_allclose(after[2:], before[2:], atol=1e-6)
    lm = renderer.landmarks(np.stack([pose(), pose(**{axis: d})]))
    assert (lm[1] - lm[0])[:, k].mean() == pytest.approx(expected, abs=1.0)


def test_distance_scales_the_face_inversely(renderer):
    near, far = renderer.face_box(np.stack([pose(), pose(tz=2.3)]))
    ratio = coeffs.NEUTRAL_DISTANCE / 2.3
    assert far[2] == pytest.approx(near[2] * ratio, rel=0.02)
    assert far[3] == pytest.approx(near[3] * ratio, rel=0.02)
    np.testing.assert_allclose(centre(far), centre(near), atol=1.0)


def test_focal_length_scales_with_image_size():
    small, large = FaceRenderer(128), FaceRenderer((256, 384))
    assert large.focal == pytest.approx(2 * small.focal)
    assert large.render(pose()).shape == (256, 384, 3)
    np.testing.assert_allclose(centre(large.face_box(pose())), [191.5, 127.5], atol=1.0)
    np.testing.assert_allclose(
        large.face_box(pose())[2:], 2 * small.face_box(pose())[2:], rtol=0.01
    )


def test_positive_yaw_turns_the_face_toward_the_image_left(renderer, parts):
    front, turned, other = renderer.landmarks(np.stack([pose(), pose(yaw=0.5), pose(yaw=-0.5)]))
    nose = point(front, parts, "nose_tip")
    assert point(turned, parts, "nose_tip")[0] < nose[0] - 15
    assert point(other, parts, "nose_tip")[0] > nose[0] + 15
    boxes = renderer.face_box(np.stack([pose(), pose(yaw=0.5)]))
    assert boxes[1, 2] < 0.92 * boxes[0, 2]  # the oval foreshortens
    # The subject's left eye comes nearer (and looks wider) as the face turns to its right.
    assert eye_width(front, parts, "left") == pytest.approx(eye_width(front, parts, "right"))
    assert eye_width(turned, parts, "left") > 1.15 * eye_width(turned, parts, "right")
    assert eye_width(other, parts, "right") > 1.15 * eye_width(other, parts, "left")


def test_turned_head_draws_near_side_over_far_side(renderer, parts):
    """The nose, nearer than the far eye, is drawn after it when the head is turned far."""
    lm = renderer.landmarks(pose(yaw=0.8))
    img = renderer.render(pose(yaw=0.8))
    nose = lm[parts["nose"]].astype(np.int32)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [nose], 1)
    eye = np.zeros_like(mask)
    cv2.fillPoly(eye, [lm[parts["right_eye"]].astype(np.int32)], 1)
    overlap = (mask > 0) & (eye > 0)
    assert overlap.sum() > 3  # the far (right) eye lies partly behind the nose
    colour = render._colours(renderer.identity)["nose"]
    assert np.abs(img[overlap].astype(int) - colour).max(axis=1).mean() < 30


def test_draw_order_follows_depth(renderer):
    """Face parts are drawn far to near: which eye comes last flips with the yaw's sign."""
    turned_left, turned_right, closed = renderer.draw_order(
        np.stack([pose(yaw=0.5), pose(yaw=-0.5), pose(eyeBlinkLeft=1)])
    )
    for order, far, near in ((turned_left, "right", "left"), (turned_right, "left", "right")):
        assert order[:2] == ["hair_back", "shoulders"] and order[-1] == "fringe"
        assert order.index(f"{far}_eye") < order.index("nose") < order.index(f"{near}_eye")
        assert order.index("face") < order.index(f"{far}_eye")
        assert order.index(f"{near}_iris") < order.index(f"{near}_upper_lid")
    assert "left_eye" not in closed and "right_eye" in closed  # a closed eye is not drawn
    assert "tongue_tip" not in closed and "tongue_tip" in renderer.draw_order(pose(tongueOut=1))[0]


def test_pitch_moves_the_nose_vertically(renderer, parts):
    lm = renderer.landmarks(np.stack([pose(), pose(pitch=0.3), pose(pitch=-0.3)]))
    y = point(lm, parts, "nose_tip")[:, 1]
    assert y[1] > y[0] + 10  # positive pitch nods down
    assert y[2] < y[0] - 10


@pytest.mark.parametrize("roll", [-0.4, 0.25, 0.5])
def test_roll_rotates_the_eye_line_by_the_roll_angle(renderer, parts, roll):
    lm = renderer.landmarks(pose(roll=roll))
    dx, dy = eye_centre(lm, parts, "left") - eye_centre(lm, parts, "right")
    assert math.degrees(math.atan2(dy, dx)) == pytest.approx(math.degrees(roll), abs=1.0)


def test_rotation_matrices_are_rotations_in_the_documented_order():
    angles = np.array([[0.3, -0.2, 0.7], [0.0, 0.0, 0.0]])
    r = kinematics.rotations(angles)
    np.testing.assert_allclose(
        r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0)
    p, y, z = angles[0]
    rx = kinematics.rotations([p, 0, 0])
    ry = kinematics.rotations([0, y, 0])
    rz = kinematics.rotations([0, 0, z])
    np.testing.assert_allclose(r[0], rz @ ry @ rx, atol=1e-12)
    np.testing.assert_allclose(
        rx, [[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]]
    )


# --- Expressions ---------------------------------------------------------------------------------


def white_pixels(img, box) -> int:
    x0, y0, x1, y1 = box
    patch = img[y0:y1, x0:x1].astype(int)
    return int(((patch.min(axis=-1) > 215) & (np.ptp(patch, axis=-1) < 20)).sum())


def eye_box(landmarks, parts, side) -> tuple[int, int, int, int]:
    pts = landmarks[parts[f"{side}_eye"]]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 3
    return x0, y0, x1, y1


def test_blink_closes_both_eyes(renderer, parts, neutral_image):
    lm0 = renderer.landmarks(pose())
    lm = renderer.landmarks(pose(eyeBlinkLeft=1, eyeBlinkRight=1))
    img = renderer.render(pose(eyeBlinkLeft=1, eyeBlinkRight=1))
    for side in ("left", "right"):
        assert eye_opening(lm0, parts, side) > 5
        assert eye_opening(lm, parts, side) < 0.1 * eye_opening(lm0, parts, side)
        box = eye_box(lm0, parts, side)
        assert white_pixels(neutral_image, box) > 10
        assert white_pixels(img, box) < 0.1 * white_pixels(neutral_image, box)


def test_left_blink_closes_only_the_subjects_left_eye(renderer, parts, neutral_image):
    lm0 = renderer.landmarks(pose())
    lm = renderer.landmarks(pose(eyeBlinkLeft=1))
    img = renderer.render(pose(eyeBlinkLeft=1))
    assert eye_opening(lm, parts, "left") < 0.1 * eye_opening(lm0, parts, "left")
    assert eye_opening(lm, parts, "right") == pytest.approx(eye_opening(lm0, parts, "right"))
    left, right = eye_box(lm0, parts, "left"), eye_box(lm0, parts, "right")
    assert left[0] > S / 2  # the subject's left eye is on the image's right
    assert white_pixels(img, left) < 0.1 * white_pixels(neutral_image, left)
    assert white_pixels(img, right) == white_pixels(neutral_image, right)


def test_jaw_open_opens_the_mouth(renderer, parts, neutral_image):
    def gap(lm):
        mid = len(parts["mouth_inner_upper"]) // 2
        return (
            point(lm, parts, "mouth_inner_lower", mid) - point(lm, parts, "mouth_inner_upper", mid)
        )[1]

    closed, opened = renderer.landmarks(np.stack([pose(), pose(jawOpen=1)]))
    assert gap(closed) < 2
    assert gap(opened) > 10 + 5 * gap(closed)
    box = renderer.face_box(np.stack([pose(), pose(jawOpen=1)]))
    assert box[1, 3] > box[0, 3] + 5  # the chin drops
    # Dark inside of the mouth is visible.
    img = renderer.render(pose(jawOpen=1))
    inner = lm_mask(opened[parts["mouth_inner"]], img.shape)
    assert (img[inner].max(axis=-1) < 120).sum() > 50


def lm_mask(polygon, shape) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask > 0


def test_smile_raises_and_widens_the_lip_corners(renderer, parts):
    lm0, lm = renderer.landmarks(np.stack([pose(), pose(mouthSmileLeft=1, mouthSmileRight=1)]))
    left0, left = point(lm0, parts, "mouth_corner_left"), point(lm, parts, "mouth_corner_left")
    right0, right = point(lm0, parts, "mouth_corner_right"), point(lm, parts, "mouth_corner_right")
    assert left[1] < left0[1] - 4 and right[1] < right0[1] - 4  # image y points down
    assert left[0] - right[0] > left0[0] - right0[0] + 4


def test_frown_lowers_the_lip_corners_on_its_side_only(renderer, parts):
    lm0, lm = renderer.landmarks(np.stack([pose(), pose(mouthFrownLeft=1)]))
    assert point(lm, parts, "mouth_corner_left")[1] > point(lm0, parts, "mouth_corner_left")[1] + 2
    np.testing.assert_allclose(
        point(lm, parts, "mouth_corner_right"), point(lm0, parts, "mouth_corner_right")
    )


@pytest.mark.parametrize("name", coeffs.EXPRESSION_NAMES)
def test_every_blendshape_changes_the_image(renderer, neutral_image, name):
    img = renderer.render(pose(**{name: 1.0}))
    changed = np.abs(img.astype(int) - neutral_image).max(axis=-1) > 8
    assert changed.sum() >= 5, f"{name} at weight 1 barely changes the image"


def test_gaze_moves_the_iris_toward_the_named_direction(renderer, parts):
    lm0 = renderer.landmarks(pose())

    def iris(x, side):
        return renderer.landmarks(x)[parts[f"{side}_iris"]].mean(axis=0) - lm0[
            parts[f"{side}_iris"]
        ].mean(axis=0)

    assert iris(pose(eyeLookOutLeft=1), "left")[0] > 2  # outward from the left eye: image right
    assert iris(pose(eyeLookInLeft=1), "left")[0] < -2
    assert iris(pose(eyeLookInRight=1), "right")[0] > 2
    assert iris(pose(eyeLookUpRight=1), "right")[1] < -1.5
    assert iris(pose(eyeLookDownLeft=1), "left")[1] > 1.5


# --- Identities and determinism ------------------------------------------------------------------


def test_rendering_is_deterministic(renderer):
    x = np.stack([pose(jawOpen=0.4, yaw=0.2), pose(eyeBlinkLeft=0.7, roll=-0.1)])
    np.testing.assert_array_equal(renderer.render(x), FaceRenderer(S).render(x))
    np.testing.assert_array_equal(renderer.render(x)[1], renderer.render(x[1]))


def test_random_identities_are_deterministic_and_distinct():
    a, b = Identity.random(0), Identity.random(1)
    assert a == Identity.random(0)
    assert a != b
    assert Identity.default() == Identity()
    images = [FaceRenderer(128, identity=i).render(pose()) for i in (a, b)]
    assert all(img.shape == (128, 128, 3) for img in images)
    assert np.abs(images[0].astype(int) - images[1]).mean() > 10
    box_a, box_b = (FaceRenderer(128, identity=i).face_box(pose()) for i in (a, b))
    assert not np.allclose(box_a, box_b)


def test_identity_validation():
    with pytest.raises(ValueError, match="hair_style"):
        Identity(hair_style=7)
    with pytest.raises(ValueError, match="skin"):
        Identity(skin=(300, 0, 0))
    with pytest.raises(ValueError, match="face_width"):
        Identity(face_width=0.1)
    with pytest.raises(ValueError, match="seed"):
        Identity.random(-1)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(57), "shape"),
        (np.zeros((3, 2, 58)), "shape"),
        (np.zeros((0, 58)), "shape"),
        (np.full(58, np.nan), "NaN"),
        (pose(tz=0.1), "tz"),
    ],
)
def test_bad_coefficients_are_rejected(renderer, bad, message):
    for method in (renderer.render, renderer.landmarks, renderer.face_box):
        with pytest.raises(ValueError, match=message):
            method(bad)


def test_clip_shapes_and_render_video(renderer):
    x = np.stack([pose(), pose(jawOpen=1.0), pose(yaw=0.3)])
    assert renderer.landmarks(x).shape[:2] == (3, renderer.landmarks(x[0]).shape[0])
    assert renderer.face_box(x).shape == (3, 4)
    seen = []

    def progress(steps):
        seen.append(len(steps))
        return steps

    frames = render_video(x, size=S, progress=progress)
    assert frames.shape == (3, S, S, 3) and frames.dtype == np.uint8
    assert seen == [3]
    np.testing.assert_array_equal(frames, renderer.render(x))
    assert FaceRenderer(64, background=False).render(pose())[0, 0].tolist() == [0, 0, 0]


@settings(max_examples=25, deadline=None)
@given(
    expression=st.lists(st.floats(0.0, 1.0), min_size=52, max_size=52),
    rotation=st.lists(st.floats(-0.59, 0.59), min_size=3, max_size=3),
    shift=st.lists(st.floats(-0.1, 0.1), min_size=3, max_size=3),
)
def test_any_plausible_frame_renders_a_face_in_frame(expression, rotation, shift):
    x = np.concatenate([expression, rotation, np.add(shift, [0.0, 0.0, 1.84])])
    r = FaceRenderer(96)
    img = r.render(x)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    x0, y0, w, h = r.face_box(x)
    assert 0.25 * 96 < w < 0.8 * 96 and 0.3 * 96 < h < 0.95 * 96
    lo, hi = -0.2 * 96, 1.2 * 96
    assert x0 > lo and x0 + w < hi and y0 > lo and y0 + h < hi
