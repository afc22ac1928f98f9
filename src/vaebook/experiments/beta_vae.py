"""The beta-VAE (Higgins et al. 2017) on dynamically binarised MNIST: one VAE per beta, and
what each spends on its code. For every beta: the test rate (KL to the prior, nats per image),
the distortion (-log p(x|z)), their sum (the negative ELBO), the KL of each latent dimension and
the active units (dimensions whose posterior mean varies over the test images by more than
0.01, Burda et al. 2016). ``python -m vaebook reproduce beta-vae``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from vaebook.data import ImageData
from vaebook.experiments.common import (
    RunSettings,
    environment,
    fit_resumable,
    save_model,
    write_results,
)
from vaebook.experiments.vae import binarized_data
from vaebook.models import VAE, VAEConfig
from vaebook.probability import kl_to_standard_normal, reparameterize
from vaebook.train import pick_device, seed_everything

ACTIVE_VARIANCE = 0.01  # a unit is active when Var_x E[z_d | x] exceeds this (Burda et al.)


@dataclass
class BetaVAEExperiment(RunSettings):
    epochs: int = 20
    dataset: str = "mnist"
    betas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    latent_dim: int = 10
    hidden: tuple[int, ...] = (400,)
    seed: int = 0
    checkpoint_beta: float = 4.0  # the model whose weights the chapter loads
    train_size: int | None = None  # a random subset, for quick runs
    test_size: int | None = None

    def __post_init__(self):
        super().__post_init__()
        self.betas = tuple(float(b) for b in self.betas)
        self.hidden = tuple(self.hidden)
        if not self.betas or min(self.betas) <= 0:
            raise ValueError(f"betas must be one or more positive numbers, got {self.betas}")
        if self.checkpoint_beta not in self.betas:
            raise ValueError(
                f"checkpoint_beta {self.checkpoint_beta} is not one of betas {self.betas}; "
                "add it to betas or pick one of them"
            )

    @property
    def name(self) -> str:
        return f"beta-vae-{self.dataset}"

    def model_config(self, beta: float) -> VAEConfig:
        return VAEConfig(
            latent_dim=self.latent_dim, hidden=self.hidden, likelihood="bernoulli", beta=beta
        )


@torch.no_grad()
def code_usage(model: VAE, test: ImageData, batch_size: int = 1000) -> dict:
    """Test rate and distortion (nats per image, one z sample each), the KL of each latent
    dimension (D,), and the active units, for a model in eval mode on `test`'s device."""
    model.eval()
    reconstruction, kl_per_dimension, means = 0.0, 0.0, []
    for start in range(0, len(test), batch_size):
        x = test.images[start : start + batch_size]
        mean, logvar = model.encode(x)
        z = reparameterize(mean, logvar)
        reconstruction += -model.log_likelihood(x, z).sum().item()
        # each dimension as a one-dimensional Gaussian: (B, D, 1) -> (B, D)
        kl_per_dimension += kl_to_standard_normal(mean[..., None], logvar[..., None]).sum(0)
        means.append(mean)
    kl_per_dimension = (kl_per_dimension / len(test)).cpu()
    activity = torch.cat(means).var(0).cpu()
    return {
        "rate": kl_per_dimension.sum().item(),
        "distortion": reconstruction / len(test),
        "kl_per_dimension": kl_per_dimension.tolist(),
        "active_units": int((activity > ACTIVE_VARIANCE).sum()),
    }


def run(config: BetaVAEExperiment) -> dict:
    """Train one VAE per beta; write results/<name>.json and the checkpoint_beta model's
    checkpoints/<name>.pt."""
    start = time.perf_counter()
    train, test = binarized_data(config.dataset, config.train_size, config.test_size, config.seed)
    device = pick_device(config.device)
    test = test.to(device)  # once, for every beta's measurement
    per_beta = []
    for beta in config.betas:
        seed_everything(config.seed)  # every beta starts from the same weights
        model = VAE(config.model_config(beta))
        run_checkpoint = config.run_checkpoint(f"beta{beta}-seed{config.seed}")
        trainer = fit_resumable(
            model,
            train,
            config.train_config(config.seed, config.epochs),
            run_checkpoint,
            config.resume,
        )
        torch.manual_seed(config.seed)  # the same z samples for every beta's test terms
        usage = code_usage(model, test)
        history = dict(trainer.history)
        per_beta.append(
            {
                "beta": beta,
                **usage,
                "negative_elbo": usage["rate"] + usage["distortion"],
                "train_seconds": sum(history["seconds"]),
            }
        )
        if beta == config.checkpoint_beta:
            sha = save_model(config.checkpoint_path, model, history, trainer.epoch)
            checkpoint_sha256 = {config.checkpoint_path.name: sha}
    metrics = {"betas": per_beta, "test_images": len(test)}
    extra = {
        "seconds": time.perf_counter() - start,
        "checkpoint_sha256": checkpoint_sha256,
        **environment(device),
    }
    return write_results(config.results_path, "beta-vae", config, metrics, extra)
