"""The trainer: one loop for every model (device, seeding, progress bar, history, checkpoints,
exact resume, checks for NaN and posterior collapse), and the small pieces it needs."""

from __future__ import annotations

import math
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vaebook.checkpoints import (
    CheckpointMismatchError,
    load_checkpoint,
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
    # torch.compile the model's loss (models trained through loss(), not a training_step): on
    # 2 CPU cores the MLP VAE's step ran 9-15% faster after 3-15 s of compiling
    # (benchmarks/train_speed.py), InfoCatVAE's with the authors' dropout 13-14% faster
    # (benchmarks/infocatvae_speed.py); off by default, as compiling outlasts a quick run
    compile: bool = False
    checkpoint_path: str | None = None
    checkpoint_every: int = 1  # epochs
    progress: bool = True  # a live bar per epoch (stderr)
    epoch_lines: bool = False  # also a line of terms per epoch; else one line when fit ends
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


class PosteriorCollapseWarning(UserWarning):
    """A model's KL term stayed near 0 for a whole epoch: its code carries nothing."""


COLLAPSED_KL = 0.01  # nats per example: below this for an epoch, the code carries nothing
# what makes the trainer's results differ; a resumed run must keep them (the device may change)
RESUME_FIXED = (
    "seed", "lr", "batch_size", "betas", "weight_decay", "lr_milestones", "lr_gamma", "grad_clip"
)  # fmt: skip


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
        if config.compile and hasattr(model, "training_step"):
            raise ValueError(
                f"compile=True compiles loss(), but {type(model).__name__} trains through its "
                "own training_step; set compile=False"
            )
        _check_data(data, "data")
        if eval_data is not None:
            _check_data(eval_data, "eval_data")
        if len(data) == 0:
            raise ValueError("the training data is empty")
        self.model = model.to(self.device)
        # the bound method, not the module: parameter names and checkpoints stay the same
        self.compiled_loss = torch.compile(model.loss) if config.compile else None
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
        self.collapse_warned = False

    # -- one step ---------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.amp)

    def _step(self, batch) -> dict[str, torch.Tensor]:
        if hasattr(self.model, "training_step"):
            with self._autocast():
                return self.model.training_step(batch, self.optimizers)
        (optimizer,) = self.optimizers
        with self._autocast():
            terms = (self.compiled_loss or self.model.loss)(batch)
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
            self._check_finite_weights(epoch)
            if self.eval_data is not None:
                evaluated = evaluate(self.model, self.eval_data, config.batch_size)
                if not all(math.isfinite(v) for v in evaluated.values()):
                    raise NonFiniteLossError(
                        f"non-finite evaluation terms after epoch {epoch + 1}: {evaluated}; "
                        "check eval_data for NaN, or lower the learning rate"
                    )
                for k, v in evaluated.items():
                    self.history[f"test_{k}"].append(v)
            self._warn_on_collapse(epoch)
            self.history["seconds"].append(time.perf_counter() - start)
            self.epoch = epoch + 1
            if config.progress and (config.epoch_lines or self.epoch == config.epochs):
                summary = ", ".join(f"{k} {v[-1]:.3f}" for k, v in self.history.items())
                tqdm.write(f"epoch {self.epoch}/{config.epochs}: {summary}")
            if config.checkpoint_path and (
                self.epoch % config.checkpoint_every == 0 or self.epoch == config.epochs
            ):
                self.save(config.checkpoint_path)
        self.model.eval()
        return dict(self.history)

    def _check_finite_weights(self, epoch: int) -> None:
        """A step can make weights NaN after its loss was finite: stop before they are used."""
        bad = [n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLossError(
                f"non-finite weights after epoch {epoch + 1} in {bad[:5]}; lower the learning "
                "rate, set grad_clip, or check the data for NaN"
            )

    def _warn_on_collapse(self, epoch: int) -> None:
        kl = self.history.get("kl")
        # a model says what turns its kl term into nats per example (None: no such reading)
        to_nats = getattr(self.model, "kl_to_nats", 1.0)
        if (
            kl
            and to_nats is not None
            and kl[-1] * to_nats < COLLAPSED_KL
            and not self.collapse_warned
        ):
            self.collapse_warned = True
            warnings.warn(
                f"the KL term averaged {kl[-1] * to_nats:.2g} nats per example in epoch "
                f"{epoch + 1}: the posterior has collapsed and the code carries nothing. Lower "
                "the KL weight (beta or kl_weight in the model's config) or give the model more "
                "images (per class, for pairs)",
                PosteriorCollapseWarning,
                stacklevel=3,
            )

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
            "data_size": len(self.data),
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
        cls,
        path: str | Path,
        model: nn.Module,
        data,
        eval_data=None,
        config: TrainConfig | None = None,
        check: Callable[[TrainConfig, TrainConfig], list[str]] | None = None,
        **overrides,
    ) -> Trainer:
        """Continue the run saved at ``path``: weights, optimiser, scheduler, RNG states,
        epoch and history come from the checkpoint. ``config``: the run's settings, which
        must keep the checkpoint's `RESUME_FIXED` fields and data size (the device, epochs and
        checkpoint path may change); None: the checkpoint's own, changed by ``overrides``
        (e.g. epochs=50). ``check(saved, config)`` names further differences a caller refuses
        (e.g. a shorter run). Raises CheckpointMismatchError listing what differs. Call
        ``fit()`` on the result."""
        state = load_checkpoint(path, model)
        saved = TrainConfig(**state["train_config"])
        if config is None:
            config = replace(saved, **overrides)
        differences = [
            f"{name}: {getattr(saved, name)} in the checkpoint, {getattr(config, name)} now"
            for name in RESUME_FIXED
            if getattr(saved, name) != getattr(config, name)
        ]
        if check is not None:
            differences += check(saved, config)
        if state.get("data_size", len(data)) != len(data):
            differences.append(
                f"data size: {state['data_size']} in the checkpoint, {len(data)} now"
            )
        if differences:
            raise CheckpointMismatchError(
                f"cannot resume {path}: the run differs from it in {'; '.join(differences)}. "
                "Resume with the checkpoint's settings, or start a new run without --resume"
            )
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


def _check_data(data, name: str) -> None:
    """Refuse what is not a data object of `vaebook.data`, naming the class that fits."""
    if not all(hasattr(data, a) for a in ("batch", "to", "__len__", "device")):
        raise TypeError(
            f"{name} must be a vaebook data object with len(), .device, .to() and .batch(), "
            f"got {type(data).__name__}; wrap images (N, C, H, W) and labels (N,) as "
            "vaebook.data.ImageData(images, labels) (PairedData for pairs, FAVAEData for views)"
        )


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
