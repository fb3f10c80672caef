"""Head motion under face cropping: PFLPosNet's kinematics (eqs 2-4, 9-10), face detection, and the
floating-window and PFL crops (eqs 5, 7, 8), on arrays and streamed over video files.

Kinematics
----------
A rigid head carries keypoints ``X_i`` (head coordinates); at time ``t`` they sit at
``X_i^global(t) = Q(t) X_i + T(t)`` with ``Q(t)`` the rotation from Euler angles (the renderer's
convention, :func:`reactlib.render.rotation_matrices`) and ``T(t)`` the translation.

* floating window (eq 2): its centre follows a reference point, ``X_float(t) = Q(t) X_ref + T(t)``,
  so local coordinates (eq 3) are ``Q(t)(X_i - X_ref)``: rotation only, ``T(t)`` cancels.
* PFL window (eq 9): its origin is one point ``O`` for the whole video, so local coordinates are
  ``Q(t) X_i + T(t) - O`` and the displacement between two instants (eq 10) is
  ``Delta T + (Q(t2) - Q(t1)) X_i``. The paper writes ``O`` as ``Q(t) X_ref + T_ref``; that point
  is fixed only when ``Q(t) X_ref`` is, e.g. ``X_ref = 0`` (the reference at the rotation
  centre). :func:`derive_eq10` prints both readings and their difference.

Boxes
-----
Every face box and crop window here is the paper's ``f_i = (x_i, y_i, w_i, h_i)``: **centre**
``x, y`` and size ``w, h`` in pixels, with pixel centres on integer coordinates (the renderer's
convention). :func:`from_corner` converts OpenCV's ``(left, top, w, h)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from reactlib.coeffs import NUM_COEFFS, TRANSLATION

MODES = ("pfl", "float")
OMEGA = (256, 256)
"""The paper's maximum window size ``(omega_w, omega_h)`` in pixels (its section 5.1)."""
PADDING = 20
"""Pixels added on every side of the PFL window before the cap (the paper code's default)."""
MARGIN = 0.2
"""The floating crop's side is ``max(w, h) * (1 + 2 * MARGIN)`` of the face box."""
HAAR_SETTINGS = {"scale_factor": 1.1, "min_neighbors": 6, "min_size": 60}
"""``detectMultiScale`` settings of the PFLPosNet code."""
HAAR_CASCADE = "haarcascade_frontalface_default.xml"


class NoFaceError(ValueError):
    """No frame of a video had a face, so no crop window can be placed."""


# --- Kinematics (eqs 2-4, 9-10) -----------------------------------------------------------------


def rotations(angles) -> np.ndarray:
    """``(..., 3)`` pitch, yaw, roll in radians -> ``(..., 3, 3)`` rotation matrices ``Q``."""
    from reactlib.render import rotation_matrices

    return rotation_matrices(np.asarray(angles, dtype=float))


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


# --- Boxes -------------------------------------------------------------------------------------


def from_corner(boxes) -> np.ndarray:
    """OpenCV ``(left, top, w, h)`` -> centre ``(x, y, w, h)`` (pixel centres on integers)."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4).copy()
    b[:, :2] += (b[:, 2:] - 1.0) / 2.0
    return b


def _edges(boxes: np.ndarray) -> np.ndarray:
    """Centre boxes -> ``(left, top, right, bottom)`` in continuous coordinates."""
    half = boxes[..., 2:] / 2.0
    return np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1)


# --- Detection and tracking --------------------------------------------------------------------


class Detector(Protocol):
    """Finds faces in one RGB uint8 frame; returns centre boxes ``(n, 4)`` (``n`` may be 0).
    ``index`` is the frame's position in its video (oracles look their answer up by it)."""

    name: str

    def detect(self, frame: np.ndarray, index: int) -> np.ndarray: ...

    def settings(self) -> dict: ...


