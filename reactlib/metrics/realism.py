"""Realism and smoothness of generated reactions, in face-coefficient space.

The ReactDiff and PFLPosNet papers report FVD (Frechet video distance): render the reactions,
embed 16-frame clips with an I3D network trained on Kinetics, fit a Gaussian to the embeddings
of the generated and of the real videos, and take the Frechet distance between the two. The I3D
weights cannot be downloaded here, and rendering every reaction would measure our renderer as
much as the generator, so this module measures the same kind of thing on the coefficients
themselves, and names it differently: **coefficient Frechet distance (FD), not FVD**. Its values
are on another scale and cannot be compared with any paper's FVD; they can be compared between
methods scored on the same real set with the same ``window`` and ``stride``.

- :func:`frechet_distance`: the Frechet (2-Wasserstein) distance between Gaussians fitted to two
  feature sets ``(n1, F)`` and ``(n2, F)``. With means ``mu1, mu2`` and covariances ``S1, S2``::

      d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

  the formula FID and FVD use. The covariances are ``np.cov``'s default, the unbiased sample
  covariance (divided by ``n - 1``), as pytorch-fid computes them.
- :func:`window_features`: what stands in for I3D's embedding. Each window of ``window`` frames
  (sliding by ``stride``) becomes, per coefficient, its mean (the level: a smile held or not),
  its standard deviation (the spread: how much the face varies within the window), its mean
  absolute velocity (how fast it moves) and its mean absolute acceleration (how abruptly the
  motion changes: jitter, snaps). I3D's features of a face video respond to what the face looks
  like and to how it moves over a short clip; these four are as much of that as a coefficient
  sequence offers without a learned network.
- :func:`realism_fd`: :func:`frechet_distance` between the window features of real listeners
  and of generated reactions. It grows when the generated windows sit at other levels, vary more
  or less, or move faster, slower or more jerkily than the real ones: over-smoothed, jittery and
  frozen reactions all score worse than real ones held out from the same distribution.
- :func:`smoothness`: how an online generator's windows join. Online generators produce
  reactions in non-overlapping windows of ``window`` frames (:func:`reactlib.online.windows`);
  a generator that does not continue from the previous window jumps at the seams.
  ``seam_jump`` is the mean absolute frame change at the seams, ``velocity`` the same at every
  other frame, ``seam_ratio`` the first over the second (1 for a seamless output), ``jerk`` the
  mean absolute third difference (0 for motion of constant acceleration).
  :func:`reactlib.rules.rule_figures` reports the first three as ``seam_step``, ``within_step``
  and ``seam_ratio``, computed here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from reactlib.errors import UsageError

WINDOW = 32
"""Frames per feature window of :func:`window_features`: 1.28 s at 25 fps, about a nod or a
smile's onset. FVD's clips are 16 frames; with 32 and :data:`STRIDE` 16, every feature window
holds the seam between two 16-frame online windows in its middle, so seams show in the features
(16-frame feature windows at stride 16 would line up with the online windows and never hold
one)."""
STRIDE = 16
"""Frames between the starts of two feature windows (half a window: windows overlap by half)."""
SEAM_WINDOW = 16
"""Frames per online window for :func:`smoothness`: ReactDiff's ``w``,
:data:`reactlib.online.WINDOW`."""
EPS = 1e-6
"""When the square root of the covariance product fails, ``EPS`` times the mean feature variance
is added to both covariances' diagonals (pytorch-fid's remedy for a singular product, which adds
``1e-6``; scaled here because coefficient features can have variances far below 1)."""
_SQRT_TOLERANCE = 1e-5
"""Relative residual ``|X X - A|_F / |A|_F`` above which a matrix square root ``X`` of ``A`` is
not trusted and recomputed with :data:`EPS` on the diagonals."""
_IMAGINARY_TOLERANCE = 1e-3
"""Largest imaginary part of the square root's diagonal, relative to the mean feature variance,
that is dropped as rounding (pytorch-fid allows 1e-3 absolute); a larger one means the square
root failed."""


# --- Frechet distance -----------------------------------------------------------------------------


def frechet_distance(real, fake) -> float:
    """The Frechet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between Gaussians
    fitted to ``real (n1, F)`` and ``fake (n2, F)`` (rows are samples, columns features; any
    ``n1, n2 >= 2``). As in FID and FVD, this is the squared 2-Wasserstein distance between the
    two Gaussians (no square root is taken), in the squared units of the features. Symmetric in
    its arguments; 0 for identical sets (to rounding, which is clipped so that the result is
    never negative).

    The means are the column means; the covariances ``np.cov(x, rowvar=False)``, divided by
    ``n - 1`` as in pytorch-fid. The trace of ``(S1 S2)^(1/2)`` comes from
    :func:`scipy.linalg.sqrtm`: the eigenvalues of ``S1 S2`` are real and non-negative (they
    are those of ``S1^(1/2) S2 S1^(1/2)``), so its principal square root is real up to rounding,
    and a tiny imaginary part is dropped. When the product is singular (fewer rows than
    features, a constant feature), the square root may come back non-finite or inaccurate
    (scipy 1.17's did not, on 300 random rank-deficient sets tried while writing this); then the
    distance is that between the Gaussians with covariances ``S1 + e I`` and ``S2 + e I``, ``e``
    being :data:`EPS` times the mean variance of the features, which moves it by the order of
    ``e`` per feature.

    Raises :class:`~reactlib.errors.UsageError` for arrays that are not 2-d, fewer than 2 rows
    (no covariance), different feature counts or non-finite values, and ``FloatingPointError``
    if the square root fails with the remedy too (not seen outside tests)."""
    real = _feature_set(real, "real")
    fake = _feature_set(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise UsageError(
            f"real and fake must have the same number of features, got {real.shape[1]} "
            f"(real {real.shape}) and {fake.shape[1]} (fake {fake.shape})"
        )
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    s1 = np.atleast_2d(np.cov(real, rowvar=False))
    s2 = np.atleast_2d(np.cov(fake, rowvar=False))
    difference = mu1 - mu2
    trace_root, _ = _trace_sqrt_product(s1, s2)
    if trace_root is None:
        # pytorch-fid's remedy, scaled to the features: the distance between the Gaussians with
        # a little more variance in every direction, whose covariances are not singular.
        offset = EPS * (np.trace(s1) + np.trace(s2)) / (2 * len(s1))
        s1 = s1 + offset * np.eye(len(s1))
        s2 = s2 + offset * np.eye(len(s2))
        trace_root, why = _trace_sqrt_product(s1, s2)
        if trace_root is None:
            raise FloatingPointError(
                f"the covariance product has no usable square root, also with {offset:.3g} "
                f"added to the covariances' diagonals: {why}"
            )
    distance = difference @ difference + np.trace(s1) + np.trace(s2) - 2.0 * trace_root
    return float(max(distance, 0.0))


def _feature_set(x, name: str) -> np.ndarray:
    """``x`` as a float64 ``(n, F)`` array with ``n >= 2``, ``F >= 1`` and finite values."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise UsageError(f"{name} must be a 2-d (samples, features) array, got shape {x.shape}")
    if x.shape[0] < 2:
        raise UsageError(
            f"{name} has {x.shape[0]} row(s): a covariance needs at least 2 samples (rows)"
        )
    _require_finite(x, name)
    return x


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> tuple[float | None, str]:
    """``(tr((S1 S2)^(1/2)), "")`` for two covariance matrices, or ``(None, why)`` when the
    square root of the product cannot be trusted: not finite, not squaring back to the product
    (relative residual above :data:`_SQRT_TOLERANCE`), or with an imaginary diagonal larger than
    :data:`_IMAGINARY_TOLERANCE` times the mean feature variance. The eigenvalues of ``S1 S2``
    are real and non-negative, so a smaller imaginary part is rounding and is dropped."""
    from scipy.linalg import LinAlgWarning, sqrtm

    product = s1 @ s2
    with warnings.catch_warnings():
        # sqrtm warns on singular input; the result is checked below instead.
        warnings.simplefilter("ignore", LinAlgWarning)
        root = sqrtm(product)
    if not np.isfinite(root).all():
        return None, "its square root is not finite"
    diagonal = np.diagonal(root)
    if np.iscomplexobj(diagonal):
        variance = max((np.trace(s1) + np.trace(s2)) / (2 * len(s1)), np.finfo(np.float64).tiny)
        imaginary = np.abs(diagonal.imag).max()
        if imaginary > _IMAGINARY_TOLERANCE * variance:
            return None, (
                f"its square root has an imaginary diagonal part of {imaginary:.3g} "
                f"(mean feature variance {variance:.3g})"
            )
        diagonal = diagonal.real
    scale = np.linalg.norm(product)
    residual = np.linalg.norm(root @ root - product)
    if residual > _SQRT_TOLERANCE * scale:
        return None, f"its square root squares back with a relative error of {residual / scale:.3g}"
    return float(diagonal.sum()), ""


# --- Window features ------------------------------------------------------------------------------


def window_features(seqs, window: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """Features of the sliding windows of coefficient sequences ``seqs (..., T, D)``:
    ``(n_windows, 4 D)`` float64, one row per window, the windows of the first sequence first.

    Windows start at frames ``0, stride, 2 stride, ...`` as long as all ``window`` frames fit
    (``(T - window) // stride + 1`` per sequence; trailing frames that do not fill a window are
    not used). For a window ``x[s], ..., x[s + window - 1]`` and each coefficient ``d`` the row
    holds, in four blocks of ``D``:

    - ``mean``: ``(1 / window) sum_t x[t, d]``, the level;
    - ``std``: the population standard deviation over the window's frames (divided by
      ``window``), the spread;
    - ``velocity``: the mean of ``|x[t, d] - x[t - 1, d]|`` over the window's ``window - 1``
      frame changes, how fast it moves;
    - ``acceleration``: the mean of ``|x[t, d] - 2 x[t - 1, d] + x[t - 2, d]|`` over the
      window's ``window - 2`` second differences, how abruptly the motion changes.

    Level and spread say what a window of face looks like, velocity and acceleration how it moves:
    a stand-in, in coefficient space, for the appearance and motion that I3D's features respond
    to in FVD (see the module docstring for why there is no I3D here). A constant sequence has
    zero spread, velocity and acceleration; jitter raises the last two, over-smoothing lowers
    them.

    ``window >= 3`` (an acceleration needs three frames), ``stride >= 1`` and ``T >= window``;
    anything else, non-finite values or fewer than 2 dimensions raise
    :class:`~reactlib.errors.UsageError`."""
    _require_int("window", window, 3, "an acceleration is a second difference over 3 frames")
    _require_int("stride", stride, 1)
    x = np.asarray(seqs, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 1:
        raise UsageError(f"seqs must be (..., T, D) sequences with D >= 1, got shape {x.shape}")
    frames, dims = x.shape[-2:]
    if frames < window:
        raise UsageError(f"seqs of {frames} frames are too short for one window of {window} frames")
    if x.size == 0:
        raise UsageError(f"seqs hold no sequences, got shape {x.shape}")
    _require_finite(x, "seqs")
    x = x.reshape(-1, frames, dims)

    def windowed_mean(values: np.ndarray, length: int) -> np.ndarray:
        """Mean over each window's ``length`` values: ``(B, n, D)`` -> ``(B, n_windows, D)``."""
        view = np.lib.stride_tricks.sliding_window_view(values, length, axis=1)[:, ::stride]
        return view.mean(axis=-1)

    frames_view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)[:, ::stride]
    mean = frames_view.mean(axis=-1)
    std = frames_view.std(axis=-1)
    velocity = np.abs(np.diff(x, axis=1))
    acceleration = np.abs(np.diff(x, n=2, axis=1))
    features = np.concatenate(
        [
            mean,
            std,
            windowed_mean(velocity, window - 1),
            windowed_mean(acceleration, window - 2),
        ],
        axis=-1,
    )
    return features.reshape(-1, 4 * dims)


def realism_fd(pred, real, window: int = WINDOW, stride: int = STRIDE) -> float:
    """The coefficient Frechet distance (FD, not FVD) of generated reactions to real ones:
    ``frechet_distance(window_features(real), window_features(pred))``. Lower is more realistic;
    0 when both have the same window statistics.

    ``pred`` is ``(N, M, T, D)`` (M reactions to each of N speakers) or ``(N, T, D)``; ``real``
    is ``(N', T', D)``, e.g. the ground-truth listeners. Items and frames need not match (the
    distance compares distributions of windows, not pairs), the coefficients ``D`` must. Each
    side needs at least 2 windows, and for a covariance that is not rank-deficient, many more
    than ``4 D`` (232 for 58 coefficients): with ``T = 750``, ``window = 32`` and
    ``stride = 16`` every clip gives 45. See the module docstring for what the number means and
    why it is not FVD."""
    _require_int("window", window, 3, "an acceleration is a second difference over 3 frames")
    _require_int("stride", stride, 1)
    pred = np.asarray(pred)
    real = np.asarray(real)
    if pred.ndim not in (3, 4):
        raise UsageError(f"pred must be (N, M, T, D) or (N, T, D), got shape {pred.shape}")
    if real.ndim != 3:
        raise UsageError(f"real must be (N, T, D), got shape {real.shape}")
    if pred.shape[-1] != real.shape[-1]:
        raise UsageError(
            f"pred and real must have the same coefficients D, got pred {pred.shape} and "
            f"real {real.shape}"
        )
    features = {}
    for name, x in (("real", real), ("pred", pred)):
        try:
            features[name] = window_features(x, window, stride)
        except UsageError as error:
            raise UsageError(f"{name}: {error}") from None
        if len(features[name]) < 2:
            raise UsageError(
                f"{name} {x.shape} gives {len(features[name])} window(s) of {window} frames "
                f"at stride {stride}: a Frechet distance needs at least 2"
            )
    return frechet_distance(features["real"], features["pred"])


# --- Smoothness -----------------------------------------------------------------------------------


def smoothness(
    seqs, window: int = SEAM_WINDOW, dims=None, *, nan_policy: str = "raise"
) -> dict[str, float]:
    """How smoothly online windows of ``window`` frames join in ``seqs (..., T, D)``:
    a dict of four floats, each averaged over every sequence and coefficient.

    - ``seam_jump``: the mean of ``|x[t] - x[t - 1]|`` at the frames ``t = k * window``,
      ``1 <= k < T // window``, where online window ``k`` starts (the seams of
      :func:`reactlib.online.windows`: non-overlapping windows, the last absorbing the
      remainder, so a frame past the last full window is no seam). NaN when ``T < 2 window``
      (a single window has no seam).
    - ``velocity``: the same mean at every other frame ``t >= 1``: the steps within windows.
      NaN when there are none (``window = 1``).
    - ``seam_ratio``: ``seam_jump / velocity``; 1 for an output whose seams are like any other
      step, above 1 when it jumps at the seams. NaN when either is NaN or both are 0; inf for a
      positive jump over zero velocity (steps at the seams only).
    - ``jerk``: the mean of ``|x[t] - 3 x[t - 1] + 3 x[t - 2] - x[t - 3]|`` (the third
      difference) over ``t >= 3``: 0 for motion of constant acceleration (a quadratic), ``6 c``
      for ``c t^3``. NaN when ``T < 4``.

    ``dims`` (a slice, an index or an array of indices or a boolean mask over ``D``) restricts
    the figures to some coefficients, e.g. :data:`reactlib.face.coeffs.POSE`.

    Sequences are cast to float64 one item of the first axis at a time (an ``(N, M, T, 58)``
    float32 array is never doubled in memory). ``seam_jump``, ``velocity`` and ``seam_ratio``
    are :func:`reactlib.rules.rule_figures`' ``seam_step``, ``within_step`` and ``seam_ratio``.

    ``window >= 1`` and ``T >= 2`` (at least one frame change), or
    :class:`~reactlib.errors.UsageError`; so do non-finite values among the coefficients
    ``dims`` selects, unless ``nan_policy="propagate"``, which lets them through into the
    figures they touch (as :func:`reactlib.rules.rule_figures` always has)."""
    _require_int("window", window, 1)
    if nan_policy not in ("raise", "propagate"):
        raise UsageError(f"nan_policy must be 'raise' or 'propagate', got {nan_policy!r}")
    x = np.asarray(seqs)
    if x.ndim < 2 or x.shape[-1] < 1:
        raise UsageError(f"seqs must be (..., T, D) sequences with D >= 1, got shape {x.shape}")
    frames = x.shape[-2]
    if frames < 2:
        raise UsageError(
            f"seqs of {frames} frame(s) are too short: smoothness needs at least 2 frames"
        )
    if x.size == 0:
        raise UsageError(f"seqs hold no sequences, got shape {x.shape}")
    columns = _columns(dims, x.shape[-1])
    # Every coefficient: a slice, so that no item is copied before its cast.
    selected = slice(None) if dims is None else columns
    items = x if x.ndim > 2 else x[None]

    seams = window * np.arange(1, frames // window)
    seam_mask = np.zeros(frames - 1, dtype=bool)  # over the frame changes x[t] - x[t-1], t >= 1
    seam_mask[seams - 1] = True
    step_sums = np.zeros(2)  # summed frame changes at seams and elsewhere
    jerk_sum = 0.0
    for item in items:
        item = item[..., selected].astype(np.float64)
        if nan_policy == "raise":
            _require_finite(item, "seqs")
        change = np.abs(np.diff(item, axis=-2))
        change = change.sum(axis=tuple(a for a in range(change.ndim) if a != change.ndim - 2))
        step_sums += [change[seam_mask].sum(), change[~seam_mask].sum()]
        if frames >= 4:
            jerk_sum += np.abs(np.diff(item, n=3, axis=-2)).sum()

    per_change = math.prod(items.shape[:-2]) * len(columns)  # values per frame change
    seam_count, other_count = int(seam_mask.sum()), int((~seam_mask).sum())
    seam_jump = step_sums[0] / (seam_count * per_change) if seam_count else math.nan
    velocity = step_sums[1] / (other_count * per_change) if other_count else math.nan
    jerk = jerk_sum / ((frames - 3) * per_change) if frames >= 4 else math.nan
    return {
        "seam_jump": float(seam_jump),
        "velocity": float(velocity),
        "seam_ratio": _ratio(seam_jump, velocity),
        "jerk": float(jerk),
    }


def _columns(dims, count: int) -> np.ndarray:
    """The coefficient indices ``dims`` selects among ``count`` (all for None), as an integer
    array with at least one index."""
    if dims is None:
        return np.arange(count)
    if isinstance(dims, slice):
        columns = np.arange(count)[dims]
    else:
        selector = np.asarray(dims)
        if selector.dtype == bool:
            if selector.shape != (count,):
                raise UsageError(
                    f"a boolean dims must have one entry per coefficient ({count}), "
                    f"got shape {selector.shape}"
                )
            columns = np.flatnonzero(selector)
        elif np.issubdtype(selector.dtype, np.integer) and selector.ndim <= 1:
            columns = np.atleast_1d(selector)
            if ((columns < -count) | (columns >= count)).any():
                raise UsageError(f"dims {columns.tolist()} out of range for {count} coefficients")
            columns = columns % count
        else:
            raise UsageError(
                f"dims must be a slice, an index, indices or a boolean mask, got {dims!r}"
            )
    if columns.size == 0:
        raise UsageError(f"dims {dims!r} selects none of the {count} coefficients")
    return columns


# --- Checks ---------------------------------------------------------------------------------------


def _require_int(name: str, value, minimum: int, why: str = "") -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        reason = f" ({why})" if why else ""
        raise UsageError(f"{name} must be >= {minimum}{reason}, got {value}")


def _require_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise UsageError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; inf for a positive numerator over zero, NaN for 0 / 0 or a
    NaN operand (the convention of :func:`reactlib.rules.rule_figures`)."""
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return float(numerator / denominator)
