"""The scoring verbs: ``evaluate`` (a prediction file against a split), ``bench`` (a benchmark
script) and ``results`` (the generated page of measured figures, ``results/README.md``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reactlib import config, paths
from reactlib.errors import DataError, UsageError
from reactlib.suite import report
from reactlib.suite.cli.common import bar, open_corpus

BENCHMARKS = ("metrics",)
"""What ``python -m reactlib bench NAME`` runs: ``benchmarks/NAME_speed.py``."""


def add_evaluate(sub) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="score predictions with the REACT metrics, realism FD and smoothness",
        description="Score PRED.npy, reactions (N, M, T, 58) in raw coefficients (what `generate` "
        "writes) or (N, M, T, 25) emotion, against a split: FRCorr, FRDist, FRDiv, FRVar, FRDvs, "
        "FRSyn in the chosen convention, plus the coefficient Frechet distance and smoothness. "
        "Prints a table and, with --json, writes every figure and what was used (emotion map, "
        "neighbour matrix or fallback), and, on SynthReact, the rule checks under 'rules': each "
        "criterion's figure, its null, p and a pass/fail verdict (reactlib.criteria).",
    )
    ev.add_argument("--pred", type=Path, required=True, metavar="PRED.npy")
    ev.add_argument("--data", type=Path, metavar="DIR", help="a REACT 2024 copy")
    ev.add_argument("--profile", choices=config.VALID_PROFILES, help="whose SynthReact to use")
    ev.add_argument("--split", default="test", help="train, val or test (default: test)")
    ev.add_argument(
        "--convention",
        choices=("react2024", "reactface", "clean"),
        default="react2024",
        help="react2024 (the challenge, emotion; default), reactface (ReactFace's script, "
        "coefficients) or clean (means over M, all M for FRSyn, NaN-robust)",
    )
    ev.add_argument(
        "--emotion-map",
        choices=("auto", "exact", "fitted"),
        default="auto",
        help="coefficients -> emotion for react2024: exact (SynthReact's own), fitted (ridge "
        "regression on the corpus' train split, held-out R^2 reported), auto (default: exact "
        "for SynthReact, fitted otherwise)",
    )
    ev.add_argument(
        "--gt-through-map",
        action="store_true",
        help="map the real coefficients with the same map instead of reading emotion files",
    )
    ev.add_argument(
        "--fallback",
        choices=("same_speaker", "self"),
        default="same_speaker",
        help="appropriate reactions when the corpus has no neighbour matrix (default: the "
        "listeners of the same speaker clip)",
    )
    ev.add_argument("--items", type=int, metavar="N", help="predictions cover the first N items")
    ev.add_argument("--json", type=Path, metavar="OUT.json", help="write every figure here")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> None:
    import json
    import warnings

    import numpy as np

    from reactlib import criteria  # SciPy: only when the verb runs
    from reactlib.data import layout  # SciPy and OpenCV: only when the verb runs
    from reactlib.metrics import emotion, evaluation  # numba: only when the verb runs

    if args.split not in layout.SPLITS:
        raise UsageError(f"--split must be one of {', '.join(layout.SPLITS)}, got {args.split!r}")
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"folder {args.json.parent} does not exist (writing {args.json})")
    if not args.pred.is_file():
        raise DataError(f"{args.pred}: predictions file not found")
    try:
        pred = np.load(args.pred, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{args.pred}: not a readable .npy array ({err})") from None
    cfg = config.resolve(args.profile)
    corpus = open_corpus(args.data, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", layout.NeighbourFallbackWarning)
        split = corpus.split(args.split, fallback=args.fallback)
    if split.neighbour_source.startswith("fallback"):
        print(
            f"no neighbour matrix for split {args.split!r} in {corpus.root}: appropriate "
            f"reactions use the {args.fallback!r} fallback",
            file=sys.stderr,
        )
    mapper = None
    if args.convention == "react2024" and pred.ndim == 4 and pred.shape[-1] == 58:
        mapper = emotion.emotion_map(corpus, kind=args.emotion_map)
        print(f"coefficients -> emotion: {mapper.describe()}", file=sys.stderr)

    result = evaluation.evaluate(
        pred,
        split,
        convention=args.convention,
        emotion_map=mapper,
        gt_through_map=args.gt_through_map,
        items=args.items,
        source=str(args.pred),
        progress=bar(args, "item"),
    )
    result["pred"] = str(args.pred)
    result["corpus"] = str(corpus.root)
    result["rules"] = criteria.check_split(pred, corpus, args.split, items=args.items)
    checks = result["rules"]["criteria"]
    for name, value in result["metrics"].items():
        print(f"{name:<8} {value:.6g}")
    if result["realism_fd"] is not None:
        print(f"{'FD':<8} {result['realism_fd']:.6g}  (coefficient Frechet distance, not FVD)")
        s, g = result["smoothness"], result["smoothness_ground_truth"]
        print(f"seam jump / velocity {s['seam_ratio']:.3g} (ground truth {g['seam_ratio']:.3g})")
    print(f"convention {args.convention}, {result['space']}, neighbours: {result['neighbours']}")
    if checks is not None:
        words = {True: "pass", False: "fail", None: "n/a"}
        print("rule checks: " + ", ".join(f"{k} {words[v['passes']]}" for k, v in checks.items()))
    if result["rules"]["reason"]:
        print(f"rule checks: {result['rules']['reason']}", file=sys.stderr)
    if args.json is not None:
        text = json.dumps(result, indent=2, allow_nan=True) + "\n"
        paths.write_atomically(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(f"-> {args.json}")


def add_bench(sub) -> None:
    bench = sub.add_parser(
        "bench",
        help="run a benchmark of benchmarks/ (metrics: the REACT metrics at REACT size)",
        description="Run benchmarks/<NAME>_speed.py with the options that follow; it prints its "
        "figures and writes benchmarks/results/<NAME>_speed.json with provenance. "
        "`bench metrics --help` lists the metrics benchmark's options.",
    )
    bench.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="passed to the benchmark")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> None:
    import runpy

    script = paths.repo_root() / "benchmarks" / f"{args.name}_speed.py"
    if not script.is_file():
        raise UsageError(f"{script}: benchmark script not found (run from a ReactLab checkout)")
    saved = sys.argv
    sys.argv = [str(script), *args.options]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code:
            raise UsageError(f"bench {args.name}: invalid options {args.options}") from None
    finally:
        sys.argv = saved


def add_results(sub) -> None:
    results = sub.add_parser(
        "results",
        help="write results/README.md from the committed metrics.json and benchmark files",
        description="Collect every figure of results/<profile>/<notebook>/metrics.json and "
        "benchmarks/results/*.json into results/README.md, each with its profile, commit and the "
        "command that re-runs it. --check exits 1 when the file on disk is not what the "
        "committed results give.",
    )
    results.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    results.set_defaults(handler=_results)


def _results(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    text = report.render(root)
    target = root / report.REPORT
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != text:
            print(f"{target} is stale: run python -m reactlib results", file=sys.stderr)
            return 1
        print(f"{target} is current")
        return 0
    paths.write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"-> {target}")
    return 0


VERBS = (add_evaluate, add_bench, add_results)
