"""PFL's fixed face crop against the floating window (PFLPosNet eqs 5, 7, 8), on arrays and video.

PFLPosNet's pose-aware fixed face crop against the floating face-centred window: windows from
per-frame detections, sub-pixel crops, how much head motion survives a crop (measured on the
crop's pixels by a detector that does not know the truth, beside the analytic mapping of the true
box through the window), what a coefficient fit would see under each crop, and both crops
streamed over video files.

Every box and window is in the paper's centre form ``(x, y, w, h)`` (see
:mod:`reactlib.face.detect`).
The kinematics behind the crops (eqs 2-4, 9-10) are :mod:`reactlib.face.kinematics`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reactlib import paths
from reactlib.errors import DataError, UsageError
from reactlib.face import video
from reactlib.face.coeffs import NUM_COEFFS, TRANSLATION
from reactlib.face.detect import (
    Detections,
    Detector,
    OracleDetector,
    check_frame,
    detect_video,
    detector,
    edges,
)
from reactlib.face.render import FOCAL_SCALE, FaceRenderer

MODES = ("pfl", "float")
OMEGA = (256, 256)
"""The paper's maximum window size ``(omega_w, omega_h)`` in pixels (its section 5.1)."""
PADDING = 20
"""Pixels added on every side of the PFL window before the cap (the paper code's default)."""
MARGIN = 0.2
"""The floating crop's side is ``max(w, h) * (1 + 2 * MARGIN)`` of the face box."""


class NoFaceError(DataError):
    """No frame of a video had a face, so no crop window can be placed."""


class FrameCountError(DataError):
    """The frames to crop and the windows placed for them differ in number."""


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
    e = edges(found)
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

    frame = check_frame(frame)
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
    """Lazily crop every frame with its window (frames may be a generator).

    There must be exactly one window per frame: a :class:`FrameCountError` says so
    when the frames run out early or go on past the last window (a video that decodes to a
    different length the second time would otherwise be cropped with shifted windows).
    """
    windows = np.asarray(windows)
    count = 0
    for frame in frames:
        if count == len(windows):
            raise FrameCountError(f"more frames than the {len(windows)} windows placed for them")
        yield crop(frame, windows[count], size)
        count += 1
    if count != len(windows):
        raise FrameCountError(f"{len(windows)} windows were placed but only {count} frames came")


def outside(windows: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Per window, whether part of it lies outside the frame (and so is black in the crop)."""
    e = edges(np.asarray(windows, dtype=float).reshape(-1, 4))
    h, w = frame_size
    return (
        (e[:, 0] < -0.5 - 1e-6)
        | (e[:, 1] < -0.5 - 1e-6)
        | (e[:, 2] > w - 0.5 + 1e-6)
        | (e[:, 3] > h - 0.5 + 1e-6)
    )


def coverage(boxes, windows) -> np.ndarray:
    """Per frame, the share of the face box's area that lies inside the window (0 to 1; NaN for
    a NaN box): 1 when the crop holds the whole face, 0.5 when it cuts it in half."""
    b, w = edges(np.asarray(boxes, dtype=float)), edges(np.asarray(windows, dtype=float))
    b, w = np.broadcast_arrays(b.reshape(-1, 4), w.reshape(-1, 4))
    width = np.clip(np.minimum(b[:, 2], w[:, 2]) - np.maximum(b[:, 0], w[:, 0]), 0, None)
    height = np.clip(np.minimum(b[:, 3], w[:, 3]) - np.maximum(b[:, 1], w[:, 1]), 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, width * height / area, np.nan)


def contained(boxes, windows) -> np.ndarray:
    """Per frame, whether the face box lies wholly inside the window (NaN boxes count False)."""
    b, w = edges(np.asarray(boxes, dtype=float)), edges(np.asarray(windows, dtype=float))
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


def analytic_retention(true_boxes, windows, size: int = 256) -> dict:
    """ANALYTIC retention: the true face box mapped through each frame's window, no pixels looked
    at. Use :func:`retention` to measure a crop.

    ``true_boxes`` ``(N, 4)`` are where the face really is in the frame; ``windows`` ``(N, 4)``
    the crop of each frame. ``translation`` is the R^2 of the true face centre mapped into crop
    pixels against its true path; ``scale`` the same for the face's width; ``inside`` the share
    of frames whose true face lies wholly inside its window; ``coverage`` the mean share of the
    true face box's area inside the window (:func:`coverage`).

    A fixed window is one affine map of the frame, so its ``translation`` and ``scale`` are 1 **by
    construction**, for any fixed window, wherever it sits, even one that misses the face or cuts
    it; a floating window that follows the true boxes scores 0 by construction. Only ``inside``
    and ``coverage`` depend on where the window is. It is the geometry of a crop, not a
    measurement of one.
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
    out["coverage"] = float(coverage(b, w).mean())
    return out


