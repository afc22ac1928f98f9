"""Speed of the SSHIBA engine on CPU: seconds per iteration, growth with N, and the numpy reference.

Two views like MNIST: 784 real columns and 10 binary (one-hot label) columns, K = 100 factors,
2 threads. Every sweep is followed by the lower bound, as in `fit`. `ours` is
`vaebook.fa.SSHIBA` with the same updates as the numpy transcription (no rotation, no pruning);
`ours+rot` adds the rotation step that `FAConfig` turns on by default. The last columns check that
both implementations give the same bound after the same sweeps.

    python benchmarks/fa_speed.py [--iters 3]
"""

import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "2"  # numpy's BLAS gets the same two threads as torch

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fa_numpy_reference import ReferenceSSHIBA  # noqa: E402

from vaebook import fa  # noqa: E402

K = 100


def mnist_like(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """784 real columns from 20 factors plus noise; a one-hot label of 10 classes."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 20, generator=gen, dtype=torch.float64)
    pixels = z @ torch.randn(20, 784, generator=gen, dtype=torch.float64) * 0.3
    pixels += 0.5 * torch.randn(n, 784, generator=gen, dtype=torch.float64)
    classes = (z[:, :10] + 0.3 * torch.randn(n, 10, generator=gen, dtype=torch.float64)).argmax(1)
    return pixels, torch.nn.functional.one_hot(classes, 10).double()


def seconds_per_iteration(step, n_iter: int) -> tuple[float, float]:
    """Median wall time of a (sweep + bound) after one warm-up sweep; the median shrugs off
    a sweep slowed by other work on the machine. Returns (seconds, last bound)."""
    bound = step()
    times = []
    for _ in range(n_iter):
        start = time.perf_counter()
        bound = step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=3, help="timed sweeps per point (median)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000, 20000])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, CPU, K={K}")
    print(f"views: real 784 + binary 10; median of {args.iters} sweeps (+1 warm-up) per point\n")
    header = (
        f"{'N':>6} | {'ours s/it':>9} | {'ours+rot s/it':>13} | {'numpy s/it':>10} | "
        f"{'numpy/ours':>10} | {'ours us/row':>11} | {'bound rel. diff':>15}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        pixels, labels = mnist_like(n)
        views = {"pixels": fa.Real(pixels), "label": fa.Multilabel(labels)}
        config = fa.FAConfig(prune=False, rotate=False)
        ours = fa.SSHIBA(views, k=K, config=config)
        reference = ReferenceSSHIBA(
            [("real", pixels.numpy()), ("binary", labels.numpy())], ours.q_z.mean.numpy()
        )

        def ours_step(model=ours):
            model.step()
            return model.bound()

        def reference_step(model=reference):
            model.step()
            return model.bound()

        ours_s, ours_bound = seconds_per_iteration(ours_step, args.iters)
        reference_s, reference_bound = seconds_per_iteration(reference_step, args.iters)
        ours.config.rotate = True  # the same model, now with the rotation step
        rotating_s, _ = seconds_per_iteration(ours_step, args.iters)
        rel_diff = abs(ours_bound - reference_bound) / abs(reference_bound)
        print(
            f"{n:>6} | {ours_s:>9.3f} | {rotating_s:>13.3f} | {reference_s:>10.3f} | "
            f"{reference_s / ours_s:>10.2f} | {1e6 * ours_s / n:>11.2f} | {rel_diff:>15.1e}"
        )


if __name__ == "__main__":
    main()
