"""The REACT 2024 on-disk layout: reading, writing and validating its files.

One reader serves the licensed REACT 2024 copy and SynthReact (:mod:`reactlib.data.synth`), which is
written in the same layout::

    <root>/
      train.csv, val.csv, test.csv          header ",speaker_path,listener_path"; one row per pair
      3D_FV_files/<clip>.npy                (T, 58) or (T, 1, 58) face coefficients
      Emotion/<clip>.csv                    a header row, then T rows of 25 emotion values
      Audio_files/<clip>.wav                any sample rate; stereo is averaged to mono
      Audio_files/<clip>.<name>.npy         optional: precomputed (T, D) per-frame audio features
      Video_files/<clip>.mp4                or a folder <clip>/ of 1.png ... T.png
      neighbour_emotion_<split>.npy         (2L, 2L) appropriateness matrix, mirrored order
      reactlab.json                         SynthReact only: how the corpus was made

``<clip>`` is a relative path such as ``NoXI/010_2016-03-25_Paris/Expert_video/1``. REACT stores
751 frames per clip and models use the first 750. Every pair is *mirrored* (speaker and listener
swapped) to give 2L items in the order [all pairs, then all swapped pairs]; the neighbour matrix
uses that order, and entry ``[k, j]`` says the listener of item j is an appropriate reaction to
the speaker of item k. SynthReact's listeners react to their speaker but not the other way round,
so its corpus file turns mirroring off and only the original block of the matrix is used.

Some REACT releases name the person folders ``P1``/``P2`` in one modality and
``Expert_video``/``Novice_video`` (NoXI) or ``P25``/``P26`` (RECOLA) in another; the reader
tries both spellings.

The model hears the speaker through per-frame audio features: by default ``mfcc78``, computed
from the wav (:func:`reactlib.data.audio.mfcc78`); a split opened with ``audio_features=NAME``
reads features the user computed elsewhere (wav2vec2, HuBERT, ...) from
``Audio_files/<clip>.NAME.npy`` instead.

Bad input fails with a :class:`DataError` that names the file and what is wrong. The splits and
corpora built on these files are :mod:`reactlib.data.corpus`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reactlib import errors, paths
from reactlib.data import audio
from reactlib.face import coeffs, video

if TYPE_CHECKING:
    pass

DATA_ENV = "REACT_DATA"
"""Environment variable naming a REACT 2024 copy (used when no ``data_root`` is given)."""

REACT_FRAMES = 751
"""Frames stored per REACT 2024 clip; models and metrics use the first 750."""
USED_FRAMES = 750

MODALITY_DIRS = {
    "coeffs": "3D_FV_files",
    "emotion": "Emotion",
    "audio": "Audio_files",
    "video": "Video_files",
}
MODALITY_SUFFIX = {"coeffs": ".npy", "emotion": ".csv", "audio": ".wav", "video": ".mp4"}
MODALITIES = tuple(MODALITY_DIRS)
SPLITS = ("train", "val", "test")
CORPUS_FILE = "reactlab.json"
PAIR_HEADER = ("", "speaker_path", "listener_path")
FALLBACKS = ("same_speaker", "self")
"""Named neighbour fallbacks: ``same_speaker`` (every item whose speaker clip is the same; on
SynthReact that is the exact appropriate set) and ``self`` (only the paired listener)."""
AUDIO_FEATURES_DEFAULT = "mfcc78"
"""The audio features computed from each clip's wav; any other name selects precomputed features
stored as ``Audio_files/<clip>.<name>.npy``."""
_AUDIO_FEATURES_NAME = re.compile(r"[A-Za-z0-9_-]+")
TOKENS_PER_FRAME_LIMIT = 1.5
"""A feature file with more rows than this many per video frame of its clip is taken for
50 Hz model tokens (two per 25 fps frame) and refused rather than read at the wrong rate."""


DataError = errors.DataError
"""A file of the corpus is missing or malformed; the message names the file and the problem."""


class NeighbourFallbackWarning(UserWarning):
    """No neighbour matrix was found for a split, so a named fallback is used instead."""


def resolve_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The REACT copy to use: ``data_root`` (a notebook parameter), else ``$REACT_DATA``, else
    None (meaning SynthReact). A given root must exist."""
    chosen = data_root if data_root not in (None, "") else os.environ.get(DATA_ENV) or None
    if chosen is None:
        return None
    root = Path(chosen).expanduser()
    where = "data_root" if data_root not in (None, "") else f"${DATA_ENV}"
    if not root.is_dir():
        raise DataError(f"{where} points at {root}, which is not a folder")
    return root.resolve()