MIN_FOUND = 10
"""Fewest frames with a face for :func:`retention` to fit its R^2 (an affine fit of a 2-D path has
three coefficients per coordinate, so a handful of points would fit almost perfectly)."""


def retention(
    crops: Iterable[np.ndarray],
    true_boxes,
    det: Detector,
    first: str = "largest",
    *,
    windows=None,
):
    """How much of the true head motion, and of the face, a cropped video keeps: the motion read
    back from the crop's **pixels**, the face's share from the crop windows' geometry.

    ``crops`` are the crop's frames (an array, :func:`crop_frames`, or a cropped file read with
    :func:`reactlib.face.video.iter_video`: any iterable, consumed one frame at a time); ``det``
    finds
    the face in them without knowing the truth (:class:`~reactlib.face.detect.HaarDetector`, or
    :class:`~reactlib.face.detect.SkinDetector` for rendered faces; an oracle is refused, since its
    boxes are the truth in frame pixels), tracked to one face per frame. ``true_boxes``
    ``(N, 4)`` are where the face really is in the original frames, one per crop; ``windows``
    ``(N, 4)`` (or one ``(4,)``) the crop window of each frame, which ``coverage`` needs.

    Returns a dict:

    * ``translation``: R^2 of the least-squares affine map from the face centre seen in crop
      pixels to the true centre in frame pixels (:func:`r2`), over the frames where the face was
      found: 1 when the crop keeps the head's path, about 0 when it has cropped it away;
    * ``scale``: the same for the seen face width against the true width (zoom);
    * ``found``: the share of frames in which the detector found a face in the crop;
    * ``face_pixels``: the median width, in crop pixels, of the faces found;
    * ``coverage``: the mean share of the true face box's area inside its window
      (:func:`coverage`; NaN without ``windows``): 0.5 for a window that cuts the face in half;
    * ``retained``: ``translation * coverage``, the headline: the path is kept *and* the face
      is in the crop (NaN when either is);
    * ``frames``, ``found_frames`` and ``boxes`` (the seen box per crop, ``(N, 4)`` in crop
      pixels, NaN where none was found).

    The R^2 values are NaN when fewer than :data:`MIN_FOUND` frames have a face or the true path
    does not move. A window that loses the face shows here as fewer frames found; one that cuts
    the same part of it in every frame does not (the detector finds the part that is left, and
    its path is an affine copy of the truth, R^2 1), which is why ``coverage`` is measured too.
    """
    if isinstance(det, OracleDetector):
        raise ValueError(
            "retention needs a detector that finds the face in the crop's pixels; the oracle's "
            "boxes are the truth in frame pixels"
        )
    b = np.asarray(true_boxes, dtype=float)
    if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
        raise ValueError(f"true boxes must be a finite (N, 4) array, got shape {b.shape}")
    seen = detect_video(crops, det, first=first)
    if len(seen.boxes) != len(b):
        raise ValueError(f"{len(seen.boxes)} crops but {len(b)} true boxes: need one per crop")
    ok = seen.found
    nan = float("nan")
    out = {
        "translation": nan,
        "scale": nan,
        "found": float(ok.mean()),
        "face_pixels": float(np.median(seen.boxes[ok, 2])) if ok.any() else nan,
        "coverage": nan,
        "retained": nan,
        "frames": len(b),
        "found_frames": int(ok.sum()),
        "boxes": seen.boxes,
    }
    if ok.sum() >= MIN_FOUND:
        truth, boxes = b[ok], seen.boxes[ok]
        if np.ptp(truth[:, :2], axis=0).max() > 1e-9:
            out["translation"] = r2(truth[:, :2], boxes[:, :2])
        if np.ptp(truth[:, 2]) > 1e-9:
            out["scale"] = r2(truth[:, 2], boxes[:, 2])
    if windows is not None:
        w = np.asarray(windows, dtype=float)
        if w.shape not in ((4,), b.shape):
            raise ValueError(
                f"windows must be (4,) or {b.shape} like the true boxes, got {w.shape}"
            )
        out["coverage"] = float(coverage(b, w).mean())
        out["retained"] = out["translation"] * out["coverage"]
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

    Rotation is passed through as it is: a fit with its camera axis through the crop's centre
    would also see the head from a shifted direction, a yaw of about ``-atan((x_face - x_win) /
    f)`` (and a pitch likewise), which a floating window turns into a yaw that follows ``tx`` and
    a fixed window into a constant one (notebook 02 measures it). These views leave that out.
    """
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
    renderer (default :class:`reactlib.face.render.FaceRenderer` at 256 px) makes from ``coeffs``:
    the oracle boxes give the windows (:func:`windows_for`, same options), and
    :func:`crop_coeffs` re-expresses the translation. Rotation and expression pass unchanged."""
    renderer = FaceRenderer(256) if renderer is None else renderer
    x = np.asarray(coeffs)
    boxes = OracleDetector.from_renderer(renderer, x).boxes
    det = Detections.from_boxes(boxes, renderer.size)
    win = windows_for(det, mode, **options)
    return crop_coeffs(x, win, renderer.size, renderer.focal, size)


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
    """:class:`~reactlib.errors.UsageError` naming the first bad option of :func:`crop_video`,
    before any video is read.
    The command line calls it with ``prefix="--"`` so the messages name its flags, and to tell
    option errors (exit 2) from problems with the video (exit 1)."""
    if mode not in MODES:
        raise UsageError(f"unknown crop {prefix}mode {mode!r}; valid: {', '.join(MODES)}")
    if not isinstance(size, int | np.integer) or size < 8:
        raise UsageError(f"{prefix}size must be at least 8, got {size!r}")
    try:
        omega_pair(omega)
    except ValueError as err:
        raise UsageError(f"{prefix}{err}") from err
    if extent not in ("span", "omega"):
        raise UsageError(f"{prefix}extent must be 'span' or 'omega', got {extent!r}")
    if padding < 0 or margin < 0 or not 0.0 <= smooth < 1.0:
        raise UsageError(
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
    :class:`NoFaceError` (nothing written to ``dst``) when no frame has a face,
    :class:`~reactlib.errors.DataError` naming the file for an unreadable or empty video or one
    that decodes to a different number of frames the second time, and
    :class:`~reactlib.errors.UsageError` for a bad option.
    """
    check_crop_options(mode, size, omega, padding, extent, margin, smooth)
    src = Path(src)
    if isinstance(det, str):
        det = detector(det)
    info = video.video_info(src)
    started = time.perf_counter()
    bar = progress or (lambda it: it)
    detections = detect_video(bar(video.iter_video(src)), det, first=first)
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
        frames = bar(video.iter_video(src))
        try:
            video.write_video(dst, crop_frames(frames, windows, size), fps=info["fps"])
        except FrameCountError as err:  # the decoder's own errors already name the file
            raise DataError(
                f"{src}: the second decode differs from the first ({rep.frames} frames): {err}; "
                "nothing was written"
            ) from err
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
