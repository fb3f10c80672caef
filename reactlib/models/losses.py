"""ReactDiff's training objective (paper eqs 7-10): the diffusion loss and the two constraints;
and PosNet's (PFLPosNet eqs 15-18, at the end of the module).

Every term compares the network's output ``F`` with its target ``tau = (x0 - c_skip x) / c_out``
(:meth:`reactlib.diffusion.Denoiser.output_and_target`): the EDM loss is their squared error with
unit weight, which is EDM's denoised-space loss in exact arithmetic (:mod:`reactlib.diffusion`),
and the constraints compare *differences* of ``F`` with the same differences of ``tau``, the
paper's differences of estimated and true scores (eqs 8 and 9): at a fixed noise level the score
is an affine function of ``F`` with the same slope for every frame and coefficient, so matching
differences of ``F`` matches differences of scores up to that one scale.

- ``L_fbk`` (eq 8, facial behavioural kinematics): for each frame ``i`` of the window, the lag-1
  velocity ``F[i] - F[i-1]`` (within the window) and the lag-w velocity ``(F[i] - F_prev[i]) / w``
  against the previous window ``F_prev`` (denoised at the same noise level), each matched to the
  same velocity of ``tau`` in the Euclidean norm over the chosen coefficients, averaged over
  frames (the paper sums them; the mean keeps the scale independent of w).
- ``L_fac`` (eq 9, facial action constraint): for each Table 17 pair ``(a, b)`` of the enabled
  kinds, ``|(F_a - F_b) - (tau_a - tau_b)|``, summed over pairs and averaged over frames.
- Both constraints act only on items whose noise level is at most ``constraint_sigma``: the paper
  applies them in the late denoising steps (``t = 5`` to 0 of 50), and :data:`CONSTRAINT_SIGMA`
  is the level where those steps start on ReactDiff's schedule. The official code gates them at
  about 0.08, a tenth of its training draws.
- Total (eq 10): ``L = L_dm + fbk_weight L_fbk + lambda L_fac`` per item, then the batch mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from reactlib import diffusion
from reactlib.errors import UsageError
from reactlib.face import coeffs

FBK_DIM_CHOICES = ("all", "pose", "expression")
"""Which coefficients FBK constrains: ``all`` 58 (the paper), ``pose``, the last 6 (the official
code), or the 52 of ``expression``."""

LAMBDA_FAC = 1e-4
"""The paper's weight of L_fac (Table 7); the official code used 0.01."""
FBK_WEIGHT = 1.0
"""Weight of L_fbk (eq 10 has none, i.e. 1; the official code also uses 1)."""
LATE_STEPS = 5
"""The paper applies the constraints in the last five denoising steps (t = 5 to 0)."""
CONSTRAINT_SIGMA = float(diffusion.reactdiff_sigmas()[diffusion.REACTDIFF_STEPS - LATE_STEPS])
"""The noise level at which the last :data:`LATE_STEPS` steps of ReactDiff's 50-step schedule
start (about 0.039): training items noised at most this much carry the constraints."""


def fbk_slice(dims: str) -> slice:
    """The coefficients FBK constrains: ``all`` (paper), ``pose`` (official code) or
    ``expression``."""
    if dims == "all":
        return slice(0, coeffs.NUM_COEFFS)
    if dims == "pose":
        return coeffs.POSE
    if dims == "expression":
        return coeffs.EXPRESSION
    raise UsageError(f"fbk dims must be one of {', '.join(FBK_DIM_CHOICES)}, got {dims!r}")


def fbk_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    prev_output: torch.Tensor,
    prev_target: torch.Tensor,
    dims: str = "all",
) -> torch.Tensor:
    """Eq 8 per item ``(B,)`` for windows ``(B, w, 58)`` and the previous windows (same shape,
    same noise level): mean over frames of
    ``|dF_1 - dtau_1| + |dF_w - dtau_w|`` where ``d_1`` is the lag-1 change inside the window
    (frames 2..w) and ``d_w`` the change from the previous window's frame at the same position,
    divided by w; ``|.|`` is the Euclidean norm over the constrained coefficients."""
    if output.shape != prev_output.shape:
        raise ValueError(
            f"window {tuple(output.shape)} and previous window {tuple(prev_output.shape)} differ"
        )
    cut = fbk_slice(dims)
    error = (output - target)[..., cut]
    prev_error = (prev_output - prev_target)[..., cut]
    w = output.shape[1]
    lag1 = (error[:, 1:] - error[:, :-1]).norm(dim=-1).mean(dim=1)
    lagw = ((error - prev_error) / w).norm(dim=-1).mean(dim=1)
    return lag1 + lagw


def pair_table(kinds: Sequence[str] = coeffs.PAIR_KINDS) -> torch.Tensor:
    """``(P, 2)`` coefficient positions of the Table 17 pairs of ``kinds`` (in that order)."""
    if not kinds:
        return torch.zeros((0, 2), dtype=torch.long)
    for kind in kinds:
        if kind not in coeffs.PAIR_KINDS:
            raise UsageError(
                f"unknown pair kind {kind!r}; valid kinds: {', '.join(coeffs.PAIR_KINDS)}"
            )
    return torch.from_numpy(np.concatenate([coeffs.pair_indices(k) for k in kinds]))


def fac_loss(
    output: torch.Tensor, target: torch.Tensor, kinds: Sequence[str] = coeffs.PAIR_KINDS
) -> torch.Tensor:
    """Eq 9 per item ``(B,)``: for every pair ``(a, b)`` of the enabled kinds,
    ``|(F_a - F_b) - (tau_a - tau_b)|``, summed over pairs and averaged over frames."""
    table = pair_table(kinds).to(output.device)
    if len(table) == 0:
        return output.new_zeros(output.shape[0])
    error = output - target
    gap = error[..., table[:, 0]] - error[..., table[:, 1]]
    return gap.abs().sum(dim=-1).mean(dim=1)


