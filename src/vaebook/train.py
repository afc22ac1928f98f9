"""One trainer for every model: device, seeding, progress bar, history, checkpoints, resume.

A model is an ``nn.Module`` with ``loss(batch) -> dict`` of named scalar terms whose
``"total"`` is minimised. Models that need more than one optimiser or their own update order
(adversarial baselines, a reverse cycle, factor-analysis rounds) define two hooks:

- ``configure_optimizers(config: TrainConfig) -> list[Optimizer]`` (default: one ``adam``);
- ``training_step(batch, optimizers) -> dict`` that computes, back-propagates and steps itself,
  returning the detached terms to log (default: backward of ``loss(batch)["total"]``).

Models trained in rounds that alternate with epochs (FA-VAE's factor-analysis sweeps) define
``update_round(data, round_, schedule) -> dict`` and train with ``fit_rounds`` (`RoundSchedule`).

Data is any object with ``len(data)``, ``data.device`` and ``data.batch(index, generator)``
(see ``vaebook.data.ImageData``); batches are gathered by index from tensors on the device.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vaebook.checkpoints import (
    CheckpointMismatchError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_state,
    model_config,
    save_atomic,
)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] = ()  # epochs after which the learning rate is multiplied
    lr_gamma: float = 0.1
    grad_clip: float | None = None  # max gradient norm, None for no clipping
    seed: int = 0
    device: str = "auto"  # 'auto' (cuda, then mps, then cpu) or a torch device string
    amp: bool = False  # bfloat16 autocast, CUDA only
    checkpoint_path: str | None = None
    checkpoint_every: int = 1  # epochs
    progress: bool = True
    extra: dict = field(default_factory=dict)  # model-specific settings read by its hooks

    def __post_init__(self):
        self.betas = tuple(self.betas)
        self.lr_milestones = tuple(self.lr_milestones)
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0 or self.checkpoint_every < 1:
            raise ValueError(
                "need epochs >= 0, batch_size >= 1, lr > 0 and checkpoint_every >= 1, got "
                f"{self.epochs}, {self.batch_size}, {self.lr}, {self.checkpoint_every}"
            )


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or inf; the message names the step and the last finite terms."""


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; any other name is checked and used."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} asked for, but CUDA is not available; use 'auto' or 'cpu'"
        )
    return device


def adam(parameters, config: TrainConfig) -> torch.optim.Adam:
    """Adam with the config's learning rate, betas and weight decay. Where the device has it,
    the fused kernel: one pass per step over every parameter instead of about ten per tensor
    (a third of a small model's step on CPU)."""
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)
    return torch.optim.Adam(
        parameters,
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
        fused=fused,
    )


