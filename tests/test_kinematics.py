"""Tests for reactlib.face.kinematics: eqs 2-4 and 9-10 against their closed forms and sympy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import settings

from reactlib.face import kinematics

EXACT = 1e-9
FEW = settings(max_examples=25, deadline=None)


def motion(frames: int = 7, keypoints: int = 5, seed: int = 0):
    """Random keypoints (K, 3), rotations Q (T, 3, 3), translations T (T, 3) and a reference."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.1, (keypoints, 3))
    angles = rng.uniform(-0.6, 0.6, (frames, 3))
    t = rng.normal(0.0, 0.2, (frames, 3)) + [0.0, 0.0, 2.0]
    ref = rng.normal(0.0, 0.05, 3)
    return x, kinematics.rotations(angles), t, ref


def rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# --- Kinematics ------------------------------------------------------------------------------


def test_rotations_follow_the_renderer_convention():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-np.pi, np.pi, (2, 4, 3))
    q = kinematics.rotations(angles)
    assert q.shape == (2, 4, 3, 3)
    for idx in np.ndindex(2, 4):
        pitch, yaw, roll = angles[idx]
        np.testing.assert_allclose(q[idx], rz(roll) @ ry(yaw) @ rx(pitch), atol=EXACT)
    eye = np.broadcast_to(np.eye(3), q.shape)
    np.testing.assert_allclose(q @ np.swapaxes(q, -1, -2), eye, atol=EXACT)
    np.testing.assert_allclose(np.linalg.det(q), 1.0, atol=EXACT)
    np.testing.assert_allclose(kinematics.rotations([0.0, 0.0, 0.0]), np.eye(3), atol=0)


def test_positive_roll_turns_x_toward_y_down():
    """Positive roll is clockwise in the image (y down): the x axis turns toward +y."""
    q = kinematics.rotations([0.0, 0.0, 0.3])
    np.testing.assert_allclose(q @ [1, 0, 0], [math.cos(0.3), math.sin(0.3), 0], atol=EXACT)


def test_global_points_closed_form():
    x, q, t, _ = motion()
    got = kinematics.global_points(x, q, t)
    assert got.shape == (len(q), len(x), 3)
    for i in range(len(q)):
        for k in range(len(x)):
            np.testing.assert_allclose(got[i, k], q[i] @ x[k] + t[i], atol=EXACT, rtol=0)


def test_floating_centre_is_eq2():
    _, q, t, ref = motion()
    want = np.stack([q[i] @ ref + t[i] for i in range(len(q))])
    np.testing.assert_allclose(kinematics.floating_centre(ref, q, t), want, atol=EXACT, rtol=0)


def test_floating_local_is_eq3_and_independent_of_translation():
    x, q, t, ref = motion()
    local = kinematics.floating_local(x, ref, q, t)
    want = np.einsum("tij,kj->tki", q, x - ref)
    np.testing.assert_allclose(local, want, atol=EXACT, rtol=0)
    other = np.random.default_rng(9).normal(0.0, 5.0, t.shape)
    assert np.abs(kinematics.floating_local(x, ref, q, other) - local).max() <= EXACT


def test_pfl_local_keeps_the_translation():
    """Pure translation (Q = I): the fixed window sees the displacement Delta T exactly."""
    x, _, t, ref = motion()
    q = np.broadcast_to(np.eye(3), (len(t), 3, 3))
    origin = kinematics.pfl_origin(ref, q, t)
    local = kinematics.pfl_local(x, q, t, origin)
    np.testing.assert_allclose(local, x[None] + t[:, None] - origin, atol=EXACT, rtol=0)
    for t1, t2 in [(0, 1), (2, 6), (5, 3)]:
        d = kinematics.displacement(local, t1, t2)
        np.testing.assert_allclose(d, np.broadcast_to(t[t2] - t[t1], d.shape), atol=EXACT, rtol=0)
        # ... while the floating window sees no motion at all.
        assert (
            np.abs(kinematics.displacement(kinematics.floating_local(x, ref, q, t), t1, t2)).max()
            <= EXACT
        )


