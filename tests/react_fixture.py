"""A small REACT 2024 copy in the real on-disk layout, for the reader's tests.

The raw files are written with numpy, the csv module, scipy.io.wavfile, imageio and OpenCV, never
with reactlib's own writers, so the reader is tested against the format REACT ships:

- ``train.csv`` / ``val.csv``: header ``,speaker_path,listener_path``, an index column;
- ``3D_FV_files/<clip>.npy``: float32, some ``(T, 58)`` and some ``(T, 1, 58)``, pitch near pi;
- ``Emotion/<clip>.csv``: a header row, then T rows of 25 values; two clips use the person-id
  spelling of the folder (``NoXI/.../P1/1`` for ``Expert_video``, ``RECOLA/group-1/P1/1`` for
  ``P25``);
- ``Audio_files/<clip>.wav``: 44.1 kHz stereo int16, T / 25 seconds long;
- ``Video_files/<clip>.mp4`` for one clip and a PNG folder ``<clip>/1.png ... T.png`` for another;
- ``neighbour_emotion_train.npy``: ``(2L, 2L)`` bool in mirrored order; none for val.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io.wavfile

STORED_FRAMES = 751
FPS = 25
AUDIO_RATE = 44100
VIDEO_SIZE = 32

NOXI_A = "NoXI/010_2016-03-25_Paris"
NOXI_B = "NoXI/026_2016-04-06_Nottingham"
TRAIN_PAIRS = [
    (f"{NOXI_A}/Expert_video/1", f"{NOXI_A}/Novice_video/1"),
    ("RECOLA/group-1/P25/1", "RECOLA/group-1/P26/1"),
    (f"{NOXI_A}/Expert_video/2", f"{NOXI_A}/Novice_video/2"),
]
VAL_PAIRS = [
    (f"{NOXI_B}/Expert_video/3", f"{NOXI_B}/Novice_video/3"),
    (f"{NOXI_B}/Expert_video/3", f"{NOXI_B}/Novice_video/4"),
]
STORED_3D = {"RECOLA/group-1/P25/1", f"{NOXI_A}/Novice_video/2", f"{NOXI_B}/Novice_video/4"}
"""Clips whose coefficients are stored as ``(T, 1, 58)``; the others are ``(T, 58)``."""
EMOTION_SPELLING = {
    f"{NOXI_A}/Expert_video/1": f"{NOXI_A}/P1/1",
    "RECOLA/group-1/P25/1": "RECOLA/group-1/P1/1",
}
"""Clips whose emotion file uses the person-id folder name instead of the clip's own."""
MP4_CLIP = f"{NOXI_A}/Expert_video/1"
PNG_CLIP = "RECOLA/group-1/P25/1"
EMOTION_HEADER = (
    "AU1,AU2,AU4,AU6,AU7,AU9,AU10,AU12,AU14,AU15,AU17,AU23,AU24,AU25,AU26,"
    "valence,arousal,Neutral,Happy,Sad,Surprise,Fear,Disgust,Anger,Contempt"
)


def train_neighbours() -> np.ndarray:
    """A ``(6, 6)`` matrix for the 3 train pairs, unlike any fallback (not symmetric, not
    grouped by speaker clip)."""
    m = np.eye(2 * len(TRAIN_PAIRS), dtype=bool)
    m[0, 2] = m[2, 0] = True
    m[3, 5] = m[5, 3] = True
    m[1, 4] = True
    return m


@dataclass
class ReactFixture:
    root: Path
    frames: int
    train_pairs: list[tuple[str, str]]
    val_pairs: list[tuple[str, str]]
    coeffs: dict[str, np.ndarray] = field(default_factory=dict)
    """Per clip, the stored coefficients as ``(T, 58)`` float32."""
    emotion: dict[str, np.ndarray] = field(default_factory=dict)
    """Per clip, the values written to the emotion CSV (as float64, before formatting)."""
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    """Per clip, the int16 ``(samples, 2)`` data written to the wav."""
    neighbours: np.ndarray | None = None

    @property
    def clips(self) -> list[str]:
        pairs = self.train_pairs + self.val_pairs
        return list(dict.fromkeys(c for pair in pairs for c in pair))

    def path(self, modality: str, clip: str) -> Path:
        """Where the fixture wrote one modality of a clip (the spelling actually used)."""
        folder, suffix = {
            "coeffs": ("3D_FV_files", ".npy"),
            "emotion": ("Emotion", ".csv"),
            "audio": ("Audio_files", ".wav"),
            "video": ("Video_files", ".mp4"),
        }[modality]
        if modality == "emotion":
            clip = EMOTION_SPELLING.get(clip, clip)
        if modality == "video" and clip == PNG_CLIP:
            return self.root / folder / clip
        return self.root / folder / f"{clip}{suffix}"