class HaarDetector:
    """OpenCV's frontal-face Haar cascade from the opencv 4.x wheel (``cv2.data.haarcascades``),
    with the PFLPosNet code's ``detectMultiScale`` settings unless told otherwise."""

    name = "haar"

    def __init__(
        self,
        scale_factor: float = HAAR_SETTINGS["scale_factor"],
        min_neighbors: int = HAAR_SETTINGS["min_neighbors"],
        min_size: int = HAAR_SETTINGS["min_size"],
        cascade: str = HAAR_CASCADE,
    ):
        import cv2

        if not scale_factor > 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor!r}")
        if int(min_neighbors) < 0 or int(min_size) < 1:
            raise ValueError(
                f"min_neighbors must be >= 0 and min_size >= 1, got {min_neighbors}, {min_size}"
            )
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if folder is None or not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no Haar cascades; install "
                "opencv-python-headless>=4.10,<5"
            )
        path = Path(folder) / cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {path}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.cascade = cascade

    def settings(self) -> dict:
        return {
            "cascade": self.cascade,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_size": self.min_size,
        }

    def detect(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        import cv2

        frame = _check_frame(frame)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        found = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return from_corner(found) if len(found) else np.zeros((0, 4))


class OracleDetector:
    """The true face box of every frame (``(T, 4)`` centre boxes): what a perfect detector would
    give. A box that lies wholly outside the frame counts as a miss."""

    name = "oracle"

    def __init__(self, boxes, source: str = "boxes"):
        b = np.asarray(boxes, dtype=float)
        if b.ndim != 2 or b.shape[1] != 4 or len(b) == 0:
            raise ValueError(f"oracle boxes must have shape (T, 4) with T >= 1, got {b.shape}")
        if not np.isfinite(b).all() or (b[:, 2:] <= 0).any():
            raise ValueError("oracle boxes must be finite with positive width and height")
        self.boxes = b
        self.source = source

    @classmethod
    def from_renderer(cls, renderer, coeffs) -> OracleDetector:
        """Boxes of :meth:`reactlib.render.FaceRenderer.face_box` for a coefficient clip."""
        box = renderer.face_box(np.asarray(coeffs).reshape(-1, NUM_COEFFS))
        # face_box gives the continuous extent of the projected points: its centre is lo + w / 2
        # (from_corner's (w - 1) / 2 is for OpenCV's integer pixel boxes).
        centre = np.column_stack([box[:, :2] + box[:, 2:] / 2.0, box[:, 2:]])
        return cls(centre, source="renderer")

    @classmethod
    def for_synth_video(cls, path) -> OracleDetector:
        """The oracle for a SynthReact video file: finds its corpus, its clip's coefficients and
        the identity it was rendered with."""
        from reactlib import data, render, synth

        path = Path(path).resolve()
        root = next((p for p in path.parents if (p / data.CORPUS_FILE).is_file()), None)
        video_dir = data.MODALITY_DIRS["video"]
        if root is None or video_dir not in path.parts:
            raise ValueError(
                f"{path} is not a video inside a SynthReact corpus (no {data.CORPUS_FILE} above "
                f"it); pass the true boxes instead (--boxes)"
            )
        meta = json.loads((root / data.CORPUS_FILE).read_text())
        clip = path.relative_to(root / video_dir).with_suffix("").as_posix()
        pid = clip.split("/")[-2]
        if pid not in meta.get("people", {}):
            raise ValueError(f"{path}: person {pid!r} is not in {root / data.CORPUS_FILE}")
        x = data.load_coeffs(data.clip_file(root, "coeffs", clip))
        renderer = render.FaceRenderer(
            meta.get("video_size", synth.VIDEO_SIZE),
            identity=render.Identity.random(meta["people"][pid]["appearance_seed"]),
        )
        oracle = cls.from_renderer(renderer, x)
        oracle.source = f"SynthReact {clip}"
        return oracle

    def settings(self) -> dict:
        return {"source": self.source, "frames": len(self.boxes)}

    def detect(self, frame: np.ndarray, index: int) -> np.ndarray:
        if not 0 <= index < len(self.boxes):
            raise ValueError(
                f"the oracle has boxes for {len(self.boxes)} frames; the video has more "
                f"(frame {index})"
            )
        h, w = np.shape(frame)[:2]
        left, top, right, bottom = _edges(self.boxes[index])
        if right < -0.5 or bottom < -0.5 or left > w - 0.5 or top > h - 0.5:
            return np.zeros((0, 4))
        return self.boxes[index][None].copy()


def detector(name: str, **kwargs) -> Detector:
    """``"haar"`` (keyword settings as :class:`HaarDetector`) or ``"oracle"`` (``boxes=`` or
    ``video=`` a SynthReact video path)."""
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "oracle":
        if "boxes" in kwargs:
            return OracleDetector(kwargs["boxes"])
        if "video" in kwargs:
            return OracleDetector.for_synth_video(kwargs["video"])
        raise ValueError("the oracle detector needs boxes= or video= (a SynthReact video)")
    raise ValueError(f"unknown detector {name!r}; valid: haar, oracle")


@dataclass
class Detections:
    """The face chosen in every frame of a video.

    ``boxes`` is ``(N, 4)`` centre boxes with NaN rows for frames where no face was found;
    ``candidates`` is how many faces the detector returned per frame.
    """

    boxes: np.ndarray
    candidates: np.ndarray
    frame_size: tuple[int, int]

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])

    @property
    def misses(self) -> np.ndarray:
        """Indices of the frames without a face."""
        return np.flatnonzero(~self.found)

    @property
    def miss_rate(self) -> float:
        return float(np.mean(~self.found))

    def summary(self) -> dict:
        return {
            "frames": len(self.boxes),
            "found": int(self.found.sum()),
            "missed": int((~self.found).sum()),
            "miss_rate": round(self.miss_rate, 6),
            "miss_frames": self.misses.tolist(),
            "multiple_frames": int((self.candidates > 1).sum()),
        }

    def per_frame(self) -> list[dict]:
        return [
            {
                "frame": i,
                "candidates": int(n),
                "box": None if np.isnan(b[0]) else [round(float(v), 3) for v in b],
            }
            for i, (b, n) in enumerate(zip(self.boxes, self.candidates, strict=True))
        ]