# --- Person-id spellings --------------------------------------------------------------------

_NOXI_ROLES = {"Expert_video": "P1", "Novice_video": "P2"}
_RECOLA_PERSON = re.compile(r"P(\d+)$")


def person_variants(clip: str) -> list[str]:
    """Other spellings of a clip path's person folder: NoXI ``Expert_video``/``Novice_video`` <->
    ``P1``/``P2``; RECOLA ``P25``/``P26`` (odd/even id in a group) <-> ``P1``/``P2``."""
    parts = clip.split("/")
    if len(parts) < 3:
        return []
    person = parts[-2]
    site = parts[0].upper()
    options: list[str] = []
    if person in _NOXI_ROLES:
        options.append(_NOXI_ROLES[person])
    elif site == "NOXI" and person in ("P1", "P2"):
        options += [role for role, pid in _NOXI_ROLES.items() if pid == person]
    elif site == "RECOLA" and (m := _RECOLA_PERSON.match(person)):
        number = int(m.group(1))
        if number in (1, 2):
            options.append(f"P{number}")  # resolved against the folder listing by the caller
        else:
            options.append("P1" if number % 2 else "P2")
    return ["/".join([*parts[:-2], option, parts[-1]]) for option in options]


def _recola_candidates(folder: Path, clip: str) -> list[str]:
    """``RECOLA/group-1/P1/1`` -> the group's real person folders with the matching parity."""
    parts = clip.split("/")
    person = parts[-2]
    group = folder.joinpath(*parts[:-2])
    if not (person in ("P1", "P2") and group.is_dir()):
        return []
    parity = 1 if person == "P1" else 0
    out = []
    for child in sorted(group.iterdir()):
        m = _RECOLA_PERSON.match(child.name)
        if m and int(m.group(1)) > 2 and int(m.group(1)) % 2 == parity:
            out.append("/".join([*parts[:-2], child.name, parts[-1]]))
    return out


def _spellings(folder: Path, clip: str) -> list[str]:
    """The clip path, then its other person-id spellings, each once."""
    spellings = [clip, *person_variants(clip)]
    if clip.split("/")[0].upper() == "RECOLA":
        spellings += _recola_candidates(folder, clip)
    return list(dict.fromkeys(spellings))


def clip_file(root: Path, modality: str, clip: str, *, must_exist: bool = True) -> Path:
    """The file (or PNG folder, for video) holding one modality of a clip.

    Tries the exact path, then the other person-id spellings. With ``must_exist`` a missing file
    raises :class:`DataError` naming every path that was tried.
    """
    if modality not in MODALITY_DIRS:
        raise ValueError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}")
    folder = Path(root) / MODALITY_DIRS[modality]
    suffix = MODALITY_SUFFIX[modality]
    tried = []
    for spelling in _spellings(folder, clip):
        candidate = folder / f"{spelling}{suffix}"
        tried.append(candidate)
        if candidate.is_file():
            return candidate
        if modality == "video" and (frames := folder / spelling).is_dir():
            return frames
    if must_exist:
        shown = "; ".join(str(p) for p in tried)
        raise DataError(f"missing {modality} for clip {clip!r}: no file at {shown}")
    return tried[0]


def check_audio_features(name: str) -> str:
    """``name`` if it can name audio features (``mfcc78``, or letters, digits, ``_`` and ``-``
    only, so that it is one part of a file name), else :class:`UsageError`."""
    if not (isinstance(name, str) and _AUDIO_FEATURES_NAME.fullmatch(name)):
        raise errors.UsageError(
            f"audio_features must be {AUDIO_FEATURES_DEFAULT!r} (computed from the wav) or the "
            f"name of precomputed features, made of letters, digits, '_' and '-' only "
            f"(read from {MODALITY_DIRS['audio']}/<clip>.<name>.npy); got {name!r}"
        )
    return name


