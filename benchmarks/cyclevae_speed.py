"""Training samples/s of the Cycle-Consistent VAE (the authors' MNIST settings: 28x28 networks,
z and s of 16 dimensions, batch 64 pairs, Adam 1e-4) against the transcription of the
authors' loop in benchmarks/cyclevae_loop_reference.py (their networks of PyTorch layers, their
plain Adam), timed in alternating rounds of the same run: on the CPU at each thread count, and on
the GPU when there is one. vaebook runs once with plain Adam and once with the trainer's
optimiser (``vaebook.train.adam``, fused), which separates what the model gains from what the
optimiser gains.

    python benchmarks/cyclevae_speed.py [--steps 50] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import copy
from functools import partial

import torch
from cyclevae_loop_reference import authors_optimizers, reference_step
from timing import compare_speed, devices

from vaebook.data import PairBatch
from vaebook.models import CycleVAE
from vaebook.nets import with_torch_layers
from vaebook.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, args.batch, 1, 28, 28, generator=generator).round()
    for device in devices():
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            batch = PairBatch(*images.to(device), torch.zeros(args.batch, dtype=torch.long))
            torch.manual_seed(0)
            ours = CycleVAE().to(device)
            plain = copy.deepcopy(ours)
            reference = with_torch_layers(ours)
            ours_optimizers = ours.configure_optimizers(TrainConfig(lr=1e-4))
            plain_optimizers = authors_optimizers(plain, lr=1e-4)
            reference_optimizers = authors_optimizers(reference, lr=1e-4)
            # same parameters, same objective: one step's terms agree before any timing
            torch.manual_seed(1)
            a = ours.training_step(batch, ours_optimizers)
            torch.manual_seed(1)
            b = reference_step(reference, batch, reference_optimizers)
            print("\nfirst step, ours / reference: "
                  + ", ".join(f"{k} {a[k]:.5f} / {b[k]:.5f}" for k in b))  # fmt: skip
            steps = {
                "authors' loop (reference)": partial(
                    reference_step, reference, batch, reference_optimizers
                ),
                "vaebook, plain Adam": partial(plain.training_step, batch, plain_optimizers),
                "vaebook, trainer's fused Adam": partial(
                    ours.training_step, batch, ours_optimizers
                ),
            }
            setting = f"batch {args.batch} pairs, z/s 16/16, 28x28"
            compare_speed(steps, args.steps, args.batch, setting, device)


if __name__ == "__main__":
    main()
