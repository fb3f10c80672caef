"""SynthReact: a synthetic dyadic corpus with known social rules, written in the REACT 2024 layout.

A *session* is one speaker and K listeners who all watch the same speaker clip; how each of them
moves is :mod:`reactlib.data.behaviour`. This module draws the people of each split, generates the
sessions, and writes them as a corpus in the REACT 2024 layout (:mod:`reactlib.data.layout`):
coefficients, emotion, the speaker's audio, optional rendered videos, the pair lists, the
neighbour matrices, and ``reactlab.json`` with everything the generator knows (every person's
parameters, the speaker's speech turns, the listeners' nods), so the rules can be checked
(:mod:`reactlib.rules`).

Splits use disjoint people (held-out identities), everything is determined by the seed, and a
corpus is written atomically, under a lock, and cached by the hash of its :class:`Spec`
(:func:`ensure`). :func:`oracle_detector` gives the true face boxes of a SynthReact video.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reactlib import paths, runtime
from reactlib.data import audio, layout
from reactlib.data.behaviour import (
    ANATOMIES,
    FPS,
    TRANSLATION_RANGE,
    Person,
    listener_stream,
    speaker_stream,
)
from reactlib.errors import DataError, UsageError
from reactlib.face import coeffs, detect, render, video

if TYPE_CHECKING:
    from reactlib.config import Config

VERSION = 2
"""Bumped whenever the generator changes what it writes, so caches are rebuilt."""
SITE = "SynthReact"
SAMPLE_RATE = 16000
VIDEO_SIZE = 256
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


# --- Configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """Everything that determines a SynthReact corpus (its hash names the cache)."""

    sessions: int
    listeners: int
    frames: int
    """Frames used per clip; one more is stored, as REACT stores 751 and uses 750."""
    videos: int = 0
    """How many sessions (the first ones, train split first) also get rendered mp4 videos."""
    seed: int = 0
    sample_rate: int = SAMPLE_RATE
    version: int = VERSION
    anatomy: str = "table17"
    """``table17`` (Table 17's pair relations hold) or ``anatomical`` (see
    :data:`reactlib.data.behaviour.ANATOMIES`)."""

    def __post_init__(self):
        for name, low in (("sessions", 3), ("listeners", 1), ("frames", 50), ("videos", 0)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"Spec.{name} must be an integer >= {low}, got {value!r}")
        if self.anatomy not in ANATOMIES:
            raise ValueError(
                f"Spec.anatomy must be one of {', '.join(ANATOMIES)}, got {self.anatomy!r}"
            )

    @classmethod
    def from_config(cls, cfg: Config, **overrides) -> Spec:
        base = dict(
            sessions=cfg.synth_sessions,
            listeners=cfg.synth_listeners,
            frames=cfg.clip_frames,
            videos=cfg.synth_videos,
            seed=cfg.seed,
        )
        return cls(**{**base, **overrides})

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- Sessions -----------------------------------------------------------------------------------


@dataclass
class Session:
    name: str
    split: str
    speaker: Person
    listeners: list[Person]
    streams: dict
    """``speaker`` (the speaker dict), ``listeners`` (list of coefficient arrays) and ``nods``."""

    def clip(self, person: Person) -> str:
        return f"{SITE}/{self.name}/{person.pid}/1"


def people_for_splits(spec: Spec, rng: np.random.Generator) -> dict[str, list[Person]]:
    """Disjoint pools of people per split; a pool recurs across its split's sessions."""
    pools, next_id = {}, 0
    for split, sessions in session_counts(spec).items():
        size = max(spec.listeners + 1, (sessions * (spec.listeners + 1)) // 3)
        pools[split] = [Person.draw(f"P{next_id + k:04d}", rng) for k in range(size)]
        next_id += size
    return pools


def session_counts(spec: Spec) -> dict[str, int]:
    val = max(1, round(spec.sessions * SPLIT_FRACTIONS["val"]))
    test = max(1, round(spec.sessions * SPLIT_FRACTIONS["test"]))
    return {"train": spec.sessions - val - test, "val": val, "test": test}


def sessions(spec: Spec) -> list[Session]:
    """Generate every session of the corpus in memory (deterministic for ``spec.seed``)."""
    root_rng = np.random.default_rng([spec.seed, 0x5EAC7])
    pools = people_for_splits(spec, root_rng)
    stored = spec.frames + 1
    out = []
    number = 0
    for split, count in session_counts(spec).items():
        pool = pools[split]
        for _ in range(count):
            rng = np.random.default_rng([spec.seed, number])
            chosen = rng.choice(len(pool), size=spec.listeners + 1, replace=False)
            speaker, listeners = pool[chosen[0]], [pool[k] for k in chosen[1:]]
            sp = speaker_stream(speaker, stored, rng, spec.anatomy)
            listened = [listener_stream(p, sp, rng, spec.anatomy) for p in listeners]
            out.append(
                Session(
                    name=f"session_{number:04d}",
                    split=split,
                    speaker=speaker,
                    listeners=listeners,
                    streams={
                        "speaker": sp,
                        "listeners": [c for c, _ in listened],
                        "nods": [n for _, n in listened],
                    },
                )
            )
            number += 1
    return out


def neighbour_matrix(split_sessions: list[Session]) -> np.ndarray:
    """``(2L, 2L)`` in mirrored order: an original item's appropriate set is every listener of
    the same speaker clip; a mirrored item (the speaker as "listener") has only itself."""
    owners = np.concatenate([[k] * len(s.listeners) for k, s in enumerate(split_sessions)])
    n = len(owners)
    matrix = np.zeros((2 * n, 2 * n), dtype=bool)
    matrix[:n, :n] = owners[:, None] == owners[None, :]
    matrix[n:, n:] = np.eye(n, dtype=bool)
    return matrix


def _write_session(root: Path, s: Session, spec: Spec, render_video: bool) -> None:
    sp = s.streams["speaker"]
    clips = [(s.speaker, sp["coeffs"])] + list(
        zip(s.listeners, s.streams["listeners"], strict=True)
    )
    for person, x in clips:
        clip = s.clip(person)
        layout.save_coeffs(layout.clip_file(root, "coeffs", clip, must_exist=False), x)
        emotion = coeffs.emotion_from_coeffs(x)
        layout.save_emotion(layout.clip_file(root, "emotion", clip, must_exist=False), emotion)
    seed = int(s.name.split("_")[1])
    wav = audio.synthesize(
        sp["f0"], sp["energy"], sp["jaw"], fps=FPS, sample_rate=spec.sample_rate, seed=seed
    )
    path = layout.clip_file(root, "audio", s.clip(s.speaker), must_exist=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio.write_wav(path, wav, spec.sample_rate)
    if render_video:
        for person, x in clips:
            renderer = render.FaceRenderer(
                VIDEO_SIZE, identity=render.Identity.random(person.appearance_seed)
            )
            path = layout.clip_file(root, "video", s.clip(person), must_exist=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            video.write_video(path, renderer.render(x), fps=FPS)


def _meta(spec: Spec, all_sessions: list[Session], seconds: float) -> dict:
    people = {}
    for s in all_sessions:
        for role, p in [("speaker", s.speaker), *[("listener", q) for q in s.listeners]]:
            entry = people.setdefault(p.pid, {**dataclasses.asdict(p), "split": s.split})
            entry.setdefault("roles", set()).add(role)
    for entry in people.values():
        entry["roles"] = sorted(entry["roles"])
    return {
        "corpus": SITE,
        "version": VERSION,
        "spec": dataclasses.asdict(spec),
        "digest": spec.digest(),
        "fps": FPS,
        "frames": spec.frames,
        "stored_frames": spec.frames + 1,
        "mirror": False,
        "sample_rate": spec.sample_rate,
        "listener_audio": False,
        "video_size": VIDEO_SIZE,
        "translation_range": TRANSLATION_RANGE,
        "generation_seconds": round(seconds, 2),
        "sessions": [
            {
                "name": s.name,
                "split": s.split,
                "speaker": s.speaker.pid,
                "listeners": [p.pid for p in s.listeners],
                "nods": [n.tolist() for n in s.streams["nods"]],
                "voiced": _runs(s.streams["speaker"]["voiced"]),
                "video": k < spec.videos,
            }
            for k, s in enumerate(all_sessions)
        ],
        "people": people,
    }


def _runs(mask: np.ndarray) -> list[list[int]]:
    """Speech segments as [start, stop) frame pairs (compact for the corpus file)."""
    v = np.concatenate([[0], mask.astype(int), [0]])
    edges = np.flatnonzero(np.diff(v))
    return edges.reshape(-1, 2).tolist()


def voiced_from_runs(runs: list[list[int]], frames: int) -> np.ndarray:
    mask = np.zeros(frames, dtype=bool)
    for start, stop in runs:
        mask[start:stop] = True
    return mask


def generate(spec: Spec, out: str | Path, *, progress=None, force: bool = False) -> Path:
    """Write the corpus of ``spec`` to ``out`` and return it; reuse it when ``out`` already
    holds the same corpus (same digest), unless ``force``.

    The corpus is built in a temporary sibling folder and renamed into place at the end, so an
    interrupted run leaves no half corpus. A non-empty ``out`` that is not a SynthReact corpus is
    never overwritten. Writers of the same ``out`` take turns (:func:`corpus_lock`): when two
    kernels ask for the same missing corpus at once, one generates it and the other waits, then
    reuses it.
    """
    out = Path(out)
    if not force and _holds(out, spec):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with corpus_lock(out):
        if not force and _holds(out, spec):  # made by another process while this one waited
            return out
        _generate(spec, out, progress)
    return out


def _holds(out: Path, spec: Spec) -> bool:
    """Whether ``out`` is the corpus of ``spec``; a non-empty folder (or a file) that is not a
    SynthReact corpus is refused."""
    existing = layout.read_corpus_meta(out) if out.is_dir() else None
    if existing is not None:
        return existing["digest"] == spec.digest()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out} exists and is not a SynthReact corpus; choose an empty or new folder"
        )
    return False


def _generate(spec: Spec, out: Path, progress) -> None:
    wrap = progress or (lambda it, **_: it)
    started = time.perf_counter()
    all_sessions = sessions(spec)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for split in SPLIT_FRACTIONS:
            in_split = [s for s in all_sessions if s.split == split]
            pairs = [(s.clip(s.speaker), s.clip(p)) for s in in_split for p in s.listeners]
            layout.write_pairs(tmp, split, pairs)
            layout.save_neighbours(tmp, split, neighbour_matrix(in_split))
        for k, s in enumerate(wrap(all_sessions, desc="SynthReact", unit="session")):
            _write_session(tmp, s, spec, render_video=k < spec.videos)
        meta = _meta(spec, all_sessions, time.perf_counter() - started)
        (tmp / layout.CORPUS_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def corpus_lock(out: str | Path):
    """Hold an exclusive lock on the corpus folder ``out`` while a ``with`` block runs
    (:func:`reactlib.paths.file_lock`: the file ``.<name>.lock`` beside it; other processes
    asking for it wait). Yields the lock file's path."""
    return paths.file_lock(out)


CACHE_ENV = "REACTLIB_CACHE"
"""Environment variable naming the folder that holds cached corpora (default ``data/synth``)."""


def cache_dir() -> Path:
    """Where :func:`ensure` keeps corpora: ``$REACTLIB_CACHE`` when set, else ``data/synth/``
    under the checkout (git-ignored); a relative ``$REACTLIB_CACHE`` is taken from the checkout
    (:func:`reactlib.paths.env_dir`)."""
    return paths.env_dir(CACHE_ENV, Path("data") / "synth")


def default_dir(spec: Spec) -> Path:
    """``<cache_dir()>/<digest>/``."""
    return cache_dir() / spec.digest()


def ensure(cfg: Config, out: str | Path | None = None, *, force: bool = False, **overrides) -> Path:
    """The profile's SynthReact corpus in ``out`` (default :func:`default_dir`), generated on
    first use with a progress bar that follows the profile, and reused while its digest matches.
    ``overrides`` change :class:`Spec` fields (``videos=0``, ``anatomy="anatomical"``, ...)."""
    spec = Spec.from_config(cfg, **overrides)

    def bar(iterable, **kwargs):
        return runtime.progress(iterable, cfg=cfg, **kwargs)

    return generate(spec, out or default_dir(spec), progress=bar, force=force)


# --- The true face boxes of a video -------------------------------------------------------------


def oracle_detector(path) -> detect.OracleDetector:
    """The oracle detector of a SynthReact video file: finds its corpus, its clip's coefficients
    and the identity it was rendered with, and gives the renderer's face box of every frame."""
    path = Path(path).resolve()
    root = next((p for p in path.parents if (p / layout.CORPUS_FILE).is_file()), None)
    video_dir = layout.MODALITY_DIRS["video"]
    if root is None or video_dir not in path.parts:
        raise UsageError(
            f"{path} is not a video inside a SynthReact corpus (no {layout.CORPUS_FILE} above "
            f"it); pass the true boxes instead (--boxes)"
        )
    meta = layout.read_corpus_meta(root)
    clip = path.relative_to(root / video_dir).with_suffix("").as_posix()
    pid = clip.split("/")[-2]
    if pid not in meta.get("people", {}):
        raise DataError(f"{path}: person {pid!r} is not in {root / layout.CORPUS_FILE}")
    x = layout.load_coeffs(layout.clip_file(root, "coeffs", clip))
    renderer = render.FaceRenderer(
        meta.get("video_size", VIDEO_SIZE),
        identity=render.Identity.random(meta["people"][pid]["appearance_seed"]),
    )
    oracle = detect.OracleDetector.from_renderer(renderer, x)
    oracle.source = f"SynthReact {clip}"
    return oracle
