"""Throughput and peak memory of ``python -m reactlib pfl-crop`` against an in-memory reference.

    python benchmarks/pfl_crop.py [--frames 500] [--height 360] [--width 480] [--repeats 2]

Writes the astronaut photograph moving along a known path
(:func:`reactlib.face.footage.photo_video`) as
an H.264 mp4, then crops it to 256x256 with PFL in two ways, each with the same Haar detector:

* ``reactlib.face.pfl.crop_video``: two streaming passes (detect, then crop and encode), one frame
in
  memory at a time;
* the reference written here, shaped like the paper code's cropper: read every frame into one
  array, detect, crop the fixed window by slicing, resize each crop, encode the whole array.

The two run back to back in every repetition (:func:`harness.paired_times`); the speed ratio is
the median of the per-repetition ratios. A second pair without detection (the true boxes as an
oracle) isolates the crop-and-encode part. The peak of traced Python/numpy memory (tracemalloc)
is taken in one extra run of each, outside the timed ones (tracing slows allocation), with the
oracle detector. Everything runs on one core. Figures go to ``benchmarks/results/pfl_crop.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from harness import paired_times, write_results  # noqa: E402

from reactlib.face import detect, footage, pfl, video  # noqa: E402

cv2.setNumThreads(1)


def reference_crop(src: Path, dst: Path, det, size: int = 256) -> None:
    """All frames in memory: detect, one fixed window from eqs 7-8, slice, resize, encode."""
    frames = video.read_video(src)
    detections = detect.detect_video(frames, det)
    win = pfl.pfl_window(detections)
    left = int(round(win.x - (win.w - 1) / 2))
    top = int(round(win.y - (win.h - 1) / 2))
    w, h = int(round(win.w)), int(round(win.h))
    crops = np.stack(
        [
            cv2.resize(
                f[top : top + h, left : left + w], (size, size), interpolation=cv2.INTER_LINEAR
            )
            for f in frames
        ]
    )
    video.write_video(dst, crops)


def peak_mib(fn) -> float:
    """The traced memory peak (MiB) of one call of ``fn``."""
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--out", default=None, help="folder for the JSON (default: results/)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = footage.photo_video(args.frames, (args.height, args.width))
        src = video.write_video(tmp / "in.mp4", photo.frames)
        boxes = photo.boxes
        del photo
        haar = detect.HaarDetector()
        detectors = {"haar": lambda: haar, "oracle": lambda: detect.OracleDetector(boxes)}
        figures: dict = {"detectors": {}}
        for name, make in detectors.items():

            def ours(make=make):
                pfl.crop_video(src, tmp / "ours.mp4", "pfl", make())

            def reference(make=make):
                reference_crop(src, tmp / "ref.mp4", make())

            paired = paired_times(ours, reference, args.repeats)
            ours_fps = [args.frames / t for t in paired.ours]
            ref_fps = [args.frames / t for t in paired.reference]
            figures["detectors"][name] = {
                "crop_video_fps_median": statistics.median(ours_fps),
                "reference_fps_median": statistics.median(ref_fps),
                "speed_ratio_median": statistics.median(1 / r for r in paired.ratios),
                "paired": paired.summary(),
            }
        oracle = detectors["oracle"]
        figures["crop_video_peak_mib"] = peak_mib(
            lambda: pfl.crop_video(src, tmp / "ours.mp4", "pfl", oracle())
        )
        figures["reference_peak_mib"] = peak_mib(
            lambda: reference_crop(src, tmp / "ref.mp4", oracle())
        )
        same = np.abs(
            video.read_video(tmp / "ours.mp4").astype(int) - video.read_video(tmp / "ref.mp4")
        )
        figures["median_abs_pixel_difference"] = float(np.median(same))
        figures["max_abs_pixel_difference"] = int(same.max())
    n = args.frames
    print(
        f"{n} frames {args.width}x{args.height} -> 256x256 PFL crop, one core, "
        f"{args.repeats} interleaved repetitions"
    )
    print(f"{'detector':<9}{'crop_video fps':>16}{'reference fps':>15}{'speed':>8}")
    for name, row in figures["detectors"].items():
        print(
            f"{name:<9}{row['crop_video_fps_median']:>16.1f}{row['reference_fps_median']:>15.1f}"
            f"{row['speed_ratio_median']:>7.2f}x"
        )
    ours_mem, ref_mem = figures["crop_video_peak_mib"], figures["reference_peak_mib"]
    print(
        f"traced peak memory (oracle): crop_video {ours_mem:.1f} MiB, reference {ref_mem:.1f} MiB "
        f"({ref_mem / ours_mem:.0f}x)"
    )
    print(
        f"outputs agree: median abs pixel difference {figures['median_abs_pixel_difference']:.0f},"
        f" max {figures['max_abs_pixel_difference']}"
    )
    settings = {
        "frames": n,
        "height": args.height,
        "width": args.width,
        "repeats": args.repeats,
        "crop_size": 256,
        "cores": 1,
        "memory_detector": "oracle",
    }
    path = write_results("pfl_crop", settings, figures, results_dir=args.out)
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
