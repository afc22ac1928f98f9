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

from vaebook.checkpoints import (
    CheckpointMismatchError,
    DamagedCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    load_state,
    model_config,
    save_atomic,
)
from vaebook.train.rounds import RoundSchedule, fit_rounds
from vaebook.train.trainer import (
    COLLAPSED_KL,
    RESUME_FIXED,
    NonFiniteLossError,
    PosteriorCollapseWarning,
    TrainConfig,
    Trainer,
    adam,
    evaluate,
    pick_device,
    seed_everything,
)

__all__ = [
    "COLLAPSED_KL",
    "CheckpointMismatchError",
    "DamagedCheckpointError",
    "NonFiniteLossError",
    "PosteriorCollapseWarning",
    "RESUME_FIXED",
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
