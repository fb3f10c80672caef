"""Head kinematics under face cropping: PFLPosNet's eqs 2-4 and 9-10, derived with sympy.

Eqs 2-4 describe the floating window, eqs 9-10 PFL's fixed window.

A rigid head carries keypoints ``X_i`` (head coordinates); at time ``t`` they sit at
``X_i^global(t) = Q(t) X_i + T(t)`` with ``Q(t)`` the rotation from Euler angles (the renderer's
convention, :func:`rotations`) and ``T(t)`` the translation.

* floating window (eq 2): its centre follows a reference point, ``X_float(t) = Q(t) X_ref + T(t)``,
  so local coordinates (eq 3) are ``Q(t)(X_i - X_ref)``: rotation only, ``T(t)`` cancels.
* PFL window (eq 9): its origin is one point ``O`` for the whole video, so local coordinates are
  ``Q(t) X_i + T(t) - O`` and the displacement between two instants (eq 10) is
  ``Delta T + (Q(t2) - Q(t1)) X_i``. The paper writes ``O`` as ``Q(t) X_ref + T_ref``; that point
  is fixed only when ``Q(t) X_ref`` is, e.g. ``X_ref = 0`` (the reference at the rotation
  centre). :func:`derive_eq10` prints both readings and their difference.

What this means for pixels (detectors, windows, crops) is :mod:`reactlib.face.pfl`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- Kinematics (eqs 2-4, 9-10) -----------------------------------------------------------------


def rotations(angles) -> np.ndarray:
    """``(..., 3)`` pitch, yaw, roll in radians -> ``(..., 3, 3)`` rotation matrices
    ``Q = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (the renderer's camera uses the same)."""
    angles = np.asarray(angles, dtype=float)
    cp, cy, cr = np.moveaxis(np.cos(angles), -1, 0)
    sp, sy, sr = np.moveaxis(np.sin(angles), -1, 0)
    rows = [
        [cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp],
        [sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp],
        [-sy, cy * sp, cy * cp],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _motion(keypoints, q, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(keypoints, dtype=float)
    q = np.asarray(q, dtype=float)
    t = np.asarray(t, dtype=float)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"keypoints must have shape (K, 3), got {x.shape}")
    if q.ndim != 3 or q.shape[1:] != (3, 3):
        raise ValueError(f"rotations Q must have shape (T, 3, 3), got {q.shape}")
    if t.shape != (len(q), 3):
        raise ValueError(f"translations T must have shape ({len(q)}, 3), got {t.shape}")
    return x, q, t


def global_points(keypoints, q, t) -> np.ndarray:
    """``X_i^global(t) = Q(t) X_i + T(t)``: ``(T, K, 3)`` from keypoints ``(K, 3)``, ``Q``
    ``(T, 3, 3)`` and ``T`` ``(T, 3)``."""
    x, q, t = _motion(keypoints, q, t)
    return np.einsum("tij,kj->tki", q, x) + t[:, None, :]


def floating_centre(x_ref, q, t) -> np.ndarray:
    """Eq 2: the floating window's centre ``Q(t) X_ref + T(t)``, ``(T, 3)``."""
    return global_points(np.reshape(x_ref, (1, 3)), q, t)[:, 0]


def floating_local(keypoints, x_ref, q, t) -> np.ndarray:
    """Eq 3: keypoints in floating-window coordinates, ``X_i^global(t) - X_float(t)``."""
    return global_points(keypoints, q, t) - floating_centre(x_ref, q, t)[:, None, :]


def pfl_origin(x_ref, q, t) -> np.ndarray:
    """The PFL window's fixed origin: the mean of the floating centres (the 3D form of eq 7)."""
    return floating_centre(x_ref, q, t).mean(axis=0)


def pfl_local(keypoints, q, t, origin) -> np.ndarray:
    """Eq 9: keypoints in the fixed window's coordinates, ``X_i^global(t) - O``."""
    return global_points(keypoints, q, t) - np.reshape(origin, (1, 1, 3))


def displacement(local: np.ndarray, t1: int, t2: int) -> np.ndarray:
    """Eqs 4 and 10 numerically: ``local[t2] - local[t1]`` for every keypoint, ``(K, 3)``."""
    return local[t2] - local[t1]


def eq4(keypoints, x_ref, q1, q2) -> np.ndarray:
    """Eq 4 in closed form: ``(Q(t2) - Q(t1))(X_i - X_ref)``; no translation term."""
    d = np.asarray(keypoints, dtype=float) - np.reshape(x_ref, (1, 3))
    return d @ (np.asarray(q2) - np.asarray(q1)).T


def eq10(keypoints, q1, q2, t1, t2) -> np.ndarray:
    """Eq 10 in closed form: ``Delta T + (Q(t2) - Q(t1)) X_i``."""
    x = np.asarray(keypoints, dtype=float)
    return x @ (np.asarray(q2) - np.asarray(q1)).T + (np.asarray(t2) - np.asarray(t1))


def project(points, focal: float, centre=(0.0, 0.0)) -> np.ndarray:
    """Pinhole projection ``f (X, Y) / Z + c`` of ``(..., 3)`` camera points to ``(..., 2)``."""
    p = np.asarray(points, dtype=float)
    if np.any(p[..., 2] <= 0):
        raise ValueError("points must lie in front of the camera (Z > 0)")
    return focal * p[..., :2] / p[..., 2:3] + np.asarray(centre, dtype=float)


@dataclass(frozen=True)
class Derivation:
    """One symbolic step: ``lhs`` rewritten as ``rhs``; ``residual`` is ``lhs - rhs`` simplified
    (a zero matrix when the step holds)."""

    name: str
    lhs: object
    rhs: object
    residual: object

    @property
    def holds(self) -> bool:
        return all(e == 0 for e in self.residual)


def _symbols():
    import sympy as sp

    def vec(name):
        return sp.Matrix(sp.symbols(f"{name}_x {name}_y {name}_z", real=True))

    def rot(name):
        return sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))

    return sp, vec, rot


