"""The one timer every benchmark uses: steps timed in alternating rounds, so that a change in the
machine's load during the run touches every implementation alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def adam_step(model, x: torch.Tensor) -> Callable[[], None]:
    """One Adam step on model.loss(x)["total"], as a function of no arguments."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = model.loss(x)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def seconds_per_step(
    steps: dict[str, Callable[[], None]], total: int, rounds: int = 5, warmup: int = 3
) -> dict[str, float]:
    """Mean wall time of each named step function over about ``total`` calls, after warm-up."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds = dict.fromkeys(steps, 0.0)
    per_round = max(1, total // rounds)
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(per_round):
                step()
            seconds[name] += time.perf_counter() - start
    return {name: s / (per_round * rounds) for name, s in seconds.items()}