def _numpy_rng_state() -> dict:
    """NumPy's global generator state as tensors and numbers, which load with weights_only."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_rng_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, state["position"], state["has_gauss"], state["cached_gaussian"])
    )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``model`` on ``data`` with ``config``; ``fit()`` returns the per-epoch history.

    history: {term: [epoch mean, ...]} for every loss term, ``test_<term>`` for eval_data,
    and ``seconds`` per epoch.
    """

    def __init__(self, model: nn.Module, data, config: TrainConfig | None = None, eval_data=None):
        self.config = config = config or TrainConfig()
        self.device = pick_device(config.device)
        if config.amp and self.device.type != "cuda":
            raise ValueError(f"amp=True needs a CUDA device, got {self.device}; set amp=False")
        if len(data) == 0:
            raise ValueError("the training data is empty")
        self.model = model.to(self.device)
        self.data = data.to(self.device)
        self.eval_data = eval_data.to(self.device) if eval_data is not None else None
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        if hasattr(model, "configure_optimizers"):
            self.optimizers = list(model.configure_optimizers(config))
        else:
            self.optimizers = [adam(model.parameters(), config)]
        self.schedulers = [
            torch.optim.lr_scheduler.MultiStepLR(opt, list(config.lr_milestones), config.lr_gamma)
            for opt in self.optimizers
        ]
        self.epoch = 0
        self.history: dict[str, list[float]] = defaultdict(list)

    # -- one step ---------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.amp)

    def _step(self, batch) -> dict[str, torch.Tensor]:
        if hasattr(self.model, "training_step"):
            with self._autocast():
                return self.model.training_step(batch, self.optimizers)
        (optimizer,) = self.optimizers
        with self._autocast():
            terms = self.model.loss(batch)
        if not torch.isfinite(terms["total"]):
            return terms  # reported by fit() before any weight is touched
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        optimizer.step()
        return terms

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, list[float]]:
        config, n = self.config, len(self.data)
        steps = math.ceil(n / config.batch_size)
        last_finite: dict[str, float] = {}
        for epoch in range(self.epoch, config.epochs):
            self.model.train()
            start = time.perf_counter()
            sums: dict[str, float] = defaultdict(float)
            order = torch.randperm(n, generator=self.generator, device=self.device)
            bar = tqdm(
                range(steps),
                desc=f"epoch {epoch + 1}/{config.epochs}",
                disable=not config.progress,
                leave=False,
            )
            for step in bar:
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                terms = self._step(self.data.batch(index, self.generator))
                values = {k: float(v.detach()) for k, v in terms.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise NonFiniteLossError(
                        f"non-finite loss at epoch {epoch + 1}, step {step + 1} of {steps}: "
                        f"{values}; last finite terms: {last_finite or 'none (first step)'}. "
                        "Lower the learning rate, set grad_clip, or check the data for NaN."
                    )
                last_finite = values
                for k, v in values.items():
                    sums[k] += v * len(index)
                if step % 20 == 0 or step == steps - 1:
                    bar.set_postfix(
                        {
                            k: f"{sums[k] / min(n, (step + 1) * config.batch_size):.2f}"
                            for k in values
                        }
                    )
            for scheduler in self.schedulers:
                scheduler.step()
            for k, v in sums.items():
                self.history[k].append(v / n)
            if self.eval_data is not None:
                for k, v in evaluate(self.model, self.eval_data, config.batch_size).items():
                    self.history[f"test_{k}"].append(v)
            self.history["seconds"].append(time.perf_counter() - start)
            self.epoch = epoch + 1
            if config.progress:
                summary = ", ".join(f"{k} {v[-1]:.3f}" for k, v in self.history.items())
                tqdm.write(f"epoch {self.epoch}/{config.epochs}: {summary}")
            if config.checkpoint_path and (
                self.epoch % config.checkpoint_every == 0 or self.epoch == config.epochs
            ):
                self.save(config.checkpoint_path)
        self.model.eval()
        return dict(self.history)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {
            "torch": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "python": random.getstate(),
            "numpy": _numpy_rng_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model_class": type(self.model).__name__,
            "model_config": model_config(self.model),
            "train_config": asdict(self.config),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": rng,
            "history": dict(self.history),
        }

    def save(self, path: str | Path) -> None:
        save_atomic(self.state_dict(), path)

    @classmethod
    def resume(
        cls, path: str | Path, model: nn.Module, data, eval_data=None, **overrides
    ) -> Trainer:
        """Continue the run saved at ``path``: weights, optimiser, scheduler, RNG states,
        epoch and history come from the checkpoint; ``overrides`` (e.g. epochs=50,
        device='cpu') change its TrainConfig. Call ``fit()`` on the result."""
        state = load_checkpoint(path, model)
        config = TrainConfig(**{**state["train_config"], **overrides})
        trainer = cls(model, data, config, eval_data)
        for opt, opt_state in zip(trainer.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        for scheduler, s_state in zip(trainer.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(s_state)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        trainer.generator.set_state(rng["generator"])
        random.setstate(rng["python"])
        _set_numpy_rng_state(rng["numpy"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        trainer.epoch = state["epoch"]
        trainer.history = defaultdict(list, state["history"])
        return trainer


@dataclass
class RoundSchedule:
    """Training that alternates epochs with the model's own update (`fit_rounds`).

    Warm-up: `warmup_epochs` epochs. Then `rounds` times: the model's ``update_round``, then
    `epochs_per_round` epochs; then one last ``update_round`` so that the model ends updated to
    its final weights. A model with a ``kl_ramp`` attribute gets its share of the KL weight each
    epoch: rising linearly from 1 / beta_ramp_epochs to 1 over the first beta_ramp_epochs epochs
    (0: no ramp).
    """

    rounds: int = 10
    epochs_per_round: int = 1
    warmup_epochs: int = 5
    beta_ramp_epochs: int = 0

    def __post_init__(self):
        if self.rounds < 1 or self.epochs_per_round < 1:
            raise ValueError(
                f"need rounds and epochs_per_round >= 1, got {self.rounds}, {self.epochs_per_round}"
            )
        if self.warmup_epochs < 0 or self.beta_ramp_epochs < 0:
            raise ValueError(
                "need warmup_epochs >= 0 and beta_ramp_epochs >= 0, got "
                f"{self.warmup_epochs}, {self.beta_ramp_epochs}"
            )

    @property
    def epochs(self) -> int:
        """Epochs of the whole schedule, warm-up included."""
        return self.warmup_epochs + self.rounds * self.epochs_per_round

    def kl_ramp(self, epoch: int) -> float:
        """The share of the KL weight used in epoch `epoch` (0-based, warm-up included)."""
        if self.beta_ramp_epochs == 0:
            return 1.0
        return min(1.0, (epoch + 1) / self.beta_ramp_epochs)


def fit_rounds(
    model: nn.Module,
    data,
    schedule: RoundSchedule,
    config: TrainConfig,
    resume: bool = False,
) -> dict[str, list[float]]:
    """Train ``model`` with ``schedule``: `config` sets the epochs' optimiser and batches (its
    own ``epochs`` is ignored: the schedule counts them). One `Trainer` runs every epoch, so
    the optimiser's state carries over the rounds. ``model.update_round(data, round_,
    schedule)`` (round_ 0..rounds, the last with no epochs after it) returns numbers to log.

    With ``config.checkpoint_path``, a full checkpoint (`Trainer.state_dict`, the schedule in
    `extra`, the model's extra state such as FA-VAE's layer) is written after every warm-up
    epoch and every round; with `resume` and a checkpoint there, training continues from it
    and ends as an uninterrupted run would (a finished run trains no further).

    Returns the per-epoch history (loss terms, `seconds`) and, per round, `round_seconds` and
    what ``update_round`` returned.
    """
    path = config.checkpoint_path
    plan = asdict(schedule)
    if resume and path is None:
        raise ValueError("resume=True needs TrainConfig(checkpoint_path=...) to resume from")
    if resume and Path(path).exists():
        trainer = Trainer.resume(path, model, data, progress=config.progress)
        if trainer.config.extra.get("schedule") != plan:
            raise CheckpointMismatchError(
                f"checkpoint {path} was made with schedule {trainer.config.extra.get('schedule')}"
                f", not {plan}; resume with that schedule or start afresh (resume=False)"
            )
    else:
        # the trainer itself saves nothing: checkpoints fall only between rounds
        extra = {**config.extra, "schedule": plan}
        trainer = Trainer(model, data, replace(config, epochs=0, checkpoint_path=None, extra=extra))
    history = trainer.history  # the rounds' entries join it, so checkpoints carry them

    def epochs(n: int) -> None:
        for _ in range(n):
            if hasattr(model, "kl_ramp"):
                model.kl_ramp = schedule.kl_ramp(trainer.epoch)
            trainer.config.epochs = trainer.epoch + 1
            trainer.fit()

    def checkpoint() -> None:
        if path is not None:
            trainer.save(path)

    while trainer.epoch < schedule.warmup_epochs:
        epochs(1)
        checkpoint()
    for round_ in range(len(history["round_seconds"]), schedule.rounds + 1):
        start = time.perf_counter()
        for key, value in model.update_round(data, round_, schedule).items():
            history[key].append(value)
        history["round_seconds"].append(time.perf_counter() - start)
        if round_ < schedule.rounds:
            epochs(schedule.epochs_per_round)
        checkpoint()
    model.eval()
    return dict(history)


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 500) -> dict[str, float]:
    """Mean of every loss term over ``data`` in eval mode (one z sample per example)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        for k, v in model.loss(data.batch(index)).items():
            sums[k] += float(v) * len(index)
    model.train(was_training)
    return {k: v / len(data) for k, v in sums.items()}


__all__ = [
    "CheckpointMismatchError",
    "NonFiniteLossError",
    "RoundSchedule",
    "TrainConfig",
    "Trainer",
    "UnsafeCheckpointError",
    "adam",
    "evaluate",
    "fit_rounds",
    "load_checkpoint",
    "load_state",
    "model_config",
    "pick_device",
    "save_atomic",
    "seed_everything",
]
