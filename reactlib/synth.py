"""SynthReact: a synthetic dyadic corpus with known social rules, in the REACT 2024 layout.

A *session* is one speaker and K listeners who all watch the same speaker clip. The speaker talks
in turns (speech and pauses) with syllabic mouth motion, prosody (f0, energy) that drives the audio,
smile bursts, surprise and frown events, emphasis nods, blinks, and head sway and translation drift
with smooth second-order dynamics. Each listener follows rules whose strength is a personality
drawn per person; every rule is causal (frame t of a listener uses the speaker up to t - delay) and
measured per listener by a function of this module:

=====================  =================================================  =====================
rule                   what the listener does                             measured by
=====================  =================================================  =====================
cognitive delay        reacts ``delay_s`` (0.3-0.8 s) after the speaker   :func:`smile_delay`
smile mimicry          ``smile(t) = rest + gain * speaker_smile(t - d)``  :func:`smile_delay`
                       (plus a little noise)
backchannel nods       nods (1-2 pitch oscillations at about 2 Hz) after  :func:`nod_counts`
                       speaker pauses begin
brow response          raises the brows ``brow_gain *                     :func:`brow_response`
                       speaker_surprise(t - d)`` (the brows also drift
                       a little on their own)
lean-in                moves closer (smaller z) by ``lean_gain *          :func:`lean_in`
                       lean_drive``: the speaker's emotion arousal at
                       t - d, causally low-passed, above the neutral
                       face's
gaze / yaw drift       slow yaw drift around a personal offset
resting expression     per-person offsets and an expressivity gain on
                       every program
=====================  =================================================  =====================

Expressions come from facial *programs* (smile, frown, surprise, blink, speech visemes, gaze), each
a fixed set of blendshape weights with a small left/right asymmetry. The AU-pair relations of the
ReactDiff paper's Table 17 hold **because the programs are built to make them hold**: symmetric
pairs match, co-occurring pairs rise together, and mutually exclusive pairs rarely co-activate
(above :data:`EXCLUSIVE_THRESHOLD`, or :data:`SPEECH_EXCLUSIVE_THRESHOLD` while a speaker talks).
That includes pairs that are anatomically odd: Table 17 calls ``jawLeft``/``jawRight`` and
``mouthLeft``/``mouthRight`` symmetric, so both halves rise together
although they move the jaw and the mouth in opposite directions, and it pairs ``eyeLookIn`` and
``eyeLookOut`` of both eyes, so gaze is vergence and listeners look slightly cross-eyed. The
``anatomical`` corpus option (:data:`ANATOMIES`) moves those the way faces do instead. Emotion-25
is :func:`reactlib.coeffs.emotion_from_coeffs`.

Every event rises and falls over at least :data:`MIN_RAMP` frames, and programs that must not
co-occur are kept apart when events are placed, not by switching one off within a frame, so no
coefficient steps from one frame to the next (:func:`step_jumps` counts such steps).

Splits use disjoint people (held-out identities), everything is determined by the seed, and a
corpus is written atomically, under a lock, and cached by the hash of its :class:`Spec`.
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
from scipy import signal

from reactlib import coeffs, data, paths
from reactlib.coeffs import index as _i

if TYPE_CHECKING:
    from reactlib.config import Config

VERSION = 2
"""Bumped whenever the generator changes what it writes, so caches are rebuilt."""
SITE = "SynthReact"
SAMPLE_RATE = 16000
VIDEO_SIZE = 256
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
FPS = coeffs.FPS
DT = 1.0 / FPS

TRANSLATION_RANGE = {"tx": (-0.10, 0.10), "ty": (-0.06, 0.06), "tz": (1.60, 2.10)}
"""Documented range of head translation (renderer units; the neutral face sits at z = 1.84)."""
DELAY_RANGE_S = (0.3, 0.8)
NOD_BAND_HZ = (1.2, 4.0)
"""Pitch oscillations in this band are nods; slower pitch motion is posture and sway."""


# --- Configuration and people ------------------------------------------------------------------


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
    """``table17`` (Table 17's pair relations hold) or ``anatomical`` (see :data:`ANATOMIES`)."""

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


@dataclass(frozen=True)
class Person:
    """One identity: speaking style, listening personality and appearance seed."""

    pid: str
    # speaking
    f0: float
    speech_rate: float
    smile_rate: float
    # listening
    delay_s: float
    smile_gain: float
    nod_prob: float
    brow_gain: float
    lean_gain: float
    yaw_offset: float
    yaw_drift: float
    expressivity: float
    rest_smile: float
    rest_brow: float
    asymmetry: float
    appearance_seed: int

    @classmethod
    def draw(cls, pid: str, rng: np.random.Generator) -> Person:
        return cls(
            pid=pid,
            f0=float(rng.choice([rng.uniform(95, 140), rng.uniform(170, 240)])),
            speech_rate=float(rng.uniform(3.5, 5.0)),
            smile_rate=float(rng.uniform(0.08, 0.16)),
            delay_s=float(rng.uniform(*DELAY_RANGE_S)),
            smile_gain=float(rng.uniform(0.5, 1.0)),
            nod_prob=float(rng.uniform(0.6, 0.95)),
            brow_gain=float(rng.uniform(0.4, 0.9)),
            lean_gain=float(rng.uniform(0.1, 0.16)),
            yaw_offset=float(rng.uniform(-0.12, 0.12)),
            yaw_drift=float(rng.uniform(0.03, 0.08)),
            expressivity=float(rng.uniform(0.8, 1.15)),
            rest_smile=float(rng.uniform(0.0, 0.08)),
            rest_brow=float(rng.uniform(0.0, 0.06)),
            asymmetry=float(rng.uniform(0.0, 0.06)),
            appearance_seed=int(rng.integers(2**31)),
        )

    @property
    def delay_frames(self) -> int:
        return round(self.delay_s * FPS)


# --- Signal primitives ---------------------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, frames: int, cutoff_hz: float) -> np.ndarray:
    """Unit-variance noise through a critically damped fourth-order low-pass, with a warm-up so
    it starts in its stationary state.

    Four cascaded one-pole stages make position, velocity and acceleration smooth: from one
    frame to the next the velocity barely changes, so even where a program takes only the
    positive part of the noise (``x.clip(min=0)``), no frame change dwarfs its neighbours. The
    poles are placed so that the -3 dB frequency is that of a critically damped second-order
    low-pass with per-stage cutoff ``cutoff_hz``.
    """
    warm = int(3 * FPS / cutoff_hz)
    # -3 dB of n cascaded stages with cutoff f is f * sqrt(2 ** (1 / n) - 1).
    stretch = np.sqrt(2**0.5 - 1) / np.sqrt(2**0.25 - 1)
    pole = np.exp(-2 * np.pi * cutoff_hz * stretch * DT)
    x = rng.standard_normal(frames + warm)
    for _ in range(4):
        x = signal.lfilter([1 - pole], [1.0, -pole], x)
    x = x[warm:]
    return x / (x.std() + 1e-12)


MIN_RAMP = 4
"""Fewest frames an event program (smile, frown, surprise, sneer, blink) takes to rise from rest
to its peak or to fall back (a blink closes in 4 frames, 160 ms). A raised-cosine ramp over 4 or
more frames has no single frame change that dwarfs both of its neighbours, even with other motion
added on top, so no coefficient jumps within one frame (see :func:`step_jumps`)."""


def bump(length: int, attack: int) -> np.ndarray:
    """An event envelope: a raised-cosine rise over ``attack`` frames from 0 to the peak, then a
    cosine fall back to 0 over the remaining ``length - attack`` frames (at least 2)."""
    attack = max(1, min(attack, length - 2))
    rise = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, attack, endpoint=False))
    fall = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, length - attack))
    return np.concatenate([rise, fall])