class Tracker:
    """Nearest-box association, as in the PFLPosNet code: the first face is the largest (or the
    top-most, ``first="topmost"``, the paper code's rule); later frames take the candidate whose
    corners are nearest (L1) to the last chosen box. A frame with no candidate is a miss."""

    def __init__(self, first: str = "largest"):
        if first not in ("largest", "topmost"):
            raise ValueError(f"first must be 'largest' or 'topmost', got {first!r}")
        self.first = first
        self.last: np.ndarray | None = None
        self.boxes: list[np.ndarray] = []
        self.candidates: list[int] = []

    def update(self, candidates) -> np.ndarray:
        c = np.asarray(candidates, dtype=float).reshape(-1, 4)
        self.candidates.append(len(c))
        if len(c) == 0:
            self.boxes.append(np.full(4, np.nan))
            return self.boxes[-1]
        if self.last is None:
            k = (
                np.argmax(c[:, 2] * c[:, 3])
                if self.first == "largest"
                else np.argmin(c[:, 1] - c[:, 3] / 2)
            )
        else:
            k = np.argmin(np.abs(_edges(c) - _edges(self.last)).sum(axis=1))
        self.last = c[k]
        self.boxes.append(c[k].copy())
        return self.boxes[-1]

    def result(self, frame_size: tuple[int, int]) -> Detections:
        boxes = np.array(self.boxes, dtype=float).reshape(-1, 4)
        return Detections(boxes, np.array(self.candidates, dtype=int), tuple(frame_size))


def detect_video(
    frames: Iterable[np.ndarray], det: Detector, first: str = "largest", progress=None
) -> Detections:
    """Run ``det`` over frames (an array or any iterable of ``(H, W, 3)`` uint8) and track."""
    tracker = Tracker(first)
    size = None
    steps = frames if progress is None else progress(frames)
    for i, frame in enumerate(steps):
        frame = _check_frame(frame)
        size = frame.shape[:2]
        tracker.update(det.detect(frame, i))
    if size is None:
        raise ValueError("no frames to detect faces in")
    return tracker.result(size)


def _check_frame(frame) -> np.ndarray:
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or (frame.shape[-1] != 3)
    ):
        shape = getattr(frame, "shape", None)
        raise ValueError(f"a frame must be a (H, W, 3) uint8 RGB array, got {shape}")
    return frame


# --- Windows (eqs 5, 7, 8) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The PFL window ``f_fix = (x_V, y_V, w_c, h_c)`` (centre form) and what shaped it."""

    x: float
    y: float
    w: float
    h: float
    span: tuple[float, float]
    """The boxes' extent before padding and the cap (eq 8's bracket)."""
    capped: bool
    """The faces' padded span does not fit the window (omega is smaller): faces at the extremes
    are cut."""
    shifted: bool
    """The window crossed the frame border and was moved back inside."""
    shrunk: bool
    """The window was larger than the frame and was reduced to it."""

    @property
    def box(self) -> np.ndarray:
        return np.array([self.x, self.y, self.w, self.h])


def omega_pair(omega) -> tuple[float, float]:
    """``(omega_w, omega_h)`` from one number or a pair; ``ValueError`` unless positive."""
    om = (omega, omega) if np.isscalar(omega) else tuple(omega)
    if len(om) != 2 or not all(np.isfinite(v) and v > 0 for v in om):
        raise ValueError(f"omega must be a positive number or a (w, h) pair, got {omega!r}")
    return float(om[0]), float(om[1])


