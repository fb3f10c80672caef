"""Per-step cost of the rl.diffusion samplers' own arithmetic, against the network call it wraps.

    python benchmarks/sampler_overhead.py [--steps 50] [--repeats 7] [--threads 1]

The network is a tiny per-frame MLP (58 + 16 Fourier features of c_noise -> 256 -> 58) inside
:class:`reactlib.diffusion.Denoiser`, on a ReactDiff-sized batch: 10 reactions x 16 frames x 58
coefficients. For each sampler, one run of ``steps`` steps (``steps`` network calls) is timed
against ``steps`` bare calls of the same denoiser on the same shapes, in the same process and
interleaved, and the best of ``repeats`` is kept for each. The per-step overhead is
``(sampler run - bare calls) / steps``: the solver's arithmetic, its sigma bookkeeping and, for the
SDE, drawing the noise. A noise source is built anew for each run, as ReactDiff builds its Brownian
tree anew for every window. Nothing is asserted: a real network is far larger than this one, so the
ratio printed here is an upper bound on what the sampler adds.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import pandas as pd
import torch

from reactlib import diffusion

BATCH, FRAMES, COEFFS = 10, 16, 58


class FrameMLP(torch.nn.Module):
    """``F(c_in x, c_noise)``: per frame, the coefficients and Fourier features of the noise level
    through a two-layer MLP."""

    def __init__(self, hidden: int = 256, features: int = 16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(features // 2))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(COEFFS + features, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, COEFFS),
        )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * c_noise[:, None] * self.freqs
        embedding = torch.cat([angle.cos(), angle.sin()], dim=1)
        return self.net(torch.cat([x, embedding[:, None, :].expand(-1, x.shape[1], -1)], dim=2))


def samplers(seeds: list[int], sigmas: torch.Tensor) -> dict:
    """name -> function(model, x) running one full sampling pass with a fresh noise source."""
    shape = (FRAMES, COEFFS)
    lo, hi = float(sigmas[-2]), float(sigmas[0])
    return {
        "Euler": lambda m, x: diffusion.sample_euler(m, x, sigmas),
        "2M ODE": lambda m, x: diffusion.sample_dpmpp_2m(m, x, sigmas),
        "2M SDE, randn_like": lambda m, x: diffusion.sample_dpmpp_2m_sde(m, x, sigmas),
        "2M SDE, ItemNoise": lambda m, x: diffusion.sample_dpmpp_2m_sde(
            m, x, sigmas, noise_sampler=diffusion.ItemNoise(seeds, shape)
        ),
        "2M SDE, BrownianTreeNoise": lambda m, x: diffusion.sample_dpmpp_2m_sde(
            m, x, sigmas, noise_sampler=diffusion.BrownianTreeNoise(seeds, shape, lo, hi)
        ),
    }


def bare_calls(model, x: torch.Tensor, sigma_batches: list[torch.Tensor]) -> None:
    """The network calls a sampling pass makes, and nothing else."""
    with torch.no_grad():
        for sigma in sigma_batches:
            model(x, sigma)


def best_of(repeats: int, fn) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="sampling steps (ReactDiff: 50)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = diffusion.Denoiser(FrameMLP()).eval().requires_grad_(False)
    sigmas = diffusion.karras_sigmas(args.steps, 0.01, 80.0)
    x = sigmas[0].float() * torch.randn(BATCH, FRAMES, COEFFS)
    sigma_batches = [s.float().expand(BATCH) for s in sigmas[:-1]]
    seeds = diffusion.item_seeds(0, BATCH)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"network: {params} parameters; batch {BATCH} x {FRAMES} frames x {COEFFS} coefficients; "
        f"{args.steps} steps; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} cores; best of {args.repeats}"
    )
    for fn in samplers(seeds, sigmas).values():  # warm-up: first-call allocations, lazy imports
        fn(model, x)
    bare_calls(model, x, sigma_batches)

    rows = []
    for name, run in samplers(seeds, sigmas).items():
        network = best_of(args.repeats, lambda: bare_calls(model, x, sigma_batches))
        sampler = best_of(args.repeats, lambda run=run: run(model, x))
        network_per_call = network / args.steps
        overhead = (sampler - network) / args.steps
        rows.append(
            (
                name,
                sampler * 1e3,
                network_per_call * 1e6,
                overhead * 1e6,
                overhead / network_per_call,
            )
        )

    table = pd.DataFrame(
        rows,
        columns=["sampler", "run ms", "network us/call", "overhead us/step", "overhead / call"],
    ).set_index("sampler")
    print(
        table.to_string(
            formatters={"overhead / call": "{:.3f}".format}, float_format="{:.1f}".format
        )
    )


if __name__ == "__main__":
    main()
