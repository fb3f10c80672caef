"""The VBench-style ``*_cpu`` video metrics: VBench's formulas on known cases, and calibration
checks that can fail (a static video, a known shift, injected seam jumps, added noise)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from reactlib.errors import UsageError
from reactlib.face import coeffs, render
from reactlib.metrics import video

H = W = 96


def texture(seed: int = 0, size: int = 320) -> np.ndarray:
    """A smooth random RGB texture ``(size, size, 3)`` uint8, larger than a frame."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(size=(size, size, 3)), (3, 3, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return (255 * x).astype(np.uint8)


def pan(offsets) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` cut from one texture at horizontal offsets (pixels)."""
    big = texture()
    return np.stack([big[60 : 60 + H, 40 + int(o) : 40 + int(o) + W] for o in offsets])


def test_consistency_formula_by_hand():
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # t=1: prev cos 0, first cos 0 -> 0; t=2: prev 0, first 1 -> 0.5; mean 0.25
    assert video.consistency(f) == pytest.approx(0.25)
    g = np.array([[1.0, 0.0], [-1.0, 0.0]])  # negative cosines are clamped at 0
    assert video.consistency(g) == 0.0


def test_a_static_video_scores_like_vbench_says():
    still = np.repeat(pan([0])[:1], 12, axis=0)
    assert video.temporal_flickering_cpu(still) == 1.0
    assert video.motion_smoothness_cpu(still) == 1.0
    assert video.subject_consistency_cpu(still) == pytest.approx(1.0)
    assert video.background_consistency_cpu(still) == pytest.approx(1.0)
    dynamic, scores = video.dynamic_degree_cpu(still)
    assert not dynamic and np.allclose(scores, 0, atol=0.05)


def test_temporal_flickering_formula():
    frames = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    frames[1] = 51  # MAE 51 then 51: (255 - 51) / 255 = 0.8
    assert video.temporal_flickering_cpu(frames) == pytest.approx(0.8)


@pytest.mark.parametrize("shift", [2, 3, 5])
def test_a_known_shift_gives_its_flow_magnitude_within_ten_percent(shift):
    a, b = pan([0, shift])
    assert video.top_flow(a, b) == pytest.approx(shift, rel=0.1)


def test_the_interpolated_midpoint_beats_the_average_of_the_neighbours():
    a, mid, b = pan([0, 2, 4])
    ours = np.abs(video.interpolate(a, b).astype(float) - mid).mean()
    blend = np.abs((a.astype(float) + b) / 2 - mid).mean()
    assert ours < 0.5 * blend


def test_injected_seam_jumps_lower_motion_smoothness_and_flickering():
    steady = np.arange(48, dtype=float)  # one pixel a frame
    jumpy = steady + 6 * (np.arange(48) // 16)  # and six more at every 16-frame seam
    smooth_frames, seam_frames = pan(steady), pan(jumpy)
    assert video.motion_smoothness_cpu(seam_frames) < video.motion_smoothness_cpu(smooth_frames)
    assert video.temporal_flickering_cpu(seam_frames) < video.temporal_flickering_cpu(smooth_frames)


def turning_head(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(frames, 58)`` of a head turning smoothly, and of the same head snapping
    by 0.08 rad of yaw at every 16-frame seam."""
    t = np.arange(frames)
    x = coeffs.neutral(frames).astype(np.float64)
    yaw = coeffs.index("yaw")
    x[:, yaw] += 0.15 * np.sin(2 * np.pi * t / frames)
    jumped = x.copy()
    jumped[:, yaw] += 0.08 * ((t // 16) % 2)
    return x, jumped


def test_seams_in_a_rendered_head_lower_motion_smoothness():
    x, jumped = turning_head(64)
    face = render.FaceRenderer(H, render.Identity.random(0))
    smooth, seams = face.render(x), face.render(jumped)
    assert video.motion_smoothness_cpu(seams) < video.motion_smoothness_cpu(smooth)


def test_noise_lowers_imaging_quality_and_blur_lowers_sharpness():
    clean = pan(np.arange(6))
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    assert video.imaging_quality_cpu(noisy) < video.imaging_quality_cpu(clean)
    blurred = np.stack([gaussian_filter(f, (2, 2, 0)) for f in clean])
    assert video.frame_quality(blurred[0])["sharpness"] < video.frame_quality(clean[0])["sharpness"]


def test_changing_content_lowers_both_consistencies():
    steady = np.repeat(pan([0])[:1], 6, axis=0)
    changing = np.stack([texture(seed)[:H, :W] for seed in range(6)])
    assert video.subject_consistency_cpu(changing) < video.subject_consistency_cpu(steady) - 0.05
    tinted = steady.copy()
    tinted[3:, ..., 0] = 255 - tinted[3:, ..., 0]
    assert video.background_consistency_cpu(tinted) < 0.99


def test_dynamic_degree_flags_fast_motion_only():
    slow = pan(np.arange(40) * 0.1)
    fast = pan(np.arange(40) * 3.0)  # 9 px between frames 3 apart, above 6 * 96 / 256 = 2.25
    assert not video.dynamic_degree_cpu(slow)[0]
    dynamic, scores = video.dynamic_degree_cpu(fast)
    assert dynamic and np.median(scores) == pytest.approx(9, rel=0.15)


def test_all_metrics_at_once_and_bad_input():
    figures = video.video_metrics(pan(np.arange(12)))
    assert set(figures) == set(video.VIDEO_METRICS)
    assert all(0 <= v <= 1 for v in figures.values())
    with pytest.raises(UsageError, match="uint8"):
        video.temporal_flickering_cpu(np.zeros((4, 8, 8, 3)))
    with pytest.raises(UsageError, match="at least 3"):
        video.motion_smoothness_cpu(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(UsageError, match="mask"):
        video.background_consistency_cpu(pan([0, 1]), mask=np.ones((4, 4), bool))


def test_the_motion_score_is_the_mean_of_the_largest_five_percent():
    """A patch of about a sixth of the frame moves 4 pixels, the rest stands still: VBench's
    top-5 % mean sees the patch's motion, a mean over the whole frame would not."""
    big = texture(1)
    a = big[:H, :W].copy()
    b = a.copy()
    b[28:68, 28:68] = big[28:68, 32:72]  # the patch's content moved 4 pixels to the left
    f = video.flow(a, b)
    magnitude = np.sqrt((f**2).sum(-1))
    assert video.top_flow(a, b) == pytest.approx(4, rel=0.25)
    assert video.top_flow(a, b) > 2 * magnitude.mean()


def test_video_table_renders_reaction_one_of_every_item_and_averages():
    x, jumped = turning_head(40)
    # (N, M, T, 58): two items, two reactions; only reaction 0 is rendered.
    smooth = np.stack([np.stack([x, jumped])] * 2)
    seams = np.stack([np.stack([jumped, x])] * 2)
    face = render.FaceRenderer(64, render.Identity.random(0))
    table = video.video_table({"smooth": smooth, "seams": seams}, face, frames=slice(0, 36))
    assert list(table.index) == ["smooth", "seams"]
    assert list(table.columns) == list(video.VIDEO_METRICS)
    alone = video.video_metrics(face.render(x[:36]))
    assert table.loc["smooth", "motion_smoothness_cpu"] == pytest.approx(
        alone["motion_smoothness_cpu"]
    )
    assert (
        table.loc["seams", "motion_smoothness_cpu"] < table.loc["smooth", "motion_smoothness_cpu"]
    )
    with pytest.raises(UsageError, match=r"\(N, M, T, 58\)"):
        video.video_table({"bad": x}, face)