def pfl_window(
    detections: Detections,
    omega=OMEGA,
    padding: float = PADDING,
    square: bool = True,
    extent: str = "span",
) -> Window:
    """Eqs 7-8: the fixed window from every frame's box (misses are skipped).

    Centre: the mean of the box centres (eq 7). Size: the span of the boxes plus ``padding`` on
    each side, capped at ``omega`` (eq 8); ``square`` makes both sides the larger one (so the
    resize keeps the aspect ratio); ``extent="omega"`` always uses omega itself, as the paper's
    code does (more context around small faces). The window is then moved back inside the frame,
    and reduced to the frame if it is larger. Raises :class:`NoFaceError` when no frame has a face.
    """
    om_w, om_h = omega_pair(omega)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if extent not in ("span", "omega"):
        raise ValueError(f"extent must be 'span' or 'omega', got {extent!r}")
    found = detections.boxes[detections.found]
    if len(found) == 0:
        raise NoFaceError(f"no face in any of the {len(detections.boxes)} frames")
    x, y = found[:, 0].mean(), found[:, 1].mean()
    e = _edges(found)
    span = (float(e[:, 2].max() - e[:, 0].min()), float(e[:, 3].max() - e[:, 1].min()))
    padded = (span[0] + 2 * padding, span[1] + 2 * padding)
    want = (om_w, om_h) if extent == "omega" else padded
    w, h = min(om_w, want[0]), min(om_h, want[1])
    if square:  # one side for both, still within omega both ways
        w = h = min(max(w, h), om_w, om_h)
    capped = padded[0] > w + 1e-9 or padded[1] > h + 1e-9
    fh, fw = detections.frame_size
    shrunk = w > fw or h > fh
    w, h = min(w, fw), min(h, fh)
    if square:
        w = h = min(w, h)
    nx = float(np.clip(x, (w - 1) / 2, fw - 1 - (w - 1) / 2))
    ny = float(np.clip(y, (h - 1) / 2, fh - 1 - (h - 1) / 2))
    shifted = not (math.isclose(nx, x, abs_tol=1e-9) and math.isclose(ny, y, abs_tol=1e-9))
    return Window(nx, ny, float(w), float(h), span, bool(capped), bool(shifted), bool(shrunk))


