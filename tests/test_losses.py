"""Tests for reactlib.models.losses: ReactDiff's constraints (eqs 8 and 9) and total loss (eq 10),
against values computed by hand from the definitions on tiny windows where only a couple of
coefficients carry an error."""

from __future__ import annotations

import math

import pytest
import torch

from reactlib import diffusion
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.models.losses import (
    CONSTRAINT_SIGMA,
    LossSettings,
    fac_loss,
    fbk_loss,
    pair_table,
    reactdiff_loss,
)

D = coeffs.NUM_COEFFS
W = 3
JAW_LEFT = coeffs.index("jawLeft")
"""An expression coefficient in exactly one Table 17 pair (symmetric, with jawRight)."""
JAW_RIGHT = coeffs.index("jawRight")
ROLL_UPPER = coeffs.index("mouthRollUpper")
"""An expression coefficient in exactly one Table 17 pair (mutually exclusive)."""
LAST_POSE = D - 1
"""A pose coefficient (the last translation), in no Table 17 pair."""


def pairs_holding(name: str) -> list[tuple[str, str, str]]:
    """``(kind, a, b)`` for every Table 17 pair that names coefficient ``name``."""
    return [(k, a, b) for k in coeffs.PAIR_KINDS for a, b in coeffs.pairs(k) if name in (a, b)]


def test_premises_of_the_hand_computations():
    assert pairs_holding("jawLeft") == [("symmetric", "jawLeft", "jawRight")]
    assert pairs_holding("jawRight") == [("symmetric", "jawLeft", "jawRight")]
    assert [k for k, _, _ in pairs_holding("mouthRollUpper")] == ["mutually_exclusive"]
    assert LAST_POSE not in pair_table().flatten().tolist()
    assert JAW_LEFT in range(D)[coeffs.EXPRESSION] and LAST_POSE in range(D)[coeffs.POSE]


def error_window(rows: list[dict[int, float]]) -> torch.Tensor:
    """A ``(1, len(rows), 58)`` error with the given ``{coefficient: value}`` per frame."""
    e = torch.zeros(1, len(rows), D, dtype=torch.float64)
    for i, row in enumerate(rows):
        for dim, value in row.items():
            e[0, i, dim] = value
    return e


def split(error: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(output, target)`` with ``output - target == error`` and an arbitrary target."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(error.shape, generator=g, dtype=error.dtype)
    return target + error, target


# The current window's error e = output - target, on jawLeft (expression) and the last pose
# coefficient:  frame 0: (1, 0), frame 1: (1, 2), frame 2: (4, 2).
E = error_window(
    [{JAW_LEFT: 1.0}, {JAW_LEFT: 1.0, LAST_POSE: 2.0}, {JAW_LEFT: 4.0, LAST_POSE: 2.0}]
)
# Lag-1 changes: (0, 2) and (3, 0).
FBK_BY_HAND_PREVIOUS_EXACT = {
    # previous window without error: lag-w changes e[i] / 3 = (1, 0)/3, (1, 2)/3, (4, 2)/3
    "all": (2 + 3) / 2 + (1 + math.sqrt(5) + math.sqrt(20)) / 3 / 3,
    "pose": (2 + 0) / 2 + (0 + 2 + 2) / 3 / 3,
    "expression": (0 + 3) / 2 + (1 + 1 + 4) / 3 / 3,
}
# A previous window whose error is 1 on jawLeft in every frame: lag-w changes
# (0, 0)/3, (0, 2)/3, (3, 2)/3; the lag-1 changes stay the same.
E_PREV = error_window([{JAW_LEFT: 1.0}] * W)
FBK_BY_HAND_PREVIOUS_OFF = {
    "all": (2 + 3) / 2 + (0 + 2 + math.sqrt(13)) / 3 / 3,
    "pose": (2 + 0) / 2 + (0 + 2 + 2) / 3 / 3,
    "expression": (0 + 3) / 2 + (0 + 0 + 3) / 3 / 3,
}


@pytest.mark.parametrize("dims", ["all", "pose", "expression"])
@pytest.mark.parametrize("previous", ["exact", "off"])
def test_fbk_by_hand(dims, previous):
    prev_error, expected = (
        (torch.zeros_like(E), FBK_BY_HAND_PREVIOUS_EXACT)
        if previous == "exact"
        else (E_PREV, FBK_BY_HAND_PREVIOUS_OFF)
    )
    got = fbk_loss(*split(E, 0), *split(prev_error, 1), dims=dims)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected[dims], rel=1e-12)


