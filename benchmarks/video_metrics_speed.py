"""Rendering plus the six ``*_cpu`` video metrics for one 750-frame reaction, on one CPU core.

    python benchmarks/video_metrics_speed.py [--frames 750] [--size 128] [--repeats 3]

Renders a SynthReact-like clip (the smooth coefficients of ``render_fps.py``) with
:class:`reactlib.face.render.FaceRenderer`, then times :func:`reactlib.metrics.video.video_metrics`
and each metric alone. The plain reference, measured in the same run: motion smoothness with the
classical alternative the reference notes name, Farneback flow (pyramid 0.5, 3 levels, window 15,
3 iterations, poly_n 5, sigma 1.2) in place of DIS, timed back to back with ours
(:func:`harness.paired_times`); both flows are also checked on a known 3-pixel shift of the
rendered face. Figures go to ``benchmarks/results/video_metrics_speed.json``.
"""

from __future__ import annotations

import os

# One core: thread pools read these when numpy and OpenCV load, so they are set first.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from harness import paired_times, write_results  # noqa: E402
from render_fps import synthetic_clip  # noqa: E402

from reactlib.face import render  # noqa: E402
from reactlib.metrics import video  # noqa: E402

cv2.setNumThreads(1)


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    grey_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(grey_a, grey_b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def shift_error(flow_fn, frame: np.ndarray, shift: int = 3) -> float:
    """Relative error of the top-5 % flow magnitude on ``frame`` moved ``shift`` pixels right
    (the columns the roll wrapped round left out)."""
    moved = np.roll(frame, shift, axis=1)
    return abs(video.top_magnitude(flow_fn(frame, moved)[:, shift:-shift]) - shift) / shift


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)

    clip = synthetic_clip(args.frames)
    face = render.FaceRenderer(args.size, render.Identity.random(0))
    started = time.perf_counter()
    frames = face.render(clip)
    render_s = time.perf_counter() - started

    singles = {}
    for name in video.VIDEO_METRICS:
        fn = getattr(video, name)
        started = time.perf_counter()
        fn(frames)
        singles[name] = time.perf_counter() - started
    started = time.perf_counter()
    figures_of_clip = video.video_metrics(frames)
    all_s = time.perf_counter() - started

    paired = paired_times(
        lambda: video.motion_smoothness_cpu(frames),
        lambda: video.motion_smoothness_cpu(frames, farneback),
        args.repeats,
    )
    ours_s, reference_s = statistics.median(paired.ours), statistics.median(paired.reference)
    figures = {
        "render_s": render_s,
        "metrics_s": all_s,
        "render_and_metrics_s": render_s + all_s,
        "video_seconds": args.frames / video.FPS,
        "per_metric_s": singles,
        "motion_smoothness_dis_s": ours_s,
        "motion_smoothness_farneback_s": reference_s,
        "farneback_over_dis": reference_s / ours_s,
        "motion_smoothness_dis": video.motion_smoothness_cpu(frames),
        "motion_smoothness_farneback": video.motion_smoothness_cpu(frames, farneback),
        "shift_error_dis": shift_error(video.flow, frames[len(frames) // 2]),
        "shift_error_farneback": shift_error(farneback, frames[len(frames) // 2]),
        "metrics_of_clip": figures_of_clip,
    }
    settings = {"frames": args.frames, "size": args.size, "repeats": args.repeats, "threads": 1}
    path = write_results("video_metrics_speed", settings, figures, results_dir=args.out)
    print(
        f"{args.frames} frames at {args.size} px: render {render_s:.2f} s, six metrics "
        f"{all_s:.2f} s (total {render_s + all_s:.2f} s for {args.frames / video.FPS:.0f} s of "
        f"video, one core)"
    )
    print(
        f"motion smoothness: DIS {ours_s:.2f} s, Farneback {reference_s:.2f} s "
        f"({reference_s / ours_s:.2f}x); 3-px shift error DIS {figures['shift_error_dis']:.3f}, "
        f"Farneback {figures['shift_error_farneback']:.3f}"
    )
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
