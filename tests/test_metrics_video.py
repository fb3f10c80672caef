"""The ``*_cpu`` video metrics: VBench's formulas on known cases, and controls that can fail
(a still clip, a known shift, seams against smooth motion of the same travel, fresh noise, blur
on every frame and on every other one, a flicker, a head turning at several sizes and frame
rates)."""

from __future__ import annotations

import cv2
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
    """Frames ``(T, H, W, 3)`` cut from one texture at whole-pixel horizontal offsets."""
    big = texture()
    return np.stack([big[60 : 60 + H, 40 + int(o) : 40 + int(o) + W] for o in offsets])


def glide(offsets) -> np.ndarray:
    """Like :func:`pan`, at sub-pixel offsets (bicubic), so any speed moves smoothly."""
    big = texture().astype(np.float32)
    frames = [
        cv2.warpAffine(
            big,
            np.float32([[1, 0, 40 + o], [0, 1, 60]]),
            (W, H),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        )
        for o in offsets
    ]
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def noisy(frames: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """Gaussian noise of ``sigma`` grey levels, drawn afresh for every frame."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(frames + rng.normal(0, sigma, frames.shape)), 0, 255).astype(np.uint8)


def blurred(frames: np.ndarray, sigma: float, every: int = 1) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels on every ``every``-th frame, starting with frame 1."""
    out = frames.copy()
    for t in range(1, len(frames), every) if every > 1 else range(len(frames)):
        out[t] = cv2.GaussianBlur(frames[t], (0, 0), sigma)
    return out


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


def turning(seconds: float, fps: float, amplitude: float) -> np.ndarray:
    """A head turning ``amplitude`` rad either way every 2 s, sampled at ``fps``."""
    t = np.arange(int(seconds * fps)) / fps
    x = coeffs.neutral(len(t)).astype(np.float64)
    x[:, coeffs.index("yaw")] += amplitude * np.sin(np.pi * t)
    return x


@pytest.fixture(scope="module")
def face() -> render.FaceRenderer:
    return render.FaceRenderer(H, render.Identity.random(0))


@pytest.fixture(scope="module")
def head_clip(face) -> np.ndarray:
    """A rendered head turning with a little expression: 48 frames, 96 pixels."""
    x, _ = turning_head(48)
    x[:, coeffs.index("jawOpen")] = 0.3 + 0.3 * np.sin(np.arange(48) / 5)
    return face.render(x)


# --- Formulas --------------------------------------------------------------------------------


def test_consistency_formula_by_hand():
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # t=1: prev cos 0, first cos 0 -> 0; t=2: prev 0, first 1 -> 0.5; mean 0.25
    assert video.consistency(f) == pytest.approx(0.25)
    g = np.array([[1.0, 0.0], [-1.0, 0.0]])  # negative cosines are clamped at 0
    assert video.consistency(g) == 0.0


def test_a_static_video_scores_like_vbench_says_and_stillness_does_not_win():
    still = np.repeat(pan([0])[:1], 12, axis=0)
    assert video.temporal_flickering_cpu(still) == 1.0
    assert video.motion_smoothness_vbench_cpu(still) == 1.0  # VBench: a still clip is perfect
    assert video.motion_smoothness_cpu(still) == 0.0  # ours: nothing moved smoothly
    assert video.subject_consistency_cpu(still) == pytest.approx(1.0)
    assert video.background_consistency_cpu(still) == pytest.approx(1.0)
    degree, speeds = video.dynamic_degree_cpu(still)
    assert degree == 0.0 and np.all(speeds == 0)
    dynamic, scores = video.dynamic_degree_vbench_cpu(still)
    assert not dynamic and np.allclose(scores, 0, atol=0.05)


def test_temporal_flickering_formula():
    frames = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    frames[1] = 51  # MAE 51 then 51: (255 - 51) / 255 = 0.8
    assert video.temporal_flickering_cpu(frames) == pytest.approx(0.8)


@pytest.mark.parametrize("shift", [2, 3, 5])
def test_a_known_shift_gives_its_flow_magnitude_within_ten_percent(shift):
    a, b = pan([0, shift])
    assert video.top_flow(a, b) == pytest.approx(shift, rel=0.1)
    # the whole frame moves, so the pixels explain it and the checked magnitude agrees
    moving = video.moving_magnitude(a, b)
    assert video.top_magnitude(np.stack([moving, 0 * moving], -1)) == pytest.approx(shift, rel=0.1)


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


# --- Motion smoothness -------------------------------------------------------------------------


def test_the_interpolated_midpoint_beats_the_average_of_the_neighbours():
    a, mid, b = pan([0, 2, 4])
    ours = np.abs(video.interpolate(a, b).astype(float) - mid).mean()
    blend = np.abs((a.astype(float) + b) / 2 - mid).mean()
    assert ours < 0.5 * blend


def test_seams_cost_against_a_smooth_motion_of_the_same_travel():
    """The control of motion smoothness: 59 pixels in 47 frames, once at an even speed and once
    at a pixel a frame with a 6-pixel jump at frames 16 and 32; and the same texture still.
    VBench's form ranks the still clip first; ours puts it last."""
    smooth = glide(np.arange(48) * 59 / 47)
    seams = glide(np.arange(48) + 6 * (np.arange(48) // 16))
    still = glide(np.zeros(48))
    ours = {k: video.motion_smoothness_cpu(v) for k, v in [("smooth", smooth), ("seams", seams)]}
    assert ours["seams"] < ours["smooth"] - 0.05
    assert video.motion_smoothness_cpu(still) == 0.0 < ours["seams"]
    vbench = video.motion_smoothness_vbench_cpu
    assert vbench(seams) < vbench(smooth) < vbench(still) == 1.0  # stillness wins there


def test_seams_in_a_rendered_head_lower_motion_smoothness(face):
    x, jumped = turning_head(64)
    smooth, seams = face.render(x), face.render(jumped)
    assert video.motion_smoothness_cpu(seams) < video.motion_smoothness_cpu(smooth) - 0.01
    still = face.render(np.repeat(x[:1], 64, axis=0))
    assert video.motion_smoothness_cpu(still) < video.motion_smoothness_cpu(seams)


def test_noise_and_flicker_lower_motion_smoothness(head_clip):
    clean = video.motion_smoothness_cpu(head_clip)
    assert video.motion_smoothness_cpu(noisy(head_clip, 10)) < clean - 0.05
    flicker = head_clip.astype(int)
    flicker[1::2] += 8
    assert video.motion_smoothness_cpu(np.clip(flicker, 0, 255).astype(np.uint8)) < clean - 0.3


def test_injected_seam_jumps_lower_flickering():
    steady = np.arange(48, dtype=float)  # one pixel a frame
    jumpy = steady + 6 * (np.arange(48) // 16)  # and six more at every 16-frame seam
    assert video.temporal_flickering_cpu(pan(jumpy)) < video.temporal_flickering_cpu(pan(steady))


# --- Consistency: noise, blur, flicker ----------------------------------------------------------


def test_noise_lowers_subject_consistency_step_by_step(head_clip):
    """Fresh noise in every frame is an inconsistency. A plain HOG rose with it (its normalised
    flat blocks fill with the same near-uniform histogram in every frame); centred it falls."""
    values = [video.subject_consistency_cpu(noisy(head_clip, s)) for s in (0, 5, 10, 20)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] - values[-1] > 0.1


def test_blur_on_every_other_frame_lowers_subject_consistency_and_uniform_blur_is_not_seen(
    head_clip,
):
    clean = video.subject_consistency_cpu(head_clip)
    assert video.subject_consistency_cpu(blurred(head_clip, 2, every=2)) < clean - 0.03
    # blind, by design, to blur that every frame shares: such a video is consistent
    assert video.subject_consistency_cpu(blurred(head_clip, 2)) == pytest.approx(clean, abs=0.01)


def test_background_on_the_backdrop_is_one_and_falls_with_noise_and_flicker(face, head_clip):
    """On the backdrop (the person masked out) a clean render is consistent exactly; fresh noise
    and a flicker lower it far more than the whole-frame histogram did; blur of a smooth
    gradient backdrop leaves it as it is (blind)."""
    mask = video.backdrop_mask(head_clip, face.backdrop)
    assert 0.2 < mask.mean() < 0.9
    assert video.background_consistency_cpu(head_clip, mask) == pytest.approx(1.0)
    noise = [video.background_consistency_cpu(noisy(head_clip, s), mask) for s in (5, 10, 20)]
    assert 1.0 > noise[0] > noise[1] > noise[2] and noise[2] < 0.85, noise
    flicker = head_clip.astype(int)
    flicker[1::2] += 8
    flickering = np.clip(flicker, 0, 255).astype(np.uint8)
    assert video.background_consistency_cpu(flickering, mask) < 0.99
    assert video.background_consistency_cpu(blurred(head_clip, 2, every=2), mask) > 0.995
    # on the whole frame the moving person counts: a clean render is below 1
    whole = video.background_consistency_cpu(head_clip)
    assert whole < 0.999 and video.background_consistency_cpu(noisy(head_clip, 20)) < whole - 0.02


def test_changing_content_lowers_both_consistencies():
    steady = np.repeat(pan([0])[:1], 6, axis=0)
    changing = np.stack([texture(seed)[:H, :W] for seed in range(6)])
    assert video.subject_consistency_cpu(changing) < video.subject_consistency_cpu(steady) - 0.05
    tinted = steady.copy()
    tinted[3:, ..., 0] = 255 - tinted[3:, ..., 0]
    assert video.background_consistency_cpu(tinted) < 0.9


def test_a_flat_backdrop_is_consistent_and_masks_are_checked():
    flat = np.full((4, 32, 32, 3), 120, dtype=np.uint8)
    assert video.background_consistency_cpu(flat) == pytest.approx(1.0)
    person = flat.copy()
    person[:, 10:20, 10:20] = 200
    mask = video.backdrop_mask(person, flat[0], margin=1)
    assert not mask[9:21, 9:21].any() and mask.sum() == 32 * 32 - 12 * 12
    with pytest.raises(UsageError, match="backdrop"):
        video.backdrop_mask(person, flat[0, :8])
    with pytest.raises(UsageError, match="too few"):
        video.background_consistency_cpu(flat, np.zeros((32, 32), bool))


# --- Dynamic degree --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [96, 128])
@pytest.mark.parametrize("fps", [10, 25, 30])
def test_dynamic_degree_is_zero_still_and_moves_with_motion(size, fps):
    """A head turning 0.2 rad either way every 2 s, at two sizes and three frame rates: the
    speeds are in frame sides per second, so the degree is much the same at each; a still head
    scores 0, a head turning a tenth as far scores less."""
    face = render.FaceRenderer(size, render.Identity.random(0))
    moving = face.render(turning(4, fps, 0.2))
    degree, speeds = video.dynamic_degree_cpu(moving, fps)
    assert 0.35 < degree < 0.85
    assert len(speeds) == len(moving[:: max(1, round(fps / 8))]) - 1
    still = np.repeat(moving[:1], len(moving), axis=0)
    assert video.dynamic_degree_cpu(still, fps)[0] == 0.0
    assert video.dynamic_degree_cpu(face.render(turning(4, fps, 0.02)), fps)[0] < degree
    assert not video.dynamic_degree_vbench_cpu(moving, fps)[0]  # VBench's rule never fires here


def test_noise_does_not_make_a_clip_dynamic():
    face = render.FaceRenderer(H, render.Identity.random(0))
    moving = face.render(turning(4, 25, 0.2))
    still = np.repeat(moving[:1], len(moving), axis=0)
    for sigma in (5, 10, 20):
        assert video.dynamic_degree_cpu(noisy(still, sigma))[0] == 0.0
        assert (
            video.dynamic_degree_cpu(noisy(moving, sigma))[0] <= video.dynamic_degree_cpu(moving)[0]
        )
    # DIS reads noise as motion: VBench's raw top-5 % flow of a still noisy clip is not 0
    assert np.median(video.dynamic_degree_vbench_cpu(noisy(still, 10))[1]) > 1.0


def test_vbench_rule_flags_fast_motion_only():
    slow = pan(np.arange(40) * 0.1)
    fast = pan(np.arange(40) * 3.0)  # 9 px between frames 3 apart, above 6 * 96 / 256 = 2.25
    assert not video.dynamic_degree_vbench_cpu(slow)[0]
    dynamic, scores = video.dynamic_degree_vbench_cpu(fast)
    assert dynamic and np.median(scores) == pytest.approx(9, rel=0.15)
    assert video.dynamic_degree_cpu(fast)[0] == 1.0


# --- All at once -------------------------------------------------------------------------------


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
    with pytest.raises(UsageError, match="fps"):
        video.dynamic_degree_cpu(pan([0, 1]), fps=0)


def test_video_table_renders_reaction_one_of_every_item_and_averages():
    x, jumped = turning_head(40)
    # (N, M, T, 58): two items, two reactions; only reaction 0 is rendered.
    smooth = np.stack([np.stack([x, jumped])] * 2)
    seams = np.stack([np.stack([jumped, x])] * 2)
    face = render.FaceRenderer(64, render.Identity.random(0))
    table, scores = video.video_table(
        {"smooth": smooth, "seams": seams}, face, frames=slice(0, 36), per_video=True
    )
    assert list(table.index) == ["smooth", "seams"]
    assert list(table.columns) == list(video.VIDEO_METRICS)
    assert list(scores.index) == [("smooth", 0), ("smooth", 1), ("seams", 0), ("seams", 1)]
    clip = face.render(x[:36])
    alone = video.video_metrics(clip, background=video.backdrop_mask(clip, face.backdrop))
    assert scores.loc[("smooth", 1)].to_dict() == pytest.approx(alone)
    assert table.loc["smooth"].to_dict() == pytest.approx(alone)
    assert table.loc["smooth", "background_consistency_cpu"] == pytest.approx(1.0)
    assert (
        table.loc["seams", "motion_smoothness_cpu"] < table.loc["smooth", "motion_smoothness_cpu"]
    )
    assert video.video_table({"smooth": smooth}, face, frames=slice(0, 36)).equals(
        table.loc[["smooth"]]
    )
    with pytest.raises(UsageError, match=r"\(N, M, T, 58\)"):
        video.video_table({"bad": x}, face)