def audio_feature_file(root: Path, clip: str, features: str, *, must_exist: bool = True) -> Path:
    """``Audio_files/<clip>.<features>.npy``, the precomputed audio features named ``features``
    of a clip, found under the clip's person-id spellings like :func:`clip_file`.

    With ``must_exist`` a missing file raises :class:`DataError` naming the features and every
    path that was tried; without it, the exact path is returned (where to write the file).
    """
    if check_audio_features(features) == AUDIO_FEATURES_DEFAULT:
        raise errors.UsageError(
            f"{AUDIO_FEATURES_DEFAULT!r} features are computed from the wav, not read from a "
            "file: use clip_file(root, 'audio', clip) and load_audio_features"
        )
    folder = Path(root) / MODALITY_DIRS["audio"]
    tried = [folder / f"{spelling}.{features}.npy" for spelling in _spellings(folder, clip)]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    if must_exist:
        shown = "; ".join(str(p) for p in tried)
        raise DataError(
            f"missing audio features {features!r} for clip {clip!r}: no file at {shown}"
        )
    return tried[0]


# --- One modality of one clip ---------------------------------------------------------------


def _check_frames(path: Path, array: np.ndarray, frames: int | None, what: str) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))
        raise DataError(
            f"{path}: {what} holds {len(bad)} NaN or infinite values (first at frame {bad[0][0]})"
        )
    if frames is not None and array.shape[0] < frames:
        raise DataError(f"{path}: {what} has {array.shape[0]} frames, expected at least {frames}")
    return array if frames is None else array[:frames]


def read_npy(path: Path, what: str) -> np.ndarray:
    """The array in a ``.npy`` file, never unpickled; :class:`DataError` naming ``path`` when it
    is missing (``what`` says which file it should have been) or unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from err


def load_coeffs(path: str | Path, frames: int | None = None) -> np.ndarray:
    """Face coefficients ``(T, 58)`` float32 from a ``.npy`` stored as ``(T, 58)`` or
    ``(T, 1, 58)``; the first ``frames`` frames when given (fewer is an error)."""
    path = Path(path)
    array = read_npy(path, "coefficient file")
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 2 or array.shape[1] != coeffs.NUM_COEFFS:
        raise DataError(
            f"{path}: coefficients have shape {array.shape}, expected (T, 58) or (T, 1, 58)"
        )
    if array.dtype.kind not in "fiu":
        raise DataError(f"{path}: coefficients have dtype {array.dtype}, expected numbers")
    return _check_frames(path, array.astype(np.float32), frames, "coefficients")


def _writable(path: str | Path, x: np.ndarray, width: int, what: str) -> np.ndarray:
    """``x`` as finite float32 ``(T, width)``, with the file's folder created."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != width or not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: {what} must be finite (T, {width}), got shape {x.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return x


def save_coeffs(path: str | Path, x: np.ndarray) -> Path:
    x = _writable(path, x, coeffs.NUM_COEFFS, "coefficients")
    return paths.write_atomically(path, lambda tmp: np.save(tmp, x))


def load_emotion(path: str | Path, frames: int | None = None) -> np.ndarray:
    """Emotion ``(T, 25)`` float32 from a CSV with one header row (which is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: emotion file not found")
    try:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) < 2:
            raise DataError(f"{path}: emotion CSV has no data rows (a header and T rows expected)")
        array = np.loadtxt(io.StringIO("\n".join(lines[1:])), delimiter=",", ndmin=2)
    except (ValueError, UnicodeDecodeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: not a numeric emotion CSV ({err})") from err
    if array.shape[1] != coeffs.NUM_EMOTION:
        raise DataError(f"{path}: emotion has {array.shape[1]} columns, expected 25")
    return _check_frames(path, array.astype(np.float32), frames, "emotion")


def save_emotion(path: str | Path, e: np.ndarray) -> Path:
    e = _writable(path, e, coeffs.NUM_EMOTION, "emotion")
    header = ",".join(coeffs.EMOTION_NAMES)

    def write(tmp: Path) -> None:
        np.savetxt(tmp, e, fmt="%.5g", delimiter=",", header=header, comments="")

    return paths.write_atomically(path, write)


def load_audio_features(path: str | Path, frames: int) -> np.ndarray:
    """78-d MFCC features ``(frames, 78)`` of a wav; the wav must cover ``frames`` video frames
    (a tolerance of one frame absorbs rounding of the sample count)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        wav, rate = audio.read_wav(path)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: unreadable wav ({err})") from err
    have = len(wav) * coeffs.FPS / rate
    if have < frames - 1:
        raise DataError(
            f"{path}: audio lasts {len(wav) / rate:.2f} s ({have:.1f} frames), "
            f"expected at least {frames} frames ({frames / coeffs.FPS:.2f} s)"
        )
    return audio.mfcc78(wav, rate, fps=coeffs.FPS, num_frames=frames)


