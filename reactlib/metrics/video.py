"""VBench-style video metrics on rendered reactions, with weight-free CPU substitutes (``*_cpu``).

PFLPosNet judges smoothness with VBench on rendered listener videos. VBench's learned components
(DINO, CLIP, AMT-S, RAFT, MUSIQ) need weights that cannot be downloaded here, so each metric keeps
VBench's protocol (frame sampling, pairing, clamping, thresholds, aggregation) and swaps only the
learned part for a classical one. The numbers are therefore *not* VBench's and are named ``*_cpu``;
compare methods rendered the same way with them, never with published VBench figures.

- ``subject_consistency_cpu``: DINO ViT-B/16 features -> HOG (OpenCV) of the grey frame;
- ``background_consistency_cpu``: CLIP ViT-B/32 features -> an HSV colour histogram, 8 x 8 x 8;
- ``motion_smoothness_cpu``: AMT-S frame interpolation -> DIS optical flow and half-warps;
- ``temporal_flickering_cpu``: no learned part, identical (without VBench's static filter);
- ``dynamic_degree_cpu``: RAFT optical flow -> DIS optical flow;
- ``imaging_quality_cpu``: MUSIQ (SPAQ) -> a sharpness and noise composite.

- **Consistency** (subject, background): with unit feature vectors ``f_t``, each frame ``t >= 1``
  scores ``(max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))) / 2``; the video scores their mean.
- **Motion smoothness**: the even frames ``0, 2, 4, ...`` are interpolated pairwise and each
  midpoint compared with the true odd frame between them: ``(255 - mean |I_odd - I_interp|) / 255``.
  The interpolator warps each neighbour half-way along DIS optical flow and averages the two.
- **Temporal flickering**: ``(255 - mean_t mean |I_{t+1} - I_t|) / 255`` over all frames, exactly
  VBench's. VBench scores only *static* videos (its RAFT filter); reactions are never static, so
  no filter is applied and the figure measures frame-to-frame change, motion included.
- **Dynamic degree**: frames sub-sampled to about 8 fps (every ``round(fps / 8)``-th); per
  consecutive pair the mean of the largest 5 % flow magnitudes; the video is dynamic once
  ``round(4 T' / 16)`` pairs exceed ``6 min(H, W) / 256`` pixels. Returned with the raw magnitudes.
- **Imaging quality**: per frame (longer side at most 512), a sharpness score times a noise
  score, each in [0, 1] (:func:`frame_quality`); the video scores their mean over frames. A
  hand-made scale: only differences between videos rendered alike mean anything.

Frames are ``(T, H, W, 3)`` uint8 RGB (what :class:`reactlib.face.render.FaceRenderer` renders).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from reactlib.errors import UsageError
from reactlib.face.coeffs import FPS

Flow = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""An optical-flow function ``(a, b) -> (H, W, 2)`` of two RGB frames, ``a(x) ~ b(x + flow(x))``."""

VIDEO_METRICS = (
    "subject_consistency_cpu",
    "background_consistency_cpu",
    "motion_smoothness_cpu",
    "temporal_flickering_cpu",
    "dynamic_degree_cpu",
    "imaging_quality_cpu",
)


def _frames(frames, least: int = 2) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UsageError(
            f"frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}"
        )
    if len(frames) < least:
        raise UsageError(f"this metric needs at least {least} frames, got {len(frames)}")
    return frames


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def consistency(features: np.ndarray) -> float:
    """VBench's consistency of unit feature vectors ``(T, F)``: the mean over ``t >= 1`` of
    ``(max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))) / 2``."""
    f = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
    previous = np.clip((f[1:] * f[:-1]).sum(1), 0, None)
    first = np.clip(f[1:] @ f[0], 0, None)
    return float(((previous + first) / 2).mean())


def _hog(size: tuple[int, int]) -> cv2.HOGDescriptor:
    return cv2.HOGDescriptor(size, (16, 16), (8, 8), (8, 8), 9)


