"""Controls for the ``*_cpu`` video metrics: what each gives on clips whose answer is known.

    python benchmarks/video_controls.py [--frames 100] [--calibration-items 8]

1. **Calibration of dynamic degree.** SynthReact's real listeners (the first ``lab`` test clips,
   all 750 frames) rendered at 96 and 128 pixels: the speeds (frame sides per second) of
   :func:`reactlib.metrics.video.dynamic_degree_cpu`'s sampled pairs, their quartiles per size
   and pooled. ``DYNAMIC_SPEED`` is the pooled median, rounded.
2. **Controls** on one rendered listener clip (the first ``lab`` test clip, ``--frames`` frames,
   96 pixels): the clean clip, the same clip still (its first frame repeated), Gaussian noise of
   5, 10 and 20 grey levels drawn afresh for every frame, Gaussian blur of 1 and 2 pixels on
   every frame and on every other frame, a flicker (+8 grey levels on every other frame), and
   seams (0.05 rad of yaw added on every other 16-frame block). Every metric of
   :func:`reactlib.metrics.video.video_metrics` with the clean clip's backdrop mask, the whole-frame
   background, and VBench's own rules for motion smoothness and dynamic degree.
3. **Same amount of motion.** A textured pan moved smoothly, and one moved 1 pixel a frame with
   a 6-pixel jump every 16 frames: the same travel (59 pixels in 47 frames); and a still one.
4. **Size and frame rate.** A head turning 0.2 rad either way every 2 s, rendered at 96 and
   128 pixels and sampled at 10, 25 and 30 fps: dynamic degree, ours and VBench's.

Figures go to ``benchmarks/results/video_controls.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from harness import write_results  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

import reactlib as rl  # noqa: E402
from reactlib.face import coeffs, render  # noqa: E402
from reactlib.metrics import video  # noqa: E402

cv2.setNumThreads(1)


def _uint8(x) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def controls(x: np.ndarray, face: render.FaceRenderer, seed: int = 0) -> dict[str, np.ndarray]:
    """The control clips of a coefficient clip ``x (T, 58)`` rendered by ``face``."""
    rng = np.random.default_rng(seed)
    clean = face.render(x)
    out = {"clean": clean, "still": np.repeat(clean[:1], len(clean), axis=0)}
    for sigma in (5, 10, 20):
        out[f"noise {sigma}"] = _uint8(clean + rng.normal(0, sigma, clean.shape))
    for sigma in (1, 2):
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in clean])
        out[f"blur {sigma}"] = blurred
        alternate = clean.copy()
        alternate[1::2] = blurred[1::2]
        out[f"blur {sigma} every other frame"] = alternate
    flicker = clean.astype(int)
    flicker[1::2] += 8
    out["flicker 8"] = _uint8(flicker)
    seams = x.astype(np.float64).copy()
    seams[:, coeffs.index("yaw")] += 0.05 * ((np.arange(len(x)) // 16) % 2)
    out["seams"] = face.render(seams)
    return out


def scores(frames: np.ndarray, mask: np.ndarray, fps: float = video.FPS) -> dict:
    figures = video.video_metrics(frames, fps, mask)
    figures["background_whole_frame_cpu"] = video.background_consistency_cpu(frames)
    figures["motion_smoothness_vbench_cpu"] = video.motion_smoothness_vbench_cpu(frames)
    figures["dynamic_degree_vbench_cpu"] = float(video.dynamic_degree_vbench_cpu(frames, fps)[0])
    return figures


def glide(offsets, size: int = 96) -> np.ndarray:
    """A smooth random texture seen through a ``size`` window at sub-pixel horizontal offsets."""
    rng = np.random.default_rng(0)
    big = gaussian_filter(rng.normal(size=(320, 320, 3)), (3, 3, 0))
    big = (255 * (big - big.min()) / (big.max() - big.min())).astype(np.float32)
    shifted = [
        cv2.warpAffine(
            big,
            np.float32([[1, 0, 40 + o], [0, 1, 60]]),
            (size, size),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        )
        for o in offsets
    ]
    return _uint8(np.stack(shifted))


def turning(seconds: float, fps: float, amplitude: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * fps)) / fps
    x = coeffs.neutral(len(t)).astype(np.float64)
    x[:, coeffs.index("yaw")] += amplitude * np.sin(np.pi * t)
    return x


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--calibration-items", type=int, default=8)
    parser.add_argument("--out", help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)

    corpus = rl.data.open_corpus(None, cfg=rl.config.resolve("lab"))
    listeners = corpus.split("test").stack("coeffs", "listener")[: args.calibration_items]
    calibration = {}
    pooled = []
    for size in (96, 128):
        face = render.FaceRenderer(size, render.Identity.random(1))
        speeds = np.concatenate([video.dynamic_degree_cpu(face.render(x))[1] for x in listeners])
        pooled.append(speeds)
        calibration[f"{size}px"] = {
            "quartiles": np.percentile(speeds, [25, 50, 75]).tolist(),
            "pairs": int(len(speeds)),
        }
        calibration[f"{size}px"]["degree_at_dynamic_speed"] = float(
            (speeds > video.DYNAMIC_SPEED).mean()
        )
    calibration["pooled_median"] = float(np.median(np.concatenate(pooled)))
    calibration["dynamic_speed"] = video.DYNAMIC_SPEED

    face = render.FaceRenderer(96, render.Identity.random(1))
    clips = controls(listeners[0, : args.frames], face)
    mask = video.backdrop_mask(clips["clean"], face.backdrop)  # the person of the clean clip
    control_figures = {name: scores(frames, mask) for name, frames in clips.items()}

    smooth = np.arange(48) * 59 / 47
    jumpy = np.arange(48) + 6 * (np.arange(48) // 16)
    same_amount = {}
    for name, offsets in (("still", np.zeros(48)), ("smooth", smooth), ("seams", jumpy)):
        frames = glide(offsets)
        same_amount[name] = {
            "motion_smoothness_cpu": video.motion_smoothness_cpu(frames),
            "motion_smoothness_vbench_cpu": video.motion_smoothness_vbench_cpu(frames),
            "travel_px": float(offsets[-1] - offsets[0]),
        }

    rates = {}
    for size in (96, 128):
        head = render.FaceRenderer(size, render.Identity.random(0))
        for fps in (10, 25, 30):
            frames = head.render(turning(4, fps))
            degree, speeds = video.dynamic_degree_cpu(frames, fps)
            rates[f"{size}px {fps}fps"] = {
                "dynamic_degree_cpu": degree,
                "median_speed": float(np.median(speeds)),
                "dynamic_degree_vbench_cpu": float(video.dynamic_degree_vbench_cpu(frames, fps)[0]),
                "still": video.dynamic_degree_cpu(np.repeat(frames[:1], len(frames), 0), fps)[0],
            }

    figures = {
        "calibration": calibration,
        "controls": control_figures,
        "same_amount_of_motion": same_amount,
        "size_and_frame_rate": rates,
    }
    settings = {
        "frames": args.frames,
        "calibration_items": args.calibration_items,
        "size": 96,
        "threads": 1,
    }
    path = write_results("video_controls", settings, figures, results_dir=args.out)
    for name, row in control_figures.items():
        print(f"{name:>26}: " + ", ".join(f"{k[:-4]} {v:.3f}" for k, v in row.items()))
    print(f"calibration: {calibration}")
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
