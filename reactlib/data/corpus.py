"""Splits and corpora in the REACT 2024 layout (:mod:`reactlib.data.layout`): the items of a
split with their appropriate-reaction sets and cached clip arrays, a corpus' splits, coefficient
views, and :func:`open_corpus`, which picks the corpus a run uses (a REACT copy, else SynthReact).

Bad input fails with a :class:`~reactlib.errors.DataError` that names the file and what is wrong.
A missing neighbour matrix is the one exception: it warns
(:class:`~reactlib.data.layout.NeighbourFallbackWarning`) and uses a fallback that is named in the
warning and in :attr:`Split.neighbour_source`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reactlib import errors
from reactlib.data import audio, layout, synth
from reactlib.data.layout import (
    AUDIO_FEATURES_DEFAULT,
    FALLBACKS,
    MODALITIES,
    SPLITS,
    USED_FRAMES,
    DataError,
    NeighbourFallbackWarning,
    audio_feature_file,
    check_audio_features,
    clip_file,
    load_audio_features,
    load_coeffs,
    load_emotion,
    load_feature_array,
    load_video,
    neighbours_file,
    pairs_file,
    read_corpus_meta,
    read_pairs,
)
from reactlib.face import pfl

if TYPE_CHECKING:
    import pandas as pd

    from reactlib.config import Config


# --- Splits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One speaker -> listener item of a split (a pair, possibly swapped)."""

    speaker: str
    listener: str
    mirrored: bool


COEFF_VIEWS = ("pfl", "float")
"""Coefficient views of a corpus (:class:`Split`): what a fit on a PFL-cropped or a floating-crop
video would recover."""


def check_view(view: str | None) -> str | None:
    if view is not None and view not in COEFF_VIEWS:
        raise errors.UsageError(
            f"unknown coefficient view {view!r}; valid: {', '.join(COEFF_VIEWS)}"
        )
    return view


