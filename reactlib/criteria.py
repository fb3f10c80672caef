"""Rule checks that can fail: a pass criterion for each SynthReact rule, with its chance floor,
and the controls each criterion must reject.

:mod:`reactlib.rules` measures the rules. A figure alone says little: a smile delay can be read
off a cross-correlation whose peak is 0.01 (no response at all), and a nod ratio is infinite
after a single nod. Here each rule becomes a criterion with a null: what a reaction that does
*not* follow the rule scores, computed from the same reactions.

**Response criteria** (:data:`RESPONSE`: smile, nods, brow, lean-in) use a *speaker-permutation
null*: the same statistic with the reactions re-paired with other speakers, every reaction to one
speaker moved to the same other speaker (reactions to one speaker are not independent of each
other, so they move together). Re-pairing keeps everything a reaction does on its own (its rhythm,
its amount of motion, where in the clip it moves) and breaks only its relation to its own speaker,
which is what a response is; the time alignment stays, so the edges of a clip and a corpus-wide
rhythm (every session opening with a pause) count alike in the statistic and its null. (A null of
random time shifts instead would not: per-frame noise has a third more detected nods in a clip's
first and last second, and speakers pause more at the start, so shifts passed noise as nodding
in about 5 % of seeds at ``p <= 0.001``.) The null is exact (every permutation) up to
:data:`EXACT_SPEAKERS` speakers and drawn at random beyond; with ``draws`` draws,
``p = (1 + #{null >= observed}) / (1 + draws)``, and a criterion passes at ``p <= alpha``
(:data:`ALPHA`). Fewer than :data:`MIN_SPEAKERS` speakers cannot reach that, and the criterion is
undefined (``passes`` is None).

**Motion criteria** compare with a closed form: for a sinusoid of frequency ``f`` sampled at
``fps``, ``mean|x[t+1] - 2x[t] + x[t-1]| / mean|x[t] - x[t-1]| = 2 sin(pi f / fps)``, which is
1 at ``f = fps / 6`` (4.2 Hz, the top of the nod band) and ``sqrt(3)`` for white noise. Motion is
smooth where that *roughness* stays below 1 (:data:`ROUGHNESS_LIMIT`), and a seam is continuous
where the step across it is at most :data:`SEAM_LIMIT` times the steps inside windows *and* the
motion is smooth (a per-frame jitter steps as much at the seams as anywhere, and is no seamless
output).

**Structure criteria** use a permutation or a bootstrap over speakers: reactions to one speaker
are closer to each other than reactions randomly reassigned to speakers (:func:`check`'s
``varies_with_speaker``); the AU pairs of Table 17 move together (or apart) beyond what
independent channels give, judged by a bootstrap over speakers, which needs
:data:`MIN_SPEAKERS` of them as the response criteria do.

:data:`CRITERIA` says, per criterion, which of the :data:`CONTROLS` it must reject and why;
:func:`controls` builds them from the ground truth, and the tests show that the real listeners
pass every criterion while each control fails every criterion it must.

It is one module, longer than most, because a criterion is only as good as the controls it must
reject and the null it is judged against: the three are defined, and read, together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from reactlib import rules
from reactlib.data.behaviour import FPS, arousal_of, delayed, lean_drive
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.face.coeffs import index as _i
from reactlib.metrics.realism import smoothness

if TYPE_CHECKING:
    import pandas as pd

    from reactlib.data.corpus import Corpus

ALPHA = 0.001
"""A criterion with a null passes at ``p <= ALPHA``: ten criteria per method, so a method that
follows no rule passes any of them by chance with probability at most about 1 %."""
DRAWS = 4999
"""Null draws (permutations or bootstrap samples) per criterion."""
EXACT_SPEAKERS = 7
"""Up to this many speakers the permutation null enumerates every permutation (7! = 5040)."""
MIN_SPEAKERS = 7
"""Fewest speakers for a response criterion (with ``S`` speakers the smallest p-value is ``1 / S!``:
6! = 720 permutations cannot reach ``ALPHA``) and for a bootstrap over speakers (the pair
criteria); below it those criteria are undefined."""
MIN_NODS = 5
"""Fewest nods in the speaker's pauses (over all reactions) for the nod criterion to pass."""
ROUGHNESS_LIMIT = 1.0
"""Smooth motion: ``mean|second difference| / mean|first difference|`` at most this; a
sinusoid of ``fps / 6`` (4.2 Hz) gives exactly 1, white noise ``sqrt(3)``."""
SEAM_LIMIT = 1.5
"""A continuous seam: the mean step across the seams at most this times the steps within
windows."""
JITTER_SCALE = 0.1
"""The jitter control's noise, per coefficient, as a fraction of that coefficient's standard
deviation over the ground truth's frames."""
MAX_REACTIONS = 640
"""``varies_with_speaker`` uses at most this many reactions (whole speakers drawn with the seed):
its pairwise distances cost ``MAX_REACTIONS**2`` RMS distances over all frames."""