def subject_consistency_cpu(frames, box=None) -> float:
    """Subject consistency with HOG features in place of DINO's: each grey frame (or its ``box``
    ``(x, y, w, h)``, e.g. the face) resized so its shorter side is 224 pixels, cropped to a
    multiple of 8, then :func:`consistency`."""
    frames = _frames(frames)
    if box is not None:
        x, y, w, h = (int(v) for v in box)
        frames = frames[:, y : y + h, x : x + w]
    height, width = frames.shape[1:3]
    scale = 224 / min(height, width)
    size = (
        max(16, int(round(width * scale)) // 8 * 8),
        max(16, int(round(height * scale)) // 8 * 8),
    )
    hog = _hog(size)
    features = [
        hog.compute(cv2.resize(_grey(f), size, interpolation=cv2.INTER_AREA)).ravel()
        for f in frames
    ]
    return consistency(np.stack(features))


def background_consistency_cpu(frames, mask=None) -> float:
    """Background consistency with an HSV colour histogram (8 x 8 x 8 bins, L1- then
    L2-normalised) in place of CLIP's features; ``mask`` ``(H, W)`` bool marks the pixels that
    count (e.g. everything but the face), all by default."""
    frames = _frames(frames)
    mask8 = None if mask is None else np.asarray(mask, dtype=np.uint8)
    if mask8 is not None and mask8.shape != frames.shape[1:3]:
        raise UsageError(f"mask must be {frames.shape[1:3]}, got {mask8.shape}")
    features = []
    for f in frames:
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], mask8, [8, 8, 8], [0, 180, 0, 256, 0, 256]).ravel()
        features.append(hist / max(hist.sum(), 1.0))
    return consistency(np.stack(features))


def dis_flow() -> Flow:
    """DIS optical flow (OpenCV's medium preset) as a :data:`Flow`, one DIS object reused from
    call to call."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return lambda a, b: dis.calc(_grey(a), _grey(b), None)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS optical flow ``(H, W, 2)`` from RGB frame ``a`` to ``b``: ``a(x) ~ b(x + flow(x))``."""
    return dis_flow()(a, b)


