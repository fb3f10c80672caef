"""Per-step cost of the rl.diffusion samplers' own work, against the network call they wrap.

    python benchmarks/sampler_overhead.py [--steps 50] [--repeats 9] [--lab-repeats 5] [--threads 1]

Two networks, both inside :class:`reactlib.diffusion.Denoiser`, on a ReactDiff-sized batch of
10 reactions x 16 frames x 58 coefficients:

* ``tiny``: a per-frame MLP (58 + 16 Fourier features of c_noise -> 256 -> 58), 34 k parameters,
  far cheaper than any real denoiser, so its ratios are upper bounds;
* ``lab``: a 5.7 M-parameter stand-in: per-frame Linear residual blocks over ReactDiff's
  channel plan [c, 2c, 4c] with depths [2, 4, 4], down then up with skips, at ``c =
  STAND_IN_CHANNELS`` (128; the same plan at 384 gives about 51 M, the paper's size).
  It has no attention and no conditioning: only the cost of a call matters here
  (``benchmarks/reactdiff_speed.py`` times the real ReactDiff network).

For each sampler with the tiny network, and for 2M ODE and the Brownian-tree SDE with the lab
one, a sampling pass of ``steps`` steps (``steps`` network calls on ReactDiff's schedule, a fresh
noise source per pass, as ReactDiff builds a new Brownian tree per window) is timed against
``steps`` bare calls of the same denoiser, interleaved in every repetition
(:func:`harness.paired_times`). With ``r`` the median over repetitions of ``pass / bare calls``,
the sampler's own work per step (arithmetic, sigma bookkeeping, drawing the noise) is ``r - 1``
network calls. The Brownian tree alone (building it and drawing the ``steps - 1`` increments of a
pass) is timed the same way. Figures go to ``benchmarks/results/sampler_overhead.json``; nothing
is asserted.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from harness import paired_times, write_results

from reactlib import diffusion

BATCH, FRAMES, COEFFS = 10, 16, 58
STAND_IN_CHANNELS = 128
"""Base width of the ``lab`` stand-in network (5.7 M parameters)."""
LAB_SAMPLERS = ("2M ODE", "2M SDE, BrownianTreeNoise")
"""Samplers also timed with the lab-size network (each pass there takes seconds)."""
FEATURES = 16


def fourier(c_noise: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    angle = 2 * math.pi * c_noise[:, None] * freqs
    return torch.cat([angle.cos(), angle.sin()], dim=1)


class FrameMLP(torch.nn.Module):
    """``F(c_in x, c_noise)``: per frame, the coefficients and Fourier features of the noise level
    through a two-layer MLP."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.register_buffer("freqs", torch.randn(FEATURES // 2))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(COEFFS + FEATURES, hidden),
            torch.nn.SiLU(),
            torch.nn.Linear(hidden, COEFFS),
        )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        embedding = fourier(c_noise, self.freqs)[:, None, :].expand(-1, x.shape[1], -1)
        return self.net(torch.cat([x, embedding], dim=2))


