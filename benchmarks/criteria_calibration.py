"""How often each rule criterion passes by chance, and how often the real listeners pass it.

    python benchmarks/criteria_calibration.py [--seeds 200] [--sessions 30] [--frames 500]

A criterion of :mod:`reactlib.criteria` is a test at level ``alpha``: a method that does not follow
a rule should pass it with probability at most ``alpha``. This measures that on a SynthReact corpus
(every speaker of every split, with all its listeners):

- **Random**, drawn anew for every seed: the fraction of seeds in which each criterion passes
  (it must stay near 0; for the response criteria, at most about ``alpha`` plus sampling error);
- **wrong speaker**, the real listeners re-paired with other speakers by a random derangement of
  the speakers per seed: the same fraction for the response criteria;
- the **real listeners** with every seed's null draws: the fraction of seeds in which each criterion
  passes (it should be 1).

Each fraction comes with its exact 95 % (Clopper-Pearson) interval. Figures go to
``benchmarks/results/criteria_calibration.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from harness import write_results  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm import tqdm  # noqa: E402

from reactlib import criteria, data, rules  # noqa: E402
from reactlib.data import synth  # noqa: E402


def pooled(corpus: data.Corpus):
    """Every speaker of every split once: speaker (S, T, 58), voiced (S, T), truth (S, K, T, 58)."""
    parts = []
    for split in ("train", "val", "test"):
        speaker, voiced = rules.speaker_context(corpus, split)
        first, truth = rules.speaker_items(corpus.split(split))
        parts.append((speaker[first], voiced[first], truth))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point."""
    while True:
        order = rng.permutation(n)
        if (order != np.arange(n)).all():
            return order


def rate(passes: int, total: int) -> dict:
    interval = stats.binomtest(passes, total).proportion_ci(0.95, method="exact")
    return {
        "passes": passes,
        "of": total,
        "rate": passes / total,
        "interval_95": [interval.low, interval.high],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--draws", type=int, default=criteria.DRAWS)
    args = parser.parse_args()

    spec = synth.Spec(sessions=args.sessions, listeners=3, frames=args.frames, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = data.Corpus(synth.generate(spec, Path(tmp) / "synth"))
        speaker, voiced, truth = pooled(corpus)
    groups = list(range(len(speaker)))
    names = [c.name for c in criteria.CRITERIA]
    counts = {kind: dict.fromkeys(names, 0) for kind in ("Random", "wrong speaker", "real")}
    start = time.perf_counter()
    for seed in tqdm(range(args.seeds), desc="seeds"):
        rng = np.random.default_rng(seed)
        runs = {
            "Random": criteria.random_reactions(truth, *truth.shape[:3], seed=seed),
            "wrong speaker": truth,
            "real": truth,
        }
        for kind, reactions in runs.items():
            if kind == "wrong speaker":  # a speaker and its turns move together
                order = derangement(len(speaker), rng)
                s, v = speaker[order], voiced[order]
            else:
                s, v = speaker, voiced
            result = criteria.check(reactions, s, v, groups=groups, seed=seed, draws=args.draws)
            for name in names:
                counts[kind][name] += bool(result[name]["passes"])
    seconds = time.perf_counter() - start
    figures = {
        kind: {name: rate(count, args.seeds) for name, count in table.items()}
        for kind, table in counts.items()
    }
    figures["seconds"] = seconds
    figures["speakers"] = len(speaker)
    figures["listeners_per_speaker"] = int(truth.shape[1])
    for kind in ("Random", "wrong speaker", "real"):
        print(kind, {n: round(figures[kind][n]["rate"], 3) for n in names})
    path = write_results(
        "criteria_calibration",
        {**vars(args), "alpha": criteria.ALPHA, "corpus": "SynthReact, every split pooled"},
        figures,
    )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