@dataclass(frozen=True)
class Criterion:
    """One pass criterion: what it measures, when it passes, and which controls it must reject."""

    name: str
    rule: str
    passes_when: str
    must_reject: tuple[str, ...]
    why: str


CONTROLS = {
    "Random": "i.i.d. Gaussian frames with the ground truth's per-coefficient mean and std "
    "(the Random baseline): no motion structure, no speaker",
    "wrong speaker": "every reaction scored against another speaker than the one it was made "
    "for: real reactions, the wrong stimulus",
    "delayed mirror": "the speaker's own coefficients, 0.55 s late: a copy, not a listener",
    "jitter": "the ground-truth listener plus per-frame Gaussian noise "
    f"({JITTER_SCALE:g} of each coefficient's std)",
}
"""The controls :func:`controls` builds: name -> what it is."""

_RESPONSE_WHY = (
    "a response is timed to the speaker: reactions to another speaker, or noise, have none"
)
CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "smile_response",
        "listeners smile back 0.3-0.8 s after the speaker",
        "the pooled smile-velocity cross-correlation peaks inside 0.2-1.0 s, and its best value "
        "there beats re-pairing with other speakers (p <= alpha)",
        ("Random", "wrong speaker"),
        _RESPONSE_WHY + "; a delayed mirror passes, since mimicry with a delay is this rule",
    ),
    Criterion(
        "nods_in_pauses",
        "listeners nod in the speaker's pauses",
        f"at least {MIN_NODS} pause nods, the pause/speech nod-rate ratio's 95 % interval above "
        "1, and the pause/speech rate ratio beats re-pairing with other speakers",
        ("Random", "wrong speaker", "delayed mirror"),
        _RESPONSE_WHY + "; a speaker does not nod in their own pauses as a listener does, so a "
        "delayed mirror fails",
    ),
    Criterion(
        "brow_response",
        "listeners raise their brows at the speaker's surprise",
        "the mean correlation of browInnerUp with the speaker's 0.55 s earlier beats "
        "re-pairing with other speakers",
        ("Random", "wrong speaker"),
        _RESPONSE_WHY + "; a delayed mirror passes (brow mimicry is the rule)",
    ),
    Criterion(
        "lean_in",
        "listeners lean in with the speaker's arousal",
        "the mean correlation of the approach -tz with the speaker's low-passed arousal beats "
        "re-pairing with other speakers",
        ("Random", "wrong speaker"),
        _RESPONSE_WHY,
    ),
    Criterion(
        "smooth_motion",
        "faces move smoothly",
        f"roughness (mean |2nd difference| / mean |1st difference|) <= {ROUGHNESS_LIMIT:g}",
        ("Random", "jitter"),
        "per-frame noise makes every frame change rough (white noise: sqrt(3))",
    ),
    Criterion(
        "seam_continuity",
        "online windows join without a jump",
        f"seam step <= {SEAM_LIMIT:g} x the step within windows, in smooth motion",
        ("Random", "jitter"),
        "a jitter steps at every frame, seams included: its seams are no smoother than noise",
    ),
    Criterion(
        "varies_with_speaker",
        "reactions depend on the speaker",
        "reactions to one speaker are closer to each other (RMS) than reactions randomly "
        "reassigned to speakers (permutation null)",
        ("Random",),
        "noise does not depend on the speaker; a wrong-speaker pairing passes by construction "
        "(relabelling speakers keeps which reactions belong together), so this criterion says "
        "the reactions depend on *some* input, not that they respond to the right one",
    ),
    Criterion(
        "symmetric_pairs",
        "Table 17: symmetric AU pairs move together",
        "the mean per-reaction correlation of the symmetric pairs is above 0 beyond its "
        "bootstrap interval over speakers",
        ("Random",),
        "independent channels have no pair structure",
    ),
    Criterion(
        "co_occurring_pairs",
        "Table 17: co-occurring AU pairs move together",
        "the same for the co-occurring pairs",
        ("Random",),
        "independent channels have no pair structure",
    ),
    Criterion(
        "exclusive_pairs",
        "Table 17: mutually exclusive AU pairs are not active together",
        f"both coefficients above {rules.EXCLUSIVE_THRESHOLD:g} in fewer frames than "
        "independent channels with the same activity would give, beyond the bootstrap interval",
        ("Random",),
        "independent channels are active together as often as chance says",
    ),
)
"""Every criterion of :func:`check`, in its order."""
RESPONSE = ("smile_response", "nods_in_pauses", "brow_response", "lean_in")
"""The criteria that say a reaction responds to its speaker."""