class Residual(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.SiLU(),
            torch.nn.Linear(width, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class FrameUNet(torch.nn.Module):
    """Per-frame stand-in for ReactDiff's denoiser at base width ``channels``: residual blocks
    over widths [c, 2c, 4c] with depths [2, 4, 4] going down, the mirror going up, each level's
    output added back on the way up."""

    def __init__(self, channels: int, depths: tuple[int, ...] = (2, 4, 4)):
        super().__init__()
        widths = [channels * 2**i for i in range(len(depths))]
        self.register_buffer("freqs", torch.randn(FEATURES // 2))
        self.inp = torch.nn.Linear(COEFFS + FEATURES, channels)
        self.down, self.up = torch.nn.ModuleList(), torch.nn.ModuleList()
        previous = channels
        for width, depth in zip(widths, depths, strict=True):
            self.down.append(
                torch.nn.Sequential(
                    torch.nn.Linear(previous, width), *[Residual(width) for _ in range(depth)]
                )
            )
            self.up.insert(
                0,
                torch.nn.Sequential(
                    *[Residual(width) for _ in range(depth)], torch.nn.Linear(width, previous)
                ),
            )
            previous = width
        self.out = torch.nn.Linear(channels, COEFFS)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        embedding = fourier(c_noise, self.freqs)[:, None, :].expand(-1, x.shape[1], -1)
        h = self.inp(torch.cat([x, embedding], dim=2))
        skips = []
        for stage in self.down:
            skips.append(h)
            h = stage(h)
        for stage in self.up:
            h = stage(h) + skips.pop()
        return self.out(h)


def samplers(seeds: list[int], sigmas: torch.Tensor) -> dict:
    """name -> function(model, x) running one full sampling pass with a fresh noise source."""
    shape = (FRAMES, COEFFS)
    return {
        "Euler": lambda m, x: diffusion.sample_euler(m, x, sigmas),
        "2M ODE": lambda m, x: diffusion.sample_dpmpp_2m(m, x, sigmas),
        "2M SDE, ItemNoise": lambda m, x: diffusion.sample_dpmpp_2m_sde(
            m, x, sigmas, noise_sampler=diffusion.ItemNoise(seeds, shape)
        ),
        "2M SDE, BrownianTreeNoise": lambda m, x: diffusion.sample_dpmpp_2m_sde(
            m, x, sigmas, noise_sampler=diffusion.BrownianTreeNoise(seeds, shape, *_range(sigmas))
        ),
    }


def _range(sigmas: torch.Tensor) -> tuple[float, float]:
    return float(sigmas[-2]), float(sigmas[0])


def tree_pass(seeds: list[int], sigmas: torch.Tensor) -> int:
    """The Brownian tree's share of a pass: build it, draw every increment the SDE draws.
    Returns how many tree nodes it drew (each one seeded normal draw per item)."""
    tree = diffusion.BrownianTreeNoise(seeds, (FRAMES, COEFFS), *_range(sigmas))
    for sigma, sigma_next in zip(sigmas[:-2], sigmas[1:-1], strict=True):
        tree(sigma, sigma_next)
    return tree.nodes_drawn


def bare_calls(model, x: torch.Tensor, sigma_batches: list[torch.Tensor]) -> None:
    """The network calls a sampling pass makes, and nothing else."""
    with torch.no_grad():
        for sigma in sigma_batches:
            model(x, sigma)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=diffusion.REACTDIFF_STEPS)
    parser.add_argument("--repeats", type=int, default=9, help="repetitions, tiny network")
    parser.add_argument("--lab-repeats", type=int, default=5, help="repetitions, lab network")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", default=None, help="folder for the JSON (default: results/)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lab_channels = STAND_IN_CHANNELS
    networks = {"tiny": FrameMLP(), "lab": FrameUNet(lab_channels)}
    sigmas = diffusion.reactdiff_sigmas(args.steps)
    x = sigmas[0].float() * torch.randn(BATCH, FRAMES, COEFFS)
    sigma_batches = [s.float().expand(BATCH) for s in sigmas[:-1]]
    seeds = diffusion.item_seeds(0, BATCH)
    nodes = tree_pass(seeds, sigmas)
    figures: dict = {
        "brownian_nodes_per_pass": nodes,
        "brownian_nodes_per_increment": nodes / (args.steps - 1),
        "networks": {},
    }
    print(
        f"batch {BATCH} x {FRAMES} frames x {COEFFS} coefficients, {args.steps} steps, "
        f"{torch.get_num_threads()} thread(s), {args.repeats} interleaved repetitions "
        f"({args.lab_repeats} with the lab network)"
    )
    for net_name, inner in networks.items():
        model = diffusion.Denoiser(inner).eval().requires_grad_(False)
        params = sum(p.numel() for p in model.parameters())
        runs = samplers(seeds, sigmas)
        repeats = args.lab_repeats if net_name == "lab" else args.repeats
        if net_name == "lab":  # a lab call is ~100x a tiny one: time only what can rival it
            runs = {name: runs[name] for name in LAB_SAMPLERS}
        for run in runs.values():  # warm-up: first-call allocations, lazy imports
            run(model, x)

        def bare(model=model):
            bare_calls(model, x, sigma_batches)

        rows = {
            name: paired_times(lambda run=run, model=model: run(model, x), bare, repeats)
            for name, run in runs.items()
        }
        tree = paired_times(lambda: tree_pass(seeds, sigmas), bare, repeats)
        call_s = statistics.median(t for p in [*rows.values(), tree] for t in p.reference)
        call_s /= args.steps
        print(f"\nnetwork {net_name!r}: {params} parameters, {call_s * 1e3:.2f} ms per call")
        print(f"{'':<28}{'overhead / call':>16}{'quartiles':>18}{'us / step':>11}")
        table = {}
        # A pass is `steps` calls; the tree alone draws steps - 1 increments (none for the last
        # step, to sigma 0), so its ratio is rescaled to one increment per network call.
        shares = {name: (paired, paired.ratio_quartiles, 1) for name, paired in rows.items()}
        shares["Brownian tree alone"] = (tree, tree.ratio_quartiles, 0)
        for name, (paired, quartiles, calls) in shares.items():
            scale = 1.0 if calls else args.steps / (args.steps - 1)
            ratio = (paired.ratio - calls) * scale
            low, high = ((q - calls) * scale for q in quartiles)
            per_step_us = ratio * call_s * 1e6
            print(f"{name:<28}{ratio:>16.3f}{f'{low:.3f} to {high:.3f}':>18}{per_step_us:>11.0f}")
            table[name] = {
                "overhead_per_call": ratio,
                "overhead_per_call_quartiles": [low, high],
                "overhead_per_step_us": per_step_us,
                "paired": paired.summary(),
            }
        figures["networks"][net_name] = {
            "parameters": params,
            "network_call_ms": call_s * 1e3,
            "samplers": table,
        }
    path = write_results(
        "sampler_overhead",
        {
            "steps": args.steps,
            "repeats": args.repeats,
            "lab_repeats": args.lab_repeats,
            "threads": args.threads,
            "batch": [BATCH, FRAMES, COEFFS],
            "schedule": "reactdiff_sigmas: Karras, 80 to 0.01, rho 7, then 0",
            "lab_model_channels": lab_channels,
        },
        figures,
        results_dir=args.out,
    )
    print(f"\nfigures written to {path}")


if __name__ == "__main__":
    main()
