"""ReactDiff's speed: online generation throughput, FLOPs and training steps per second.

    python benchmarks/reactdiff_speed.py [--profile lab] [--steps 50 10] [--m 10] [--windows 6]
        [--train-steps 30] [--repeats 3] [--threads N] [--results-dir D] [--quick]

The figures of the ReactDiff paper's Table 16, measured for a profile's model:

1. **Generation.** ``online.generate`` with a :class:`reactlib.models.reactdiff.ReactDiffGenerator`
   produces M reactions (one batch of M streams) to a synthetic speaker of ``--windows`` windows
   of 16 frames, for each sampler (``sde``, ``ode``) and each number of sampler steps. Frames per
   second per stream is ``T / seconds``: each of the M streams gets its T frames in that time;
   real time is 25 fps. Weights do not change the cost, so the model is freshly initialised and
   no corpus is needed. The reference, interleaved with it in every repetition
   (:func:`harness.paired_times`), replays the very denoiser calls the generation made (same
   inputs, same batch shapes) and nothing else, so ``ratio - 1`` is what the window loop and the
   sampler cost per network call.
   The conditions' share of a call, prepared once per window (``ReactDiffNet.prepare``, as
   the generator does), is timed against recomputing it in each of a window's calls.
2. **FLOPs.** One denoiser call on 1 stream and on M streams of one window, counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2), and that times the
   sampler steps: one window of one reaction, and of M. Parameter counts of every profile's
   model sit beside the paper's 83.95 M and the official code's 47 M.
3. **Training.** :func:`reactlib.train.fit` (objective, backward, gradient clipping, AdamW, EMA)
   with the profile's recipe and batch size, on the profile's SynthReact corpus when it is
   already on disk, else on the ``ci`` one (generated in seconds): ``--train-steps`` steps timed
   after 3 warm-up steps, from the per-step clock in the run's log, and the minutes that implies
   for the profile's ``train_steps``.

Figures go to ``benchmarks/results/reactdiff_speed_<profile>.json`` with the paper's Table 16
beside them (its own hardware, a GTX 1080 Ti; not comparable figure for figure).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import warnings

import numpy as np
import torch
from harness import paired_times, write_results
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from reactlib import config, diffusion, online, runtime, train
from reactlib.data import corpus as corpora
from reactlib.data import synth
from reactlib.face import coeffs
from reactlib.models import reactdiff, reactdiff_net, windows

REAL_TIME_FPS = 25
"""Frames per second of the REACT recordings: generation at this rate keeps up."""
WARMUP_TRAIN_STEPS = 3
"""Training steps run before the timed ones (first-call allocations, lazy imports)."""
PAPER = {
    "source": "ReactDiff paper, Table 16, measured on a GTX 1080 Ti",
    "parameters_M": reactdiff_net.PAPER_PARAMETERS_M,
    "official_code_parameters_M": reactdiff_net.OFFICIAL_CODE_PARAMETERS_M,
    "gflops": 669.88,
    "fps": {"50": 10.4, "10": 36.9},
    "note": (
        "the paper's figures, on its hardware; the paper does not say what its GFLOPs count "
        "covers (one network call, one window, a whole sequence; multiply-adds or FLOPs), so it "
        "is not comparable with the counts here figure for figure"
    ),
}
DEFAULTS = {
    "steps": [diffusion.REACTDIFF_STEPS, 10],
    "m": 10,
    "windows": 6,
    "train_steps": 30,
    "repeats": 3,
}
QUICK = {"steps": [2], "m": 2, "windows": 2, "train_steps": 2, "repeats": 1}
"""``--quick``: a smoke run, for options not given explicitly."""


def positive(text: str) -> int:
    """An integer option of at least 1 (argparse reports anything else, exit status 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def synthetic_speaker(frames: int, audio_dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(speaker (frames, 58), audio (frames, audio_dim))``: seeded standard normal values (the
    cost of generation does not depend on them)."""
    rng = np.random.default_rng(seed)
    speaker = rng.standard_normal((frames, coeffs.NUM_COEFFS), dtype=np.float32)
    return speaker, rng.standard_normal((frames, audio_dim), dtype=np.float32)


class CallRecorder:
    """Keeps the positional and keyword inputs of every call of ``module`` while active, so the
    calls can be replayed alone."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.calls: list[tuple[tuple, dict]] = []

    def _keep(self, module, args, kwargs):
        self.calls.append((tuple(a.clone() for a in args), dict(kwargs)))

    @contextlib.contextmanager
    def recording(self):
        handle = self.module.register_forward_pre_hook(self._keep, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()

    @torch.inference_mode()  # as the generator samples
    def replay(self) -> None:
        for args, kwargs in self.calls:
            self.module(*args, **kwargs)


def measure_generation(model: reactdiff.ReactDiff, args) -> dict:
    """Throughput of ``online.generate`` per sampler and number of steps, against replaying its
    network calls (see the module docstring)."""
    frames = args.windows * model.config.window
    speaker, audio = synthetic_speaker(frames, model.config.audio_dim)
    table: dict = {}
    for sampler in reactdiff.SAMPLERS:
        table[sampler] = {}
        for steps in args.steps:
            generator = reactdiff.ReactDiffGenerator(model, steps=steps, sampler=sampler)

            def run(generator=generator):
                online.generate(generator, speaker, audio, m=args.m, window=model.config.window)

            recorder = CallRecorder(model.denoiser)
            with recorder.recording():
                run()  # doubles as the warm-up
            paired = paired_times(run, recorder.replay, args.repeats)
            fps = frames / paired.ours_median
            table[sampler][str(steps)] = {
                "fps_per_stream": fps,
                "real_time_factor": fps / REAL_TIME_FPS,
                "network_only_fps_per_stream": frames / paired.reference_median,
                "network_calls": len(recorder.calls),
                "overhead_per_call": paired.ratio - 1,
                "paired": paired.summary(),
            }
    return table


def window_inputs(net: reactdiff_net.ReactDiffConfig, streams: int):
    """``(x, sigma, conditions)`` of the first window of ``streams`` streams, shaped as
    :class:`reactlib.models.reactdiff.ReactDiffGenerator` passes them to the denoiser."""
    frames = torch.arange(net.window).expand(streams, -1)
    conditions = {
        "past": torch.zeros(streams, coeffs.NUM_COEFFS),
        "speaker": torch.randn(streams, net.window, coeffs.NUM_COEFFS),
        "audio": torch.randn(streams, net.window, net.audio_dim),
        "h": frames,
        "speaker_h": frames,
    }
    x = torch.randn(streams, net.window, coeffs.NUM_COEFFS)
    return x, torch.ones(streams), conditions


def measure_prepared(model: reactdiff.ReactDiff, args) -> dict:
    """One window's sampler calls (``max(steps)`` denoiser calls on M streams, as the generator
    makes them: the conditions prepared once with ``ReactDiffNet.prepare``) against the same
    calls with the conditions recomputed in every call (the reference)."""
    x, sigma, conditions = window_inputs(model.config, args.m)
    calls = max(args.steps)

    @torch.inference_mode()
    def prepared():
        ready = model.denoiser.inner.prepare(**conditions)
        for _ in range(calls):
            model.denoiser(x, sigma, prepared=ready, **conditions)

    @torch.inference_mode()
    def plain():
        for _ in range(calls):
            model.denoiser(x, sigma, **conditions)

    prepared()  # warm-up
    paired = paired_times(prepared, plain, args.repeats)
    return {
        "calls": calls,
        "streams": args.m,
        "time_ratio": paired.ratio,
        "paired": paired.summary(),
    }


@contextlib.contextmanager
def countable_kernels():
    """torch's reference attention (batched matmuls) and LSTM (a linear layer per frame), whose
    operations the FLOP counter has formulas for: the fused CPU kernels (flash attention, the
    oneDNN LSTM) are single operations it does not count, which would leave them out."""
    with warnings.catch_warnings():
        # Switching oneDNN off also resets its TF32 flag, which warns on builds without Intel GPUs.
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with sdpa_kernel(SDPBackend.MATH), torch.backends.mkldnn.flags(enabled=False):
            yield


def call_flops(model: reactdiff.ReactDiff, streams: int) -> int:
    """FLOPs of one denoiser call on ``streams`` streams of one window."""
    x, sigma, conditions = window_inputs(model.config, streams)
    with torch.no_grad(), countable_kernels(), FlopCounterMode(display=False) as counter:
        model.denoiser(x, sigma, **conditions)
    return counter.get_total_flops()


def measure_flops(model: reactdiff.ReactDiff, args) -> dict:
    one, batch = call_flops(model, 1), call_flops(model, args.m)
    return {
        "per_call": {"1": one, str(args.m): batch},
        "per_window_one_reaction": {str(s): one * s for s in args.steps},
        "per_window_m_reactions": {str(s): batch * s for s in args.steps},
        "window_frames": model.config.window,
        "counted": (
            "torch.utils.flop_counter.FlopCounterMode on torch's reference attention and LSTM "
            "kernels; a multiply-add counts 2 FLOPs; normalisation and activations not counted"
        ),
    }


def parameter_counts() -> dict[str, int]:
    """Trainable parameters of every profile's ReactDiff (built on the meta device: no memory)."""
    with torch.device("meta"):
        return {
            profile: runtime.parameter_count(
                reactdiff.ReactDiff(reactdiff_net.profile_config(profile))
            )
            for profile in config.PROFILE_NAMES
        }


def measure_training(cfg: config.Config, args) -> dict:
    """Steps per second of :func:`reactlib.train.fit` with the profile's recipe."""
    has_own = synth.default_dir(synth.Spec.from_config(cfg)).exists()
    corpus = corpora.open_corpus(cfg=cfg if has_own else config.resolve("ci"))
    rec = reactdiff.recipe(cfg)
    split = corpus.split("train", audio_features=rec.audio_features)
    if split.audio_dim != rec.net.audio_dim:  # a REACT copy with other audio features
        rec = dataclasses.replace(rec, net=dataclasses.replace(rec.net, audio_dim=split.audio_dim))
    total = WARMUP_TRAIN_STEPS + args.train_steps
    settings = dataclasses.replace(rec.train, steps=total, log_every=1, checkpoint_every=total)
    model = reactdiff.build(rec, split)
    objective = reactdiff.make_objective(windows.WindowPairs(split, rec.net, model), rec)
    with tempfile.TemporaryDirectory() as out:
        identity = rec.identity(corpus.identity(), cfg.profile)
        trained = train.fit(model, objective, settings, out, identity=identity)
    clock = trained.log.set_index("step")["seconds"]
    seconds = float(clock[total] - clock[WARMUP_TRAIN_STEPS])
    per_second = args.train_steps / seconds
    return {
        "steps_per_second": per_second,
        "seconds_per_step": seconds / args.train_steps,
        "timed_steps": args.train_steps,
        "warmup_steps": WARMUP_TRAIN_STEPS,
        "batch_size": settings.batch_size,
        "parameters": runtime.parameter_count(model),
        "profile_train_steps": cfg.train_steps,
        "implied_minutes_for_profile_train_steps": cfg.train_steps / per_second / 60,
        "corpus": corpus.identity(),
        "corpus_is_profiles_own": has_own,
    }


def print_table(profile: str, figures: dict, threads: int) -> None:
    params = figures["parameters"]
    print(
        f"ReactDiff, profile {profile}: {params[profile] / 1e6:.2f} M parameters "
        f"(paper {PAPER['parameters_M']} M, official code about "
        f"{PAPER['official_code_parameters_M']:.0f} M), {threads} thread(s)"
    )
    print(f"\n{'sampler':<8}{'steps':>6}{'fps/stream':>12}{'x real time':>13}{'overhead/call':>15}")
    for sampler, rows in figures["generation"].items():
        for steps, row in rows.items():
            print(
                f"{sampler:<8}{steps:>6}{row['fps_per_stream']:>12.1f}"
                f"{row['real_time_factor']:>13.2f}{row['overhead_per_call']:>15.3f}"
            )
    print(f"paper (GTX 1080 Ti): {PAPER['fps']['50']} fps at 50 steps, {PAPER['fps']['10']} at 10")
    prep = figures["prepared_conditions"]
    print(
        f"conditions prepared once per window: {prep['time_ratio']:.2f} x the time of "
        f"{prep['calls']} calls that recompute them"
    )
    flops = figures["flops"]
    for steps, value in flops["per_window_one_reaction"].items():
        print(f"GFLOPs per window of one reaction, {steps} steps: {value / 1e9:.3f}")
    print(f"paper: {PAPER['gflops']} GFLOPs (what it covers is not stated)")
    training = figures["training"]
    print(
        f"training: {training['steps_per_second']:.2f} steps/s at batch {training['batch_size']}, "
        f"{training['implied_minutes_for_profile_train_steps']:.1f} min for "
        f"{training['profile_train_steps']} steps"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=config.PROFILE_NAMES, default="lab")
    parser.add_argument("--steps", type=positive, nargs="+", help="sampler steps (50 10)")
    parser.add_argument("--m", type=positive, help="reactions in one batch (10)")
    parser.add_argument("--windows", type=positive, help="windows of 16 frames generated (6)")
    parser.add_argument("--train-steps", type=positive, help="training steps timed (30)")
    parser.add_argument("--repeats", type=positive, help="interleaved repetitions (3)")
    parser.add_argument("--threads", type=positive, help="torch intra-op threads (torch's default)")
    parser.add_argument("--results-dir", help="folder for the JSON (default: results/)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, 1 repeat")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = config.resolve(args.profile)
    torch.manual_seed(0)
    model = reactdiff.ReactDiff(reactdiff_net.profile_config(args.profile)).eval()
    figures = {
        "generation": measure_generation(model, args),
        "prepared_conditions": measure_prepared(model, args),
        "flops": measure_flops(model, args),
        "parameters": parameter_counts(),
        "training": measure_training(cfg, args),
        "real_time_fps": REAL_TIME_FPS,
        "paper": PAPER,
    }
    threads = torch.get_num_threads()
    print_table(args.profile, figures, threads)
    settings = {
        "profile": args.profile,
        "steps": args.steps,
        "m": args.m,
        "windows": args.windows,
        "frames": args.windows * model.config.window,
        "train_steps": args.train_steps,
        "repeats": args.repeats,
        "threads": threads,
        "samplers": list(reactdiff.SAMPLERS),
        "net": model.config.as_dict(),
    }
    path = write_results(
        f"reactdiff_speed_{args.profile}", settings, figures, results_dir=args.results_dir
    )
    print(f"\nfigures written to {path}")


if __name__ == "__main__":
    main()
