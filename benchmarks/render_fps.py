"""Frames per second of reactlib.render on one CPU core, against a naive per-frame renderer.

    python benchmarks/render_fps.py [--frames 500] [--size 256] [--repeats 3]

Renders a SynthReact-like clip (every coefficient a sum of slow sinusoids) with
:class:`reactlib.render.FaceRenderer` and with a straightforward reference written here: per
frame, a Python loop over the 52 blendshapes, the rotation built from three matrices, the
projection and fixed-point conversion of each polygon, and a fresh background copy. Both draw the
same polygons, so the ratio measures what the vectorised pipeline saves.
"""

from __future__ import annotations

import os

# One core: thread pools read these when numpy and OpenCV load, so they are set first.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from reactlib import coeffs, render  # noqa: E402

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


def timed(fn, repeats: int) -> tuple[list[float], np.ndarray]:
    """Wall times of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", type=int, default=render.DEFAULT_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # Linux: also keep the process on a single core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    clip = synthetic_clip(args.frames)
    renderer = render.FaceRenderer(args.size)
    renderer.render(clip[:10])  # warm-up: imports, caches

    fast, frames = timed(lambda: renderer.render(clip), args.repeats)
    slow, reference = timed(lambda: render_naive(renderer, clip), 1)
    fps = args.frames / np.array(fast)
    fast_fps, slow_fps = float(np.median(fps)), args.frames / slow[0]
    diff = np.abs(frames.astype(int) - reference)
    print(
        f"image {args.size}x{args.size}, {args.frames} frames, one core "
        f"(cv2 threads {cv2.getNumThreads()})"
    )
    print(
        f"FaceRenderer.render  {fast_fps:8.0f} frames/s  (median of {args.repeats}, "
        f"range {fps.min():.0f}-{fps.max():.0f})"
    )
    print(f"naive per-frame      {slow_fps:8.0f} frames/s")
    print(f"speed-up             {fast_fps / slow_fps:8.1f}x")
    print(
        f"same images: max abs pixel difference {diff.max()}, "
        f"{(diff.max(axis=-1) > 0).mean():.4%} of pixels differ"
    )


if __name__ == "__main__":
    main()
