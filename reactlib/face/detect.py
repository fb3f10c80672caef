"""Face detection and tracking: OpenCV's Haar cascade, a true-box oracle, one face per frame.

The Haar cascade runs at the PFLPosNet code's settings; the oracle knows the true boxes (for
rendered faces); the skin detector finds a rendered face by its known skin colour, not knowing
where it is; nearest-box tracking keeps one face per frame.

Every face box here is the paper's ``f_i = (x_i, y_i, w_i, h_i)``: **centre** ``x, y`` and size
``w, h`` in pixels, with pixel centres on integer coordinates (the renderer's convention).
:func:`from_corner` converts OpenCV's ``(left, top, w, h)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from reactlib.face.coeffs import NUM_COEFFS

HAAR_SETTINGS = {"scale_factor": 1.1, "min_neighbors": 6, "min_size": 60}
"""``detectMultiScale`` settings of the PFLPosNet code."""
HAAR_CASCADE = "haarcascade_frontalface_default.xml"


# --- Boxes -------------------------------------------------------------------------------------


def from_corner(boxes) -> np.ndarray:
    """OpenCV ``(left, top, w, h)`` -> centre ``(x, y, w, h)`` (pixel centres on integers)."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4).copy()
    b[:, :2] += (b[:, 2:] - 1.0) / 2.0
    return b


def edges(boxes: np.ndarray) -> np.ndarray:
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

        frame = check_frame(frame)
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
        """Boxes of :meth:`reactlib.face.render.FaceRenderer.face_box` for a coefficient clip."""
        box = renderer.face_box(np.asarray(coeffs).reshape(-1, NUM_COEFFS))
        # face_box gives the continuous extent of the projected points: its centre is lo + w / 2
        # (from_corner's (w - 1) / 2 is for OpenCV's integer pixel boxes).
        centre = np.column_stack([box[:, :2] + box[:, 2:] / 2.0, box[:, 2:]])
        return cls(centre, source="renderer")

    def settings(self) -> dict:
        return {"source": self.source, "frames": len(self.boxes)}

    def detect(self, frame: np.ndarray, index: int) -> np.ndarray:
        if not 0 <= index < len(self.boxes):
            raise ValueError(
                f"the oracle has boxes for {len(self.boxes)} frames; the video has more "
                f"(frame {index})"
            )
        h, w = np.shape(frame)[:2]
        left, top, right, bottom = edges(self.boxes[index])
        if right < -0.5 or bottom < -0.5 or left > w - 0.5 or top > h - 0.5:
            return np.zeros((0, 4))
        return self.boxes[index][None].copy()


class SkinDetector:
    """The face of a flat-shaded rendered person, found by its skin colour: the largest
    8-connected region of pixels within ``tolerance`` (per RGB channel) of ``colour``, if it
    covers at least ``min_area`` pixels. One box per frame at most.

    It knows the colour of the skin but not where the face is, so it can measure a crop without
    knowing the truth. The box is the skin-coloured region's extent, not the renderer's face box:
    hair over the forehead shortens it, and skin-coloured parts that touch the face (the neck of a
    dark skin tone, whose shade differs by a few levels; an ear when the head turns) lengthen it.
    Those offsets follow the head, so an affine fit from its path to the true one absorbs them.
    Haar misses many rendered faces (low contrast, no texture); this detector suits them, not
    photographs.
    """

    name = "skin"

    def __init__(self, colour, tolerance: int = 8, min_area: int = 64):
        c = tuple(int(v) for v in np.asarray(colour).reshape(-1))
        if len(c) != 3 or not all(0 <= v <= 255 for v in c):
            raise ValueError(f"colour must be an RGB triple of ints in [0, 255], got {colour!r}")
        if not 0 <= int(tolerance) <= 255 or int(min_area) < 1:
            raise ValueError(
                f"tolerance must be in [0, 255] and min_area >= 1, got {tolerance}, {min_area}"
            )
        self.colour = c
        self.tolerance = int(tolerance)
        self.min_area = int(min_area)
        self._low = np.clip(np.array(c) - self.tolerance, 0, 255).astype(np.uint8)
        self._high = np.clip(np.array(c) + self.tolerance, 0, 255).astype(np.uint8)

    @classmethod
    def for_identity(cls, identity, **kwargs) -> SkinDetector:
        """The detector for a :class:`reactlib.face.render.Identity`'s skin colour."""
        return cls(identity.skin, **kwargs)

    def settings(self) -> dict:
        return {"colour": list(self.colour), "tolerance": self.tolerance, "min_area": self.min_area}

    def detect(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        import cv2

        frame = check_frame(frame)
        mask = cv2.inRange(np.ascontiguousarray(frame), self._low, self._high)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count < 2:  # label 0 is everything outside the mask
            return np.zeros((0, 4))
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        left, top, w, h, area = stats[k]
        if area < self.min_area:
            return np.zeros((0, 4))
        return from_corner([left, top, w, h])


def detector(name: str, **kwargs) -> Detector:
    """``"haar"`` (keyword settings as :class:`HaarDetector`) or ``"oracle"`` (``boxes=``; the
    oracle of a SynthReact video is :func:`reactlib.data.synth.oracle_detector`)."""
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "oracle":
        if "boxes" in kwargs:
            return OracleDetector(kwargs["boxes"])
        raise ValueError(
            "the oracle detector needs boxes=; for a SynthReact video use "
            "reactlib.data.synth.oracle_detector(path)"
        )
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

    @classmethod
    def from_boxes(cls, boxes, frame_size, candidates=None) -> Detections:
        """Detections from known boxes ``(N, 4)`` (NaN rows for misses) in a ``(H, W)`` frame;
        ``candidates`` defaults to one face per found frame and none per miss."""
        b = np.asarray(boxes, dtype=float).reshape(-1, 4)
        n = np.where(np.isnan(b[:, 0]), 0, 1) if candidates is None else np.asarray(candidates)
        return cls(b, n.astype(int), (int(frame_size[0]), int(frame_size[1])))

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
            k = np.argmin(np.abs(edges(c) - edges(self.last)).sum(axis=1))
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
        frame = check_frame(frame)
        size = frame.shape[:2]
        tracker.update(det.detect(frame, i))
    if size is None:
        raise ValueError("no frames to detect faces in")
    return tracker.result(size)


def check_frame(frame) -> np.ndarray:
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or (frame.shape[-1] != 3)
    ):
        shape = getattr(frame, "shape", None)
        raise ValueError(f"a frame must be a (H, W, 3) uint8 RGB array, got {shape}")
    return frame
