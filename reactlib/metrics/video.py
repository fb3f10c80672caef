"""VBench-style video metrics on rendered reactions, with weight-free CPU substitutes (``*_cpu``).

PFLPosNet judges smoothness with VBench on rendered listener videos. VBench's learned components
(DINO, CLIP, AMT-S, RAFT, MUSIQ) need weights that cannot be downloaded here, so each metric keeps
VBench's protocol where that protocol can fail on these clips, and says where it departs. The
numbers are *not* VBench's and are named ``*_cpu``; compare methods rendered the same way with
them, never with published VBench figures.

- ``subject_consistency_cpu``: DINO ViT-B/16 features -> a centred HOG of the median-filtered grey
  frame at 96 pixels (:func:`subject_features`);
- ``background_consistency_cpu``: CLIP ViT-B/32 features -> a centred Lab thumbnail of the
  background pixels (:func:`background_features`), the person masked out when a mask is given;
- ``motion_smoothness_cpu``: AMT-S frame interpolation -> DIS optical flow and half-warps, the
  error set against the motion it had to bridge (VBench's form:
  :func:`motion_smoothness_vbench_cpu`);
- ``temporal_flickering_cpu``: no learned part, identical (without VBench's static filter);
- ``dynamic_degree_cpu``: RAFT optical flow -> DIS flow checked against the pixels, the share of
  sampled pairs faster than :data:`DYNAMIC_SPEED` (VBench's rule:
  :func:`dynamic_degree_vbench_cpu`);
- ``imaging_quality_cpu``: MUSIQ (SPAQ) -> a sharpness and noise composite.

- **Consistency** (subject, background): with feature vectors ``f_t``, each frame ``t >= 1``
  scores ``(max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))) / 2``; the video scores their mean.
  The features are centred (their mean removed) so that fresh noise in every frame lowers the
  cosine instead of adding a floor that every frame shares (a plain HOG rose with noise: noise
  fills its normalised flat blocks with the same near-uniform histogram in every frame).
  Both are blind to blur applied alike to every frame (a uniformly blurred video is consistent;
  imaging quality is the metric that sees blur); blur that comes and goes lowers subject
  consistency, and leaves the backdrop's (a smooth gradient, blurred, is the same gradient).
- **Motion smoothness**: the even frames ``0, 2, 4, ...`` are interpolated pairwise and each
  midpoint compared with the true odd frame between them (error ``E_k``, mean absolute
  difference); ``D_k`` is the mean absolute change between the two even frames, the motion the
  interpolation had to bridge. The score is ``sum D / sum (D + E)``: 1 when every midpoint is
  predicted, lower when the odd frame is off the path (a seam), and 0 for a clip that does not
  move (nothing moved smoothly), so a still clip never beats a moving one. VBench's
  ``(255 - mean E) / 255`` is :func:`motion_smoothness_vbench_cpu`: it is 1 for a still clip and
  falls with the amount of motion, so it ranks a method that moves less above a smoother one.
- **Temporal flickering**: ``(255 - mean_t mean |I_{t+1} - I_t|) / 255`` over all frames, exactly
  VBench's. VBench scores only *static* videos (its RAFT filter); reactions are never static, so
  no filter is applied and the figure measures frame-to-frame change, motion included.
- **Dynamic degree**: frames sub-sampled to about 8 fps (every ``round(fps / 8)``-th, VBench's);
  per consecutive pair the mean of the largest 5 % of the flow magnitudes, counting only pixels
  where warping by the flow explains the frame change beyond the frames' noise
  (:func:`moving_magnitude`), turned into a speed in frame sides per second (divided by
  ``min(H, W)`` and by the time between the two frames, so size and frame rate cancel). The
  score is the share of pairs faster than :data:`DYNAMIC_SPEED`. VBench's rule (a threshold of
  ``6 min(H, W) / 256`` pixels a pair and a count of ``round(4 T' / 16)`` pairs) never fires on
  these clips: a listener's face moves about half a pixel a pair at 96 pixels. Noise can only
  lower the score (it hides motion, and the flow DIS reads into it is dropped); blur raises it
  (blurred edges widen the band of pixels whose motion the flow explains).
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

SUBJECT_SIDE = 96
"""Pixels of the shorter side at which :func:`subject_features` computes HOG (12 cells of 8)."""
BACKGROUND_CELLS = 32
"""Cells per side of :func:`background_features`' thumbnail."""
BACKGROUND_FLOOR = 1.0
"""Lab units (about half a just-noticeable difference) below which a background's colour
variation counts as flat: a constant component of this RMS is appended to its features, so that
two flat, equal backgrounds are consistent instead of 0 / 0."""
DYNAMIC_SPEED = 0.04
"""Frame sides per second above which a sampled pair counts as moving in
:func:`dynamic_degree_cpu`: the median speed of SynthReact's real listeners (the first eight
``lab`` test clips, 750 frames, rendered at 96 and 128 pixels: medians 0.040 and 0.041,
``benchmarks/results/video_controls.json``), so a real listener moves about half of the time."""


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
    """VBench's consistency of feature vectors ``(T, F)`` (normalised here): the mean over
    ``t >= 1`` of ``(max(0, cos(f_{t-1}, f_t)) + max(0, cos(f_0, f_t))) / 2``."""
    f = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
    previous = np.clip((f[1:] * f[:-1]).sum(1), 0, None)
    first = np.clip(f[1:] @ f[0], 0, None)
    return float(((previous + first) / 2).mean())