class Split:
    """The items of one split, their appropriate-reaction sets, and cached clip arrays.

    ``frames`` is the number of frames used per clip (default: 750 for REACT, the corpus' own
    for SynthReact). ``audio_features`` names the speaker audio features: ``mfcc78`` (computed
    from the wav) or precomputed ``Audio_files/<clip>.<name>.npy`` files (see
    :func:`load_feature_array`). ``view`` (one of :data:`COEFF_VIEWS`) gives every clip's
    coefficients as a fit on a cropped video would see them (:func:`reactlib.face.pfl.coeff_view`):
    ``"pfl"``, PFLPosNet's fixed window, or ``"float"``, a window that follows the face, whose
    head translation is gone; None: the coefficients as stored. Arrays are loaded on first use
    and kept in memory.
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        *,
        mirror: bool | None = None,
        frames: int | None = None,
        fallback: str = "same_speaker",
        audio_features: str = AUDIO_FEATURES_DEFAULT,
        view: str | None = None,
    ):
        if fallback not in FALLBACKS:
            raise ValueError(f"unknown neighbour fallback {fallback!r}; valid: {FALLBACKS}")
        self.view = check_view(view)
        self.audio_features_name = check_audio_features(audio_features)
        self.root = Path(root)
        self.name = name
        self.meta = read_corpus_meta(self.root)
        self.pairs = read_pairs(self.root, name)
        default_mirror = True if self.meta is None else bool(self.meta.get("mirror", True))
        self.mirror = default_mirror if mirror is None else bool(mirror)
        default_frames = USED_FRAMES if self.meta is None else int(self.meta["frames"])
        self.frames = default_frames if frames is None else int(frames)
        items = [Item(sp, ls, False) for sp, ls in self.pairs]
        if self.mirror:
            items += [Item(ls, sp, True) for sp, ls in self.pairs]
        self.items: list[Item] = items
        self.neighbours, self.neighbour_source = self._load_neighbours(fallback)
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, {len(self.pairs)} pairs, {len(self)} items, "
            f"mirror={self.mirror}, frames={self.frames}, neighbours={self.neighbour_source}, "
            f"audio_features={self.audio_features_name}"
            + ("" if self.view is None else f", view={self.view}")
            + ")"
        )

    def _load_neighbours(self, fallback: str) -> tuple[np.ndarray, str]:
        path = neighbours_file(self.root, self.name)
        full = 2 * len(self.pairs)
        if path.is_file():
            matrix = layout.read_npy(path, "neighbour matrix")
            if matrix.shape != (full, full):
                raise DataError(
                    f"{path}: neighbour matrix has shape {matrix.shape}, expected ({full}, {full})"
                    f" for the {len(self.pairs)} pairs of {self.name}.csv in mirrored order"
                )
            matrix = matrix.astype(bool)
            n = len(self.items)
            return matrix[:n, :n], path.name
        warnings.warn(
            f"{path} not found: the appropriate-reaction sets of split {self.name!r} use the "
            f"{fallback!r} fallback instead of the REACT neighbour matrix",
            NeighbourFallbackWarning,
            stacklevel=3,
        )
        return self._fallback(fallback), f"fallback:{fallback}"

    def _fallback(self, kind: str) -> np.ndarray:
        n = len(self.items)
        if kind == "self":
            return np.eye(n, dtype=bool)
        speakers = np.array([item.speaker for item in self.items])
        return speakers[:, None] == speakers[None, :]

    def appropriate(self, k: int) -> np.ndarray:
        """Indices of the items whose listener reaction is appropriate for item k's speaker."""
        return np.flatnonzero(self.neighbours[k])

    # Clip arrays ------------------------------------------------------------------------------

    def array(self, modality: str, clip: str) -> np.ndarray:
        """One array modality (coeffs, emotion or audio features) of a clip, loaded once."""
        if modality not in _ARRAY_LOADERS:
            raise ValueError(f"array modalities are {', '.join(_ARRAY_LOADERS)}; got {modality!r}")
        key = (modality, clip)
        if key not in self._cache:
            if modality == "audio" and self.audio_features_name != AUDIO_FEATURES_DEFAULT:
                path = audio_feature_file(self.root, clip, self.audio_features_name)
                array = load_feature_array(path, self.frames, clip_frames=self._clip_frames(clip))
            else:
                array = _ARRAY_LOADERS[modality](clip_file(self.root, modality, clip), self.frames)
            if modality == "coeffs" and self.view is not None:
                array = pfl.coeff_view(array, self.view).astype(array.dtype)
            self._cache[key] = array
        return self._cache[key]

    def _clip_frames(self, clip: str) -> int:
        """How many video frames a clip holds, from its coefficient file's header (the data is
        not read); the split's ``frames`` when that file is missing or unreadable, a problem
        the coefficient loader reports on its own."""
        path = clip_file(self.root, "coeffs", clip, must_exist=False)
        try:
            return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
        except (ValueError, OSError, EOFError, IndexError):
            return self.frames

    def coeffs(self, clip: str) -> np.ndarray:
        return self.array("coeffs", clip)

    def emotion(self, clip: str) -> np.ndarray:
        return self.array("emotion", clip)

    def audio_features(self, clip: str) -> np.ndarray:
        """The split's chosen audio features ``(frames, audio_dim)`` of a clip."""
        return self.array("audio", clip)

    @property
    def audio_dim(self) -> int:
        """Values per frame of the audio features: 78 for ``mfcc78``, else the width of the
        first speaker clip's feature file."""
        if self.audio_features_name == AUDIO_FEATURES_DEFAULT:
            return audio.NUM_FEATURES
        return int(self.audio_features(self.items[0].speaker).shape[1])

    def video(self, clip: str) -> np.ndarray:
        return load_video(clip_file(self.root, "video", clip), self.frames)

    def stack(self, modality: str, role: str) -> np.ndarray:
        """``(N, T, D)`` of every item's speaker or listener clips, e.g. ``stack("emotion",
        "listener")`` for the REACT metrics."""
        if role not in ("speaker", "listener"):
            raise ValueError(f"role must be 'speaker' or 'listener', got {role!r}")
        return np.stack([self.array(modality, getattr(item, role)) for item in self.items])

    @cached_property
    def clips(self) -> list[str]:
        """Every distinct clip of the split (speakers and listeners), in first-seen order."""
        return list(dict.fromkeys(c for pair in self.pairs for c in pair))

    def validate(self, modalities: Iterable[str] = ("coeffs", "emotion", "audio")) -> None:
        """Load every clip's modalities and raise one :class:`DataError` listing every problem.

        Audio is checked for the clips that are some item's speaker (the model's input);
        SynthReact's listeners are silent and have no wav. Precomputed audio features must also
        have the same width in every speaker clip, as batches stack them.
        """
        speakers = {item.speaker for item in self.items}
        problems = []
        for modality in modalities:
            widths: dict[int, str] = {}
            for clip in self.clips:
                if modality == "audio" and clip not in speakers:
                    continue
                try:
                    if modality == "video":
                        clip_file(self.root, "video", clip)
                        continue
                    array = self.array(modality, clip)
                except DataError as err:
                    problems.append(str(err))
                    continue
                if modality == "audio" and self.audio_features_name != AUDIO_FEATURES_DEFAULT:
                    widths.setdefault(array.shape[1], clip)
            if len(widths) > 1:
                shown = ", ".join(f"{width} in {clip!r}" for width, clip in widths.items())
                problems.append(
                    f"audio features {self.audio_features_name!r} differ in width between "
                    f"speaker clips ({shown}); every clip needs the same D"
                )
        if problems:
            raise DataError(
                f"{len(problems)} problem(s) in split {self.name!r} of {self.root}:\n  "
                + "\n  ".join(problems)
            )


