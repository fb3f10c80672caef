"""Throughput and peak memory of ``python -m reactlib pfl-crop`` against an in-memory reference.

    python benchmarks/pfl_crop.py [--frames 750] [--height 360] [--width 480] [--repeats 2]

Writes the astronaut photograph moving along a known path (:func:`reactlib.pfl.photo_video`) as
an H.264 mp4, then crops it to 256x256 with PFL in two ways, each with the same Haar detector:

* ``reactlib.pfl.crop_video``: two streaming passes (detect, then crop and encode), one frame in
  memory at a time;
* the reference written here, shaped like the paper code's cropper: read every frame into one
  array, detect, crop the fixed window by slicing, resize each crop, encode the whole array.

It prints frames per second of both and their ratio, and the peak of traced Python/numpy memory
(tracemalloc). A second pair without detection (the true boxes as an oracle) isolates the
crop-and-encode part. Everything runs on one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from reactlib import pfl, render  # noqa: E402

cv2.setNumThreads(1)


def reference_crop(src: Path, dst: Path, det, size: int = 256) -> None:
    """All frames in memory: detect, one fixed window from eqs 7-8, slice, resize, encode."""
    frames = render.read_video(src)
    detections = pfl.detect_video(frames, det)
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
    render.write_video(dst, crops)


def measure(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds of ``repeats`` calls and the traced memory peak (MiB) of the last."""
    times = []
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return float(np.median(times)), peak / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = pfl.photo_video(args.frames, (args.height, args.width))
        src = render.write_video(tmp / "in.mp4", video.frames)
        boxes = video.boxes
        del video
        haar = pfl.HaarDetector()
        rows = []
        for name, make in (("haar", lambda: haar), ("oracle", lambda: pfl.OracleDetector(boxes))):
            ours, ours_mem = measure(
                lambda make=make: pfl.crop_video(src, tmp / "ours.mp4", "pfl", make()),
                args.repeats,
            )
            ref, ref_mem = measure(
                lambda make=make: reference_crop(src, tmp / "ref.mp4", make()), args.repeats
            )
            rows.append((name, ours, ours_mem, ref, ref_mem))
        same = np.abs(
            render.read_video(tmp / "ours.mp4").astype(int) - render.read_video(tmp / "ref.mp4")
        )
    n = args.frames
    print(f"{n} frames {args.width}x{args.height} -> 256x256 PFL crop, one core")
    print(
        f"{'detector':<9}{'crop_video fps':>16}{'peak MiB':>10}{'reference fps':>15}"
        f"{'peak MiB':>10}{'speed':>8}{'memory':>9}"
    )
    for name, ours, ours_mem, ref, ref_mem in rows:
        print(
            f"{name:<9}{n / ours:>16.1f}{ours_mem:>10.1f}{n / ref:>15.1f}{ref_mem:>10.1f}"
            f"{ref / ours:>7.2f}x{ref_mem / ours_mem:>8.1f}x"
        )
    print(f"outputs agree: median abs pixel difference {np.median(same):.0f}, max {same.max()}")


if __name__ == "__main__":
    main()
