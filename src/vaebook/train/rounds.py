"""Training in rounds: epochs that alternate with a model's own update (FA-VAE's factor-analysis
sweeps), with one `Trainer` for every epoch and a checkpoint after every round."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch import nn

from vaebook.train.trainer import TrainConfig, Trainer


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
    extra = {**config.extra, "schedule": plan}
    # the trainer itself saves nothing: checkpoints fall only between rounds
    config = replace(config, epochs=0, checkpoint_path=None, extra=extra)
    if resume and Path(path).exists():

        def same_schedule(saved: TrainConfig, _: TrainConfig) -> list[str]:
            was = saved.extra.get("schedule")
            return [] if was == plan else [f"schedule: {was} in the checkpoint, {plan} now"]

        trainer = Trainer.resume(path, model, data, config=config, check=same_schedule)
    else:
        trainer = Trainer(model, data, config)
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
