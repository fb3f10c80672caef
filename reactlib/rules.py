"""SynthReact's listener rules measured: on its own listeners, and on any generator's reactions.

SynthReact (:mod:`reactlib.data.behaviour`) knows how its listeners react: they smile back
0.3-0.8 s after the speaker, nod in the speaker's pauses, raise their brows at the speaker's
surprise, lean in with the speaker's arousal, and their expressions obey the AU-pair relations of
the ReactDiff paper's Table 17. The first part of this module measures each rule on one listener
(:func:`smile_delay`, :func:`nod_counts`, :func:`brow_response`, :func:`lean_in`,
:func:`pair_statistics`, :func:`step_jumps`), and :func:`rule_report` checks every listener of a
corpus against what the corpus file records. :func:`rule_figures` measures the same rules on
reactions ``(N, M, T, 58)`` (M reactions per speaker item), plus three figures
of how a generator behaves as a whole: how much its reactions differ for one speaker and between
speakers, and whether its window-by-window (online) output steps at the window seams.

The same figures on the ground-truth listeners (passed as ``(N, 1, T, 58)``) say what the rules
look like, and on :func:`mean_listener`, a reaction that ignores the speaker, what a model gets
for free; :func:`rule_table` puts every method side by side. :func:`speaker_context` gives the
speaker arrays and speech turns of a SynthReact split, aligned with its items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import signal

from reactlib.data import layout, synth
from reactlib.data.behaviour import DT, FPS, arousal_of, delayed, lean_drive
from reactlib.data.corpus import Corpus, Split
from reactlib.errors import DataError, UsageError
from reactlib.face import coeffs
from reactlib.face.coeffs import index as _i
from reactlib.metrics.realism import smoothness

if TYPE_CHECKING:
    import pandas as pd


WINDOW = 16
"""Frames per window of the online generation loop (non-overlapping windows)."""
DEFAULT_DELAY_S = 0.55
"""The delay at which nods are attributed to the speaker's pauses or speech: the middle of
:data:`reactlib.data.behaviour.DELAY_RANGE_S`."""
SMILE_DELAY_RANGE_S = (0.2, 1.0)
"""Smile delays (inclusive) that count as following the speaker: SynthReact's 0.3-0.8 s with a
0.1-0.2 s margin for the measurement's spread."""
MAX_BETWEEN_ITEMS = 64
"""``between_speaker_spread`` uses the item pairs among at most this many items (drawn with the
``seed`` of :func:`rule_figures` when there are more): at most 2016 pairs, and its cost stays
bounded however many items there are."""
_PITCH = coeffs.index("pitch")
NOD_BAND_HZ = (1.2, 4.0)
"""Pitch oscillations in this band are nods; slower pitch motion is posture and sway."""


# --- One listener's rules ------------------------------------------------------------------------


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


def read_sessions(corpus: Corpus, split: str) -> list[SessionView]:
    """Every session of one split of a SynthReact corpus, read through the REACT-layout reader."""
    if corpus.meta is None or corpus.meta.get("corpus") != synth.SITE:
        raise ValueError(f"{corpus.root} is not a SynthReact corpus (no {layout.CORPUS_FILE})")
    reader = corpus.split(split)
    people = corpus.meta["people"]
    out = []
    for entry in corpus.meta["sessions"]:
        if entry["split"] != split:
            continue

        def load(pid: str, name: str = entry["name"]) -> np.ndarray:
            return reader.coeffs(f"{synth.SITE}/{name}/{pid}/1")

        voiced = synth.voiced_from_runs(entry["voiced"], corpus.meta["stored_frames"])
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


# --- Any generator's reactions -------------------------------------------------------------------