def fill_misses(boxes: np.ndarray) -> np.ndarray:
    """Hold the last found box through misses (the first found one before any); NaN stays NaN
    only when nothing was found at all."""
    b = np.array(boxes, dtype=float)
    ok = ~np.isnan(b[:, 0])
    if not ok.any():
        return b
    idx = np.where(ok, np.arange(len(b)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = np.flatnonzero(ok)[0]
    return b[idx]


def floating_windows(
    detections: Detections, margin: float = MARGIN, smooth: float = 0.0
) -> np.ndarray:
    """The floating window of every frame, ``(N, 4)``: a square centred on the face box with side
    ``max(w, h) * (1 + 2 margin)``, misses holding the last box, optionally smoothed with an
    exponential moving average (``smooth`` in [0, 1): the weight of the previous window)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    boxes = fill_misses(detections.boxes)
    if np.isnan(boxes).all():
        raise NoFaceError(f"no face in any of the {len(boxes)} frames")
    side = boxes[:, 2:].max(axis=1) * (1 + 2 * margin)
    win = np.column_stack([boxes[:, 0], boxes[:, 1], side, side])
    for i in range(1, len(win) if smooth else 0):
        win[i] = smooth * win[i - 1] + (1 - smooth) * win[i]
    return win


def windows_for(detections: Detections, mode: str, **options) -> np.ndarray:
    """Per-frame windows ``(N, 4)`` of either mode: ``"pfl"`` repeats :func:`pfl_window`
    (options: omega, padding, square, extent), ``"float"`` is :func:`floating_windows` (options:
    margin, smooth)."""
    return _windows(detections, mode, options)[0]


def _windows(detections: Detections, mode: str, options: dict) -> tuple[np.ndarray, Window | None]:
    """The per-frame windows and, for PFL, the :class:`Window` they repeat."""
    if mode == "pfl":
        win = pfl_window(detections, **options)
        return np.tile(win.box, (len(detections.boxes), 1)), win
    if mode == "float":
        return floating_windows(detections, **options), None
    raise ValueError(f"unknown crop mode {mode!r}; valid: {', '.join(MODES)}")


def _affine(window, out_w: int, out_h: int) -> np.ndarray:
    """The 2x3 map from frame pixels to an ``out_w x out_h`` crop of one window (centre form)."""
    x, y, w, h = window
    sx, sy = out_w / w, out_h / h
    return np.array([[sx, 0.0, (out_w - 1) / 2.0 - sx * x], [0.0, sy, (out_h - 1) / 2.0 - sy * y]])


def to_crop(points, windows, size: int) -> np.ndarray:
    """Frame pixel coordinates ``(N, 2)`` -> the same points in each frame's crop, ``(N, 2)``."""
    p = np.asarray(points, dtype=float)
    w = np.asarray(windows, dtype=float).reshape(-1, 4)
    s = np.column_stack([size / w[:, 2], size / w[:, 3]])
    return (p - w[:, :2]) * s + (size - 1) / 2.0


def crop(frame: np.ndarray, window, size: int = 256) -> np.ndarray:
    """Cut ``window`` (centre form) out of ``frame`` and resize it to ``size x size``; parts
    outside the frame come out black. Sub-pixel bilinear when enlarging; a window larger than
    ``size`` is cut at its own resolution first and then area-averaged down (``warpAffine``
    alone would alias: it ignores ``INTER_AREA``)."""
    import cv2

    frame = _check_frame(frame)
    w, h = float(window[2]), float(window[3])
    out = (size, size) if w <= size and h <= size else (max(size, round(w)), max(size, round(h)))
    cut = cv2.warpAffine(
        frame,
        _affine(window, *out),
        out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    if out == (size, size):
        return cut
    return cv2.resize(cut, (size, size), interpolation=cv2.INTER_AREA)


def crop_frames(frames: Iterable[np.ndarray], windows: np.ndarray, size: int = 256) -> Iterator:
    """Lazily crop every frame with its window (frames may be a generator)."""
    for frame, win in zip(frames, windows, strict=False):
        yield crop(frame, win, size)


def outside(windows: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Per window, whether part of it lies outside the frame (and so is black in the crop)."""
    e = _edges(np.asarray(windows, dtype=float).reshape(-1, 4))
    h, w = frame_size
    return (
        (e[:, 0] < -0.5 - 1e-6)
        | (e[:, 1] < -0.5 - 1e-6)
        | (e[:, 2] > w - 0.5 + 1e-6)
        | (e[:, 3] > h - 0.5 + 1e-6)
    )


def contained(boxes, windows) -> np.ndarray:
    """Per frame, whether the face box lies wholly inside the window (NaN boxes count False)."""
    b, w = _edges(np.asarray(boxes, dtype=float)), _edges(np.asarray(windows, dtype=float))
    with np.errstate(invalid="ignore"):
        ok = (b[:, :2] >= w[:, :2] - 1e-6).all(axis=1) & (b[:, 2:] <= w[:, 2:] + 1e-6).all(axis=1)
    return ok & ~np.isnan(b[:, 0])


# --- Retention ---------------------------------------------------------------------------------


def r2(truth, seen) -> float:
    """Share of the variance of ``truth`` ``(N, D)`` that a least-squares affine map from ``seen``
    ``(N, E)`` explains: 1 when the motion is all still there, ~0 when none is."""
    y = np.asarray(truth, dtype=float).reshape(len(truth), -1)
    x = np.asarray(seen, dtype=float).reshape(len(seen), -1)
    total = ((y - y.mean(axis=0)) ** 2).sum()
    if total == 0:
        raise ValueError("the true motion does not move, so its retention is undefined")
    a = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(1.0 - ((y - a @ coef) ** 2).sum() / total)


def retention(true_boxes, windows, size: int = 256) -> dict:
    """How much of the true image-plane head motion survives a crop.

    ``true_boxes`` ``(N, 4)`` are where the face really is in the frame; ``windows`` ``(N, 4)``
    the crop of each frame. ``translation`` is the R^2 of the face centre in crop pixels against
    its true path; ``scale`` the same for the face's size (zoom); ``inside`` the share of frames
    whose face lies wholly inside its crop.
    """
    b = np.asarray(true_boxes, dtype=float)
    w = np.asarray(windows, dtype=float)
    if b.shape != w.shape or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"true boxes and windows must both be (N, 4), got {b.shape}, {w.shape}")
    centre = to_crop(b[:, :2], w, size)
    size_seen = b[:, 2] * size / w[:, 2]
    out = {"translation": r2(b[:, :2], centre)}
    out["scale"] = r2(b[:, 2], size_seen) if np.ptp(b[:, 2]) > 1e-9 else float("nan")
    out["inside"] = float(contained(b, w).mean())
    return out


# --- What a coefficient fit sees ---------------------------------------------------------------


def crop_coeffs(coeffs, windows, frame_size, focal: float, size: int = 256, out_focal=None):
    """The coefficients a fit on the cropped video would recover (head origin exact, the rest of
    the head to first order): rotation and expression unchanged; translation re-expressed for a
    ``size x size`` camera of focal ``out_focal`` (default the renderer's, 2.6 x size) looking
    through each frame's window:

    ``tx' = tx + tz (c_x - x_win) / f``, ``ty' = ty + tz (c_y - y_win) / f``,
    ``tz' = tz * w_win * out_focal / (f * size)``.

    A floating window follows the face, so ``tx', ty'`` stay near 0 and ``tz'`` near constant:
    translation and zoom are gone. A PFL window is fixed, so they stay affine in the truth.
    """
    from reactlib.render import FOCAL_SCALE

    x = np.array(coeffs, dtype=float)
    if x.ndim != 2 or x.shape[1] != NUM_COEFFS:
        raise ValueError(f"coefficients must be (T, {NUM_COEFFS}), got {x.shape}")
    w = np.asarray(windows, dtype=float).reshape(-1, 4)
    if len(w) not in (1, len(x)):
        raise ValueError(f"need one window or one per frame ({len(x)}), got {len(w)}")
    if not np.allclose(w[:, 2], w[:, 3]):
        raise ValueError("coefficient views need square windows")
    h_f, w_f = frame_size
    cx, cy = (w_f - 1) / 2.0, (h_f - 1) / 2.0
    f_out = FOCAL_SCALE * size if out_focal is None else float(out_focal)
    t = x[:, TRANSLATION]
    out = x.copy()
    out[:, TRANSLATION.start] = t[:, 0] + t[:, 2] * (cx - w[:, 0]) / focal
    out[:, TRANSLATION.start + 1] = t[:, 1] + t[:, 2] * (cy - w[:, 1]) / focal
    out[:, TRANSLATION.start + 2] = t[:, 2] * w[:, 2] * f_out / (focal * size)
    dtype = np.asarray(coeffs).dtype
    return out.astype(dtype) if dtype.kind == "f" else out


def coeff_view(coeffs, mode: str, renderer=None, size: int = 256, **options) -> np.ndarray:
    """What a coefficient fit would see under a ``"pfl"`` or ``"float"`` crop of the video the
    renderer (default :class:`reactlib.render.FaceRenderer` at 256 px) makes from ``coeffs``:
    the oracle boxes give the windows (:func:`windows_for`, same options), and
    :func:`crop_coeffs` re-expresses the translation. Rotation and expression pass unchanged."""
    from reactlib.render import FaceRenderer

    renderer = FaceRenderer(256) if renderer is None else renderer
    x = np.asarray(coeffs)
    boxes = OracleDetector.from_renderer(renderer, x).boxes
    det = Detections(boxes, np.ones(len(boxes), dtype=int), renderer.size)
    win = windows_for(det, mode, **options)
    return crop_coeffs(x, win, renderer.size, renderer.focal, size)


# --- A real photograph moving along a known path ------------------------------------------------

ASTRONAUT_FACE = (224.0, 113.0, 95.0, 95.0)
"""Haar's box of the face in ``skimage.data.astronaut()`` (centre form; OpenCV gives
``[177, 66, 95, 95]`` as left, top, w, h)."""


@dataclass
class PhotoVideo:
    """Frames of the astronaut photograph's head moved along a known path, and the truth."""

    frames: np.ndarray
    boxes: np.ndarray
    """``(T, 4)`` true face boxes (centre form; the size is the scaled upright box)."""
    roll: np.ndarray
    """``(T,)`` in-plane rotation in degrees (positive: clockwise in the image)."""


def _astronaut():
    from skimage import data as skdata

    return skdata.astronaut()


def _background(frame_size, seed: int) -> np.ndarray:
    import cv2

    h, w = frame_size
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 1, (max(2, h // 40), max(2, w // 40), 3))
    tex = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    img = 60 + 90 * ramp * np.array([0.6, 0.8, 1.0]) + 50 * tex
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_frame(centre, scale: float, roll: float, frame_size=(360, 480), background=None):
    """One composite frame: the astronaut's head (an elliptical cut around Haar's face box),
    scaled by ``scale``, rotated ``roll`` degrees clockwise, its face centre placed at ``centre``
    (x, y) on ``background`` (default a smooth textured gradient). Returns the frame and the true
    face box ``(x, y, 95 scale, 95 scale)``."""
    import cv2

    photo = _astronaut()
    fx, fy, fw, _ = ASTRONAUT_FACE
    h, w = frame_size
    bg = _background(frame_size, 0) if background is None else background
    # OpenCV's angle is counter-clockwise in the image; ours is clockwise.
    m = cv2.getRotationMatrix2D((fx, fy), -float(roll), float(scale))
    m[:, 2] += np.asarray(centre, dtype=float) - np.array([fx, fy])
    mask = np.zeros(photo.shape[:2], dtype=np.float32)
    cv2.ellipse(mask, (int(fx), int(fy + 8)), (int(0.95 * fw), int(1.25 * fw)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 6)
    warped = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    frame = (alpha * warped + (1 - alpha) * bg).round().astype(np.uint8)
    box = np.array([centre[0], centre[1], fw * scale, fw * scale], dtype=float)
    return frame, box


def photo_path(
    frames: int,
    frame_size=(360, 480),
    roll_max: float = 15.0,
    zoom=(0.8, 1.2),
    amplitude=(50.0, 30.0),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth known path: face centres ``(T, 2)``, scales ``(T,)`` and rolls ``(T,)`` (degrees,
    within +-roll_max). The centre sways up to ``amplitude`` (x, y) pixels around the frame centre
    on a Lissajous-like curve with seed-drawn phases; the default keeps the padded face span
    within omega = 256, so the default PFL window holds the whole face in every frame."""
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    if not 0 < zoom[0] <= zoom[1]:
        raise ValueError(f"zoom must be (low, high) with 0 < low <= high, got {zoom!r}")
    rng = np.random.default_rng(seed)
    h, w = frame_size
    s = np.linspace(0, 2 * np.pi, frames)
    ph = rng.uniform(0, 2 * np.pi, 4)
    scale = zoom[0] + (zoom[1] - zoom[0]) * 0.5 * (1 + np.sin(s + ph[0]))
    cx = (w - 1) / 2 + amplitude[0] * np.sin(s + ph[1])
    cy = (h - 1) / 2 + amplitude[1] * np.sin(2 * s + ph[2])
    roll = roll_max * np.sin(3 * s + ph[3])
    return np.column_stack([cx, cy]), scale, roll


def photo_video(
    frames: int = 100,
    frame_size=(360, 480),
    roll_max: float = 15.0,
    zoom=(0.8, 1.2),
    amplitude=(50.0, 30.0),
    seed: int = 0,
) -> PhotoVideo:
    """The astronaut's head moved along :func:`photo_path` (translation, zoom, roll)."""
    centres, scales, rolls = photo_path(frames, frame_size, roll_max, zoom, amplitude, seed)
    bg = _background(frame_size, seed)
    out = np.empty((frames, *frame_size, 3), dtype=np.uint8)
    boxes = np.empty((frames, 4))
    for i in range(frames):
        out[i], boxes[i] = photo_frame(centres[i], scales[i], rolls[i], frame_size, bg)
    return PhotoVideo(out, boxes, rolls)


# --- Streaming over video files ------------------------------------------------------------------


@dataclass
class CropReport:
    """What :func:`crop_video` did: the window(s), every frame's detection and the flags."""

    source: str
    output: str | None
    mode: str
    detector: dict
    frames: int
    frame_size: tuple[int, int]
    fps: float
    size: int
    detections: dict
    window: dict | None
    windows_outside_frame: int
    faces_outside_window: int
    warnings: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    per_frame: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path) -> Path:
        from reactlib import paths

        path = Path(path)

        def dump(tmp: Path) -> None:
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

        paths.write_atomically(path, dump)
        return path


def check_crop_options(
    mode: str = "pfl",
    size: int = 256,
    omega=OMEGA,
    padding: float = PADDING,
    extent: str = "span",
    margin: float = MARGIN,
    smooth: float = 0.0,
    prefix: str = "",
) -> None:
    """``ValueError`` naming the first bad option of :func:`crop_video`, before any video is read.
    The command line calls it with ``prefix="--"`` so the messages name its flags, and to tell
    option errors (exit 2) from problems with the video (exit 1)."""
    if mode not in MODES:
        raise ValueError(f"unknown crop {prefix}mode {mode!r}; valid: {', '.join(MODES)}")
    if not isinstance(size, int | np.integer) or size < 8:
        raise ValueError(f"{prefix}size must be at least 8, got {size!r}")
    omega_pair(omega)
    if extent not in ("span", "omega"):
        raise ValueError(f"{prefix}extent must be 'span' or 'omega', got {extent!r}")
    if padding < 0 or margin < 0 or not 0.0 <= smooth < 1.0:
        raise ValueError(
            f"need {prefix}padding >= 0, {prefix}margin >= 0 and 0 <= {prefix}smooth < 1, got "
            f"{padding}, {margin}, {smooth}"
        )


def crop_video(
    src,
    dst=None,
    mode: str = "pfl",
    det: Detector | str = "haar",
    size: int = 256,
    *,
    omega=OMEGA,
    padding: float = PADDING,
    square: bool = True,
    extent: str = "span",
    margin: float = MARGIN,
    smooth: float = 0.0,
    first: str = "largest",
    report=None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> CropReport:
    """Crop a video file with PFL or the floating window, in two streaming passes (detect, then
    crop and encode), holding one frame at a time.

    Writes ``dst`` (H.264 mp4, unless None) and, when ``report`` is a path, the JSON report: it is
    written even when the crop fails for want of a face, so the misses can be inspected. Raises
    :class:`NoFaceError` (nothing written to ``dst``) when no frame has a face, and ``ValueError``
    naming the file for an unreadable or empty video.
    """
    from reactlib import render

    check_crop_options(mode, size, omega, padding, extent, margin, smooth)
    src = Path(src)
    if isinstance(det, str):
        det = detector(det, video=src) if det == "oracle" else detector(det)
    info = render.video_info(src)
    started = time.perf_counter()
    bar = progress or (lambda it: it)
    detections = detect_video(bar(render.iter_video(src)), det, first=first)
    detected = time.perf_counter()
    rep = CropReport(
        source=str(src),
        output=None if dst is None else str(dst),
        mode=mode,
        detector={"name": det.name, **det.settings()},
        frames=len(detections.boxes),
        frame_size=detections.frame_size,
        fps=info["fps"],
        size=int(size),
        detections=detections.summary(),
        window=None,
        windows_outside_frame=0,
        faces_outside_window=0,
        per_frame=detections.per_frame(),
    )
    expected = info.get("frames")
    if expected is not None and rep.frames < expected - 1:
        rep.warnings.append(
            f"{src}: decoded {rep.frames} of the {expected} frames its header announces; "
            "the file looks truncated"
        )
    options = (
        {"omega": omega, "padding": padding, "square": square, "extent": extent}
        if mode == "pfl"
        else {"margin": margin, "smooth": smooth}
    )
    try:
        windows, win = _windows(detections, mode, options)
    except NoFaceError as err:
        rep.warnings.append(f"{src}: {err}; nothing was cropped")
        if report is not None:
            rep.write(report)
        raise NoFaceError(f"{src}: {err} (detector {det.name}); nothing was written") from err
    if win is not None:
        rep.window = asdict(win)
        if win.capped:
            rep.warnings.append(
                f"the faces span {win.span[0]:.0f}x{win.span[1]:.0f} px, more than omega "
                f"{omega_pair(omega)}: the window is capped and cuts faces at the extremes"
            )
        if win.shifted:
            rep.warnings.append("the window crossed the frame border and was moved inside it")
        if win.shrunk:
            rep.warnings.append("the window was larger than the frame and was reduced to it")
    else:
        rep.window = {
            "side_min": float(windows[:, 2].min()),
            "side_max": float(windows[:, 2].max()),
            "margin": margin,
            "smooth": smooth,
        }
    off = outside(windows, detections.frame_size)
    rep.windows_outside_frame = int(off.sum())
    if off.any() and mode == "float":
        rep.warnings.append(
            f"{int(off.sum())} floating windows reach past the frame border (black there)"
        )
    rep.faces_outside_window = int((detections.found & ~contained(detections.boxes, windows)).sum())
    if dst is not None:
        frames = bar(render.iter_video(src))
        render.write_video(dst, crop_frames(frames, windows, size), fps=info["fps"])
    done = time.perf_counter()
    rep.seconds = {
        "detect": round(detected - started, 3),
        "crop_and_encode": round(done - detected, 3),
        "total": round(done - started, 3),
        "frames_per_second": round(rep.frames / max(done - started, 1e-9), 2),
    }
    if report is not None:
        rep.write(report)
    return rep


def crop_array(frames: np.ndarray, windows: np.ndarray, size: int = 256) -> np.ndarray:
    """Crop an in-memory clip ``(T, H, W, 3)`` with per-frame windows: ``(T, size, size, 3)``."""
    return np.stack(list(crop_frames(frames, windows, size)))


def sweep(values: Sequence, fn: Callable[[object], dict], progress=None) -> list[dict]:
    """``[{"value": v, **fn(v)} for v in values]`` with an optional progress bar (omega sweeps,
    roll and size sweeps in the notebooks)."""
    it = values if progress is None else progress(values)
    return [{"value": v, **fn(v)} for v in it]
