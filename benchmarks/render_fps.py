"""Frames per second of reactlib.face.render on one CPU core, against a naive per-frame renderer.

    python benchmarks/render_fps.py [--frames 500] [--size 256] [--repeats 5]

Renders a SynthReact-like clip (every coefficient a sum of slow sinusoids) with
:class:`reactlib.face.render.FaceRenderer` and with a straightforward reference written here: per
frame, a Python loop over the 52 blendshapes, the rotation built from three matrices, the
projection and fixed-point conversion of each polygon, and a fresh background copy. Both draw the
same polygons, so the ratio measures what the vectorised pipeline saves. The two run back to back
in every repetition (:func:`harness.paired_times`); the speed-up is the median of the
per-repetition ratios. Figures go to ``benchmarks/results/render_fps.json``.
"""

from __future__ import annotations

import os

# One core: thread pools read these when numpy and OpenCV load, so they are set first.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from harness import paired_times, write_results  # noqa: E402

from reactlib.face import coeffs, render  # noqa: E402

cv2.setNumThreads(1)


def synthetic_clip(frames: int, seed: int = 0) -> np.ndarray:
    """``(frames, 58)`` smooth coefficients: expressions in [0, 1], a gently moving head."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / coeffs.FPS
    freq = rng.uniform(0.1, 1.5, (3, coeffs.NUM_COEFFS))
    phase = rng.uniform(0, 2 * np.pi, (3, coeffs.NUM_COEFFS))
    wave = sum(np.sin(2 * np.pi * freq[k] * t + phase[k]) for k in range(3)) / 3
    x = np.zeros((frames, coeffs.NUM_COEFFS))
    x[:, coeffs.EXPRESSION] = np.clip(0.15 + 0.5 * wave[:, coeffs.EXPRESSION], 0.0, 1.0)
    x[:, coeffs.ROTATION] = 0.35 * wave[:, coeffs.ROTATION]
    x[:, coeffs.TRANSLATION] = 0.04 * wave[:, coeffs.TRANSLATION] + [0, 0, coeffs.NEUTRAL_DISTANCE]
    return x


def euler(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """One rotation matrix, the textbook way: three matrices multiplied."""
    cp, sp, cy, sy, cr, sr = (f(a) for a in (pitch, yaw, roll) for f in (np.cos, np.sin))
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def render_naive(renderer: render.FaceRenderer, clip: np.ndarray) -> np.ndarray:
    """The unoptimised renderer: everything per frame, blendshapes one by one."""
    model = renderer._model
    shapes = model.basis.reshape(coeffs.NUM_EXPRESSION, -1, 3)
    polys = model.polys
    groups = {}
    for i, p in enumerate(polys):
        groups.setdefault(p.group, []).append(i)
    out = []
    for x in clip:
        verts = model.vertices.copy()
        for k in range(coeffs.NUM_EXPRESSION):
            verts = verts + x[k] * shapes[k]
        for d in model.derived:
            verts[d.out] = renderer._derive(verts[None], d)[0]
        rot = euler(*x[coeffs.ROTATION])
        cam = np.array([v if body else rot @ v for v, body in zip(verts, model.body, strict=True)])
        cam = cam + x[coeffs.TRANSLATION]
        xy = renderer.focal * cam[:, :2] / cam[:, 2:] + renderer.center
        depth = {
            g: np.mean(cam[np.unique(np.concatenate([polys[i].idx for i in groups[g]])), 2])
            for g in render._SORTED_GROUPS
        }
        far_first = sorted(render._SORTED_GROUPS, key=lambda g: -depth[g])
        order = [*render._BASE_GROUPS, *far_first, *render._TOP_GROUPS]
        img = renderer._background.copy()
        for g in order:
            for i in groups[g]:
                pts = xy[polys[i].idx]
                area = 0.5 * np.sum(
                    pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1]
                )
                if area * renderer._orientation[i] <= 0.25:
                    continue
                fixed = np.round(pts * 16).astype(np.int32)
                colour = renderer._colours[i]
                cv2.fillPoly(img, [fixed], colour, lineType=cv2.LINE_AA, shift=4)
        out.append(img)
    return np.stack(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", type=int, default=render.DEFAULT_SIZE)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--out", default=None, help="folder for the JSON (default: results/)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # Linux: also keep the process on a single core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    clip = synthetic_clip(args.frames)
    renderer = render.FaceRenderer(args.size)
    renderer.render(clip[:10])  # warm-up: imports, caches

    outputs = {}

    def fast():
        outputs["fast"] = renderer.render(clip)

    def naive():
        outputs["naive"] = render_naive(renderer, clip)

    paired = paired_times(fast, naive, args.repeats)
    fast_fps = [args.frames / t for t in paired.ours]
    naive_fps = [args.frames / t for t in paired.reference]
    speed_ups = [1 / r for r in paired.ratios]
    diff = np.abs(outputs["fast"].astype(int) - outputs["naive"])
    figures = {
        "render_fps_median": statistics.median(fast_fps),
        "render_fps_range": [min(fast_fps), max(fast_fps)],
        "naive_fps_median": statistics.median(naive_fps),
        "naive_fps_range": [min(naive_fps), max(naive_fps)],
        "speed_up_median": statistics.median(speed_ups),
        "speed_up_range": [min(speed_ups), max(speed_ups)],
        "max_abs_pixel_difference": int(diff.max()),
        "differing_pixel_fraction": float((diff.max(axis=-1) > 0).mean()),
        "paired": paired.summary(),
    }
    print(
        f"image {args.size}x{args.size}, {args.frames} frames, one core "
        f"(cv2 threads {cv2.getNumThreads()}), {args.repeats} interleaved repetitions"
    )
    print(
        f"FaceRenderer.render  {figures['render_fps_median']:8.0f} frames/s  (median; range "
        f"{min(fast_fps):.0f}-{max(fast_fps):.0f})"
    )
    print(
        f"naive per-frame      {figures['naive_fps_median']:8.0f} frames/s  (median; range "
        f"{min(naive_fps):.0f}-{max(naive_fps):.0f})"
    )
    print(
        f"speed-up             {figures['speed_up_median']:8.1f}x  (median of per-repetition "
        f"ratios; range {min(speed_ups):.1f}-{max(speed_ups):.1f})"
    )
    print(
        f"same images: max abs pixel difference {diff.max()}, "
        f"{figures['differing_pixel_fraction']:.4%} of pixels differ"
    )
    settings = {"frames": args.frames, "size": args.size, "repeats": args.repeats, "cores": 1}
    path = write_results("render_fps", settings, figures, results_dir=args.out)
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
