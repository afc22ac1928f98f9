"""The one timer every benchmark uses: steps timed in alternating rounds, so that a change in the
machine's load during the run touches every implementation alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from vaebook.train import TrainConfig, adam


def adam_step(
    model,
    x: torch.Tensor,
    optimizer: torch.optim.Optimizer | None = None,
    loss: Callable | None = None,
) -> Callable[[], None]:
    """One optimiser step on model.loss(x)["total"], as a function of no arguments; the
    optimiser defaults to plain torch.optim.Adam, as in the papers' code, and ``loss`` to
    model.loss (e.g. torch.compile(model.loss), as the trainer's compile=True runs it)."""
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = loss or model.loss

    def step() -> None:
        total = loss(x)["total"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def compiled_step(model, x: torch.Tensor) -> tuple[Callable[[], None], float]:
    """adam_step with the trainer's fused Adam and torch.compile(model.loss), compiled by two
    warm-up calls; returns the step and the seconds those calls took."""
    step = adam_step(model, x, adam(model.parameters(), TrainConfig()), torch.compile(model.loss))
    start = time.perf_counter()
    step()
    step()
    return step, time.perf_counter() - start


def devices() -> list[str]:
    """Where the benchmarks run: the CPU, and the GPU when there is one."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def synchronize() -> None:
    """Wait for queued GPU work, so that the clock reads what the steps took."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds_per_step(
    steps: dict[str, Callable[[], None]],
    total: int,
    rounds: int = 10,
    warmup: int = 3,
    totals: dict[str, int] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds per call of each named step function in each of ``rounds`` alternating
    rounds of about total / rounds calls (``totals``: a different number for some, e.g. a slow
    reference), after warm-up. Ratios are taken round by round: a burst of load elsewhere on
    the machine then slows both sides of a ratio alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    per_round = {name: max(1, (totals or {}).get(name, total) // rounds) for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            synchronize()
            start = time.perf_counter()
            for _ in range(per_round[name]):
                step()
            synchronize()
            seconds[name].append((time.perf_counter() - start) / per_round[name])
    return seconds


def ratio_over_rounds(
    numerator: list[float], denominator: list[float]
) -> tuple[float, float, float]:
    """numerator / denominator round by round: the median, the lowest and the highest."""
    ratios = sorted(a / b for a, b in zip(numerator, denominator, strict=True))
    return statistics.median(ratios), ratios[0], ratios[-1]


def format_ratio(numerator: list[float], denominator: list[float]) -> str:
    """ratio_over_rounds as text, e.g. '2.07x (rounds 1.91-2.50)'."""
    median, low, high = ratio_over_rounds(numerator, denominator)
    return f"{median:.2f}x (rounds {low:.2f}-{high:.2f})"


# the operators that do a step's arithmetic: matrix products and convolutions (on the CPU,
# aten::_convolution's own time is PyTorch's transposed convolution kernel)
PRODUCTS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::mkldnn_convolution",
    "aten::_convolution",
    "aten::convolution_backward",
)


def product_seconds(step: Callable[[], None], steps: int = 20) -> float:
    """CPU seconds per call of ``step`` spent in PRODUCTS (torch.profiler's self time): the part
    of a step that no reordering of the rest removes."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(steps):
            step()
    events = profile.key_averages()
    return sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS) / steps / 1e6


def print_speed_table(
    timed: dict[str, list[float]],
    batch: int,
    setting: str,
    device: str = "cpu",
    products: float | None = None,
) -> None:
    """The table every speed benchmark prints: ms/step and samples/s per implementation (medians
    over rounds), then the ratio of the first (the reference) to the last (ours); with
    ``products`` (seconds of ours' step in matrix products, ``product_seconds``) also the ratio
    were everything else free."""
    where = (
        f"CPU, {torch.get_num_threads()} threads"
        if device == "cpu"
        else torch.cuda.get_device_name(device)
    )
    print(f"\n{where}, {setting}")
    width = max(len("implementation"), *map(len, timed))
    print(f"| {'implementation':{width}} | {'ms/step':>8} | {'samples/s':>10} |")
    print(f"| {'-' * width} | {'-' * 8} | {'-' * 10} |")
    for name, rounds in timed.items():
        seconds = statistics.median(rounds)
        print(f"| {name:{width}} | {seconds * 1e3:8.2f} | {batch / seconds:10,.0f} |")
    first, *_, last = timed.values()
    print(f"speed-up (reference / ours): {format_ratio(first, last)}")
    if products is not None:
        ceiling = statistics.median(first) / products
        print(f"ours' matrix products and convolutions alone: {products * 1e3:.2f} ms/step; "
              f"were all else free, the speed-up would be {ceiling:.2f}x")  # fmt: skip


def compare_speed(
    steps: dict[str, Callable[[], None]], total: int, batch: int, setting: str, device: str
) -> dict[str, list[float]]:
    """Time ``steps`` (the reference first, ours last) with seconds_per_step, profile ours' matrix
    products on the CPU, print the table; returns the per-round seconds."""
    timed = seconds_per_step(steps, total)
    ours = list(steps.values())[-1]
    products = product_seconds(ours) if device == "cpu" else None
    print_speed_table(timed, batch, setting, device, products)
    return timed