def _warp(frame: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """``frame`` sampled at ``x + displacement(x)`` (bilinear, edges replicated)."""
    h, w = frame.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        frame,
        gx + displacement[..., 0],
        gy + displacement[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def interpolate(a: np.ndarray, b: np.ndarray, flow_fn: Flow | None = None) -> np.ndarray:
    """The midpoint frame between ``a`` and ``b``: each warped half-way along the flow to the
    other (``a`` sampled at ``x - F_ab / 2``, ``b`` at ``x - F_ba / 2``), then averaged;
    ``flow_fn`` defaults to :func:`dis_flow`."""
    flow_fn = flow_fn or dis_flow()
    forward, backward = flow_fn(a, b), flow_fn(b, a)
    from_a = _warp(a, -0.5 * forward).astype(np.float32)
    from_b = _warp(b, -0.5 * backward).astype(np.float32)
    return np.clip(np.rint((from_a + from_b) / 2), 0, 255).astype(np.uint8)


def motion_smoothness_cpu(frames, flow_fn: Flow | None = None) -> float:
    """VBench's motion smoothness with a flow interpolator (:func:`interpolate`; DIS flow unless
    ``flow_fn`` says otherwise) in place of AMT-S."""
    frames = _frames(frames, least=3)
    flow_fn = flow_fn or dis_flow()
    errors = [
        float(cv2.absdiff(frames[k + 1], interpolate(frames[k], frames[k + 2], flow_fn)).mean())
        for k in range(0, len(frames) - 2, 2)
    ]
    return (255 - float(np.mean(errors))) / 255


def temporal_flickering_cpu(frames) -> float:
    """VBench's temporal flickering, exactly: ``(255 - mean_t MAE(I_t, I_{t+1})) / 255``."""
    frames = _frames(frames)
    x = frames.astype(np.float32)
    return (255 - float(np.abs(x[1:] - x[:-1]).mean())) / 255


def top_magnitude(field: np.ndarray) -> float:
    """The mean of the largest 5 % magnitudes of a flow field ``(..., 2)``, in pixels."""
    magnitude = np.sqrt((field**2).sum(-1)).ravel()
    cut = max(1, int(0.05 * magnitude.size))
    return float(np.partition(magnitude, -cut)[-cut:].mean())


def top_flow(a: np.ndarray, b: np.ndarray, flow_fn: Flow | None = None) -> float:
    """VBench's per-pair motion score: :func:`top_magnitude` of the flow from ``a`` to ``b``
    (DIS unless ``flow_fn`` says otherwise)."""
    return top_magnitude((flow_fn or dis_flow())(a, b))


def dynamic_degree_cpu(frames, fps: float = FPS) -> tuple[bool, np.ndarray]:
    """VBench's dynamic degree with DIS flow in place of RAFT: ``(dynamic, per-pair scores)``."""
    frames = _frames(frames)
    step = max(1, round(fps / 8))
    kept = frames[::step]
    if len(kept) < 2:
        raise UsageError(f"{len(frames)} frames at {fps} fps leave fewer than 2 at about 8 fps")
    flow_fn = dis_flow()
    scores = np.array([top_flow(kept[i], kept[i + 1], flow_fn) for i in range(len(kept) - 1)])
    threshold = 6.0 * min(frames.shape[1:3]) / 256
    count = round(4 * len(kept) / 16)
    return bool((scores > threshold).sum() >= count), scores


def _noise_sigma(grey: np.ndarray) -> float:
    """Immerkaer's fast noise estimate (1996): the Laplacian-difference kernel's mean absolute
    response, ``sqrt(pi / 2) / (6 (W - 2) (H - 2))`` times its sum over the interior."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = cv2.filter2D(grey.astype(np.float64), -1, kernel)[1:-1, 1:-1]
    h, w = grey.shape
    return math.sqrt(math.pi / 2) * np.abs(response).sum() / (6 * (w - 2) * (h - 2))


def frame_quality(frame: np.ndarray) -> dict[str, float]:
    """The two factors of :func:`imaging_quality_cpu` for one RGB frame (longer side cut to 512):
    ``sharpness``, ``1 - exp(-var(Laplacian) / 50)`` of the grey frame after a 3 x 3 median
    filter (which removes pixel noise, so that noise does not pass for detail), and
    ``low_noise``, ``exp(-sigma / 5)`` with Immerkaer's noise estimate of the unfiltered frame."""
    longer = max(frame.shape[:2])
    if longer > 512:
        scale = 512 / longer
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    detail = _grey(cv2.medianBlur(frame, 3)).astype(np.float64)
    laplacian = float(cv2.Laplacian(detail, cv2.CV_64F).var())
    sigma = _noise_sigma(_grey(frame))
    return {"sharpness": 1 - math.exp(-laplacian / 50), "low_noise": math.exp(-sigma / 5)}


def imaging_quality_cpu(frames) -> float:
    """The mean over frames of ``sharpness * low_noise`` (:func:`frame_quality`)."""
    frames = _frames(frames, least=1)
    return float(np.mean([math.prod(frame_quality(f).values()) for f in frames]))


def video_metrics(frames, fps: float = FPS) -> dict[str, float]:
    """All six ``*_cpu`` metrics of one video (dynamic degree as 0 or 1)."""
    frames = _frames(frames, least=3)
    dynamic, _ = dynamic_degree_cpu(frames, fps)
    return {
        "subject_consistency_cpu": subject_consistency_cpu(frames),
        "background_consistency_cpu": background_consistency_cpu(frames),
        "motion_smoothness_cpu": motion_smoothness_cpu(frames),
        "temporal_flickering_cpu": temporal_flickering_cpu(frames),
        "dynamic_degree_cpu": float(dynamic),
        "imaging_quality_cpu": imaging_quality_cpu(frames),
    }


def video_table(
    methods, renderer, *, reaction: int = 0, frames=None, fps: float = FPS, progress=None
):
    """One row per method (``{name: reactions (N, M, T, 58)}``) of the six ``*_cpu`` metrics:
    reaction ``reaction`` of every item rendered with ``renderer`` (frames ``frames``, a slice;
    all by default), each video scored by :func:`video_metrics`, the rows the means over videos
    (dynamic degree: the fraction of dynamic videos, as VBench's overall score)."""
    import pandas as pd

    rows = {}
    for name, pred in methods.items():
        pred = np.asarray(pred)
        if pred.ndim != 4:
            raise UsageError(f"{name}: reactions must be (N, M, T, 58), got {pred.shape}")
        cut = slice(None) if frames is None else frames
        items = range(len(pred)) if progress is None else progress(range(len(pred)))
        scores = [video_metrics(renderer.render(pred[k, reaction, cut]), fps) for k in items]
        rows[name] = {m: float(np.mean([s[m] for s in scores])) for m in VIDEO_METRICS}
    table = pd.DataFrame.from_dict(rows, orient="index")[list(VIDEO_METRICS)]
    table.index.name = "method"
    return table