def events(
    rng: np.random.Generator,
    frames: int,
    rate_hz: float,
    dur_s: tuple,
    amp: tuple,
    at_least: int = 0,
    *,
    rise: float = 0.25,
    allowed: np.ndarray | None = None,
    end_by: int | None = None,
) -> np.ndarray:
    """Poisson events of random duration and amplitude; overlapping events take the maximum.

    Each event is a whole :func:`bump` rising over ``rise`` of its length (at least
    :data:`MIN_RAMP` frames, and the fall as long), so onsets and offsets are smooth. An event
    that would overlap a frame where ``allowed`` is False is not placed at all: programs that
    must not co-occur are kept apart when events are placed, never by switching an event off
    part-way. ``at_least`` guarantees that many events that end by frame ``end_by`` (default:
    the clip's end), placed uniformly; it is ignored when ``allowed`` is given.
    """
    end_by = frames if end_by is None else min(end_by, frames)
    shortest = 2 * MIN_RAMP + 1  # the rise, then a fall of MIN_RAMP frame changes
    out = np.zeros(frames)
    placed: list[tuple[int, int]] = []

    def draw_length() -> int:
        return max(shortest, round(rng.uniform(*dur_s) * FPS))

    t = rng.exponential(1 / rate_hz) * FPS
    while t < frames:
        length = draw_length()
        placed.append((int(t), length))
        t += length + rng.exponential(1 / rate_hz) * FPS
    if allowed is None:
        while sum(start + length <= end_by for start, length in placed) < at_least:
            length = min(draw_length(), end_by)
            placed.append((int(rng.integers(0, max(1, end_by - length + 1))), length))
    for start, length in placed:
        attack = max(MIN_RAMP, min(round(rise * length), length - MIN_RAMP - 1))
        shape = rng.uniform(*amp) * bump(length, attack)
        end = min(frames, start + length)
        if allowed is not None and not allowed[start:end].all():
            continue
        out[start:end] = np.maximum(out[start:end], shape[: end - start])
    return out


def blinks(rng: np.random.Generator, frames: int, rate_hz: float, surprise: np.ndarray):
    """Blinks of 0.36-0.44 s that close in :data:`MIN_RAMP` frames and reopen as fast or more
    slowly; none is placed while the eyes are wide with surprise (Table 17 lists eyeWide and
    eyeBlink as mutually exclusive)."""
    calm = surprise < EVENT_REST
    return events(rng, frames, rate_hz, (0.36, 0.44), (0.9, 1.0), rise=0.0, allowed=calm)


EVENT_REST = 0.05
"""An event program below this level counts as at rest when other events are placed."""
FROWN_SMILE_LIMIT = 0.25
"""Frowns and sneers are placed only where the smile stays below this level throughout."""


def ease(mask: np.ndarray, frames: int = 2 * MIN_RAMP) -> np.ndarray:
    """A 0/1 mask with each switch spread into a raised-cosine ramp of about ``frames`` frames."""
    window = np.hanning(frames + 2)[1:-1]
    window /= window.sum()
    half = len(window) // 2
    padded = np.pad(mask.astype(float), (half, len(window) - 1 - half), mode="edge")
    return np.convolve(padded, window, mode="valid")


def delayed(x: np.ndarray, frames: int) -> np.ndarray:
    """``x(t - frames)``, holding the first value before the clip starts."""
    if frames <= 0:
        return x.copy()
    return np.concatenate([np.full(frames, x[0]), x[:-frames]])


