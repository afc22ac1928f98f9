"""Training samples/s of the Cycle-Consistent VAE (the authors' MNIST settings: 28x28 networks,
z and s of 16 dimensions, batch 64 pairs, Adam 1e-4; CPU) against the transcription of the
authors' loop in benchmarks/cyclevae_loop_reference.py, timed in the same run.

    python benchmarks/cyclevae_speed.py [--steps 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy

import torch
from cyclevae_loop_reference import reference_step
from timing import print_speed_table, seconds_per_step

from vaebook.data import PairBatch
from vaebook.models import CycleVAE
from vaebook.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, args.batch, 1, 28, 28, generator=generator).round()
    batch = PairBatch(*images, torch.zeros(args.batch, dtype=torch.long))
    torch.manual_seed(0)
    ours = CycleVAE()
    reference = copy.deepcopy(ours)
    train_config = TrainConfig(lr=1e-4)
    ours_optimizers = ours.configure_optimizers(train_config)
    reference_optimizers = reference.configure_optimizers(train_config)
    # same parameters, same objective: one step's terms agree before any timing
    torch.manual_seed(1)
    a = ours.training_step(batch, ours_optimizers)
    torch.manual_seed(1)
    b = reference_step(reference, batch, reference_optimizers)
    print("first step, ours / reference: " + ", ".join(f"{k} {a[k]:.5f} / {b[k]:.5f}" for k in b))
    timed = seconds_per_step(
        {
            "authors' loop (reference)": lambda: reference_step(
                reference, batch, reference_optimizers
            ),
            "vaebook CycleVAE": lambda: ours.training_step(batch, ours_optimizers),
        },
        args.steps,
    )
    print_speed_table(timed, args.batch, f"batch {args.batch} pairs, z/s 16/16, 28x28")


if __name__ == "__main__":
    main()
