"""Tests for reactlib.runtime: seeding, device choice, progress bars and timers."""

from __future__ import annotations

import io
import random
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib import runtime
from reactlib.config import resolve
from reactlib.runtime import Timer, describe_device, progress, seed_everything, select_device


def _draw():
    """One draw from each global generator that seed_everything is meant to seed."""
    return (
        torch.randn(5),
        np.random.rand(5),  # noqa: NPY002 - the legacy global generator is what gets seeded
        random.random(),
    )


def _assert_same(a, b):
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


# --- seed_everything -----------------------------------------------------------------------------


def test_same_seed_gives_same_numbers():
    """Reseeding with the same value replays torch, NumPy and random identically."""
    assert seed_everything(1234) == 1234
    first = _draw()
    seed_everything(1234)
    _assert_same(first, _draw())


def test_different_seeds_give_different_numbers():
    """Seeds 0 and 1 give different draws from every generator."""
    seed_everything(0)
    a = _draw()
    seed_everything(1)
    b = _draw()
    assert not torch.equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])
    assert a[2] != b[2]


def test_each_generator_gets_the_seed_itself():
    """Each library is seeded with exactly the given seed, not a derived value."""
    seed_everything(42)
    t, n, r = _draw()
    assert torch.equal(t, torch.randn(5, generator=torch.Generator().manual_seed(42)))
    np.testing.assert_array_equal(n, np.random.RandomState(42).rand(5))
    assert r == random.Random(42).random()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_any_valid_seed_is_reproducible(seed):
    """Every seed in [0, 2**32) is accepted, returned and reproducible."""
    assert seed_everything(seed) == seed
    first = _draw()
    seed_everything(seed)
    _assert_same(first, _draw())


def test_numpy_integer_seed_is_accepted_and_returned_as_int():
    """A NumPy integer seed works and comes back as a plain int."""
    result = seed_everything(np.int64(7))
    assert result == 7
    assert type(result) is int
    first = _draw()
    seed_everything(7)
    _assert_same(first, _draw())


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_seed_bounds_are_inclusive_exclusive(seed):
    """Both ends of [0, 2**32) are valid seeds."""
    assert seed_everything(seed) == seed


@pytest.mark.parametrize("bad", [-1, 2**32, 2**40, True, False, 1.0, 0.5, "1", None, np.float64(3)])
def test_invalid_seed_raises(bad):
    """Negative, too large, bool, float, string and None seeds are refused by name."""
    with pytest.raises(ValueError) as info:
        seed_everything(bad)
    msg = str(info.value)
    assert "seed must be an integer in [0, 2**32)" in msg
    assert repr(bad) in msg


# --- select_device / describe_device -------------------------------------------------------------


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_is_cpu_without_cuda(no_cuda):
    """auto falls back to the CPU when no GPU is present."""
    assert select_device("auto") == torch.device("cpu")
    assert select_device() == torch.device("cpu")


def test_auto_is_cuda_with_cuda(one_cuda):
    """auto picks CUDA when it is present."""
    assert select_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("choice", ["cpu", "cpu:0"])
def test_cpu_is_taken_literally(choice, one_cuda):
    """Asking for the CPU gives the CPU even when a GPU exists."""
    assert select_device(choice).type == "cpu"


@pytest.mark.parametrize("choice", ["cuda", "cuda:0"])
def test_cuda_without_cuda_fails_clearly(choice, no_cuda):
    """Asking for CUDA on a machine without it is an error that says so."""
    with pytest.raises(ValueError) as info:
        select_device(choice)
    msg = str(info.value)
    assert "CUDA" in msg
    assert repr(choice) in msg
    assert "device='auto' or 'cpu'" in msg


def test_cuda_index_is_checked(one_cuda):
    """cuda:N must name an existing GPU; cuda:0 is fine when one exists."""
    assert select_device("cuda:0") == torch.device("cuda", 0)
    assert select_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"only 1 CUDA device\(s\) exist"):
        select_device("cuda:1")


@pytest.mark.parametrize("garbage", ["gpu", "", "CPU", "cuda:x", "cuda:-1", "auto ", None, 0])
def test_garbage_device_is_refused(garbage, no_cuda):
    """Strings that are not devices, and non-strings, raise ValueError listing valid choices."""
    with pytest.raises(ValueError) as info:
        select_device(garbage)
    msg = str(info.value)
    assert f"unknown device {garbage!r}" in msg
    assert "'auto', 'cpu', 'cuda' or 'cuda:N'" in msg


@pytest.mark.parametrize("other", ["meta", "mps", "xla"])
def test_non_cpu_non_cuda_devices_are_unsupported(other, no_cuda):
    """Real torch device types other than cpu and cuda are refused."""
    with pytest.raises(ValueError, match=f"unsupported device '{other}'"):
        select_device(other)


def test_describe_cpu():
    """The CPU description gives torch's thread count."""
    text = describe_device(torch.device("cpu"))
    assert text.startswith("cpu (")
    assert f"{torch.get_num_threads()} threads" in text


