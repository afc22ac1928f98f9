"""Training samples/s of InfoCatVAE with the authors' MNIST settings (K=10, delta=2, MLP 784-400,
dropout 0.25 in encoder and decoder, information weight 100 on the batch, batch 128) against
the transcription of the authors' training iteration in benchmarks/infocatvae_authors_loop.py,
timed in alternating rounds of the same run, on the CPU at each thread count and on the GPU when
there is one. The reference steps with plain Adam, as the authors' code does; vaebook once with
plain Adam and once with the trainer's optimiser (``vaebook.train.adam``, fused), which
separates what the model gains from what the optimiser gains, and once more with the loss
compiled as ``TrainConfig(compile=True)`` does.

Before timing, the two are checked on one batch with dropout off and the same random draws:
the authors' objective / B equals the package's loss, and so do the gradients.

    python benchmarks/infocatvae_speed.py [--steps 100] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace
from functools import partial

import torch
from infocatvae_authors_loop import AuthorsInfoCatVAE, authors_step
from timing import adam_step, compare_speed, compiled_step, devices, format_ratio

from vaebook.experiments.infocatvae import AUTHORS_SETTINGS
from vaebook.models import InfoCatVAE, InfoCatVAEConfig
from vaebook.train import TrainConfig, adam

CONFIG = InfoCatVAEConfig(**AUTHORS_SETTINGS)


def check_same_objective(batch: int) -> None:
    """The authors' objective / batch and its gradients equal the package's (dropout off)."""
    ours = InfoCatVAE(replace(CONFIG, dropout=0.0, decoder_dropout=0.0))
    theirs = AuthorsInfoCatVAE(ours, dropout=0.0, info_weight=100.0 * batch / 128)
    x = torch.rand(batch, 1, 28, 28).round()
    torch.manual_seed(1)
    a = ours.loss(x)["total"]
    a.backward()
    torch.manual_seed(1)  # the package's draws, in its order: eps, then K x 10 samples
    eps = torch.randn(batch, CONFIG.latent_dim)
    noise = torch.randn(CONFIG.categories, 10, CONFIG.latent_dim).transpose(0, 1)
    b = theirs.objective(x.view(batch, -1), (eps, noise)) / batch
    b.backward()
    grads = theirs.gradients_as_package(ours)
    worst = max(
        ((p.grad - grads[n]).abs().max() / p.grad.abs().max()).item()
        for n, p in ours.named_parameters()
    )
    print(f"same objective: vaebook {a.item():.4f}, authors' / B {b.item():.4f}; "
          f"largest gradient difference {worst:.1e} of the largest entry")  # fmt: skip
    if not torch.allclose(a, b, rtol=1e-5) or worst > 1e-4:
        raise SystemExit("the two implementations disagree: fix the reference before timing it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.manual_seed(0)
    check_same_objective(args.batch)
    x = torch.rand(args.batch, 1, 28, 28).round()
    for device in devices():
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            ours = InfoCatVAE(CONFIG).to(device)
            plain = copy.deepcopy(ours)
            theirs = AuthorsInfoCatVAE(ours).to(device)
            reference_optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3)
            on = x.to(device)
            compiled, compile_seconds = compiled_step(copy.deepcopy(ours), on)
            steps = {
                "authors' loop (transcription)": partial(
                    authors_step, theirs, on, reference_optimizer
                ),
                "vaebook, plain Adam": adam_step(plain, on),
                "vaebook, fused Adam, compile=True": compiled,
                "vaebook, trainer's fused Adam": adam_step(
                    ours, on, adam(ours.parameters(), TrainConfig())
                ),
            }
            setting = f"batch {args.batch}, K=10, delta=2"
            timed = compare_speed(steps, args.steps, args.batch, setting, device)
            compiled_rounds = timed["vaebook, fused Adam, compile=True"]
            eager, reference = timed["vaebook, trainer's fused Adam"], timed[next(iter(timed))]
            print(f"compile=True: {format_ratio(eager, compiled_rounds)} the eager step, "
                  f"{format_ratio(reference, compiled_rounds)} the reference, after "
                  f"{compile_seconds:.0f} s of compiling")  # fmt: skip


if __name__ == "__main__":
    main()
