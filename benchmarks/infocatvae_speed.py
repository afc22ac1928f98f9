"""Training samples/s of InfoCatVAE (the authors' MNIST settings: K=10, delta=2, MLP 784-400,
info weight 100, batch 128; CPU, 2 threads) against the transcription of the authors'
per-category code in benchmarks/infocatvae_loop_reference.py, timed in alternating rounds of
the same run. The reference steps with plain Adam, as the authors' code does; vaebook with the
trainer's optimiser (``vaebook.train.adam``, fused). The rows in between separate what the
model's batching gains from what the optimiser gains.

    python benchmarks/infocatvae_speed.py [--steps 100]
"""

from __future__ import annotations

import argparse
import copy

import torch
from infocatvae_loop_reference import LoopInfoCatVAE
from timing import adam_step, print_speed_table, seconds_per_step

from vaebook.models import InfoCatVAE, InfoCatVAEConfig
from vaebook.train import TrainConfig, adam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = InfoCatVAEConfig(info_weight=100.0)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28).round()
    ours = InfoCatVAE(config)
    loop = LoopInfoCatVAE(config)
    loop.model.load_state_dict(ours.state_dict())
    reference_fused, ours_plain = copy.deepcopy(loop), copy.deepcopy(ours)
    # same parameters, same objective: the losses agree before any timing
    torch.manual_seed(1)
    a = ours.loss(x)["total"]
    torch.manual_seed(1)
    b = loop.loss(x)["total"]
    print(f"same loss: ours {a.item():.4f}, loop {b.item():.4f}")
    if not torch.allclose(a, b, rtol=1e-5):
        raise SystemExit("the two implementations disagree: fix the reference before timing it")
    timed = seconds_per_step(
        {
            "per-category loop (reference)": adam_step(loop, x),
            "reference, fused Adam": adam_step(
                reference_fused, x, adam(reference_fused.parameters(), TrainConfig())
            ),
            "vaebook, plain Adam": adam_step(ours_plain, x),
            "vaebook, trainer's fused Adam": adam_step(
                ours, x, adam(ours.parameters(), TrainConfig())
            ),
        },
        args.steps,
    )
    print_speed_table(timed, args.batch, f"batch {args.batch}, K=10, delta=2")


if __name__ == "__main__":
    main()