# --- Controls -----------------------------------------------------------------------------------


def random_reactions(truth: np.ndarray, n: int, m: int, frames: int, seed: int = 0) -> np.ndarray:
    """The Random control ``(n, m, frames, 58)``: i.i.d. Gaussian frames with the per-coefficient
    mean and std of ``truth (..., 58)`` (the distribution of the ``Random`` baseline)."""
    flat = np.asarray(truth, dtype=np.float64).reshape(-1, coeffs.NUM_COEFFS)
    rng = np.random.default_rng(seed)
    return rng.normal(flat.mean(0), flat.std(0), size=(n, m, frames, coeffs.NUM_COEFFS))


def wrong_speaker(reactions: np.ndarray, groups: Sequence) -> np.ndarray:
    """``reactions (N, ...)`` reordered so that item i holds the reactions made for an item of the
    next speaker (speakers in order of first appearance, the last followed by the first): every
    item gets reactions to a different speaker. ``groups`` names each item's speaker (N labels);
    at least two speakers, or :class:`~reactlib.errors.UsageError`."""
    labels, index = _group_index(groups, len(reactions))
    if len(labels) < 2:
        raise UsageError("a wrong-speaker pairing needs items of at least two speakers")
    members = [np.flatnonzero(index == g) for g in range(len(labels))]
    source = np.empty(len(index), dtype=np.intp)
    for g, items in enumerate(members):
        other = members[(g + 1) % len(members)]
        source[items] = other[np.arange(len(items)) % len(other)]
    return np.asarray(reactions)[source]


def delayed_mirror(speaker: np.ndarray, m: int = 1, delay_s: float = rules.DEFAULT_DELAY_S):
    """The delayed-mirror control ``(N, m, T, 58)``: each speaker ``(N, T, 58)`` copied
    ``delay_s`` late (holding its first frame before that), ``m`` times."""
    speaker = np.asarray(speaker, dtype=np.float64)
    delay = round(delay_s * FPS)
    shifted = np.stack([np.stack([delayed(c, delay) for c in s.T], axis=1) for s in speaker])
    return np.repeat(shifted[:, None], m, axis=1)


def jitter(truth: np.ndarray, scale: float = JITTER_SCALE, seed: int = 0) -> np.ndarray:
    """The jitter control: ``truth (N, M, T, 58)`` plus i.i.d. Gaussian noise per frame, with
    ``scale`` times each coefficient's std over all of ``truth``'s frames."""
    truth = np.asarray(truth, dtype=np.float64)
    std = truth.reshape(-1, truth.shape[-1]).std(0)
    return truth + np.random.default_rng(seed).normal(size=truth.shape) * scale * std