_ARRAY_LOADERS = {"coeffs": load_coeffs, "emotion": load_emotion, "audio": load_audio_features}


# --- The corpus --------------------------------------------------------------------------------


class Corpus:
    """A REACT 2024 copy or a SynthReact corpus at ``root``; with ``view``, every split it opens
    gives its coefficients in that view (:class:`Split`)."""

    def __init__(self, root: str | Path, view: str | None = None):
        self.root = Path(root)
        self.view = check_view(view)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: corpus folder not found")
        self.meta = read_corpus_meta(self.root)
        if not self.splits:
            raise DataError(
                f"{self.root}: no split files (train.csv, val.csv or test.csv) found; "
                "is this a REACT 2024 data folder?"
            )

    @property
    def kind(self) -> str:
        return "SynthReact" if self.meta is not None else "REACT 2024"

    @cached_property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if pairs_file(self.root, s).is_file()]

    def split(self, name: str, **kwargs) -> Split:
        if name not in self.splits:
            raise DataError(
                f"{self.root}: no split {name!r}; available: {', '.join(self.splits) or 'none'}"
            )
        return Split(self.root, name, **{"view": self.view, **kwargs})

    def identity(self) -> dict:
        """What names the corpus in a trained model's identity: SynthReact's digest, or a REACT
        copy's path, and its coefficient view when it has one (no key without: models trained
        before views existed keep their identity)."""
        if self.meta is not None:
            named = {"kind": "SynthReact", "digest": self.meta["digest"]}
        else:
            named = {"kind": "REACT 2024", "root": str(self.root.resolve())}
        return named if self.view is None else {**named, "view": self.view}

    def with_view(self, view: str | None) -> Corpus:
        """The same corpus, its coefficients seen through ``view`` (:data:`COEFF_VIEWS`)."""
        return Corpus(self.root, view)

    def __repr__(self) -> str:
        view = "" if self.view is None else f", view={self.view}"
        return f"Corpus({str(self.root)!r}, {self.kind}, splits={self.splits}{view})"

    def describe(self) -> pd.DataFrame:
        """One row per split: pairs, items, people, frames, files present per modality, and the
        appropriate-reaction sets (source and mean size)."""
        import pandas as pd

        rows = []
        for name in self.splits:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NeighbourFallbackWarning)
                split = Split(self.root, name)
            # SynthReact's person folders are identities; REACT's (Expert_video, P25, ...) are
            # roles within a session, so a REACT person is a session's person folder.
            folders = {clip.rsplit("/", 1)[0] for clip in split.clips}
            people = folders if self.meta is None else {f.rsplit("/", 1)[1] for f in folders}
            row = {
                "split": name,
                "pairs": len(split.pairs),
                "items": len(split),
                "mirrored": split.mirror,
                "clips": len(split.clips),
                "people": len(people),
                "frames used": split.frames,
            }
            for modality in MODALITIES:
                found = sum(
                    clip_file(self.root, modality, c, must_exist=False).exists()
                    for c in split.clips
                )
                row[f"{modality} files"] = found
            row["neighbours"] = split.neighbour_source
            row["mean appropriate set"] = float(split.neighbours.sum(axis=1).mean())
            rows.append(row)
        return pd.DataFrame(rows).set_index("split")


# --- Which corpus -------------------------------------------------------------------------------


def open_corpus(data_root: str | os.PathLike | None = None, *, cfg: Config | None = None) -> Corpus:
    """The corpus a notebook should use: the REACT copy at ``data_root`` (else ``cfg.data_root``,
    else ``$REACT_DATA``) if one is given, else the SynthReact corpus of the profile (generated
    on first use, :func:`reactlib.data.synth.ensure`)."""
    chosen = data_root if data_root is not None else getattr(cfg, "data_root", None)
    root = layout.resolve_root(chosen)
    if root is not None:
        return Corpus(root)
    if cfg is None:
        raise ValueError("open_corpus needs cfg (a resolved Config) to build SynthReact")
    return Corpus(synth.ensure(cfg))