def _hog(size: tuple[int, int]) -> cv2.HOGDescriptor:
    return cv2.HOGDescriptor(size, (16, 16), (8, 8), (8, 8), 9)


def subject_features(frames, box=None) -> np.ndarray:
    """``(T, F)`` features of :func:`subject_consistency_cpu`: each frame (or its ``box``
    ``(x, y, w, h)``, corner form, e.g. the face) through a 3 x 3 median filter (which removes
    pixel noise and keeps edges), grey, resized so its shorter side is :data:`SUBJECT_SIDE`
    pixels (a multiple of 8), HOG (16-pixel blocks of 8-pixel cells, 9 orientations), centred."""
    frames = _frames(frames, least=1)
    if box is not None:
        x, y, w, h = (int(v) for v in box)
        frames = frames[:, y : y + h, x : x + w]
    height, width = frames.shape[1:3]
    scale = SUBJECT_SIDE / min(height, width)
    size = (
        max(16, int(round(width * scale)) // 8 * 8),
        max(16, int(round(height * scale)) // 8 * 8),
    )
    hog = _hog(size)
    shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = []
    for f in frames:
        grey = _grey(cv2.medianBlur(np.ascontiguousarray(f), 3))
        v = hog.compute(cv2.resize(grey, size, interpolation=shrink)).ravel()
        out.append(v - v.mean())
    return np.stack(out)


def subject_consistency_cpu(frames, box=None) -> float:
    """Subject consistency with centred HOG features (:func:`subject_features`) in place of
    DINO's, then :func:`consistency`."""
    return consistency(subject_features(_frames(frames), box))


def backdrop_mask(frames, backdrop, margin: int = 2) -> np.ndarray:
    """``(H, W)`` bool: the pixels where every frame shows ``backdrop`` (the empty scene,
    e.g. :attr:`reactlib.face.render.FaceRenderer.backdrop`), ``margin`` pixels clear of any
    pixel that ever differs from it (the person, anti-aliased edges included)."""
    frames = _frames(frames, least=1)
    backdrop = np.asarray(backdrop)
    if backdrop.shape != frames.shape[1:]:
        raise UsageError(f"backdrop must be {frames.shape[1:]}, got {backdrop.shape}")
    person = (frames != backdrop).any(axis=(0, 3)).astype(np.uint8)
    if margin > 0:
        person = cv2.dilate(person, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return person == 0


def background_features(frames, mask=None) -> np.ndarray:
    """``(T, F)`` features of :func:`background_consistency_cpu`: each frame in CIE Lab,
    averaged over the ``mask`` pixels of each cell of a :data:`BACKGROUND_CELLS`-square grid
    (cells at least half covered), less the first frame's mean colour (one offset for all
    frames, so that a change of brightness or colour shows), with a constant component of
    :data:`BACKGROUND_FLOOR` RMS appended."""
    frames = _frames(frames, least=1)
    h, w = frames.shape[1:3]
    if mask is None:
        weight = np.ones((h, w), np.float32)
    else:
        weight = np.asarray(mask)
        if weight.shape != (h, w):
            raise UsageError(f"mask must be {(h, w)}, got {weight.shape}")
        weight = weight.astype(np.float32)
    cells = (min(BACKGROUND_CELLS, w), min(BACKGROUND_CELLS, h))
    cover = cv2.resize(weight, cells, interpolation=cv2.INTER_AREA)
    keep = cover >= 0.5
    if keep.sum() < 4:
        raise UsageError(f"the mask keeps {int(weight.sum())} pixels: too few for a background")
    thumbs = []
    for f in frames:
        lab = cv2.cvtColor(f.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
        cell = cv2.resize(lab * weight[..., None], cells, interpolation=cv2.INTER_AREA)
        thumbs.append(cell[keep] / cover[keep][:, None])
    centred = np.stack(thumbs) - thumbs[0].mean(axis=0)
    flat = centred.reshape(len(frames), -1)
    floor = np.full((len(frames), 1), math.sqrt(flat.shape[1]) * BACKGROUND_FLOOR)
    return np.concatenate([flat, floor], axis=1)


def background_consistency_cpu(frames, mask=None) -> float:
    """Background consistency with a centred Lab thumbnail (:func:`background_features`) in place
    of CLIP's features; ``mask`` ``(H, W)`` bool marks the background (e.g.
    :func:`backdrop_mask`), the whole frame by default (then the person counts too)."""
    return consistency(background_features(_frames(frames), mask))


def dis_flow() -> Flow:
    """DIS optical flow (OpenCV's medium preset) as a :data:`Flow`, one DIS object reused from
    call to call."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return lambda a, b: dis.calc(_grey(a), _grey(b), None)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS optical flow ``(H, W, 2)`` from RGB frame ``a`` to ``b``: ``a(x) ~ b(x + flow(x))``."""
    return dis_flow()(a, b)


def _warp(frame: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """``frame`` sampled at ``x + displacement(x)`` (bicubic, edges replicated)."""
    h, w = frame.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        frame,
        gx + displacement[..., 0],
        gy + displacement[..., 1],
        cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )


def interpolate(a: np.ndarray, b: np.ndarray, flow_fn: Flow | None = None) -> np.ndarray:
    """The midpoint frame between ``a`` and ``b``: each warped half-way along the flow to the
    other (``a`` sampled at ``x - F_ab / 2``, ``b`` at ``x - F_ba / 2``, bicubic), then averaged;
    ``flow_fn`` defaults to :func:`dis_flow`."""
    flow_fn = flow_fn or dis_flow()
    forward, backward = flow_fn(a, b), flow_fn(b, a)
    from_a = _warp(a.astype(np.float32), -0.5 * forward)
    from_b = _warp(b.astype(np.float32), -0.5 * backward)
    return np.clip(np.rint((from_a + from_b) / 2), 0, 255).astype(np.uint8)


def interpolation_errors(frames, flow_fn: Flow | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per even pair ``(2k, 2k + 2)``: ``E``, the mean absolute error of the interpolated midpoint
    (:func:`interpolate`) against the true frame ``2k + 1``, and ``D``, the mean absolute change
    between the two even frames (the motion the interpolation bridged); grey levels."""
    frames = _frames(frames, least=3)
    flow_fn = flow_fn or dis_flow()
    errors, changes = [], []
    for k in range(0, len(frames) - 2, 2):
        a, b = frames[k], frames[k + 2]
        errors.append(float(cv2.absdiff(frames[k + 1], interpolate(a, b, flow_fn)).mean()))
        changes.append(float(cv2.absdiff(a, b).mean()))
    return np.array(errors), np.array(changes)


def motion_smoothness_cpu(frames, flow_fn: Flow | None = None) -> float:
    """Motion smoothness normalised by the motion: ``sum D / sum (D + E)`` of
    :func:`interpolation_errors` (DIS flow unless ``flow_fn`` says otherwise); 0 for a clip that
    does not change."""
    errors, changes = interpolation_errors(frames, flow_fn)
    total = float(changes.sum() + errors.sum())
    return float(changes.sum()) / total if total > 0 else 0.0


def motion_smoothness_vbench_cpu(frames, flow_fn: Flow | None = None) -> float:
    """VBench's motion smoothness with a flow interpolator in place of AMT-S:
    ``(255 - mean E) / 255`` (:func:`interpolation_errors`). 1 for a still clip, and lower the
    more a clip moves, seams or not."""
    errors, _ = interpolation_errors(frames, flow_fn)
    return (255 - float(errors.mean())) / 255


def temporal_flickering_cpu(frames) -> float:
    """VBench's temporal flickering, exactly: ``(255 - mean_t MAE(I_t, I_{t+1})) / 255``."""
    frames = _frames(frames)
    x = frames.astype(np.float32)
    return (255 - float(np.abs(x[1:] - x[:-1]).mean())) / 255


def _top_mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64).ravel()
    cut = max(1, int(0.05 * values.size))
    return float(np.partition(values, -cut)[-cut:].mean())


def top_magnitude(field: np.ndarray) -> float:
    """The mean of the largest 5 % magnitudes of a flow field ``(..., 2)``, in pixels."""
    return _top_mean(np.sqrt((np.asarray(field) ** 2).sum(-1)))


def top_flow(a: np.ndarray, b: np.ndarray, flow_fn: Flow | None = None) -> float:
    """VBench's per-pair motion score: :func:`top_magnitude` of the flow from ``a`` to ``b``
    (DIS unless ``flow_fn`` says otherwise)."""
    return top_magnitude((flow_fn or dis_flow())(a, b))


def moving_magnitude(a: np.ndarray, b: np.ndarray, flow_fn: Flow | None = None) -> np.ndarray:
    """``(H, W)`` flow magnitudes from ``a`` to ``b`` (pixels), 0 where the flow does not explain
    the change: where warping ``b`` by it does not bring the local (5 x 5) mean absolute
    difference to ``a`` down by more than the noise of the difference ``b - a`` (1.4826 times its
    median absolute deviation: most pixels do not move, so that is the noise) plus one grey
    level. Flow that DIS reads into noise or into flat regions is dropped that way, and counts as
    still in the top 5 %; so is motion too small to tell from the noise."""
    grey_a, grey_b = _grey(a), _grey(b)
    field = (flow_fn or dis_flow())(a, b)
    h, w = grey_a.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fa, fb = grey_a.astype(np.float32), grey_b.astype(np.float32)
    warped = cv2.remap(
        fb,
        gx + field[..., 0],
        gy + field[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    change = fb - fa
    noise = 1.4826 * float(np.median(np.abs(change - np.median(change))))
    before = cv2.blur(np.abs(change), (5, 5))
    after = cv2.blur(np.abs(warped - fa), (5, 5))
    return np.sqrt((field**2).sum(-1)) * (before - after > noise + 1.0)


def _sampled(frames, fps: float) -> tuple[np.ndarray, int]:
    if not fps > 0:
        raise UsageError(f"fps must be positive, got {fps!r}")
    step = max(1, round(fps / 8))
    kept = frames[::step]
    if len(kept) < 2:
        raise UsageError(f"{len(frames)} frames at {fps} fps leave fewer than 2 at about 8 fps")
    return kept, step


def dynamic_degree_cpu(
    frames, fps: float = FPS, speed: float = DYNAMIC_SPEED
) -> tuple[float, np.ndarray]:
    """``(degree, speeds)``: the share of pairs of frames sampled at about 8 fps whose motion
    (the mean of the largest 5 % of :func:`moving_magnitude`) is faster than ``speed`` frame
    sides per second, and those speeds. 0 for a still clip, whatever its noise."""
    frames = _frames(frames)
    kept, step = _sampled(frames, fps)
    seconds = step / fps
    side = min(frames.shape[1:3])
    flow_fn = dis_flow()
    speeds = np.array(
        [
            _top_mean(moving_magnitude(kept[i], kept[i + 1], flow_fn)) / side / seconds
            for i in range(len(kept) - 1)
        ]
    )
    return float((speeds > speed).mean()), speeds


def dynamic_degree_vbench_cpu(frames, fps: float = FPS) -> tuple[bool, np.ndarray]:
    """VBench's dynamic degree with DIS flow in place of RAFT: ``(dynamic, per-pair scores)``,
    dynamic once ``round(4 T' / 16)`` sampled pairs move more than ``6 min(H, W) / 256`` pixels
    (:func:`top_flow`). DIS reads noise as motion, so noise alone can make a still clip
    dynamic."""
    frames = _frames(frames)
    kept, _ = _sampled(frames, fps)
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


def video_metrics(frames, fps: float = FPS, background=None) -> dict[str, float]:
    """All six ``*_cpu`` metrics of one video; ``background`` is the mask of
    :func:`background_consistency_cpu` (the whole frame when None)."""
    frames = _frames(frames, least=3)
    degree, _ = dynamic_degree_cpu(frames, fps)
    return {
        "subject_consistency_cpu": subject_consistency_cpu(frames),
        "background_consistency_cpu": background_consistency_cpu(frames, background),
        "motion_smoothness_cpu": motion_smoothness_cpu(frames),
        "temporal_flickering_cpu": temporal_flickering_cpu(frames),
        "dynamic_degree_cpu": degree,
        "imaging_quality_cpu": imaging_quality_cpu(frames),
    }


def video_scores(
    methods, renderer, *, reaction: int = 0, frames=None, fps: float = FPS, progress=None
):
    """One row per method and item (``{name: reactions (N, M, T, 58)}``; index ``(method,
    item)``) of the six ``*_cpu`` metrics: reaction ``reaction`` of every item rendered with
    ``renderer`` (frames ``frames``, a slice; all by default) and scored by
    :func:`video_metrics`, the background being the pixels where the renderer's backdrop shows
    in every frame (:func:`backdrop_mask`)."""
    import pandas as pd

    rows = {}
    cut = slice(None) if frames is None else frames
    for name, pred in methods.items():
        pred = np.asarray(pred)
        if pred.ndim != 4:
            raise UsageError(f"{name}: reactions must be (N, M, T, 58), got {pred.shape}")
        items = range(len(pred)) if progress is None else progress(range(len(pred)))
        for k in items:
            clip = renderer.render(pred[k, reaction, cut])
            rows[(name, k)] = video_metrics(clip, fps, backdrop_mask(clip, renderer.backdrop))
    table = pd.DataFrame.from_dict(rows, orient="index")[list(VIDEO_METRICS)]
    table.index = pd.MultiIndex.from_tuples(table.index, names=["method", "item"])
    return table


def video_table(
    methods,
    renderer,
    *,
    reaction: int = 0,
    frames=None,
    fps: float = FPS,
    progress=None,
    per_video: bool = False,
):
    """One row per method of the means over items of :func:`video_scores` (dynamic degree: the
    mean share of moving pairs); with ``per_video`` also the scores themselves,
    ``(table, scores)``."""
    scores = video_scores(
        methods, renderer, reaction=reaction, frames=frames, fps=fps, progress=progress
    )
    table = scores.groupby(level="method", sort=False).mean()
    table.index.name = "method"
    return (table, scores) if per_video else table