def test_fbk_ignores_an_offset_shared_by_both_windows():
    offset = torch.randn(1, 1, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    current, previous = offset.expand(2, W, D), offset.expand(2, W, D)
    for dims in ("all", "pose", "expression"):
        got = fbk_loss(*split(current, 3), *split(previous, 4), dims=dims)
        assert torch.allclose(got, torch.zeros(2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("dims", ["all", "pose", "expression"])
def test_fbk_sees_offsets_that_differ_between_windows(dims):
    """Constant offsets leave no lag-1 change; the lag-w term is ``|c - c_prev| / w``."""
    g = torch.Generator().manual_seed(5)
    c, c_prev = (torch.randn(1, 1, D, generator=g, dtype=torch.float64) for _ in range(2))
    got = fbk_loss(*split(c.expand(1, W, D), 6), *split(c_prev.expand(1, W, D), 7), dims=dims)
    cut = {"all": slice(0, D), "pose": coeffs.POSE, "expression": coeffs.EXPRESSION}[dims]
    expected = (c - c_prev)[0, 0, cut].norm() / W
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert got.item() > 0


def test_fbk_rejects_mismatched_windows_and_unknown_dims():
    out, target = split(E, 0)
    with pytest.raises(ValueError, match="previous window"):
        fbk_loss(out, target, out[:, :2], target[:, :2])
    with pytest.raises(UsageError, match="face"):
        fbk_loss(out, target, out, target, dims="face")


# --- L_fac --------------------------------------------------------------------------------------

# Error on jawLeft alone, 0.5, -2 and 0 in the three frames: the symmetric pair (jawLeft,
# jawRight) differs by |0.5|, |-2|, 0, so L_fac = (0.5 + 2 + 0) / 3 when symmetric pairs count.
JAW_ERROR = error_window([{JAW_LEFT: 0.5}, {JAW_LEFT: -2.0}, {}])
JAW_FAC = (0.5 + 2 + 0) / 3
# Error on mouthRollUpper alone, 1 and 3 in two of the frames: its mutually exclusive pair.
ROLL_ERROR = error_window([{ROLL_UPPER: 1.0}, {}, {ROLL_UPPER: 3.0}])
ROLL_FAC = (1 + 0 + 3) / 3


@pytest.mark.parametrize(
    "error, kinds, expected",
    [
        (JAW_ERROR, coeffs.PAIR_KINDS, JAW_FAC),
        (JAW_ERROR, ("symmetric",), JAW_FAC),
        (JAW_ERROR, ("co_occurring", "mutually_exclusive"), 0.0),
        (ROLL_ERROR, coeffs.PAIR_KINDS, ROLL_FAC),
        (ROLL_ERROR, ("mutually_exclusive",), ROLL_FAC),
        (ROLL_ERROR, ("symmetric", "co_occurring"), 0.0),
        (JAW_ERROR + ROLL_ERROR, coeffs.PAIR_KINDS, JAW_FAC + ROLL_FAC),
    ],
)
def test_fac_by_hand(error, kinds, expected):
    got = fac_loss(*split(error, 8), kinds=kinds)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_fac_ignores_an_error_shared_by_both_coefficients_of_a_pair():
    both = error_window([{JAW_LEFT: 0.7, JAW_RIGHT: 0.7}] * W)
    assert fac_loss(*split(both, 9)).item() == pytest.approx(0.0, abs=1e-12)


def test_fac_without_kinds_is_zero():
    got = fac_loss(*split(E.expand(3, W, D), 10), kinds=())
    assert torch.equal(got, torch.zeros(3, dtype=got.dtype))
    assert pair_table(()).shape == (0, 2)


def test_fac_rejects_an_unknown_kind():
    with pytest.raises(UsageError, match="diagonal"):
        fac_loss(*split(E, 11), kinds=("symmetric", "diagonal"))


# --- Eq 10 --------------------------------------------------------------------------------------


def test_reactdiff_loss_by_hand():
    """Two items with the same errors, one at the constraint level (constrained) and one above
    it (diffusion loss only)."""
    output, target = split(E.expand(2, W, D), 12)
    prev_output, prev_target = split(E_PREV.expand(2, W, D), 13)
    sigma = torch.tensor([CONSTRAINT_SIGMA, 0.5], dtype=torch.float64)
    settings = LossSettings(fbk_weight=0.5, fac_weight=0.25)
    total, logs = reactdiff_loss(output, target, prev_output, prev_target, sigma, settings)

    # Squared errors: current 1 + (1 + 4) + (16 + 4) = 26, previous 3, each over 3 * 58 values.
    dm = 26 / (W * D) + 3 / (W * D)
    fbk = FBK_BY_HAND_PREVIOUS_OFF["all"]
    fac = (1 + 1 + 4) / 3  # jawLeft against jawRight; the pose coefficient is in no pair
    constrained = dm / 2 + 0.5 * fbk + 0.25 * fac
    free = dm / 2
    assert total.item() == pytest.approx((constrained + free) / 2, rel=1e-12)
    assert logs.keys() == {"dm", "fbk", "fac", "late_share"}
    assert logs["dm"] == pytest.approx(dm / 2, rel=1e-12)
    assert logs["fbk"] == pytest.approx(fbk, rel=1e-12)  # mean over constrained items only
    assert logs["fac"] == pytest.approx(fac, rel=1e-12)
    assert logs["late_share"] == 0.5


def test_reactdiff_loss_constraint_level_is_a_setting():
    output, target = split(E.expand(2, W, D), 14)
    prev_output, prev_target = split(E_PREV.expand(2, W, D), 15)
    sigma = torch.tensor([0.5, 2.0], dtype=torch.float64)
    weights = dict(fbk_weight=2.0, fac_weight=0.5)
    none, logs_none = reactdiff_loss(
        output, target, prev_output, prev_target, sigma, LossSettings(**weights)
    )
    both, logs_both = reactdiff_loss(
        output,
        target,
        prev_output,
        prev_target,
        sigma,
        LossSettings(constraint_sigma=2.0, **weights),
    )
    assert logs_none["late_share"] == 0 and logs_none["fbk"] == logs_none["fac"] == 0
    assert logs_both["late_share"] == 1
    constraints = 2.0 * FBK_BY_HAND_PREVIOUS_OFF["all"] + 0.5 * (1 + 1 + 4) / 3
    assert (both - none).item() == pytest.approx(constraints, rel=1e-12)


def test_constraint_sigma_is_where_the_last_five_steps_start(lo=0.03, hi=0.05):
    sigmas = diffusion.reactdiff_sigmas()
    late_start = float(sigmas[diffusion.REACTDIFF_STEPS - 5])
    assert late_start == CONSTRAINT_SIGMA
    assert lo < CONSTRAINT_SIGMA < hi


@pytest.mark.parametrize(
    "fields",
    [
        dict(fbk_dims="face"),
        dict(fac_kinds=("symmetric", "diagonal")),
        dict(fbk_weight=-1.0),
        dict(fac_weight=-1e-4),
        dict(constraint_sigma=-0.1),
    ],
)
def test_loss_settings_reject_bad_values(fields):
    with pytest.raises(UsageError):
        LossSettings(**fields)


def test_loss_settings_accept_no_pair_kinds():
    assert LossSettings(fac_kinds=(), fbk_dims="pose").fac_kinds == ()