@dataclass(frozen=True, kw_only=True)
class LossSettings:
    """What eq 10 combines, and when the constraints act."""

    fbk_weight: float = FBK_WEIGHT
    fac_weight: float = LAMBDA_FAC
    fbk_dims: str = "all"
    fac_kinds: tuple[str, ...] = coeffs.PAIR_KINDS
    constraint_sigma: float = CONSTRAINT_SIGMA

    def __post_init__(self):
        fbk_slice(self.fbk_dims)
        pair_table(self.fac_kinds)
        if self.fbk_weight < 0 or self.fac_weight < 0 or self.constraint_sigma < 0:
            raise UsageError("loss weights and constraint_sigma must be >= 0")


def reactdiff_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    prev_output: torch.Tensor,
    prev_target: torch.Tensor,
    sigma: torch.Tensor,
    settings: LossSettings = LossSettings(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq 10 over a batch of consecutive window pairs: ``L_dm`` on both windows of a pair, and
    the constraints on the current window (against the previous one) of items with
    ``sigma <= constraint_sigma``. Returns the batch mean and its parts for the log."""
    dm = (output - target).pow(2).flatten(1).mean(1) + (prev_output - prev_target).pow(2).flatten(
        1
    ).mean(1)
    late = (sigma <= settings.constraint_sigma).to(output.dtype)
    fbk = fbk_loss(output, target, prev_output, prev_target, settings.fbk_dims) * late
    fac = fac_loss(output, target, settings.fac_kinds) * late
    total = dm / 2 + settings.fbk_weight * fbk + settings.fac_weight * fac
    logs = {
        "dm": float(dm.detach().mean() / 2),
        "fbk": float(fbk.detach().sum() / late.sum().clamp(min=1)),
        "fac": float(fac.detach().sum() / late.sum().clamp(min=1)),
        "late_share": float(late.mean()),
    }
    return total.mean(), logs


# --- PosNet (PFLPosNet eqs 15-18) ---------------------------------------------------------------

POSNET_LAMBDAS = (1.0, 1.0, 0.2)
"""The paper's weights of L_connect, L_sm1 and L_sm2."""


def connect_loss(past: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """Eq 15 per item ``(B,)``: ``|P_{t-w+1} - P_{t-w}|``, the jump from the previous window's
    last pose ``past (B, 6)`` to the window's first ``poses (B, L, 6)``; ``|.|`` is the mean
    absolute value over the six coordinates (here and below)."""
    return (poses[:, 0] - past).abs().mean(dim=-1)


def sm1_loss(poses: torch.Tensor) -> torch.Tensor:
    """Eq 16 per item: the mean over the window of ``|P_{i+1} - P_i|``."""
    return poses.diff(dim=1).abs().mean(dim=(1, 2))


def sm2_loss(poses: torch.Tensor) -> torch.Tensor:
    """Eq 17 in its second-order form, per item: the mean of ``|P_{i+2} - 2 P_{i+1} + P_i|``.
    As printed, eq 17 averages ``|P_{i+2} - P_{i+1}| - |P_{i+1} - P_i|``, which telescopes to
    the last step minus the first over ``w - 2`` (:func:`sm2_printed`): it ignores every frame in
    between, and minimising it makes the first step large."""
    return poses.diff(n=2, dim=1).abs().mean(dim=(1, 2))


def sm2_printed(poses: torch.Tensor) -> torch.Tensor:
    """Eq 17 exactly as printed, per item: the mean over ``i`` of
    ``|P_{i+2} - P_{i+1}| - |P_{i+1} - P_i|``."""
    step = poses.diff(dim=1).abs()
    return (step[:, 1:] - step[:, :-1]).mean(dim=(1, 2))


@dataclass(frozen=True, kw_only=True)
class PosNetLossSettings:
    """What PosNet's objective (eq 18) combines: a fidelity term and the three smoothness terms.

    Eq 18 adds L_connect, L_sm1 and L_sm2 to the generator's own losses. With the generator
    frozen, those reach PosNet only through its output poses, and on their own the smoothness
    terms are minimised by a pose that never moves. ``fidelity`` weighs the mean squared
    distance from the adjusted poses to a reference: the generator's poses (default: PosNet
    then changes as little as it can while closing the seams, and needs no ground truth) or the
    real listener's (as the official training does)."""

    connect: float = POSNET_LAMBDAS[0]
    sm1: float = POSNET_LAMBDAS[1]
    sm2: float = POSNET_LAMBDAS[2]
    fidelity: float = 1.0

    def __post_init__(self):
        if min(self.connect, self.sm1, self.sm2, self.fidelity) < 0:
            raise UsageError("PosNet loss weights must be >= 0")


def posnet_loss(
    adjusted: torch.Tensor,
    reference: torch.Tensor,
    past: torch.Tensor,
    settings: PosNetLossSettings = PosNetLossSettings(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq 18 for PosNet over a batch of windows ``(B, L, 6)`` (normalised poses), the previous
    adjusted pose ``past (B, 6)`` and the ``reference`` poses; returns the batch mean and its
    parts for the log."""
    parts = {
        "fidelity": (adjusted - reference).pow(2).mean(dim=(1, 2)),
        "connect": connect_loss(past, adjusted),
        "sm1": sm1_loss(adjusted),
        "sm2": sm2_loss(adjusted),
    }
    total = sum(getattr(settings, name) * value for name, value in parts.items())
    return total.mean(), {name: float(value.detach().mean()) for name, value in parts.items()}
