"""Video files and inline display: H.264 writing, frame-by-frame reading, a notebook player.

Browser-playable H.264 writing (atomic, streaming), reading video files or REACT's folders of
numbered PNG frames one frame at a time, header information without decoding, an inline player
for notebooks, and side-by-side tiling of clips.

Every frame is RGB ``uint8`` ``(H, W, 3)``; a clip is ``(T, H, W, 3)`` or any iterable of frames.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from reactlib import paths
from reactlib.errors import DataError
from reactlib.face.coeffs import FPS


def _check_frames(frames) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        kind = frames.dtype if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames must be a uint8 numpy array, got {kind}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape) == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    return frames


def write_video(path, frames, fps: float = FPS) -> Path:
    """Write RGB frames as a browser-playable H.264 mp4 (yuv420p) and return its path.

    ``frames`` is a ``(T, H, W, 3)`` uint8 array or any iterable of ``(H, W, 3)`` uint8 frames of
    one size (a generator streams: one frame is held at a time). Odd heights or widths are padded
    by one repeated edge pixel, since yuv420p needs even sizes. The file appears atomically: it is
    encoded to a temporary file in the same folder, which replaces ``path`` only once complete and
    is removed if anything fails (a bad frame, an empty iterable).
    """
    import imageio.v2 as imageio

    if isinstance(frames, np.ndarray):
        frames = _check_frames(frames)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist (writing {path})")

    def encode(tmp: Path) -> None:
        writer = imageio.get_writer(
            tmp,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            quality=7,
            pixelformat="yuv420p",
            macro_block_size=2,
            ffmpeg_log_level="error",
            # veryfast halves the encoding time of the default preset for a 4% larger file.
            output_params=["-movflags", "+faststart", "-preset", "veryfast"],
        )
        shape = None
        try:
            for i, frame in enumerate(frames):
                if shape is None:
                    shape = _check_frames(np.asarray(frame)[None]).shape[1:]
                    h, w = shape[:2]
                    pad = ((0, h % 2), (0, w % 2), (0, 0))
                elif (
                    not isinstance(frame, np.ndarray)
                    or frame.shape != shape
                    or (frame.dtype != np.uint8)
                ):
                    raise ValueError(
                        f"frame {i} is {getattr(frame, 'shape', type(frame).__name__)} "
                        f"{getattr(frame, 'dtype', '')}, the first was {shape} uint8"
                    )
                writer.append_data(np.pad(frame, pad, mode="edge") if h % 2 or w % 2 else frame)
        except BaseException:
            # imageio skips close() when the block raises; ffmpeg would then outlive the temp
            # file and write it again when the writer is collected.
            with contextlib.suppress(Exception):
                writer.close()
            raise
        writer.close()
        if shape is None:
            raise ValueError(f"no frames to write to {path}")

    paths.write_atomically(path, encode)
    return path


_FRAME_NAME = re.compile(r"(\d+)\.png", re.IGNORECASE)


def read_video(path) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB frames of a video file, or of a folder of numbered PNG frames
    (``1.png``, ``2.png``, ..., ordered by number, as REACT stores them)."""
    return np.stack(list(iter_video(path)))


def iter_video(path) -> Iterator[np.ndarray]:
    """The frames of :func:`read_video` one at a time, for videos too long to hold in memory.

    Raises :class:`~reactlib.errors.DataError` naming the file when it cannot be decoded, when
    decoding fails part way (a truncated file) or when it has no frames.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video or frame folder at {path}")
    if path.is_dir():
        yield from _iter_frame_folder(path)
        return
    import imageio.v2 as imageio

    n = 0
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
    except Exception as err:
        raise DataError(f"cannot read video {path}: {_first_line(err)}") from err
    with reader:
        it = iter(reader)
        while True:
            try:
                frame = next(it)
            except StopIteration:
                break
            except Exception as err:
                raise DataError(
                    f"cannot read video {path} after frame {n}: {_first_line(err)}"
                ) from err
            n += 1
            yield np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
    if n == 0:
        raise DataError(f"video {path} has no frames")


def _first_line(err: Exception) -> str:
    """The message of a decoder error without ffmpeg's banner that imageio appends to it."""
    text = str(err).strip()
    return text.split("\n=== stderr ===")[0].splitlines()[0] if text else type(err).__name__