def derive_eq3() -> Derivation:
    """Eq 3 from eq 2: ``(Q X_i + T) - (Q X_ref + T)`` simplifies to ``Q (X_i - X_ref)``."""
    sp, vec, rot = _symbols()
    q, x, ref, t = rot("Q"), vec("X_i"), vec("X_ref"), vec("T")
    lhs = (q * x + t) - (q * ref + t)
    rhs = q * (x - ref)
    return Derivation("eq 3 from eq 2", lhs, rhs, sp.simplify(sp.expand(lhs - rhs)))


def derive_eq10(printed: bool = False) -> Derivation:
    """Eq 10 from eq 9 with two rotations ``Q1, Q2`` and translations ``T1, T2``.

    ``printed=False`` differences eq 9 as printed, ``Q(t)(X_i - X_ref) + T(t) - T_ref``, and
    compares with ``Delta T + (Q2 - Q1)(X_i - X_ref)`` (holds). ``printed=True`` compares the same
    difference with eq 10 as printed, ``Delta T + (Q2 - Q1) X_i``: the residual is
    ``-(Q2 - Q1) X_ref``, zero only when the reference does not move with the rotation.
    """
    sp, vec, rot = _symbols()
    q1, q2, x, ref = rot("Q1"), rot("Q2"), vec("X_i"), vec("X_ref")
    t1, t2, tref = vec("T1"), vec("T2"), vec("T_ref")

    def eq9(q, t):
        return q * (x - ref) + t - tref

    lhs = eq9(q2, t2) - eq9(q1, t1)
    rhs = (t2 - t1) + (q2 * x - q1 * x if printed else (q2 - q1) * (x - ref))
    name = "eq 10 as printed, from eq 9" if printed else "eq 10 from eq 9"
    return Derivation(name, lhs, rhs, sp.simplify(sp.expand(lhs - rhs)))
