"""Training samples/s of InfoCatVAE (the authors' MNIST settings: K=10, delta=2, MLP 784-400,
info weight 100, batch 128; CPU, 2 threads) against the transcription of the authors'
per-category code in benchmarks/infocatvae_loop_reference.py, timed in alternating rounds of
the same run.

    python benchmarks/infocatvae_speed.py [--steps 100]
"""

from __future__ import annotations

import argparse

import torch
from infocatvae_loop_reference import LoopInfoCatVAE
from timing import adam_step, print_speed_table, seconds_per_step

from vaebook.models import InfoCatVAE, InfoCatVAEConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = InfoCatVAEConfig(info_weight=100.0)
    x = torch.rand(args.batch, 1, 28, 28).round()
    torch.manual_seed(0)
    ours = InfoCatVAE(config)
    loop = LoopInfoCatVAE(config)
    loop.model.load_state_dict(ours.state_dict())
    # same parameters, same objective: the losses agree before any timing
    torch.manual_seed(1)
    a = ours.loss(x)["total"]
    torch.manual_seed(1)
    b = loop.loss(x)["total"]
    print(f"same loss: ours {a.item():.4f}, loop {b.item():.4f}")
    timed = seconds_per_step(
        {
            "per-category loop (reference)": adam_step(loop, x),
            "vaebook InfoCatVAE": adam_step(ours, x),
        },
        args.steps,
    )
    print_speed_table(timed, args.batch, f"batch {args.batch}, K=10, delta=2")


if __name__ == "__main__":
    main()