def video_info(path) -> dict:
    """``{"fps", "size": (H, W), "frames"}`` of a video file without decoding it; ``frames`` is
    what the header's duration announces (None when unknown; a PNG folder reports fps 25 and
    None). :class:`~reactlib.errors.DataError` naming the file when it is not a readable video."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video or frame folder at {path}")
    if path.is_dir():
        first = next(iter_video(path))
        return {"fps": float(FPS), "size": first.shape[:2], "frames": None}
    import imageio.v2 as imageio

    try:
        with imageio.get_reader(path, format="FFMPEG") as reader:
            meta = reader.get_meta_data()
    except Exception as err:
        raise DataError(f"cannot read video {path}: {_first_line(err)}") from err
    w, h = meta.get("size", (0, 0))
    fps = float(meta.get("fps") or FPS)
    fps = fps if np.isfinite(fps) and fps > 0 else float(FPS)
    duration = float(meta.get("duration") or 0.0)
    frames = int(round(duration * fps)) if np.isfinite(duration) and duration > 0 else None
    return {"fps": fps, "size": (int(h), int(w)), "frames": frames}


def _iter_frame_folder(folder: Path) -> Iterator[np.ndarray]:
    numbered = sorted(
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _FRAME_NAME.fullmatch(p.name)) and p.is_file()
    )
    if not numbered:
        raise DataError(f"no numbered PNG frames (1.png, 2.png, ...) in {folder}")
    shape = None
    for _, p in numbered:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"cannot read frame {p}")
        if shape is not None and img.shape != shape:
            raise DataError(f"frame {p} is {img.shape[:2]}, the first frame is {shape[:2]}")
        shape = img.shape
        yield cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def show_video(frames_or_path, fps: float = FPS, width: int | None = None):
    """An ``IPython.display.HTML`` player with the video embedded as base64 H.264 mp4.

    Accepts ``(T, H, W, 3)`` uint8 frames (encoded at ``fps``), an mp4 file (embedded as is) or
    a folder of PNG frames.
    """
    from IPython.display import HTML

    if isinstance(frames_or_path, str | os.PathLike):
        path = Path(frames_or_path)
        if path.is_file() and path.suffix.lower() == ".mp4":
            data = path.read_bytes()
        else:
            data = _encode(read_video(path), fps)
    else:
        data = _encode(frames_or_path, fps)
    size = "" if width is None else f' width="{int(width)}"'
    b64 = base64.b64encode(data).decode("ascii")
    return HTML(
        f"<video controls loop autoplay muted playsinline{size}>"
        f'<source src="data:video/mp4;base64,{b64}" type="video/mp4"></video>'
    )


def _encode(frames, fps: float) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return write_video(Path(tmp) / "clip.mp4", frames, fps).read_bytes()


def side_by_side(
    videos: Sequence[np.ndarray], labels: Sequence[str] | None = None, gap: int = 4
) -> np.ndarray:
    """Tile clips left to right, ``gap`` white pixels apart, with optional labels.

    Shorter clips hold their last frame until the longest ends; shorter heights are padded
    below. Returns ``(T, H, W_total, 3)`` uint8.
    """
    if not videos:
        raise ValueError("side_by_side needs at least one clip")
    clips = [_check_frames(v) for v in videos]
    if labels is not None and len(labels) != len(clips):
        raise ValueError(f"got {len(labels)} labels for {len(clips)} clips")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    t = max(len(c) for c in clips)
    h = max(c.shape[1] for c in clips)
    w = sum(c.shape[2] for c in clips) + gap * (len(clips) - 1)
    out = np.full((t, h, w, 3), 255, dtype=np.uint8)
    x = 0
    for k, clip in enumerate(clips):
        n, ch, cw, _ = clip.shape
        out[:n, :ch, x : x + cw] = clip
        out[n:, :ch, x : x + cw] = clip[-1]
        if labels is not None and labels[k]:
            for frame in out[:, :, x : x + cw]:
                _label(frame, str(labels[k]))
        x += cw + gap
    return out


def _label(img: np.ndarray, text: str) -> None:
    """Small white text with a dark outline, readable on any background."""
    org, font, scale = (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4
    cv2.putText(img, text, org, font, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
