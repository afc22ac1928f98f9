"""The operators that take a training step's time, for InfoCatVAE (the authors' settings,
batch 128), the Cycle-Consistent VAE (batch 64 pairs) and the VAE 784-400-20 (batch 128), as
the trainer runs them (fused Adam): torch.profiler's CPU table, top rows by self time.

    python benchmarks/profile_steps.py [--steps 30] [--threads 2] [--rows 12]
"""

from __future__ import annotations

import argparse

import torch
from timing import adam_step
from torch.profiler import ProfilerActivity, profile

from vaebook.data import PairBatch
from vaebook.experiments.infocatvae import AUTHORS_SETTINGS
from vaebook.models import VAE, CycleVAE, InfoCatVAE, InfoCatVAEConfig, VAEConfig
from vaebook.train import TrainConfig, adam


def steps() -> dict:
    """name -> a function of no arguments doing one training step."""
    torch.manual_seed(0)
    x = torch.rand(128, 1, 28, 28).round()
    pairs = PairBatch(*torch.rand(3, 64, 1, 28, 28).round(), torch.zeros(64, dtype=torch.long))
    infocat = InfoCatVAE(InfoCatVAEConfig(**AUTHORS_SETTINGS))
    vae = VAE(VAEConfig(latent_dim=20, hidden=(400,)))
    cycle = CycleVAE()
    cycle_optimizers = cycle.configure_optimizers(TrainConfig(lr=1e-4))
    return {
        "InfoCatVAE": adam_step(infocat, x, adam(infocat.parameters(), TrainConfig())),
        "CycleVAE": lambda: cycle.training_step(pairs, cycle_optimizers),
        "VAE": adam_step(vae, x, adam(vae.parameters(), TrainConfig())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, step in steps().items():
        for _ in range(5):  # warm-up
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / args.steps / 1e3
        print(f"\n{name}: {total:.2f} ms of operator self time per step, {args.threads} threads")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
