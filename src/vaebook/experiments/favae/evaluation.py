"""What FA-VAE's experiments measure, and the models they train: the attribute reader,
agreement of read and requested attributes, code probes, held-out reconstruction scores, the
baseline VAEs and the FA-VAE itself (resumable), and the seconds of a round."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch import Tensor

from vaebook.data import ImageData, SpritesData, as_float_images
from vaebook.experiments.classifier import AttributeReader, trained_attribute_reader
from vaebook.experiments.common import fit_resumable
from vaebook.experiments.favae.config import FAVAEExperiment
from vaebook.metrics import latent_probe
from vaebook.models import FAVAE, VAE, FAVAEData, FAVAESchedule, VAEConfig
from vaebook.train import fit_rounds, seed_everything

# what an experiment measures on one held-out split: its images (SpritesData) -> metrics
Measure = Callable[[SpritesData], dict]


def attribute_reader(
    config: FAVAEExperiment, train: SpritesData, test: SpritesData
) -> tuple[AttributeReader, dict[str, float]]:
    """The attribute reader for this split (the seed and val_characters pick it), cached,
    trained on first use; and its test accuracy per attribute."""
    characters = "all" if config.train_characters is None else config.train_characters
    # held-out validation characters change the training ones: a reader of its own
    val = f"-{config.val_characters}v" if config.val_characters else ""
    frames = "".join(map(str, config.frames))
    path = config.shared_checkpoint(
        f"classifier-sprites-attributes-{characters}c{val}-{frames}f-{config.classifier_epochs}e-"
        f"seed{config.seed}.pt"
    )
    return trained_attribute_reader(
        train, test, path, config.train_config(config.seed, config.classifier_epochs)
    )


def fraction_equal(a: Tensor, b: Tensor) -> float:
    """Share of rows where a and b (N,) agree."""
    return (a.cpu() == b.cpu()).float().mean().item()


def attribute_agreement(
    read: Tensor, requested: Tensor, names: tuple[str, ...]
) -> dict[str, float]:
    """Share of rows whose read attributes equal the requested ones, per attribute and 'all'."""
    requested = requested.cpu()
    shares = dict(zip(names, (read == requested).float().mean(0).tolist(), strict=True))
    return {**shares, "all": (read == requested).all(1).float().mean().item()}


@torch.no_grad()
def posterior_means(vae: VAE, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Encoder mean and log-variance (N, D) of every image, float or uint8."""
    vae.eval()
    device = next(vae.parameters()).device
    moments = [
        vae.encode(as_float_images(images[i : i + batch_size].to(device)))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat([m for m, _ in moments]), torch.cat([v for _, v in moments])


@torch.no_grad()
def reconstructions(vae: VAE, images: Tensor, batch_size: int = 500) -> Tensor:
    """The decoded posterior means (N, C, H, W) in [0, 1] of `images`, float or uint8."""
    means = posterior_means(vae, images, batch_size)[0]
    return torch.cat([vae.decode(m).cpu() for m in means.split(batch_size)])


def code_probes(vae: VAE, train: SpritesData, test: SpritesData) -> dict[str, dict[str, float]]:
    """Test accuracy of probes that read each attribute from `vae`'s code means (train on
    `train`, score on `test`): 'linear' (logistic regression, what a linear layer can read) and
    'mlp' (Jha et al.'s 256-256 probe, what the codes hold at all), each {attribute: accuracy}."""
    codes = [posterior_means(vae, data.images)[0].cpu() for data in (train, test)]
    return {
        kind: {
            name: latent_probe(
                codes[0], train.attributes[:, a], codes[1], test.attributes[:, a], hidden=hidden
            )["test_accuracy"]
            for a, name in enumerate(train.attribute_names)
        }
        for kind, hidden in (("linear", ()), ("mlp", (256, 256)))
    }


@torch.no_grad()
def reconstruction_scores(vae: VAE, images: Tensor, batch_size: int = 500) -> dict[str, float]:
    """Held-out log p(x | h = posterior mean) per image (nats) and the pixel R^2 of the
    reconstructions, 1 - sum (x - x_hat)^2 / sum (x - mean pixel value)^2."""
    vae.eval()
    device = next(vae.parameters()).device
    loglik, squared_error, n = 0.0, 0.0, len(images)
    pixel_sum, pixel_sq_sum = 0.0, 0.0
    for i in range(0, n, batch_size):
        x = as_float_images(images[i : i + batch_size].to(device))
        mean = vae.encode(x)[0]
        loglik += vae.log_likelihood(x, mean).sum().item()
        squared_error += (x - vae.decode(mean)).pow(2).sum().item()
        pixel_sum += x.sum().item()
        pixel_sq_sum += x.pow(2).sum().item()
    pixels = n * images[0].numel()
    total_variation = pixel_sq_sum - pixel_sum**2 / pixels
    return {"loglik": loglik / n, "r2": 1 - squared_error / total_variation}


def train_vae(
    config: FAVAEExperiment, baseline: str, vae_config: VAEConfig, images: Tensor, epochs: int
) -> tuple[VAE, dict]:
    """A VAE with N(0, I) prior, built after seeding, trained on `images` (N, C, H, W) for
    `epochs` epochs with a full checkpoint every epoch at `config.model_checkpoint(baseline)`
    (resumed from it with `config.resume`); returns the VAE and its history."""
    seed_everything(config.seed)
    vae = VAE(vae_config)
    trainer = fit_resumable(
        vae,
        ImageData(images),
        config.train_config(config.seed, epochs),
        config.model_checkpoint(baseline),
        config.resume,
    )
    return vae, dict(trainer.history)


def fit_favae(
    config: FAVAEExperiment,
    image_views: tuple[str, ...],
    data: FAVAEData,
    beta: float | None = None,
) -> tuple[FAVAE, dict]:
    """An FA-VAE with `image_views`, built after seeding, trained on `data` with the
    experiment's schedule and a full checkpoint after every round at `config.model_checkpoint()`
    (resumed from it with `config.resume`); returns the model and its history. beta: the KL
    weight (None: `config.beta`)."""
    seed_everything(config.seed)
    model = FAVAE(config.model_config(image_views, config.beta if beta is None else beta))
    train = config.train_config(config.seed, 0, checkpoint_path=str(config.model_checkpoint()))
    return model, fit_rounds(model, data, config.schedule(), train, resume=config.resume)


def round_seconds(history: dict, schedule: FAVAESchedule) -> dict[str, float]:
    """Median seconds of an FA-VAE round from `fit_rounds`'s history, over the rounds between
    the first (which starts the layer with `first_sweeps`) and the final refit: `vae` (the
    round's epochs), `encode` (latent views from the encoders), `fa` (sweeps and priors),
    `round` (their sum) and `fa_share` (fa / round)."""
    middle = range(1, schedule.rounds)
    if not middle:
        raise ValueError(
            "round_seconds needs a schedule with rounds >= 2 (one between first and last)"
        )
    epochs = history["seconds"][schedule.warmup_epochs :]
    per = schedule.epochs_per_round
    vae = statistics.median(sum(epochs[r * per : (r + 1) * per]) for r in middle)
    encode = statistics.median(history["encode_seconds"][r] for r in middle)
    fa_seconds = statistics.median(history["fa_seconds"][r] for r in middle)
    total = vae + encode + fa_seconds
    return {
        "vae": vae,
        "encode": encode,
        "fa": fa_seconds,
        "round": total,
        "fa_share": fa_seconds / total,
    }


def training_seconds(history: dict) -> float:
    """Seconds of an FA-VAE's epochs, encodings and sweeps from `fit_rounds`'s history: over
    every session of a resumed run, whose `seconds` in the results count only the last."""
    return sum(sum(history.get(key, [])) for key in ("seconds", "encode_seconds", "fa_seconds"))