def test_floating_displacement_is_eq4_without_a_translation_term():
    x, q, t, ref = motion(seed=3)
    local = kinematics.floating_local(x, ref, q, t)
    for t1, t2 in [(0, 1), (1, 5), (6, 2)]:
        want = kinematics.eq4(x, ref, q[t1], q[t2])
        np.testing.assert_allclose(kinematics.displacement(local, t1, t2), want, atol=EXACT, rtol=0)
        by_hand = np.stack([(q[t2] - q[t1]) @ (xi - ref) for xi in x])
        np.testing.assert_allclose(want, by_hand, atol=EXACT, rtol=0)
        # no translation term: the same rotations under any other translation give the same.
        other = kinematics.floating_local(x, ref, q, t * 7.0 - 3.0)
        np.testing.assert_allclose(kinematics.displacement(other, t1, t2), want, atol=EXACT, rtol=0)


def test_pfl_displacement_is_eq10():
    x, q, t, ref = motion(seed=4)
    local = kinematics.pfl_local(x, q, t, kinematics.pfl_origin(ref, q, t))
    for t1, t2 in [(0, 1), (3, 6), (4, 0)]:
        want = kinematics.eq10(x, q[t1], q[t2], t[t1], t[t2])
        np.testing.assert_allclose(kinematics.displacement(local, t1, t2), want, atol=EXACT, rtol=0)
        by_hand = np.stack([t[t2] - t[t1] + (q[t2] - q[t1]) @ xi for xi in x])
        np.testing.assert_allclose(want, by_hand, atol=EXACT, rtol=0)


def test_pure_rotation_about_z_gives_the_textbook_displacement():
    theta = 0.4
    q = kinematics.rotations([[0.0, 0.0, 0.0], [0.0, 0.0, theta]])
    t = np.zeros((2, 3))
    x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.5]])
    d = kinematics.displacement(kinematics.floating_local(x, np.zeros(3), q, t), 0, 1)
    c, s = math.cos(theta), math.sin(theta)
    want = np.array([[c - 1.0, s, 0.0], [-2.0 * s, 2.0 * (c - 1.0), 0.0]])
    np.testing.assert_allclose(d, want, atol=EXACT, rtol=0)


def test_pfl_origin_is_the_mean_floating_centre():
    _, q, t, ref = motion(seed=5)
    want = np.mean([q[i] @ ref + t[i] for i in range(len(q))], axis=0)
    np.testing.assert_allclose(kinematics.pfl_origin(ref, q, t), want, atol=EXACT, rtol=0)
    # with the reference at the rotation centre it is the mean translation
    np.testing.assert_allclose(
        kinematics.pfl_origin(np.zeros(3), q, t), t.mean(0), atol=EXACT, rtol=0
    )


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
        kinematics.global_points(keypoints, q, t)


def test_project_closed_form():
    pts = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0], [-0.3, 0.4, 4.0]])
    got = kinematics.project(pts, 300.0, (63.5, 47.5))
    want = np.array([[300 * 0.05 + 63.5, -300 * 0.1 + 47.5], [63.5, 47.5], [-22.5 + 63.5, 77.5]])
    np.testing.assert_allclose(got, want, atol=EXACT, rtol=0)
    np.testing.assert_allclose(kinematics.project(pts[0], 10.0), [0.5, -1.0], atol=EXACT, rtol=0)
    assert kinematics.project(np.ones((2, 5, 3)), 1.0).shape == (2, 5, 2)


@pytest.mark.parametrize("z", [0.0, -1.0])
def test_project_refuses_points_behind_the_camera(z):
    with pytest.raises(ValueError, match="Z > 0"):
        kinematics.project([[0.0, 0.0, 1.0], [0.1, 0.1, z]], 100.0)


# --- sympy derivations -----------------------------------------------------------------------


def test_eq3_follows_from_eq2():
    d = kinematics.derive_eq3()
    assert d.holds
    assert d.residual.shape == (3, 1)


def test_eq10_follows_from_eq9():
    assert kinematics.derive_eq10().holds


def test_eq10_as_printed_misses_the_reference_term():
    import sympy as sp

    d = kinematics.derive_eq10(printed=True)
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
