"""Samples/s of one VAE training step (784-400-20, batch 128) as the trainer runs it (its fused
Adam), and that step's achieved FLOP/s as a fraction of a large torch.mm's FLOP/s measured in
the same run (in alternating rounds, the fraction taken round by round): on the CPU (2 threads)
and on the GPU when there is one; once as the trainer runs it by default and once with its loss
compiled (``TrainConfig(compile=True)``).

    python benchmarks/train_speed.py [--steps 300]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from functools import partial

import timing
import torch

from vaebook.models import VAE, VAEConfig
from vaebook.train import TrainConfig, adam


def step_flops(model: VAE, batch: int) -> float:
    """Multiply-adds of every linear layer x 2 (FLOPs) x 3 (forward, and backward to inputs and
    weights), the standard estimate for a dense network's training step."""
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return 2 * 3 * batch * weights


MATMUL = 2048  # the side of the square product that stands for the device's peak
ROWS = {"step": "VAE 784-400-20 training step", "compiled": "same, compile=True"}


def print_row(what: str, throughput: str = "", time: str = "", flops: str = "") -> None:
    print(f"| {what:36} | {throughput:>18} | {time:>12} | {flops:>14} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for device in timing.devices():
        torch.manual_seed(0)
        model = VAE(VAEConfig(latent_dim=20, hidden=(400,))).to(device)
        compiled = copy.deepcopy(model)
        x = torch.rand(args.batch, 1, 28, 28, device=device).round()
        a, b = (torch.randn(MATMUL, MATMUL, device=device) for _ in range(2))
        compiled_step, compile_seconds = timing.compiled_step(compiled, x)
        # the product in the same alternating rounds, so that a change in load touches all
        timed = timing.seconds_per_step(
            {
                "step": timing.adam_step(model, x, adam(model.parameters(), TrainConfig())),
                "compiled": compiled_step,
                "matmul": partial(torch.mm, a, b),
            },
            args.steps,
            totals={"matmul": 10},
        )
        peak = 2 * MATMUL**3 / statistics.median(timed["matmul"])
        where = f"CPU, {torch.get_num_threads()} threads" if device == "cpu" else device
        print(f"\n{where}, torch {torch.__version__}")
        print_row("what", "throughput", "time", "FLOP/s")
        print_row("-" * 36, "-" * 18, "-" * 12, "-" * 14)
        for key, name in ROWS.items():
            seconds = statistics.median(timed[key])
            achieved = step_flops(model, args.batch) / seconds
            print_row(name, f"{args.batch / seconds:,.0f} samples/s",
                      f"{seconds * 1e3:.2f} ms/step", f"{achieved / 1e9:.1f} GFLOP/s")  # fmt: skip
        print_row(f"torch.mm {MATMUL}x{MATMUL} (reference)", flops=f"{peak / 1e9:.1f} GFLOP/s")
        for key, name in ROWS.items():
            # round by round: step FLOP/s / matmul FLOP/s = (flops / step) / (2 n^3 / mm)
            median, low, high = timing.ratio_over_rounds(
                [step_flops(model, args.batch) * mm for mm in timed["matmul"]],
                [2 * MATMUL**3 * step for step in timed[key]],
            )
            print(f"{name} / matmul, FLOP/s: {median:.2f} (rounds {low:.2f}-{high:.2f})")
        print(f"compiling took {compile_seconds:.1f} s (two warm-up steps)")


if __name__ == "__main__":
    main()