def soft_range(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map unit-scale noise smoothly into ``(low, high)`` (tanh keeps derivatives continuous)."""
    return low + (high - low) * 0.5 * (1 + np.tanh(0.8 * x))


# --- The speaker ------------------------------------------------------------------------------


def turns(rng: np.random.Generator, frames: int, speech_s=(1.5, 4.0), pause_s=(0.8, 2.0)):
    """Speech (1) / pause (0) per frame, alternating turns of random length."""
    voiced = np.zeros(frames, dtype=bool)
    t, speaking = 0, bool(rng.random() < 0.7)
    while t < frames:
        length = round(rng.uniform(*(speech_s if speaking else pause_s)) * FPS)
        voiced[t : t + length] = speaking
        t += length
        speaking = not speaking
    return voiced


def pause_onsets(voiced: np.ndarray, min_frames: int = 1) -> np.ndarray:
    """Frames where a pause of at least ``min_frames`` begins."""
    v = voiced.astype(int)
    starts = np.flatnonzero(np.diff(v) == -1) + 1
    keep = [s for s in starts if not voiced[s : s + min_frames].any()]
    return np.asarray(keep, dtype=int)


def syllables(rng: np.random.Generator, voiced: np.ndarray, rate_hz: float):
    """Syllable envelopes during speech: (jaw opening in [0, 1], rounded-vowel mask, onsets).

    A syllable never runs past the end of its speech turn: the last one of a turn is shortened
    to fit (and left out when fewer than 5 frames remain), so every syllable closes before the
    turn ends. Syllables last 5 frames or 7 and more (:func:`_syllable_split`), so that each
    opening and closing is a smooth ramp even at 25 fps."""
    frames = len(voiced)
    jaw = np.zeros(frames)
    rounded = np.zeros(frames)
    onsets = []
    stops = np.flatnonzero(np.diff(np.concatenate([voiced.astype(int), [0]])) == -1) + 1
    t = 0
    while t < frames:
        if not voiced[t]:
            t += 1
            continue
        turn_end = int(stops[np.searchsorted(stops, t, side="right")])
        length = min(max(5, round(rng.uniform(0.7, 1.3) * FPS / rate_hz)), turn_end - t)
        length = length - 1 if length == 6 else length
        amplitude = rng.uniform(0.45, 1.0)
        if length < 5:
            t = turn_end
            continue
        end = t + length
        shape = amplitude * bump(length, _syllable_split(length)[0])
        if rng.random() < 0.2:  # an "o/u" syllable: rounded lips, less jaw
            rounded[t:end] = np.maximum(rounded[t:end], shape)
            shape = 0.5 * shape
        jaw[t:end] = np.maximum(jaw[t:end], shape)
        onsets.append(t)
        t = end
    return jaw, rounded, np.asarray(onsets, dtype=int)


def _syllable_split(length: int) -> tuple[int, int]:
    """A syllable's ``length`` (at least 5 frames, but not 6) split into opening and closing
    frame changes, each 2 or at least 4. A raised-cosine ramp over 2 changes moves by two equal
    halves, and over 4 or more its largest change is at most 1.4 times its neighbours; over 1
    or 3 one change is twice its neighbours or more, which other motion on top can turn into a
    step (see :func:`step_jumps`)."""
    changes = length - 1
    for opening in sorted(range(2, changes - 1), key=lambda k: (abs(2 * k - changes), k)):
        if opening != 3 and changes - opening not in (1, 3):
            return opening, changes - opening
    raise ValueError(f"a syllable of {length} frames cannot be split; use 5 or 7 frames or more")


@dataclass
class Programs:
    """Activations of the facial programs of one stream, each ``(T,)``."""

    smile: np.ndarray
    frown: np.ndarray
    surprise: np.ndarray
    sneer: np.ndarray
    blink: np.ndarray
    jaw: np.ndarray
    rounded: np.ndarray
    press: np.ndarray
    gaze_v: np.ndarray
    """Vertical gaze: up above 0, down below."""
    gaze_h: np.ndarray
    """Horizontal gaze: with ``table17`` anatomy both eyes look in (converge) above 0 and out
    below; with ``anatomical`` anatomy both eyes turn to the subject's right above 0."""
    lateral: np.ndarray
    """Sideways jaw and mouth shift, used by the ``anatomical`` anatomy only (to the subject's
    left above 0)."""


ANATOMIES = ("table17", "anatomical")
"""How the left/right pairs that Table 17 calls symmetric but that move in opposite directions
are made: ``table17`` raises ``jawLeft``/``jawRight``, ``mouthLeft``/``mouthRight``,
``eyeLookIn*`` and ``eyeLookOut*`` of both sides together, so Table 17's relations hold (gaze is
vergence: listeners look slightly cross-eyed); ``anatomical`` moves the jaw and the mouth one way
at a time and turns both eyes the same way (conjugate gaze: one eye looks in while the other
looks out), which breaks those symmetric pairs."""


def _sides(value: np.ndarray, asym: float, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right halves of one action, differing by a small slowly varying asymmetry."""
    return value * (1 + asym * phase), value * (1 - asym * phase)


def expression(
    p: Programs, person: Person, rng: np.random.Generator, anatomy: str = "table17"
) -> np.ndarray:
    """The 52 blendshape weights of a stream from its program activations (see
    :data:`ANATOMIES` for ``anatomy``)."""
    if anatomy not in ANATOMIES:
        raise ValueError(f"unknown anatomy {anatomy!r}; valid: {', '.join(ANATOMIES)}")
    frames = len(p.smile)
    x = np.zeros((frames, 52))
    asym = np.tanh(smooth_noise(rng, frames, 0.05))  # bounded: the asymmetry stays small

    def put(stem: str, value: np.ndarray, k: float = 1.0) -> None:
        left, right = _sides(value, person.asymmetry * k, asym)
        x[:, _i(f"{stem}Left")] += left
        x[:, _i(f"{stem}Right")] += right

    def put1(name: str, value: np.ndarray) -> None:
        x[:, _i(name)] += value

    s, f, u, n, b = p.smile, p.frown, p.surprise, p.sneer, p.blink
    # Smile: lip corners, cheeks, a little eye squint, dimples and outer brow (Table 17 pairs).
    put("mouthSmile", s, 1.5)
    put("cheekSquint", 0.6 * s + 0.5 * f + 0.5 * n)
    put("eyeSquint", 0.3 * s)
    put("mouthDimple", 0.25 * s)
    put("browOuterUp", 0.12 * s + 0.9 * u)
    # Frown: corners down (kept below 0.3, Table 17 also lists Left/Right frown as exclusive),
    # brows down, gaze down, lips pressed (also a little in a closed-lip smile).
    put("mouthFrown", 0.28 * f)
    put("browDown", 0.6 * f + 0.4 * n + 0.2 * b + 0.25 * (-p.gaze_v).clip(min=0))
    put("mouthPress", 0.25 * f + 0.1 * s)
    # Sneer (disgust): nose, upper lip, cheeks and brows.
    put("noseSneer", 0.5 * n)
    # Surprise: inner and outer brows up, eyes wide, gaze up, jaw drops a little.
    put1("browInnerUp", u + person.rest_brow)
    put("eyeWide", 0.8 * u)
    # Blinks close both eyes.
    put("eyeBlink", b)
    # Gaze: vertical (up/down) of both eyes, and horizontal (see ANATOMIES).
    put("eyeLookUp", 0.35 * u + 0.3 * p.gaze_v.clip(min=0))
    put("eyeLookDown", 0.35 * (-p.gaze_v).clip(min=0))
    look_in, look_out = 0.18 * p.gaze_h.clip(min=0), 0.18 * (-p.gaze_h).clip(min=0)
    if anatomy == "table17":  # vergence: both eyes in, or both out
        put("eyeLookIn", look_in)
        put("eyeLookOut", look_out)
    else:  # conjugate: the left eye looks in while the right looks out, and the reverse
        put1("eyeLookInLeft", look_in)
        put1("eyeLookOutRight", look_in)
        put1("eyeLookOutLeft", look_out)
        put1("eyeLookInRight", look_out)
    # Speech visemes: jaw, lower lip, a little lateral motion, rounded vowels.
    jaw = p.jaw + 0.2 * u
    put1("jawOpen", jaw)
    put("mouthLowerDown", 0.35 * p.jaw)
    put("mouthUpperUp", 0.25 * n + 0.04 * p.jaw)
    put("mouthStretch", 0.08 * p.jaw)
    if anatomy == "table17":  # both lateral halves at once, as Table 17's symmetric pairs ask
        put("jaw", 0.04 * p.jaw)
        put("mouth", 0.05 * s)
    else:  # the jaw and the mouth shift to one side at a time
        left, right = p.lateral.clip(min=0), (-p.lateral).clip(min=0)
        put1("jawLeft", 0.08 * p.jaw * left)
        put1("jawRight", 0.08 * p.jaw * right)
        put1("mouthLeft", 0.1 * s * left)
        put1("mouthRight", 0.1 * s * right)
    put1("jawForward", 0.05 * p.jaw)
    put1("mouthFunnel", 0.25 * p.rounded)
    put1("mouthPucker", 0.25 * p.rounded)
    put1("mouthRollLower", 0.05 * p.press)
    put1("mouthShrugUpper", 0.1 * p.press)
    put1("mouthClose", 0.15 * p.press)
    put1("cheekPuff", 0.02 * s)
    return np.clip(x, 0.0, 1.0)


def speaker_stream(
    person: Person, frames: int, rng: np.random.Generator, anatomy: str = "table17"
) -> dict:
    """One speaker clip: coefficients plus the hidden signals the listeners and the audio use."""
    voiced = turns(rng, frames)
    jaw, rounded, onsets = syllables(rng, voiced, person.speech_rate)
    valence = smooth_noise(rng, frames, 0.03)
    smile = np.clip(
        events(rng, frames, person.smile_rate, (1.0, 3.0), (0.45, 0.9), at_least=1)
        + 0.06 * valence.clip(min=0)
        + person.rest_smile,
        0,
        1,
    )
    # At least one surprise per clip that every listener sees within the clip, whatever its
    # delay, so each listener's brow response can be measured.
    latest = frames - round(DELAY_RANGE_S[1] * FPS)
    surprise = events(rng, frames, 0.05, (0.6, 1.2), (0.6, 1.0), at_least=1, end_by=latest)
    # Frowns and sneers only where the face is neither smiling nor surprised, and sneers not
    # during frowns: whole events are left out, so nothing is switched off mid-event.
    calm = (smile < FROWN_SMILE_LIMIT) & (surprise < EVENT_REST)
    frown = events(rng, frames, 0.05, (1.0, 2.5), (0.6, 1.0), allowed=calm)
    sneer = events(rng, frames, 0.05, (0.8, 2.0), (0.5, 1.0), allowed=calm & (frown < EVENT_REST))
    blink = blinks(rng, frames, 0.3, surprise)
    # Lips pressed in pauses, eased in and out over a few frames as speech stops and starts.
    press = 0.12 * ease(~voiced) * (1 - smile).clip(0, 1)
    programs = Programs(
        smile=smile,
        frown=frown,
        surprise=surprise,
        sneer=sneer,
        blink=blink,
        jaw=jaw,
        rounded=rounded,
        press=press,
        gaze_v=0.8 * smooth_noise(rng, frames, 0.2),
        gaze_h=0.8 * smooth_noise(rng, frames, 0.15),
        lateral=smooth_noise(rng, frames, 0.3),
    )
    x = np.zeros((frames, 58))
    x[:, coeffs.EXPRESSION] = expression(programs, person, rng, anatomy)
    # Emphasis nods: a short pitch dip on some stressed syllables.
    emphasis = np.zeros(frames)
    for t in onsets[rng.random(len(onsets)) < 0.12]:
        length = min(8, frames - t)
        emphasis[t : t + length] += 0.05 * bump(8, 3)[:length]
    x[:, _i("pitch")] = 0.03 * smooth_noise(rng, frames, 0.4) + emphasis
    x[:, _i("yaw")] = person.yaw_offset + 0.08 * smooth_noise(rng, frames, 0.1)
    x[:, _i("roll")] = 0.035 * smooth_noise(rng, frames, 0.2)
    _translation(x, rng, SPEAKER_DEPTH_DRIFT)
    f0 = person.f0 * (1 + 0.06 * smooth_noise(rng, frames, 0.5) + 0.15 * emphasis / 0.05)
    energy = voiced * (0.35 + 0.65 * jaw)
    x = x.astype(np.float32)
    return {
        "coeffs": x,
        "voiced": voiced,
        "smile": smile,
        "surprise": surprise,
        "frown": frown,
        "sneer": sneer,
        # What the listeners lean in to: the arousal of the speaker's written emotion.
        "arousal": arousal_of(x),
        "f0": f0,
        "energy": energy,
        "jaw": x[:, _i("jawOpen")].astype(np.float64),
    }


SPEAKER_DEPTH_DRIFT = 0.35
"""Half-width of a speaker's slow depth (z) drift, as a fraction of the z range."""
LISTENER_DEPTH_DRIFT = 0.04
"""Half-width of a listener's own slow depth drift: small beside the lean-in, which is the main
depth motion of a listener."""


def _translation(
    x: np.ndarray, rng: np.random.Generator, depth_drift: float, lean: np.ndarray | None = None
) -> None:
    """Smooth second-order head drift within TRANSLATION_RANGE; ``lean`` moves the head closer."""
    frames = len(x)
    for name, cutoff in (("tx", 0.08), ("ty", 0.1), ("tz", 0.05)):
        low, high = TRANSLATION_RANGE[name]
        if name == "tz":
            mid = 0.5 * (low + high)
            span = depth_drift * (high - low)
            value = soft_range(smooth_noise(rng, frames, cutoff), mid - span, mid + span)
            if lean is not None:
                value = value - lean
            x[:, _i(name)] = np.clip(value, low, high)
        else:
            x[:, _i(name)] = soft_range(smooth_noise(rng, frames, cutoff), low, high)


# --- The listeners ----------------------------------------------------------------------------


def nod(frames_long: int, amplitude: float) -> np.ndarray:
    """A backchannel nod: one or two pitch oscillations at about 2 Hz under a smooth window."""
    t = np.arange(frames_long) * DT
    return amplitude * np.sin(2 * np.pi * 2.0 * t) * np.hanning(frames_long)


def listener_stream(
    person: Person, speaker: dict, rng: np.random.Generator, anatomy: str = "table17"
) -> tuple[np.ndarray, np.ndarray]:
    """A listener's coefficients, following the speaker by the person's rules.

    Every rule is causal: the listener at frame t uses the speaker up to frame ``t - delay``.
    Returns the coefficients and the frames where backchannel nods were placed.
    """
    frames = len(speaker["smile"])
    d = person.delay_frames
    e = person.expressivity
    smile = np.clip(
        person.rest_smile
        + e * person.smile_gain * delayed(speaker["smile"], d)
        + 0.02 * smooth_noise(rng, frames, 0.3),
        0,
        1,
    )
    surprise = e * person.brow_gain * delayed(speaker["surprise"], d)
    # The speaker's frowns and sneers were placed away from smiles, so with the same delay the
    # listener's are too: no gate is needed here.
    frown = 0.6 * e * delayed(speaker["frown"], d)
    sneer = 0.5 * e * delayed(speaker["sneer"], d)
    blink = blinks(rng, frames, 0.25, surprise)
    programs = Programs(
        smile=smile,
        frown=frown,
        surprise=surprise,
        sneer=sneer,
        blink=blink,
        jaw=np.zeros(frames),
        rounded=np.zeros(frames),
        press=0.1 * (1 - smile).clip(0, 1),
        gaze_v=0.6 * smooth_noise(rng, frames, 0.15),
        gaze_h=0.6 * smooth_noise(rng, frames, 0.1) + 0.3,
        lateral=smooth_noise(rng, frames, 0.3),
    )
    x = np.zeros((frames, 58))
    x[:, coeffs.EXPRESSION] = expression(programs, person, rng, anatomy)
    # The inner brows also move a little on their own, beside the response to surprise.
    own_brow = x[:, _i("browInnerUp")] + LISTENER_BROW_DRIFT * smooth_noise(rng, frames, 0.5)
    x[:, _i("browInnerUp")] = np.clip(own_brow, 0, 1)
    # Backchannel nods: after each speaker pause begins (with the cognitive delay), with the
    # person's probability; rare spontaneous nods during speech.
    pitch = 0.025 * smooth_noise(rng, frames, 0.3)
    placed = []
    starts = [t + d for t in pause_onsets(speaker["voiced"], 6) if rng.random() < person.nod_prob]
    rare = np.flatnonzero(rng.random(frames) < 0.015 * DT)
    for t in [*starts, *rare]:
        length = round(rng.uniform(0.5, 1.0) * FPS)
        if t + length > frames:
            continue
        pitch[t : t + length] += nod(length, rng.uniform(0.06, 0.1) * e)
        placed.append(t)
    x[:, _i("pitch")] = pitch
    x[:, _i("yaw")] = person.yaw_offset + person.yaw_drift * smooth_noise(rng, frames, 0.05)
    x[:, _i("roll")] = 0.025 * smooth_noise(rng, frames, 0.15)
    lean = person.lean_gain * lean_drive(speaker["arousal"], d)
    _translation(x, rng, LISTENER_DEPTH_DRIFT, lean=lean)
    return x.astype(np.float32), np.asarray(sorted(placed), dtype=int)


LISTENER_BROW_DRIFT = 0.01
"""Standard deviation of a listener's own slow inner-brow motion."""
LEAN_TAU_S = 1.0
"""Time constant of the causal low-pass that turns the speaker's arousal into lean-in: two
one-pole stages of ``LEAN_TAU_S / 2`` each (critically damped, so the head's velocity is smooth
too)."""
AROUSAL = coeffs.EMOTION_NAMES.index("arousal")
LEAN_REFERENCE = float(coeffs.emotion_from_coeffs(coeffs.neutral())[AROUSAL])
"""The arousal of the neutral face: a speaker above it draws the listener closer."""


def arousal_of(x: np.ndarray) -> np.ndarray:
    """Per-frame arousal of a face: the arousal column of emotion-25 for ``(T, 58)``
    coefficients or ``(T, 25)`` emotion, or ``(T,)`` arousal itself, as float64."""
    x = np.asarray(x)
    if x.ndim == 1:
        return x.astype(np.float64)
    if x.ndim == 2 and x.shape[1] == coeffs.NUM_COEFFS:
        # float32 first: the same numbers the corpus writes and a reader gets back.
        x = coeffs.emotion_from_coeffs(x.astype(np.float32))
    if x.ndim != 2 or x.shape[1] != coeffs.NUM_EMOTION:
        raise ValueError(
            f"expected (T,) arousal, (T, 25) emotion or (T, 58) coefficients, got {x.shape}"
        )
    return x[:, AROUSAL].astype(np.float64)


def lean_drive(arousal: np.ndarray, delay: int) -> np.ndarray:
    """What a listener leans in by (before its personal gain), causally: the speaker's arousal
    ``delay`` frames ago, low-passed (:data:`LEAN_TAU_S`; the filter starts at rest at the first
    value), minus :data:`LEAN_REFERENCE`. Frame t uses the speaker up to t - delay."""
    low = delayed(np.asarray(arousal, dtype=np.float64), delay)
    pole = np.exp(-DT / (LEAN_TAU_S / 2))
    for _ in range(2):
        low, _ = signal.lfilter([1 - pole], [1, -pole], low, zi=[pole * low[0]])
    return low - LEAN_REFERENCE


# --- Measurable rules --------------------------------------------------------------------------


def xcorr_peak_lag(leader: np.ndarray, follower: np.ndarray, max_lag: int) -> int:
    """Lag (frames) at which ``follower(t)`` best matches ``leader(t - lag)``, 0..max_lag:
    the lag with the highest Pearson correlation over the overlapping frames."""
    n = len(leader)
    scores = [_pearson(leader[: n - lag], follower[lag:]) for lag in range(max_lag + 1)]
    return int(np.nanargmax(scores))


def smile_delay(speaker: np.ndarray, listener: np.ndarray, max_lag: int) -> int:
    """A listener's smile delay (frames) from coefficients ``(T, 58)``: the
    :func:`xcorr_peak_lag` of the frame-to-frame changes of :func:`smile_signal`. Changes rather
    than levels, because a listener's own slow smile drift shifts the broad peak of the level
    correlation, while the speaker's smile onsets and offsets give sharp velocity peaks."""
    return xcorr_peak_lag(
        np.diff(smile_signal(np.asarray(speaker, dtype=np.float64))),
        np.diff(smile_signal(np.asarray(listener, dtype=np.float64))),
        max_lag,
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / denominator) if denominator > 0 else np.nan


def nod_onsets(pitch: np.ndarray, threshold: float = 0.03) -> np.ndarray:
    """Frames where a nod starts: the band-passed pitch envelope crosses ``threshold`` rad."""
    b, a = signal.butter(2, [f / (FPS / 2) for f in NOD_BAND_HZ], btype="band")
    band = signal.filtfilt(b, a, pitch)
    env = np.abs(signal.hilbert(band))
    above = env > threshold
    return np.flatnonzero(above[1:] & ~above[:-1]) + 1


def nod_counts(pitch: np.ndarray, speaker_voiced: np.ndarray, delay: int) -> dict[str, float]:
    """Nods attributed to speaker pauses and to speech, judged at the stimulus time (nod onset
    minus the listener's delay), with the seconds of pause and of speech they fall in."""
    onsets = nod_onsets(pitch) - delay
    onsets = onsets[onsets >= 0]
    voiced = speaker_voiced[: len(pitch)].astype(bool)
    return {
        "nods_pause": int(np.sum(~voiced[onsets])),
        "nods_speech": int(np.sum(voiced[onsets])),
        "pause_s": float((~voiced).sum() * DT),
        "speech_s": float(voiced.sum() * DT),
    }


def nod_rates(pitch: np.ndarray, speaker_voiced: np.ndarray, delay: int) -> tuple[float, float]:
    """Nods per second while the speaker pauses and while the speaker talks (see nod_counts)."""
    c = nod_counts(pitch, speaker_voiced, delay)
    return c["nods_pause"] / max(c["pause_s"], DT), c["nods_speech"] / max(c["speech_s"], DT)


def lean_in(speaker: np.ndarray, listener: np.ndarray, delay: int) -> float:
    """How closely a listener leans in with its speaker's arousal: the Pearson correlation
    between :func:`lean_drive` of the speaker (``(T, 58)`` coefficients, ``(T, 25)`` emotion or
    ``(T,)`` arousal; see :func:`arousal_of`) at the listener's ``delay`` and the listener's
    approach ``-z`` (``(T, 58)`` coefficients). Near 1 when the lean dominates the listener's own
    depth drift; NaN when either is constant."""
    listener = np.asarray(listener, dtype=np.float64)
    if listener.ndim != 2 or listener.shape[1] != coeffs.NUM_COEFFS:
        raise ValueError(f"listener must be (T, 58) coefficients, got {listener.shape}")
    drive = lean_drive(arousal_of(speaker), delay)
    if len(drive) != len(listener):
        raise ValueError(f"speaker has {len(drive)} frames, listener {len(listener)}")
    return _pearson(drive, -listener[:, _i("tz")])


def brow_response(speaker: np.ndarray, listener: np.ndarray, delay: int) -> dict[str, float]:
    """The listener's brow raise at the speaker's surprise, from coefficients ``(T, 58)``:
    ``corr``, the Pearson correlation of the listener's ``browInnerUp(t)`` with the speaker's
    ``browInnerUp(t - delay)``, and ``gain``, the least-squares slope of the first on the second
    (the listener's ``expressivity * brow_gain`` while nothing saturates). NaN when the speaker's
    brows do not move."""
    brow = _i("browInnerUp")
    lead = delayed(np.asarray(speaker, dtype=np.float64)[:, brow], delay)
    follow = np.asarray(listener, dtype=np.float64)[:, brow]
    lead_c = lead - lead.mean()
    spread = float(np.dot(lead_c, lead_c))
    gain = float(np.dot(lead_c, follow - follow.mean()) / spread) if spread > 0 else np.nan
    return {"corr": _pearson(lead, follow), "gain": gain}


def step_jumps(
    x: np.ndarray, min_change: float = 0.05, ratio: float = 3.0
) -> dict[str, np.ndarray]:
    """One-frame steps in a clip ``(T, C)`` (or ``(T,)``): frame changes ``|x[t+1] - x[t]|``
    above ``min_change`` and over ``ratio`` times both neighbouring changes
    (``|x[t] - x[t-1]|`` and ``|x[t+2] - x[t+1]|``). A smooth onset spreads its rise over several
    frames and has none; a gate switching a program on or off within one frame shows one.

    Returns ``{"frames": (N,) the frame t each step lands on (the step is x[t] - x[t-1]),
    "channels": (N,) its column, "sizes": (N,) |x[t] - x[t-1]|}``, in frame order, then column
    order; with ``(T, 58)`` coefficients, ``coeffs.COEFF_NAMES[channel]`` names the column.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected (T,) or (T, C), got shape {x.shape}")
    if min_change < 0 or ratio < 1:
        raise ValueError(f"need min_change >= 0 and ratio >= 1, got {min_change}, {ratio}")
    change = np.abs(np.diff(x, axis=0))
    middle = change[1:-1]
    hit = (middle > min_change) & (middle > ratio * change[:-2]) & (middle > ratio * change[2:])
    frames, channels = np.nonzero(hit)
    return {"frames": frames + 2, "channels": channels, "sizes": middle[frames, channels]}


def smile_signal(x: np.ndarray) -> np.ndarray:
    """Mean of ``mouthSmileLeft`` and ``mouthSmileRight`` per frame: ``(..., 58) -> (...)``."""
    return 0.5 * (x[..., _i("mouthSmileLeft")] + x[..., _i("mouthSmileRight")])


@dataclass(frozen=True)
class SessionView:
    """A written SynthReact session read back: the arrays and the recorded ground truth."""

    name: str
    speaker_id: str
    speaker: np.ndarray
    """``(T, 58)`` speaker coefficients."""
    listeners: dict[str, np.ndarray]
    """Person id -> ``(T, 58)`` listener coefficients."""
    voiced: np.ndarray
    """``(T,)`` True while the speaker talks."""
    people: dict[str, dict]
    """Person id -> that person's recorded parameters (``delay_s``, ``smile_gain``, ...)."""

    def delay_frames(self, pid: str) -> int:
        return round(self.people[pid]["delay_s"] * FPS)


def read_sessions(corpus: data.Corpus, split: str) -> list[SessionView]:
    """Every session of one split of a SynthReact corpus, read through the REACT-layout reader."""
    if corpus.meta is None or corpus.meta.get("corpus") != SITE:
        raise ValueError(f"{corpus.root} is not a SynthReact corpus (no {data.CORPUS_FILE})")
    reader = corpus.split(split)
    people = corpus.meta["people"]
    out = []
    for entry in corpus.meta["sessions"]:
        if entry["split"] != split:
            continue

        def load(pid: str, name: str = entry["name"]) -> np.ndarray:
            return reader.coeffs(f"{SITE}/{name}/{pid}/1")

        voiced = voiced_from_runs(entry["voiced"], corpus.meta["stored_frames"])
        out.append(
            SessionView(
                name=entry["name"],
                speaker_id=entry["speaker"],
                speaker=load(entry["speaker"]),
                listeners={pid: load(pid) for pid in entry["listeners"]},
                voiced=voiced[: reader.frames],
                people={pid: people[pid] for pid in [entry["speaker"], *entry["listeners"]]},
            )
        )
    return out


def rule_report(views: list[SessionView], max_lag: int = 30):
    """One row per listener (a pandas DataFrame), every rule measured from the coefficients:

    - ``delay_frames`` (recorded), ``xcorr_peak`` (:func:`smile_delay`, the peak of the smile
      velocity cross-correlation) and ``delay_error`` (their difference);
    - ``nods_pause``, ``nods_speech``, ``pause_s``, ``speech_s`` (:func:`nod_counts`);
    - ``lean_in``: :func:`lean_in` at the recorded delay;
    - ``brow_corr`` and ``brow_gain`` (:func:`brow_response`), beside ``brow_gain_recorded``,
      the listener's ``expressivity * brow_gain`` from the corpus record.
    """
    import pandas as pd

    rows = []
    for view in views:
        for pid, x in view.listeners.items():
            delay = view.delay_frames(pid)
            brow = brow_response(view.speaker, x, delay)
            person = view.people[pid]
            rows.append(
                {
                    "session": view.name,
                    "listener": pid,
                    "delay_frames": delay,
                    "xcorr_peak": smile_delay(view.speaker, x, max_lag),
                    **nod_counts(x[:, _i("pitch")], view.voiced, delay),
                    "lean_in": lean_in(view.speaker, x, delay),
                    "brow_corr": brow["corr"],
                    "brow_gain": brow["gain"],
                    "brow_gain_recorded": person["expressivity"] * person["brow_gain"],
                }
            )
    report = pd.DataFrame(rows)
    report["delay_error"] = report.xcorr_peak - report.delay_frames
    return report


EXCLUSIVE_THRESHOLD = 0.3
"""The level at which SynthReact's mutually exclusive pairs hold over all frames: both
coefficients of a pair exceed it in under 2 % of the frames of a corpus."""
SPEECH_EXCLUSIVE_THRESHOLD = 0.35
"""The level at which they hold over a speaker's speaking frames alone (under 2 %, even in short
clips). Lower they do not: the lower lip (``mouthLowerDown``) drops in smiling speech and rounded
vowels pucker the lips with the jaw open, as in real speech; at 0.1 about a fifth of speaking
frames have ``mouthLowerDown`` and ``mouthSmile`` both above it."""


def pair_statistics(x: np.ndarray, threshold: float = EXCLUSIVE_THRESHOLD):
    """Table 17 statistics over frames ``(..., 58)``: correlation of every pair, and for every
    pair the fraction of frames where both exceed ``threshold`` (meaningful for the mutually
    exclusive ones).

    Returns a pandas DataFrame with columns kind, a, b, corr, both_active.
    """
    import pandas as pd

    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    rows = []
    for kind in coeffs.PAIR_KINDS:
        for a, b in coeffs.pairs(kind):
            u, v = flat[:, _i(a)], flat[:, _i(b)]
            corr = np.nan if u.std() < 1e-9 or v.std() < 1e-9 else np.corrcoef(u, v)[0, 1]
            both = float(np.mean((u > threshold) & (v > threshold)))
            rows.append({"kind": kind, "a": a, "b": b, "corr": corr, "both_active": both})
    return pd.DataFrame(rows)


# --- The corpus ---------------------------------------------------------------------------------


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
    from reactlib import audio

    sp = s.streams["speaker"]
    clips = [(s.speaker, sp["coeffs"])] + list(
        zip(s.listeners, s.streams["listeners"], strict=True)
    )
    for person, x in clips:
        clip = s.clip(person)
        data.save_coeffs(data.clip_file(root, "coeffs", clip, must_exist=False), x)
        emotion = coeffs.emotion_from_coeffs(x)
        data.save_emotion(data.clip_file(root, "emotion", clip, must_exist=False), emotion)
    seed = int(s.name.split("_")[1])
    wav = audio.synthesize(
        sp["f0"], sp["energy"], sp["jaw"], fps=FPS, sample_rate=spec.sample_rate, seed=seed
    )
    path = data.clip_file(root, "audio", s.clip(s.speaker), must_exist=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio.write_wav(path, wav, spec.sample_rate)
    if render_video:
        from reactlib import render, video

        for person, x in clips:
            renderer = render.FaceRenderer(
                VIDEO_SIZE, identity=render.Identity.random(person.appearance_seed)
            )
            path = data.clip_file(root, "video", s.clip(person), must_exist=False)
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
    existing = data.read_corpus_meta(out) if out.is_dir() else None
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
            data.write_pairs(tmp, split, pairs)
            data.save_neighbours(tmp, split, neighbour_matrix(in_split))
        for k, s in enumerate(wrap(all_sessions, desc="SynthReact", unit="session")):
            _write_session(tmp, s, spec, render_video=k < spec.videos)
        meta = _meta(spec, all_sessions, time.perf_counter() - started)
        (tmp / data.CORPUS_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
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
    from reactlib import runtime

    spec = Spec.from_config(cfg, **overrides)

    def bar(iterable, **kwargs):
        return runtime.progress(iterable, cfg=cfg, **kwargs)

    return generate(spec, out or default_dir(spec), progress=bar, force=force)


def open_corpus(data_root: str | os.PathLike | None = None, *, cfg: Config | None = None):
    """The corpus a notebook should use: the REACT copy at ``data_root`` (else ``cfg.data_root``,
    else ``$REACT_DATA``) if one is given, else the SynthReact corpus of the profile (generated
    on first use): a :class:`reactlib.data.Corpus`."""
    chosen = data_root if data_root is not None else getattr(cfg, "data_root", None)
    root = data.resolve_root(chosen)
    if root is not None:
        return data.Corpus(root)
    if cfg is None:
        raise ValueError("open_corpus needs cfg (a resolved Config) to build SynthReact")
    return data.Corpus(ensure(cfg))