def load_feature_array(
    path: str | Path, frames: int, *, clip_frames: int | None = None
) -> np.ndarray:
    """Precomputed per-video-frame features ``(frames, D)`` float32 from a ``.npy`` holding a
    ``(T, D)`` array of numbers, ``D >= 1`` and ``T >= frames`` (the first ``frames`` are used).

    ``clip_frames`` is how many video frames the clip holds (at least ``frames``). Speech models
    such as wav2vec2 emit 50 Hz tokens, two per 25 fps video frame; an array with more than
    :data:`TOKENS_PER_FRAME_LIMIT` rows per clip frame is refused with a hint on pooling them,
    since reading it as per-frame features would play the speech at half speed.
    """
    path = Path(path)
    array = read_npy(path, "audio feature file")
    if array.dtype.kind not in "fiu":
        raise DataError(f"{path}: audio features have dtype {array.dtype}, expected numbers")
    if array.ndim != 2 or array.shape[1] < 1:
        raise DataError(
            f"{path}: audio features have shape {array.shape}, expected (T, D) with one row of "
            "D >= 1 values per video frame"
        )
    reference = max(frames, clip_frames or 0, 1)
    if array.shape[0] > TOKENS_PER_FRAME_LIMIT * reference:
        rows = array.shape[0]
        raise DataError(
            f"{path}: audio features have {rows} rows for a clip of {reference} video frames, "
            f"about {rows / reference:.1f} per frame, which looks like 50 Hz model tokens; "
            "per-frame features (one row per 25 fps video frame) are expected: pool each pair "
            "of tokens by mean or max (repeat the last token if their count is odd), e.g. "
            "x.reshape(-1, 2, x.shape[1]).mean(axis=1) or .max(axis=1)"
        )
    return _check_frames(path, array.astype(np.float32), frames, "audio features")