def test_describe_cuda(monkeypatch):
    """A GPU is described by index and model name; no index means device 0."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 9000")
    assert describe_device(torch.device("cuda", 1)) == "cuda:1 (Fake GPU 9000)"
    assert describe_device(torch.device("cuda")) == "cuda:0 (Fake GPU 9000)"


# --- progress ------------------------------------------------------------------------------------


def test_progress_is_silent_in_ci():
    """The ci profile disables bars, draws nothing, and still yields every item."""
    cfg = resolve("ci")
    assert cfg.progress is False
    sink = io.StringIO()
    bar = progress(range(7), cfg=cfg, file=sink)
    assert bar.disable is True
    assert list(bar) == list(range(7))
    assert sink.getvalue() == ""


def test_progress_draws_when_enabled():
    """With progress on (lab), the bar is live and forwards tqdm options."""
    cfg = resolve("lab")
    assert cfg.progress is True
    sink = io.StringIO()
    bar = progress(["a", "b", "c"], cfg=cfg, file=sink, desc="training", mininterval=0)
    assert bar.disable is False
    assert list(bar) == ["a", "b", "c"]
    bar.close()
    assert "training" in sink.getvalue()
    assert "3/3" in sink.getvalue()


def test_progress_follows_an_override():
    """progress=False on any profile silences the bar; progress=True in ci turns it on."""
    assert progress([1], cfg=resolve("full", progress=False), file=io.StringIO()).disable is True
    assert progress([1], cfg=resolve("ci", progress=True), file=io.StringIO()).disable is False


def test_progress_without_iterable():
    """A manual bar (no iterable) also honours the profile."""
    bar = progress(cfg=resolve("ci"), total=3, file=io.StringIO())
    assert bar.disable is True
    bar.update(3)
    bar.close()


# --- Timer ---------------------------------------------------------------------------------------


class FakeClock:
    """A perf_counter stand-in that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(runtime, "time", types.SimpleNamespace(perf_counter=fake))
    return fake


def test_timer_sections_and_total(clock):
    """Each section records its own duration; total counts from the timer's creation."""
    timer = Timer()
    clock.advance(0.5)
    with timer("load"):
        clock.advance(1.25)
    with timer("train"):
        clock.advance(2.0)
    clock.advance(0.25)
    assert timer.sections == {"load": 1.25, "train": 2.0}
    assert timer.total == pytest.approx(4.0)
    assert timer.as_dict() == {"load": 1.25, "train": 2.0, "total": 4.0}


def test_timer_sections_accumulate(clock):
    """Reusing a section name adds to it instead of replacing it."""
    timer = Timer()
    for seconds in (1.0, 2.0, 0.5):
        with timer("epoch"):
            clock.advance(seconds)
        clock.advance(0.1)
    d = timer.as_dict()
    assert d["epoch"] == pytest.approx(3.5)
    assert d["total"] == pytest.approx(3.8)
    assert d["total"] >= d["epoch"]


def test_timer_total_is_at_least_every_section(clock):
    """The total is never smaller than any section, nested sections included."""
    timer = Timer()
    with timer("outer"):
        clock.advance(1.0)
        with timer("inner"):
            clock.advance(2.0)
    d = timer.as_dict()
    assert d == {"outer": 3.0, "inner": 2.0, "total": 3.0}
    assert all(d["total"] >= v for v in d.values())


def test_timer_records_a_section_that_raises(clock):
    """A section that raises is still timed and the error passes through."""
    timer = Timer()
    with pytest.raises(RuntimeError, match="boom"), timer("fails"):
        clock.advance(0.75)
        raise RuntimeError("boom")
    assert timer.sections == {"fails": 0.75}


def test_timer_rounds_to_milliseconds(clock):
    """as_dict() rounds to milliseconds; the raw sections keep full precision."""
    timer = Timer()
    with timer("step"):
        clock.advance(0.123456)
    clock.advance(0.0004)
    assert timer.sections["step"] == pytest.approx(0.123456)
    assert timer.as_dict() == {"step": 0.123, "total": 0.124}


def test_timer_with_real_clock():
    """Against the real clock the keys are right and times are non-negative."""
    timer = Timer()
    with timer("a"):
        pass
    d = timer.as_dict()
    assert list(d) == ["a", "total"]
    assert d["a"] >= 0
    assert d["total"] >= d["a"]


def test_timer_refuses_a_section_called_total():
    """'total' is the overall time; a section of that name would be silently overwritten."""
    timer = Timer()
    with pytest.raises(ValueError, match="total"), timer("total"):
        pass


def test_progress_can_be_disabled_explicitly_in_any_profile():
    """disable=True is honoured even where the profile shows bars (no duplicate keyword)."""
    bar = progress(range(3), cfg=resolve("lab"), disable=True, file=io.StringIO())
    assert bar.disable is True
    assert list(bar) == [0, 1, 2]
