"""How SynthReact's people behave: speakers' turns and expressions, listeners' rules.

A *session* is one speaker and K listeners who all watch the same speaker clip. The speaker talks
in turns (speech and pauses) with syllabic mouth motion, prosody (f0, energy) that drives the audio,
smile bursts, surprise and frown events, emphasis nods, blinks, and head sway and translation drift
with smooth second-order dynamics. Each listener follows rules whose strength is a personality
drawn per person; every rule is causal (frame t of a listener uses the speaker up to t - delay) and
measured per listener by a function of :mod:`reactlib.rules`:

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
(above :data:`reactlib.rules.EXCLUSIVE_THRESHOLD`, or
:data:`reactlib.rules.SPEECH_EXCLUSIVE_THRESHOLD` while a speaker talks).
That includes pairs that are anatomically odd: Table 17 calls ``jawLeft``/``jawRight`` and
``mouthLeft``/``mouthRight`` symmetric, so both halves rise together
although they move the jaw and the mouth in opposite directions, and it pairs ``eyeLookIn`` and
``eyeLookOut`` of both eyes, so gaze is vergence and listeners look slightly cross-eyed. The
``anatomical`` corpus option (:data:`ANATOMIES`) moves those the way faces do instead. Emotion-25
is :func:`reactlib.face.coeffs.emotion_from_coeffs`.

Every event rises and falls over at least :data:`MIN_RAMP` frames, and programs that must not
co-occur are kept apart when events are placed, not by switching one off within a frame, so no
coefficient steps from one frame to the next (:func:`reactlib.rules.step_jumps` counts such steps).

The corpus built from these streams (sessions, splits, files) is :mod:`reactlib.data.synth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from reactlib.face import coeffs
from reactlib.face.coeffs import index as _i

FPS = coeffs.FPS
DT = 1.0 / FPS

TRANSLATION_RANGE = {"tx": (-0.10, 0.10), "ty": (-0.06, 0.06), "tz": (1.60, 2.10)}
"""Documented range of head translation (renderer units; the neutral face sits at z = 1.84)."""
DELAY_RANGE_S = (0.3, 0.8)
"""The listeners' cognitive delays, drawn per person (seconds)."""


# --- People -----------------------------------------------------------------------------------


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