def controls(
    truth: np.ndarray,
    speaker: np.ndarray,
    groups: Sequence,
    *,
    m: int | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Every control of :data:`CONTROLS` for ground truth ``truth (N, K, T, 58)`` (K listeners, or
    one repeated) to ``speaker (N, T, 58)``: name -> reactions ``(N, m, T, 58)`` (``m``
    defaults to K). The wrong-speaker control pairs the ground truth itself with other speakers
    (:func:`wrong_speaker`); apply that function to any model's reactions for the same control
    of the model."""
    truth = np.asarray(truth, dtype=np.float64)
    n, k, frames, _ = truth.shape
    m = k if m is None else m
    return {
        "Random": random_reactions(truth, n, m, frames, seed),
        "wrong speaker": wrong_speaker(truth, groups),
        "delayed mirror": delayed_mirror(speaker, m),
        "jitter": jitter(truth, seed=seed),
    }


# --- The checks ---------------------------------------------------------------------------------


def check(
    reactions: np.ndarray,
    speaker: np.ndarray,
    voiced: np.ndarray,
    *,
    groups: Sequence | None = None,
    window: int = rules.WINDOW,
    delay_s: float = rules.DEFAULT_DELAY_S,
    seed: int = 0,
    draws: int = DRAWS,
    alpha: float = ALPHA,
) -> dict[str, dict]:
    """Every criterion of :data:`CRITERIA` on ``reactions (N, M, T, 58)`` to ``speaker (N, T,
    58)`` with ``voiced (N, T)`` (see :func:`reactlib.rules.speaker_context`): criterion name ->
    ``{"figure": the statistic, "null": what it is judged against, "p": the null's p-value (NaN
    where the criterion has a fixed limit instead), "passes": True, False, or None where the
    criterion is undefined (one reaction per speaker has no within-speaker spread)}``, plus
    figures particular to each criterion (``delay_s``, nod rates with their 95 % intervals, ...).

    ``groups`` names each item's speaker (items of one speaker move together in the null and count
    as one speaker); by default items with equal speaker arrays are one speaker. ``seed`` fixes
    every null draw."""
    reactions, speaker, voiced = rules._checked(reactions, speaker, voiced)
    n, m, frames, _ = reactions.shape
    _, index = _group_index(_default_groups(speaker) if groups is None else groups, n)
    for name, value in (("window", window), ("seed", seed), ("draws", draws)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
            raise UsageError(f"{name} must be an integer >= 0, got {value!r}")
    if window < 1 or draws < 1:
        raise UsageError(f"window and draws must be >= 1, got {window} and {draws}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie in (0, 1), got {alpha}")
    delay = round(delay_s * FPS)
    max_lag = round(rules.SMILE_DELAY_RANGE_S[1] * FPS)
    if frames < 2 * max_lag + 2:
        raise UsageError(
            f"rule checks need clips of at least {2 * max_lag + 2} frames, got {frames}"
        )
    if not 0 <= delay < frames:
        raise UsageError(f"delay_s must put the delay within the {frames} frames, got {delay_s}")

    x = reactions.astype(np.float64).reshape(n * m, frames, coeffs.NUM_COEFFS)
    owner = np.repeat(index, m)  # each reaction's speaker
    heads = np.array([np.flatnonzero(index == g)[0] for g in range(index.max() + 1)])
    talk, pauses = speaker[heads], voiced[heads]  # one (T, 58) and one (T,) per speaker
    rng = np.random.default_rng(seed)
    pairings = _pairings(len(heads), draws, rng)  # (draws, S): speaker g's reactions go to g'

    out = {
        "smile_response": _smile(x, talk, owner, pairings, max_lag, alpha),
        "nods_in_pauses": _nods(x, pauses, owner, pairings, delay, alpha),
        "brow_response": _lag0_tested(
            np.stack([delayed(s[:, _i("browInnerUp")], delay) for s in talk]),
            x[..., _i("browInnerUp")],
            owner,
            pairings,
            alpha,
        ),
        "lean_in": _lag0_tested(
            np.stack([lean_drive(arousal_of(s), delay) for s in talk]),
            -x[..., _i("tz")],
            owner,
            pairings,
            alpha,
        ),
    }
    out["smooth_motion"] = _smooth(x)
    out["seam_continuity"] = _seams(x, window, out["smooth_motion"]["passes"])
    out["varies_with_speaker"] = _varies(x, owner, rng, draws, alpha)
    out.update(_pairs(x, owner, rng, draws, alpha))
    return out


def check_split(
    reactions: np.ndarray,
    corpus: Corpus,
    split: str = "test",
    *,
    items: int | None = None,
    seed: int = 0,
    draws: int = DRAWS,
    alpha: float = ALPHA,
) -> dict:
    """:func:`check` of predictions ``reactions (N, M, T, 58)`` for the first ``items`` (default:
    all) items of a SynthReact ``split``, each item's speaker named by its speaker clip: what
    ``python -m reactlib evaluate --json`` writes under ``rules``.

    Returns ``{"criteria": name -> result (as :func:`check`) or None, "speakers": S, "alpha",
    "draws", "reason": None or why there are no verdicts}``. No verdicts (``criteria`` None) for
    a REACT 2024 copy (it has no record of the speaker's turns), for 25-d emotion predictions
    (the rules are about coefficients) and for clips too short; response criteria are undefined
    (``passes`` None) with fewer than :data:`MIN_SPEAKERS` speakers."""
    reactions = np.asarray(reactions)
    base = {"criteria": None, "speakers": 0, "alpha": alpha, "draws": draws, "reason": None}
    if reactions.ndim != 4 or reactions.shape[-1] != coeffs.NUM_COEFFS:
        return {
            **base,
            "reason": f"predictions {reactions.shape} are not coefficients (N, M, T, 58)",
        }
    try:
        speaker, voiced = rules.speaker_context(corpus, split)
    except UsageError as err:
        return {**base, "reason": str(err)}
    reader = corpus.split(split)
    count = len(reader) if items is None else items
    if len(reactions) != count or reactions.shape[2] != speaker.shape[1]:
        raise UsageError(
            f"predictions {reactions.shape} do not match the first {count} items of split "
            f"{split!r} ({speaker.shape[1]} frames)"
        )
    groups = [item.speaker for item in reader.items[:count]]
    speakers = len(set(groups))
    try:
        result = check(
            reactions, speaker[:count], voiced[:count], groups=groups, seed=seed, draws=draws,
            alpha=alpha,
        )  # fmt: skip
    except UsageError as err:
        return {**base, "speakers": speakers, "reason": str(err)}
    reason = None
    if speakers < MIN_SPEAKERS:
        reason = (
            f"{speakers} speaker(s): the response criteria need at least {MIN_SPEAKERS} to reach "
            f"p <= {alpha:g} under re-pairing, and are left undefined"
        )
    return {**base, "criteria": result, "speakers": speakers, "reason": reason}


def check_table(
    methods: Mapping[str, np.ndarray], speaker: np.ndarray, voiced: np.ndarray, **kwargs
) -> pd.DataFrame:
    """:func:`check` of every method's reactions to the same speakers, long form: one row per
    (method, criterion) with ``figure``, ``null``, ``p`` and ``passes``; ``kwargs`` go to
    :func:`check`, the same for every method."""
    import pandas as pd

    if not methods:
        raise UsageError("check_table needs at least one method")
    rows = []
    for method, x in methods.items():
        for name, result in check(x, speaker, voiced, **kwargs).items():
            rows.append({"method": method, "criterion": name, **_core(result)})
    return pd.DataFrame(rows)


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`check_table` as a grid: methods down, criteria across, each cell ``pass``,
    ``fail`` or ``n/a``."""
    word = table.passes.map(lambda v: "n/a" if v is None or v != v else ("pass" if v else "fail"))
    grid = table.assign(verdict=word).pivot(index="method", columns="criterion", values="verdict")
    order = [c.name for c in CRITERIA if c.name in grid.columns]
    return grid.loc[list(dict.fromkeys(table.method)), order]


def expected_failures(grid: pd.DataFrame) -> list[str]:
    """What a :func:`verdicts` grid gets wrong about the controls: one line per control row that
    passes a criterion it must reject (:data:`CRITERIA`), empty when every control fails all it
    must. Rows named like no control are not judged."""
    problems = []
    for criterion in CRITERIA:
        for control in criterion.must_reject:
            if control in grid.index and grid.loc[control, criterion.name] == "pass":
                problems.append(f"{control} passes {criterion.name}")
    return problems


# --- One criterion each -------------------------------------------------------------------------


def _smile(x, talk, owner, pairings, max_lag, alpha) -> dict:
    """The pooled smile-velocity cross-correlation at 0.2-1.0 s, best lag, against re-pairing."""
    low, high = (round(v * FPS) for v in rules.SMILE_DELAY_RANGE_S)
    lags = np.arange(low, high + 1)
    # (R, S, lags): reaction r's correlation with speaker g at each lag of the range, and the
    # whole 0..max_lag curve with its own speaker (for the delay).
    curves = _corr_matrix(np.diff(rules.smile_signal(talk)), np.diff(rules.smile_signal(x)), lags)
    own = _corr_matrix(
        np.diff(rules.smile_signal(talk)),
        np.diff(rules.smile_signal(x)),
        np.arange(max_lag + 1),
        owner,
    )
    if np.isnan(own).all():
        return {
            **_undefined(delay_s=math.nan),
            "passes": False if len(talk) >= MIN_SPEAKERS else None,
        }
    delay = int(np.nanargmax(_nanmean0(own)))

    def statistic(pairing: np.ndarray) -> np.ndarray:  # (D, S) -> (D,)
        values = curves[np.arange(len(owner)), pairing[:, owner]]  # (D, R, lags)
        return np.nanmax(_nanmean1(values), axis=-1)

    result = _permutation_tested(statistic, pairings, len(owner), alpha)
    if result["passes"] is not None:
        result["passes"] = bool(result["passes"] and low <= delay <= high)
    result["delay_s"] = delay / FPS
    return result


def _nods(x, pauses, owner, pairings, delay, alpha) -> dict:
    """Pause nods against re-pairing: the log ratio of the nod rate in the speaker's pauses to
    the one in its speech (each count + 0.5), a nod at response frame t belonging to stimulus
    frame t - delay."""
    frames = x.shape[1]
    stimulus = frames - delay  # stimulus frames a response frame can belong to
    speakers = len(pauses)
    in_pause = np.zeros((len(x), speakers))  # reaction r's nods in speaker g's pauses
    total = np.zeros(len(x))
    pause = ~pauses[:, :stimulus]
    for r, reaction in enumerate(x):
        onsets = rules.nod_onsets(reaction[:, rules._PITCH])
        onsets = onsets[onsets >= delay] - delay
        total[r] = len(onsets)
        in_pause[r] = pause[:, onsets].sum(axis=1)
    pause_s = pause.sum(axis=1) / FPS  # per speaker
    clip_s = stimulus / FPS

    def parts(pairing: np.ndarray):  # (D, S) -> pause nods, pause seconds, speech seconds
        partner = pairing[:, owner]  # (D, R)
        a = in_pause[np.arange(len(owner)), partner].sum(axis=1)
        exposure = pause_s[partner].sum(axis=1)
        return a, exposure, len(owner) * clip_s - exposure

    def statistic(pairing: np.ndarray) -> np.ndarray:
        a, exposure, speech = parts(pairing)
        b = total.sum() - a
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log((a + 0.5) / exposure) - np.log((b + 0.5) / speech)

    result = _permutation_tested(statistic, pairings, len(owner), alpha, exp=True)
    a, exposure, speech = (float(v[0]) for v in parts(np.arange(speakers)[None]))
    a, b = int(a), int(total.sum() - a)
    ratio, (low, high) = _rate_ratio(a, b, exposure, speech)
    if result["passes"] is not None:
        result["passes"] = bool(result["passes"] and a >= MIN_NODS and low > 1)
    result.update(
        figure=ratio,
        ratio_interval=[low, high],
        nods_pause=a,
        nods_speech=b,
        pause_per_s=a / exposure if exposure else math.nan,
        pause_per_s_interval=_poisson_interval(a, exposure),
        speech_per_s=b / speech if speech else math.nan,
        speech_per_s_interval=_poisson_interval(b, speech),
    )
    return result


def _lag0_tested(lead, follow, owner, pairings, alpha) -> dict:
    """Mean correlation of ``follow (R, T)`` with its speaker's ``lead (S, T)``, against
    re-pairing."""
    table = _corr_matrix(lead, follow, np.array([0]))[..., 0]  # (R, S)

    def statistic(pairing: np.ndarray) -> np.ndarray:
        return _nanmean1(table[np.arange(len(owner)), pairing[:, owner]])

    return _permutation_tested(statistic, pairings, len(owner), alpha)


def _permutation_tested(statistic, pairings, reactions, alpha, *, exp=False) -> dict:
    """``statistic (D, S) -> (D,)`` at the true pairing against ``pairings``: figure, the null's
    ``1 - alpha`` quantile, p and the verdict (None where too few speakers to reach alpha)."""
    speakers = pairings.shape[1]
    observed = float(statistic(np.arange(speakers)[None])[0])
    if not np.isfinite(observed):
        return {**_undefined(), "passes": False if speakers >= MIN_SPEAKERS else None}
    null = np.concatenate([statistic(pairings[i : i + 256]) for i in range(0, len(pairings), 256)])
    null = null[np.isfinite(null)]
    p = _p_value(observed, null)
    exact = speakers <= EXACT_SPEAKERS
    if exact:  # every permutation, the identity among them: p is exact
        p = float(np.sum(null >= observed) / len(null))
    quantile = float(np.quantile(null, 1 - alpha)) if len(null) else math.nan
    transform = math.exp if exp else float
    return {
        "figure": transform(observed),
        "null": transform(quantile) if np.isfinite(quantile) else math.nan,
        "p": p,
        "passes": bool(p <= alpha) if speakers >= MIN_SPEAKERS else None,
    }


def _pairings(speakers: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``(D, speakers)`` re-pairings of speakers: every permutation up to
    :data:`EXACT_SPEAKERS`, else ``draws`` random ones."""
    if speakers <= EXACT_SPEAKERS:
        return np.array(list(itertools.permutations(range(speakers))), dtype=np.intp)
    return np.argsort(rng.random((draws, speakers)), axis=1)


def _corr_matrix(lead, follow, lags, owner=None, chunk: int = 64) -> np.ndarray:
    """Pearson correlation of ``follow[r, t + lag]`` with ``lead[g, t]`` over the frames both
    cover: ``lead (S, T), follow (R, T) -> (R, S, lags)``, or ``(R, lags)`` with each reaction's
    own speaker where ``owner (R,)`` is given; NaN where either side is constant."""
    lead = np.asarray(lead, dtype=np.float64)
    follow = np.asarray(follow, dtype=np.float64)
    frames = follow.shape[-1]
    shape = (len(follow), len(lags)) if owner is not None else (len(follow), len(lead), len(lags))
    out = np.full(shape, np.nan)
    for k, lag in enumerate(lags):
        a = lead[:, : frames - lag]
        b = follow[:, lag:]
        a = a - a.mean(-1, keepdims=True)
        b = b - b.mean(-1, keepdims=True)
        na = np.sqrt((a * a).sum(-1))
        nb = np.sqrt((b * b).sum(-1))
        na = np.where(na > 1e-12 * frames, na, np.nan)
        nb = np.where(nb > 1e-12 * frames, nb, np.nan)
        if owner is not None:
            out[:, k] = (a[owner] * b).sum(-1) / (na[owner] * nb)
            continue
        for start in range(0, len(follow), chunk):
            part = b[start : start + chunk]
            scale = nb[start : start + chunk, None] * na[None]
            out[start : start + chunk, :, k] = (part @ a.T) / scale
    return out


def _smooth(x) -> dict:
    rough = roughness(x)
    return {
        "figure": rough,
        "null": ROUGHNESS_LIMIT,
        "p": math.nan,
        "passes": _at_most(rough, ROUGHNESS_LIMIT),
    }


def _seams(x, window, smooth: bool) -> dict:
    steps = smoothness(x, window, nan_policy="propagate")
    ratio = steps["seam_ratio"]
    phases = [_phase_ratio(x, window, phase) for phase in range(1, window)]
    return {
        "figure": ratio,
        "null": SEAM_LIMIT,
        "p": math.nan,
        "passes": bool(_at_most(ratio, SEAM_LIMIT) and smooth) if not math.isnan(ratio) else None,
        "largest_off_seam_ratio": _finite_max(phases),
    }


def _varies(x, group, rng, draws, alpha) -> dict:
    labels = np.unique(group)
    if len(x) > MAX_REACTIONS:
        order = rng.permutation(labels)
        sizes = np.cumsum([np.sum(group == g) for g in order])
        keep = np.isin(group, order[: max(2, int(np.searchsorted(sizes, MAX_REACTIONS, "right")))])
        x, group = x[keep], group[keep]
    first, second = np.triu_indices(len(x), k=1)
    same = group[first] == group[second]
    if not same.any() or same.all():
        return _undefined()
    distance = rules._pairwise_rms(x.reshape(len(x), -1))[first, second]
    within, between = distance[same].mean(), distance[~same].mean()
    null = np.empty(draws)
    for d in range(draws):
        shuffled = rng.permutation(group)
        null[d] = distance[shuffled[first] == shuffled[second]].mean()
    p = float((1 + np.sum(null <= within)) / (1 + draws))
    return {
        "figure": float(within / between) if between > 0 else math.nan,
        "null": float(np.quantile(null, alpha) / between) if between > 0 else math.nan,
        "p": p,
        "passes": bool(p <= alpha),
        "within": float(within),
        "between": float(between),
    }


def _pairs(x, group, rng, draws, alpha) -> dict[str, dict]:
    """Table 17 per reaction, then a bootstrap over speakers."""
    labels, index = np.unique(group, return_inverse=True)
    out = {}
    for kind, name in (("symmetric", "symmetric_pairs"), ("co_occurring", "co_occurring_pairs")):
        a, b = (np.array([_i(p[k]) for p in coeffs.pairs(kind)]) for k in (0, 1))
        per_reaction = _nanmean1(_pair_corr(x, a, b))
        out[name] = _bootstrap(per_reaction, index, len(labels), rng, draws, alpha, above=0.0)
    a, b = (np.array([_i(p[k]) for p in coeffs.pairs("mutually_exclusive")]) for k in (0, 1))
    active = x > rules.EXCLUSIVE_THRESHOLD
    both = (active[..., a] & active[..., b]).mean(axis=1)  # (R, pairs)
    chance = active[..., a].mean(axis=1) * active[..., b].mean(axis=1)
    excess = (both - chance).mean(axis=1)
    result = _bootstrap(-excess, index, len(labels), rng, draws, alpha, above=0.0)
    result["figure"] = -result["figure"]
    result["null"] = -result["null"]
    if not (chance > 0).any():
        result["passes"] = None  # nothing is ever active: exclusivity is not tested
    result["both_active"] = float(both.mean())
    result["chance"] = float(chance.mean())
    out["exclusive_pairs"] = result
    return out


# --- Helpers ------------------------------------------------------------------------------------


def roughness(x: np.ndarray) -> float:
    """``sum|x[t+1] - 2 x[t] + x[t-1]| / sum|x[t] - x[t-1]|`` over every frame, coefficient and
    sequence of ``x (..., T, D)`` (NaN when nothing moves): ``2 sin(pi f / fps)`` for a
    sinusoid of frequency ``f``, ``sqrt(3)`` for white noise, 0 for constant velocity."""
    x = np.asarray(x, dtype=np.float64)
    first = np.abs(np.diff(x, axis=-2)).sum()
    second = np.abs(np.diff(x, n=2, axis=-2)).sum()
    return float(second / first) if first > 0 else math.nan


def _phase_ratio(x, window, phase) -> float:
    """The seam ratio the seams would have if windows started ``phase`` frames later."""
    steps = np.abs(np.diff(x, axis=-2)).mean(axis=(0, 2))  # step into frame t + 1
    frames = np.arange(1, x.shape[-2])
    at = (frames % window == phase) & (frames >= window)
    return float(steps[at].mean() / steps[~at].mean()) if steps[~at].mean() > 0 else math.nan


def _pair_corr(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-reaction Pearson correlation of columns ``a`` with columns ``b``: ``(R, pairs)``."""
    u = x[..., a] - x[..., a].mean(axis=1, keepdims=True)
    v = x[..., b] - x[..., b].mean(axis=1, keepdims=True)
    norm = np.sqrt((u * u).sum(1) * (v * v).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (u * v).sum(1) / norm
    corr[~(norm > 1e-12)] = np.nan
    return corr


def _bootstrap(values, index, groups, rng, draws, alpha, *, above) -> dict:
    """The mean of per-reaction ``values`` (speaker means first), passing where the lower
    ``alpha`` bootstrap quantile over speakers lies above ``above``; undefined (None) with fewer
    than :data:`MIN_SPEAKERS` speakers, whose few distinct resamples make no spread (three
    speakers whose means all lie above 0 by chance, one time in eight, would pass)."""
    per_group = np.array([np.nanmean(values[index == g]) if np.isfinite(values[index == g]).any()
                          else np.nan for g in range(groups)])  # fmt: skip
    per_group = per_group[np.isfinite(per_group)]
    if len(per_group) == 0:
        return _undefined()
    sample = per_group[rng.integers(0, len(per_group), size=(draws, len(per_group)))].mean(1)
    low = float(np.quantile(sample, alpha))
    return {
        "figure": float(per_group.mean()),
        "null": low,
        "p": math.nan,
        "passes": bool(low > above) if len(per_group) >= MIN_SPEAKERS else None,
    }


def _rate_ratio(a: int, b: int, exposure_a: float, exposure_b: float):
    """Rate ratio ``(a / exposure_a) / (b / exposure_b)`` and its exact 95 % interval
    (conditional binomial: given ``a + b`` events, ``a`` is binomial with
    ``p = ratio e_a / (ratio e_a + e_b)``)."""
    if exposure_a <= 0 or exposure_b <= 0 or a + b == 0:
        return math.nan, (math.nan, math.nan)
    ci = stats.binomtest(a, a + b).proportion_ci(0.95, method="exact")
    scale = exposure_b / exposure_a

    def odds(q: float) -> float:
        return math.inf if q >= 1 else q / (1 - q) * scale

    ratio = odds(a / (a + b))
    return ratio, (odds(ci.low), odds(ci.high))


def _poisson_interval(count: int, exposure: float) -> list[float]:
    """Exact (Garwood) 95 % interval of a Poisson rate ``count / exposure``."""
    if exposure <= 0:
        return [math.nan, math.nan]
    low = stats.chi2.ppf(0.025, 2 * count) / 2 if count > 0 else 0.0
    high = stats.chi2.ppf(0.975, 2 * count + 2) / 2
    return [float(low / exposure), float(high / exposure)]


def _p_value(observed: float, null: np.ndarray) -> float:
    if not np.isfinite(observed):
        return math.nan
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


def _finite_max(values) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(max(finite)) if finite else math.nan


def _at_most(value: float, limit: float) -> bool:
    return bool(np.isfinite(value) and value <= limit)


def _undefined(**extra) -> dict:
    return {"figure": math.nan, "null": math.nan, "p": math.nan, "passes": False, **extra}


def _core(result: dict) -> dict:
    return {key: result[key] for key in ("figure", "null", "p", "passes")}


def _nanmean0(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite values (NaN where there are none), without warnings."""
    finite = np.isfinite(values)
    count = finite.sum(0)
    total = np.where(finite, values, 0.0).sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmean1(values: np.ndarray) -> np.ndarray:
    """:func:`_nanmean0` over axis 1."""
    return _nanmean0(np.moveaxis(values, 1, 0))


def _default_groups(speaker: np.ndarray) -> list[int]:
    labels: dict[bytes, int] = {}
    return [labels.setdefault(s.tobytes(), len(labels)) for s in speaker]


def _group_index(groups: Sequence, n: int) -> tuple[list, np.ndarray]:
    """Distinct labels in order of first appearance, and each item's index into them."""
    groups = list(groups)
    if len(groups) != n:
        raise UsageError(
            f"groups must name the speaker of each of the {n} items, got {len(groups)}"
        )
    labels: dict = {}
    index = np.array([labels.setdefault(g, len(labels)) for g in groups], dtype=np.intp)
    return list(labels), index