def speaker_context(corpus: Corpus, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The speakers of a SynthReact split, aligned with ``corpus.split(split).items``:
    ``(speaker (N, T, 58) float64, voiced (N, T) bool)``, voiced True while the speaker talks.

    The speech turns are the ``voiced`` runs recorded in the corpus file: REACT 2024 has no
    record of them, so any other corpus raises :class:`~reactlib.errors.UsageError` (a
    ``ValueError``); a corpus file that lacks an item's speaker raises
    :class:`~reactlib.errors.DataError`."""
    if corpus.meta is None or corpus.meta.get("corpus") != synth.SITE:
        raise UsageError(
            f"{corpus.root} is not a SynthReact corpus: rule figures need SynthReact's recorded "
            "speaker turns (the 'voiced' runs of its corpus file)"
        )
    reader = corpus.split(split)
    stored = corpus.meta["stored_frames"]
    turns = {
        f"{synth.SITE}/{entry['name']}/{entry['speaker']}/1": entry["voiced"]
        for entry in corpus.meta["sessions"]
        if entry["split"] == split
    }
    missing = sorted({item.speaker for item in reader.items} - turns.keys())
    if missing:
        raise DataError(
            f"{corpus.root / layout.CORPUS_FILE}: no session of split {split!r} records the turns "
            f"of speaker clip(s) {', '.join(missing[:3])} listed in {split}.csv"
        )
    runs = [turns[item.speaker] for item in reader.items]
    voiced = np.stack([synth.voiced_from_runs(r, stored)[: reader.frames] for r in runs])
    return reader.stack("coeffs", "speaker").astype(np.float64), voiced


def speaker_items(split: Split) -> tuple[list[int], np.ndarray]:
    """One item per distinct speaker clip of ``split`` (its first), and the ground truth of each:
    every listener of that speaker, ``(N, K, T, 58)`` float64 (K listeners per speaker; a speaker
    with fewer repeats its last listener, which a caller can see in the returned array).

    Items that share a speaker ask a generator the same question, so scoring one of them per
    speaker, against all its listeners, is what the rule figures of a model should use."""
    first: dict[str, int] = {}
    listeners: dict[str, list[str]] = {}
    for k, item in enumerate(split.items):
        first.setdefault(item.speaker, k)
        listeners.setdefault(item.speaker, []).append(item.listener)
    most = max(len(v) for v in listeners.values())
    truth = [[split.coeffs(c) for c in (v + [v[-1]] * (most - len(v)))] for v in listeners.values()]
    return list(first.values()), np.asarray(truth, dtype=np.float64)


def mean_listener(train_listeners: np.ndarray, n: int, m: int, frames: int) -> np.ndarray:
    """The trivial baseline: the mean frame of the training listeners ``(..., 58)``, repeated to
    ``(n, m, frames, 58)`` float64. It ignores the speaker, so any rule it seems to follow is
    a property of the figure, not of a model. The frame is :func:`reactlib.face.coeffs.mean_frame`
    (the ``Mean frame`` baseline's)."""
    frame = coeffs.mean_frame(train_listeners)
    for name, value in (("n", n), ("m", m), ("frames", frames)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return np.broadcast_to(frame, (n, m, frames, coeffs.NUM_COEFFS)).copy()


def rule_figures(
    reactions: np.ndarray,
    speaker: np.ndarray,
    voiced: np.ndarray,
    *,
    window: int = WINDOW,
    delay_s: float = DEFAULT_DELAY_S,
    max_lag_s: float = 1.2,
    seed: int = 0,
) -> dict[str, float]:
    """SynthReact's rules and three generator figures, measured on ``reactions (N, M, T, 58)``
    (M reactions to each of N speaker items) with ``speaker (N, T, 58)`` and ``voiced (N, T)``
    (True while the speaker talks; see :func:`speaker_context`).

    Every value is a float, NaN where the figure is undefined (a constant reaction has no smile
    delay; one reaction per item has no within-speaker spread):

    - ``smile_delay_s``: the median over (item, reaction) of :func:`smile_delay`
      (lags 0..``max_lag_s``) in seconds, over the reactions whose smile moves;
      ``smile_delay_in_range``: the fraction of all (item, reaction) whose delay lies in
      :data:`SMILE_DELAY_RANGE_S` (a reaction whose smile does not move counts as outside);
      ``smile_peak_corr``: the median correlation at that peak.
    - ``nods_pause_per_s``, ``nods_speech_per_s``: nods (:func:`nod_counts` on the
      pitch, attributed at ``delay_s``) per second of speaker pause and of speech, pooled over
      every reaction; ``nod_pause_ratio``: the first over the second (inf with no speech nods).
    - ``brow_corr``: the mean over reactions of :func:`brow_response`'s
      correlation of the reaction's ``browInnerUp`` with the speaker's ``delay_s`` earlier (brows
      raised at the speaker's surprise); ``lean_in_corr``: the mean of
      :func:`lean_in`, the correlation of the reaction's approach ``-tz`` with the
      speaker's low-passed arousal ``delay_s`` earlier. Both over the reactions where they are
      defined (a reaction whose brows or depth never move has none).
    - ``within_speaker_spread``: the mean over items of the mean RMS distance (over frames and
      the 58 coefficients) between two reactions to the item; ``between_speaker_spread``: the
      mean RMS distance between reaction m of item i and reaction m of item j, over item pairs
      whose speaker arrays differ (among at most :data:`MAX_BETWEEN_ITEMS` items, drawn with
      ``seed``); ``spread_ratio``: within over between, below 1 when reactions depend on the
      speaker.
    - ``seam_step``: the mean absolute frame change ``|x[t] - x[t-1]|`` over the 58 coefficients
      at the frames where an online window starts (``t = k * window``, ``1 <= k < T // window``:
      non-overlapping windows, the last absorbing the remainder); ``within_step``: the same at
      every other frame ``t >= 1``; ``seam_ratio``: seam over within, 1 for a seamless output.
    - ``symmetric_corr``, ``co_occurring_corr``: the mean correlation of Table 17's symmetric and
      co-occurring pairs; ``exclusive_both_active``: the mean fraction of frames where both
      coefficients of a mutually exclusive pair exceed :data:`EXCLUSIVE_THRESHOLD`
      (all from :func:`pair_statistics` over every frame of every reaction).
    """
    reactions, speaker, voiced = _checked(reactions, speaker, voiced)
    n, m, frames, _ = reactions.shape
    for name, value in (("window", window), ("seed", seed)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise UsageError(f"{name} must be an integer, got {value!r}")
    if window < 1:
        raise UsageError(f"window must be >= 1 frame, got {window}")
    delay = round(delay_s * FPS)
    if not 0 <= delay < frames:
        raise UsageError(f"delay_s must put the delay within the {frames} frames, got {delay_s}")
    max_lag = round(max_lag_s * FPS)
    # Smile velocities have frames - 1 values; a correlation needs at least two overlapping.
    if not 1 <= max_lag <= frames - 3:
        raise UsageError(
            f"max_lag_s must be 1 to {frames - 3} frames for {frames}-frame clips, "
            f"got {max_lag_s} s ({max_lag} frames)"
        )

    lags, peaks = np.full((n, m), np.nan), np.full((n, m), np.nan)
    nods = np.zeros(4)  # nods in pauses, nods in speech, seconds of pause, seconds of speech
    within, brows, leans = [], [], []
    for i in range(n):
        x = reactions[i].astype(np.float64)
        leader = np.diff(smile_signal(speaker[i]))
        curves = _xcorr_curves(leader, np.diff(smile_signal(x), axis=-1), max_lag)
        moves = ~np.isnan(curves).all(axis=-1)
        lags[i, moves] = np.nanargmax(curves[moves], axis=-1)
        peaks[i, moves] = np.nanmax(curves[moves], axis=-1)
        for reaction in x:
            counts = nod_counts(reaction[:, _PITCH], voiced[i], delay)
            nods += [counts[key] for key in ("nods_pause", "nods_speech", "pause_s", "speech_s")]
            brows.append(brow_response(speaker[i], reaction, delay)["corr"])
            leans.append(lean_in(speaker[i], reaction, delay))
        if m > 1:
            within.append(_pairwise_rms(x.reshape(m, -1))[np.triu_indices(m, k=1)].mean())

    delays_s = lags / FPS
    low, high = SMILE_DELAY_RANGE_S
    timed = ~np.isnan(delays_s)
    pause_rate = nods[0] / nods[2] if nods[2] > 0 else math.nan
    speech_rate = nods[1] / nods[3] if nods[3] > 0 else math.nan
    steps = smoothness(reactions, window, nan_policy="propagate")
    within_spread = float(np.mean(within)) if within else math.nan
    between_spread = _between_speaker_spread(reactions, speaker, seed)
    # Column-major, so that pair_statistics reads each coefficient over all frames contiguously
    # (about three times faster for 64 x 10 reactions of 750 frames).
    frames_by_coefficient = np.asfortranarray(
        reactions.reshape(-1, coeffs.NUM_COEFFS), dtype=np.float64
    )
    pairs = pair_statistics(frames_by_coefficient)
    return {
        "smile_delay_s": float(np.median(delays_s[timed])) if timed.any() else math.nan,
        "smile_delay_in_range": (
            float(np.mean(timed & (delays_s >= low) & (delays_s <= high)))
            if timed.any()
            else math.nan
        ),
        "smile_peak_corr": float(np.median(peaks[timed])) if timed.any() else math.nan,
        "nods_pause_per_s": float(pause_rate),
        "nods_speech_per_s": float(speech_rate),
        "nod_pause_ratio": _ratio(pause_rate, speech_rate),
        "brow_corr": _finite_mean(brows),
        "lean_in_corr": _finite_mean(leans),
        "within_speaker_spread": within_spread,
        "between_speaker_spread": between_spread,
        "spread_ratio": _ratio(within_spread, between_spread),
        "seam_step": steps["seam_jump"],
        "within_step": steps["velocity"],
        "seam_ratio": steps["seam_ratio"],
        "symmetric_corr": _mean_defined(pairs.loc[pairs.kind == "symmetric", "corr"]),
        "co_occurring_corr": _mean_defined(pairs.loc[pairs.kind == "co_occurring", "corr"]),
        "exclusive_both_active": _mean_defined(
            pairs.loc[pairs.kind == "mutually_exclusive", "both_active"]
        ),
    }


def rule_table(
    methods: Mapping[str, np.ndarray], speaker: np.ndarray, voiced: np.ndarray, **kwargs
) -> pd.DataFrame:
    """:func:`rule_figures` of every method's reactions ``(N, M, T, 58)`` to the same speakers:
    one row per method (the index, named ``method``, in the order given), one column per
    figure. ``kwargs`` go to :func:`rule_figures`, the same for every method."""
    import pandas as pd

    if not methods:
        raise UsageError("rule_table needs at least one method")
    rows = {name: rule_figures(x, speaker, voiced, **kwargs) for name, x in methods.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return table


def _checked(
    reactions: np.ndarray, speaker: np.ndarray, voiced: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three inputs of :func:`rule_figures` with their shapes checked against each other
    (reactions keep their dtype, cast per item later, so float32 input is not doubled)."""
    reactions = np.asarray(reactions)
    speaker = np.asarray(speaker, dtype=np.float64)
    voiced = np.asarray(voiced)
    if reactions.ndim != 4 or reactions.shape[-1] != coeffs.NUM_COEFFS or 0 in reactions.shape:
        raise UsageError(
            f"reactions must be (N, M, T, {coeffs.NUM_COEFFS}) with N, M, T >= 1, "
            f"got shape {reactions.shape}"
        )
    n, _, frames, _ = reactions.shape
    if speaker.shape != (n, frames, coeffs.NUM_COEFFS):
        raise UsageError(
            f"speaker must be (N, T, {coeffs.NUM_COEFFS}) = {(n, frames, coeffs.NUM_COEFFS)} "
            f"to match reactions {reactions.shape}, got {speaker.shape}"
        )
    if voiced.shape != (n, frames):
        raise UsageError(
            f"voiced must be (N, T) = {(n, frames)} to match reactions, got {voiced.shape}"
        )
    return reactions, speaker, voiced.astype(bool)


def _xcorr_curves(leader: np.ndarray, follower: np.ndarray, max_lag: int) -> np.ndarray:
    """The scores :func:`xcorr_peak_lag` takes the peak of, for many followers
    at once: the Pearson correlation of ``follower(t)`` with ``leader(t - lag)`` over the
    overlapping frames, for lag 0..max_lag. ``leader (n,)``, ``follower (..., n)`` ->
    ``(..., max_lag + 1)``, NaN where either side is constant (as ``xcorr_peak_lag`` scores it);
    the peak value is the figure ``xcorr_peak_lag`` does not return."""
    n = leader.shape[-1]
    curves = np.full((*follower.shape[:-1], max_lag + 1), np.nan)
    for lag in range(max_lag + 1):
        a = leader[: n - lag] - leader[: n - lag].mean()
        b = follower[..., lag:]
        b = b - b.mean(axis=-1, keepdims=True)
        denominator = np.sqrt(np.dot(a, a) * np.einsum("...t,...t->...", b, b))
        defined = denominator > 0
        curves[defined, lag] = (b[defined] @ a) / denominator[defined]
    return curves


def _pairwise_rms(x: np.ndarray) -> np.ndarray:
    """RMS distance between every two rows of ``x (K, D)``: ``(K, K)``, from the Gram matrix
    (one matrix product instead of K * K differences). The rows are centred first, so the
    identity ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` works on what differs between them and
    stays accurate: identical rows give 0 (to rounding)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    gram = x @ x.T
    squared = np.diag(gram)
    distance2 = squared[:, None] + squared[None, :] - 2 * gram
    return np.sqrt(np.clip(distance2, 0, None) / x.shape[1])


def _between_speaker_spread(reactions: np.ndarray, speaker: np.ndarray, seed: int) -> float:
    """Mean RMS distance between reaction m of item i and reaction m of item j over every pair
    of items whose speaker arrays differ, among all items or :data:`MAX_BETWEEN_ITEMS` of them
    drawn with ``seed``; NaN when no two of them have different speakers."""
    n, m = reactions.shape[:2]
    items = np.arange(n)
    if n > MAX_BETWEEN_ITEMS:
        chosen = np.random.default_rng(seed).choice(n, MAX_BETWEEN_ITEMS, replace=False)
        items = np.sort(chosen)
    labels: dict[bytes, int] = {}
    speaker_of = np.array([labels.setdefault(speaker[i].tobytes(), len(labels)) for i in items])
    first, second = np.triu_indices(len(items), k=1)
    different = speaker_of[first] != speaker_of[second]
    if not different.any():
        return math.nan
    first, second = first[different], second[different]
    total = 0.0
    for k in range(m):
        distances = _pairwise_rms(reactions[items, k].reshape(len(items), -1))
        total += distances[first, second].sum()
    return float(total / (first.size * m))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; inf for a positive numerator over zero, NaN for 0 / 0 or a
    NaN operand."""
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return float(numerator / denominator)


def _finite_mean(values: list[float]) -> float:
    """Mean of the finite values, NaN when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan


def _mean_defined(values: pd.Series) -> float:
    """Mean of the non-NaN values, NaN when there are none."""
    defined = values.dropna()
    return float(defined.mean()) if len(defined) else math.nan