def _write_pairs(path: Path, pairs: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["", "speaker_path", "listener_path"])
        for i, (speaker, listener) in enumerate(pairs):
            out.writerow([i, speaker, listener])


def _coefficients(rng: np.random.Generator, frames: int) -> np.ndarray:
    x = np.empty((frames, 58), dtype=np.float32)
    x[:, :52] = rng.uniform(0, 1, (frames, 52))
    x[:, 52] = np.pi + rng.normal(0, 0.05, frames)  # FaceVerse pitch sits near pi
    x[:, 53:55] = rng.normal(0, 0.05, (frames, 2))
    x[:, 55:57] = rng.normal(0, 0.02, (frames, 2))
    x[:, 57] = 1.84 + rng.normal(0, 0.02, frames)
    return x


def _emotion(rng: np.random.Generator, frames: int) -> np.ndarray:
    au = (rng.uniform(0, 1, (frames, 15)) > 0.7).astype(np.float64)
    affect = rng.uniform(-1, 1, (frames, 2))
    logits = rng.normal(0, 1, (frames, 8))
    expression = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.concatenate([au, affect, expression], axis=1)


def _audio(rng: np.random.Generator, frames: int) -> np.ndarray:
    n = round(frames * AUDIO_RATE / FPS)
    t = np.arange(n) / AUDIO_RATE
    tone = np.sin(2 * np.pi * rng.uniform(100, 250) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t))
    left = 0.3 * tone + 0.02 * rng.standard_normal(n)
    right = 0.2 * tone + 0.02 * rng.standard_normal(n)
    return np.round(np.stack([left, right], axis=1) * 32767).astype(np.int16)


def _video_frame(k: int) -> np.ndarray:
    """Frame k (0-based) as RGB: red encodes k, green is a constant 40, blue is 0."""
    frame = np.zeros((VIDEO_SIZE, VIDEO_SIZE, 3), dtype=np.uint8)
    frame[..., 0] = (3 * k) % 200 + 20
    frame[..., 1] = 40
    return frame


def make_react_fixture(
    root: str | Path,
    frames: int = STORED_FRAMES,
    *,
    audio: bool = True,
    video: bool = True,
    seed: int = 0,
) -> ReactFixture:
    """Write the fixture corpus into ``root`` (created) with ``frames`` stored frames per clip."""
    import cv2
    import imageio

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fx = ReactFixture(root, frames, list(TRAIN_PAIRS), list(VAL_PAIRS))
    _write_pairs(root / "train.csv", fx.train_pairs)
    _write_pairs(root / "val.csv", fx.val_pairs)
    fx.neighbours = train_neighbours()
    np.save(root / "neighbour_emotion_train.npy", fx.neighbours)

    for clip in fx.clips:
        x = _coefficients(rng, frames)
        fx.coeffs[clip] = x
        path = fx.path("coeffs", clip)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, x[:, None, :] if clip in STORED_3D else x)

        e = _emotion(rng, frames)
        fx.emotion[clip] = e
        path = fx.path("emotion", clip)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            f.write(EMOTION_HEADER + "\n")
            for row in e:
                f.write(",".join(f"{v:.6f}" for v in row) + "\n")

        if audio:
            pcm = _audio(rng, frames)
            fx.audio[clip] = pcm
            path = fx.path("audio", clip)
            path.parent.mkdir(parents=True, exist_ok=True)
            scipy.io.wavfile.write(path, AUDIO_RATE, pcm)

    if video:
        path = fx.path("video", MP4_CLIP)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = imageio.get_writer(path, fps=FPS, codec="libx264", macro_block_size=16)
        try:
            for k in range(frames):
                writer.append_data(_video_frame(k))
        finally:
            writer.close()
        folder = fx.path("video", PNG_CLIP)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(frames):
            cv2.imwrite(str(folder / f"{k + 1}.png"), _video_frame(k)[..., ::-1])  # BGR
    return fx


def expected_video_frame(k: int) -> np.ndarray:
    """What frame k of the fixture's videos holds, as RGB."""
    return _video_frame(k)