def load_video(path: str | Path, frames: int | None = None) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` uint8 of an mp4 or a folder of ``1.png ... T.png``."""
    path = Path(path)
    try:
        clip = video.read_video(path)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: unreadable video ({err})") from err
    if frames is not None and len(clip) < frames:
        raise DataError(f"{path}: video has {len(clip)} frames, expected at least {frames}")
    return clip if frames is None else clip[:frames]


# --- Pairs, neighbours, corpus metadata --------------------------------------------------------


def pairs_file(root: Path, split: str) -> Path:
    """``<root>/<split>.csv``; ``<root>/paper-list/<split>.csv`` as ReactDiff's code expects also
    works."""
    for candidate in (Path(root) / f"{split}.csv", Path(root) / "paper-list" / f"{split}.csv"):
        if candidate.is_file():
            return candidate
    return Path(root) / f"{split}.csv"


def read_pairs(root: Path, split: str) -> list[tuple[str, str]]:
    """The (speaker clip, listener clip) pairs of a split, in file order."""
    path = pairs_file(root, split)
    if not path.is_file():
        raise DataError(f"{path}: split file not found (expected {split}.csv in {root})")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty split file")
    header = [h.strip() for h in rows[0]]
    try:
        s_col, l_col = header.index("speaker_path"), header.index("listener_path")
    except ValueError:
        raise DataError(
            f"{path}: header {rows[0]} lacks speaker_path and listener_path columns"
        ) from None
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(s_col, l_col):
            raise DataError(f"{path}, line {line}: expected {len(header)} columns, got {row}")
        pairs.append((_clip_id(row[s_col]), _clip_id(row[l_col])))
    if not pairs:
        raise DataError(f"{path}: no pairs listed")
    return pairs


def _clip_id(cell: str) -> str:
    """Clip path without extension or leading slash, with forward slashes."""
    clip = cell.strip().replace("\\", "/").lstrip("/")
    for suffix in MODALITY_SUFFIX.values():
        clip = clip.removesuffix(suffix)
    return clip


def write_pairs(root: Path, split: str, pairs: Sequence[tuple[str, str]]) -> Path:
    path = Path(root) / f"{split}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(PAIR_HEADER)
            out.writerows((i, sp, ls) for i, (sp, ls) in enumerate(pairs))

    return paths.write_atomically(path, write)


def neighbours_file(root: Path, split: str) -> Path:
    return Path(root) / f"neighbour_emotion_{split}.npy"


def save_neighbours(root: Path, split: str, matrix: np.ndarray) -> Path:
    matrix = np.asarray(matrix, dtype=bool)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] % 2:
        raise ValueError(f"a neighbour matrix is square with an even side, got {matrix.shape}")
    return paths.write_atomically(neighbours_file(root, split), lambda tmp: np.save(tmp, matrix))


def read_corpus_meta(root: Path) -> dict | None:
    """SynthReact's ``reactlab.json``, checked by :func:`validate_corpus_meta` (None for a REACT
    copy, which has none)."""
    path = Path(root) / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    validate_corpus_meta(meta, path)
    return meta


_NUMBER = (int, float)
META_KEYS: dict[str, type | tuple[type, ...]] = {
    "corpus": str,
    "version": int,
    "digest": str,
    "spec": dict,
    "fps": _NUMBER,
    "frames": int,
    "stored_frames": int,
    "mirror": bool,
    "generation_seconds": _NUMBER,
    "sessions": list,
    "people": dict,
}
"""The keys of ``reactlab.json`` that the reader, :mod:`reactlib.data.synth` and the notebooks use,
with their JSON types."""
META_SESSION_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "split": str,
    "speaker": str,
    "listeners": list,
    "voiced": list,
}
META_PERSON_KEYS: dict[str, type | tuple[type, ...]] = {
    "delay_s": _NUMBER,
    "expressivity": _NUMBER,
    "brow_gain": _NUMBER,
    "lean_gain": _NUMBER,
    "appearance_seed": int,
}


def _check_keys(path: Path, where: str, value, keys: dict) -> None:
    if not isinstance(value, dict):
        raise DataError(f"{path}: {where} must be a JSON object, got {type(value).__name__}")
    for key, kind in keys.items():
        if key not in value:
            raise DataError(f"{path}: {where} lacks the key {key!r}")
        item = value[key]
        # JSON true/false parse as bool, which Python also counts as an int.
        if not isinstance(item, kind) or (isinstance(item, bool) and kind is not bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise DataError(
                f"{path}: {where}[{key!r}] must be {names}, got {type(item).__name__} {item!r:.40}"
            )


def validate_corpus_meta(meta, path: str | Path) -> None:
    """Check a parsed ``reactlab.json`` (from ``path``, named in errors): the keys of
    :data:`META_KEYS`, every session's :data:`META_SESSION_KEYS` (its people listed under
    ``people``, its speech runs ``[start, stop)`` frame pairs) and every person's
    :data:`META_PERSON_KEYS`. Raises :class:`DataError` naming the file and the first problem."""
    path = Path(path)
    _check_keys(path, "the corpus record", meta, META_KEYS)
    if not 1 <= meta["frames"] <= meta["stored_frames"]:
        raise DataError(
            f"{path}: frames ({meta['frames']}) must be between 1 and stored_frames "
            f"({meta['stored_frames']})"
        )
    people = meta["people"]
    for pid, person in people.items():
        _check_keys(path, f"people[{pid!r}]", person, META_PERSON_KEYS)
    for k, session in enumerate(meta["sessions"]):
        where = f"sessions[{k}]"
        _check_keys(path, where, session, META_SESSION_KEYS)
        for pid in [session["speaker"], *session["listeners"]]:
            if not isinstance(pid, str) or pid not in people:
                raise DataError(f"{path}: {where} names person {pid!r}, who is not in people")
        for run in session["voiced"]:
            ok = isinstance(run, list) and len(run) == 2
            if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in run):
                raise DataError(
                    f"{path}: {where}['voiced'] holds {run!r}, not a [start, stop] pair"
                )
            if not 0 <= run[0] < run[1] <= meta["stored_frames"]:
                raise DataError(
                    f"{path}: {where}['voiced'] run {run} is outside the "
                    f"{meta['stored_frames']} stored frames"
                )
