"""What the benchmarks share: paired timing, and figures written as JSON with provenance.

Each benchmark writes ``benchmarks/results/<name>.json``::

    {"benchmark": name, "provenance": {...}, "settings": {...}, "figures": {...}}

where ``provenance`` is :func:`reactlib.suite.results.benchmark_provenance` (time, git commit and
dirty
flag, exact command line, machine, thread counts, package versions), ``settings`` the options the
run used and ``figures`` what it measured. The README quotes figures from these files only.

Ratios between two implementations are measured by :func:`paired_times`: both run in every
repetition, back to back and in alternating order, and the ratio reported is the median of the
per-repetition ratios. On a shared machine whose speed drifts (other jobs, clock boost, caches),
the two runs of one repetition see nearly the same machine, which a ratio of two separately taken
minima or medians does not guarantee.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reactlib import paths
from reactlib.suite import results

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where the committed figure files live."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Paired:
    """Seconds per repetition of two interleaved measurements (``ours[i]`` and ``reference[i]``
    come from the same repetition)."""

    ours: list[float]
    reference: list[float]

    @property
    def ratios(self) -> list[float]:
        """``ours / reference`` per repetition."""
        return [a / b for a, b in zip(self.ours, self.reference, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the per-repetition ratios: the figure to report."""
        return statistics.median(self.ratios)

    @property
    def ratio_quartiles(self) -> tuple[float, float]:
        """Lower and upper quartiles of the per-repetition ratios, to show their spread."""
        if len(self.ours) < 2:
            return self.ratio, self.ratio
        low, _, high = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return low, high

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def reference_median(self) -> float:
        return statistics.median(self.reference)

    def summary(self) -> dict[str, Any]:
        """The figures a results file keeps: medians, the ratio, its quartiles, every ratio."""
        low, high = self.ratio_quartiles
        return {
            "ours_median_s": self.ours_median,
            "reference_median_s": self.reference_median,
            "ratio_median": self.ratio,
            "ratio_quartiles": [low, high],
            "ratios": self.ratios,
            "repeats": len(self.ours),
        }


def paired_times(
    ours: Callable[[], object],
    reference: Callable[[], object],
    repeats: int,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Paired:
    """Time ``ours()`` and ``reference()`` once each per repetition, ``repeats`` times.

    Repetition ``i`` runs ``ours`` first when ``i`` is even and ``reference`` first when it is
    odd, so that neither always profits from (or pays for) what the other left in caches.
    ``clock`` is the timer (injectable for tests).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    timed: dict[str, list[float]] = {"ours": [], "reference": []}
    calls = {"ours": ours, "reference": reference}
    for i in range(repeats):
        for name in ("ours", "reference") if i % 2 == 0 else ("reference", "ours"):
            start = clock()
            calls[name]()
            timed[name].append(clock() - start)
    return Paired(timed["ours"], timed["reference"])


def write_results(
    name: str,
    settings: Mapping[str, Any],
    figures: Mapping[str, Any],
    *,
    results_dir: str | Path | None = None,
) -> Path:
    """Write ``<results_dir>/<name>.json`` (default :data:`RESULTS_DIR`) atomically and return
    its path. Figures must be plain JSON (numbers, strings, lists, dicts) and finite."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"benchmark name {name!r} must be a plain file name (letters, digits, _.-)"
        )
    target = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    doc = {
        "benchmark": name,
        "provenance": results.benchmark_provenance(),
        "settings": dict(settings),
        "figures": dict(figures),
    }
    try:
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"{target}: figures are not plain finite JSON ({err})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    return paths.write_atomically(target, lambda p: p.write_text(text, encoding="utf-8"))
