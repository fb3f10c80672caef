"""Demonstration footage with a known head path: a real photograph moved along a smooth path.

scikit-image's astronaut photograph is moved, zoomed and rolled along a known path, so that
detectors and crops can be checked against the truth on real pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
