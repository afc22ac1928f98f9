"""The plain VAE on dynamically binarised MNIST (or Fashion-MNIST): train, then the test ELBO
and the importance-weighted log-likelihood estimate (Burda et al. 2016) on a fixed binarisation
of the test set. ``python -m vaebook reproduce vae --dataset mnist``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from vaebook.data import ImageData, load_images
from vaebook.experiments.common import (
    RunSettings,
    environment,
    fit_resumable,
    save_model,
    write_results,
)
from vaebook.models import VAE, VAEConfig
from vaebook.train import seed_everything


@dataclass
class VAEExperiment(RunSettings):
    epochs: int = 50
    dataset: str = "mnist"
    latent_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    seed: int = 0
    iwae_k: int = 1000
    train_size: int | None = None  # a random subset, for quick runs
    test_size: int | None = None

    @property
    def name(self) -> str:
        return f"vae-{self.dataset}"

    def model_config(self) -> VAEConfig:
        return VAEConfig(latent_dim=self.latent_dim, hidden=self.hidden, likelihood="bernoulli")


def binarized_data(
    dataset: str, train_size: int | None, test_size: int | None, seed: int
) -> tuple[ImageData, ImageData]:
    """Training images binarised afresh in every batch, and test images binarised once (seed
    0), each a random subset of `train_size` / `test_size` images when given (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    train = load_images(dataset, "train", binarize=True)
    test = load_images(dataset, "test").binarized(seed=0)
    if train_size:
        train = train.subset(train_size, generator)
    if test_size:
        test = test.subset(test_size, generator)
    return train, test


@torch.no_grad()
def iwae_on(model: VAE, images: torch.Tensor, k: int, batch_size: int = 100) -> torch.Tensor:
    """Per-image IWAE estimates (N,) over a test set, batch_size images at a time."""
    model.eval()
    return torch.cat(
        [model.iwae(images[i : i + batch_size], k) for i in range(0, len(images), batch_size)]
    )


def run(config: VAEExperiment) -> dict:
    """Train the VAE with ``config``; write results/<name>.json and checkpoints/<name>.pt."""
    seed_everything(config.seed)
    train, test = binarized_data(config.dataset, config.train_size, config.test_size, config.seed)
    model = VAE(config.model_config())
    train_config = config.train_config(config.seed, config.epochs)
    start = time.perf_counter()
    run_checkpoint = config.run_checkpoint(f"seed{config.seed}")
    trainer = fit_resumable(model, train, train_config, run_checkpoint, config.resume, test)
    history = dict(trainer.history)
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    test_images = test.images.to(trainer.device)
    log_px = iwae_on(model, test_images, config.iwae_k)
    iwae_seconds = time.perf_counter() - start
    metrics = {
        "test_elbo": -history["test_total"][-1],
        "test_reconstruction": history["test_reconstruction"][-1],
        "test_kl": history["test_kl"][-1],
        "train_elbo": -history["total"][-1],
        f"test_iwae_k{config.iwae_k}": log_px.mean().item(),
        "test_iwae_stderr": (log_px.std() / len(log_px) ** 0.5).item(),
        "test_images": len(log_px),
    }
    checkpoint_sha256 = {
        config.checkpoint_path.name: save_model(
            config.checkpoint_path, model, history, trainer.epoch
        )
    }
    extra = {
        "history": history,
        "train_seconds": train_seconds,
        "iwae_seconds": iwae_seconds,
        "checkpoint_sha256": checkpoint_sha256,
        **environment(trainer.device),
    }
    return write_results(config.results_path, "vae", config, metrics, extra)
