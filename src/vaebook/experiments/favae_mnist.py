"""FA-VAE on MNIST (chapter 7): one image view and the digit as a categorical label view, tied by
one factor-analysis layer. Measures the digit the layer reads from test images, and images
generated from a digit label alone, read by an independent classifier: as the layer predicts
them, and with the predicted code's offset from the bias rescaled by the layer's shrinkage
(ours: the posterior mean of Z given a label alone is pulled towards the prior; the scale is
measured on the training codes). ``python -m vaebook reproduce favae-mnist``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from vaebook import fa
from vaebook.data import ImageData, load_images
from vaebook.experiments.classifier import trained_classifier
from vaebook.experiments.common import RunSettings, environment, save_model, write_results
from vaebook.models import FAVAE, FAVAEConfig, FAVAEData, FAVAESchedule
from vaebook.train import fit_rounds, pick_device, seed_everything


@dataclass
class FAVAEMNISTExperiment(RunSettings):
    batch_size: int = 64
    n_train: int = 10_000  # MNIST training images: the rows of the factor analysis; the
    # checkpoint keeps per-row state of the factor layer, so its size grows with n_train
    n_test: int = 10_000
    hidden: tuple[int, ...] = (400,)
    latent_dim: int = 10
    factors: int = 20
    warmup_epochs: int = 5  # VAE epochs against N(0, I) before the first FA round
    rounds: int = 15
    first_sweeps: int = 50  # FA sweeps in the first round, then `sweeps` per round
    sweeps: int = 5
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.hidden = tuple(self.hidden)

    @property
    def name(self) -> str:
        return "favae-mnist"

    def model_config(self) -> FAVAEConfig:
        return FAVAEConfig(
            image_shape=(1, 28, 28),
            arch="mlp",
            hidden=self.hidden,
            latent_dim=self.latent_dim,
            factors=self.factors,
        )

    def schedule(self) -> FAVAESchedule:
        return FAVAESchedule(
            rounds=self.rounds,
            warmup_epochs=self.warmup_epochs,
            first_sweeps=self.first_sweeps,
            sweeps=self.sweeps,
        )

    def split(self) -> tuple[ImageData, ImageData]:
        """The training rows and the test images, random subsets fixed by one generator."""
        generator = torch.Generator().manual_seed(0)
        train = load_images("mnist", "train").subset(self.n_train, generator)
        test = load_images("mnist", "test").subset(self.n_test, generator)
        return train, test


@torch.no_grad()
def label_generation(model: FAVAE, train: ImageData) -> dict[str, torch.Tensor]:
    """Images decoded from each digit label alone, (10, 1, 28, 28): ``predicted`` as the layer
    gives them, ``rescaled`` with the code's offset from the bias divided by ``shrinkage``, the
    mean share of the way from the bias to each class's mean training code that a label alone
    moves the code (1: all the way)."""
    digits = torch.arange(10)
    codes = model.fa.views["image"].x_mean  # the encoder means of the training rows
    labels = train.labels.to(codes.device)
    class_means = torch.stack([codes[labels == c].mean(0) for c in range(10)])
    bias = model.fa.q["image"].b_mean
    step = model.fa.predict({"digit": digits}, "image") - bias
    toward = class_means - bias
    moved = (step * toward).sum(1) / toward.pow(2).sum(1)
    shrinkage = moved.mean()
    decode = model.vaes["image"].decode
    return {
        "predicted": decode((bias + step).float().to(model.device)).cpu(),
        "rescaled": decode((bias + step / shrinkage).float().to(model.device)).cpu(),
        "moved": moved.cpu(),
        "shrinkage": shrinkage.cpu(),
    }


def run(config: FAVAEMNISTExperiment) -> dict:
    """Train chapter 7's FA-VAE; write results/favae-mnist.json and checkpoints/favae-mnist.pt."""
    start = time.perf_counter()
    train, test = config.split()
    device = pick_device(config.device)
    seed_everything(config.seed)
    model = FAVAE(config.model_config())
    data = FAVAEData({"image": train.images}, {"digit": fa.Categorical(train.labels, n_classes=10)})
    schedule_config = config.train_config(
        config.seed, 0, checkpoint_path=str(config.run_checkpoint(f"seed{config.seed}"))
    )
    history = fit_rounds(model, data, config.schedule(), schedule_config, resume=config.resume)
    model = model.cpu().eval()

    read = model.predict({"image": test.images}, "digit").argmax(1).cpu()
    classifier, classifier_accuracy = trained_classifier(
        "mnist", checkpoint_dir=config.shared_checkpoint("classifier-mnist.pt").parent
    )
    generated = label_generation(model, train)
    digits = torch.arange(10)
    metrics = {
        "digit_accuracy_from_images": (read == test.labels).float().mean().item(),
        "generation_accuracy": (classifier(generated["predicted"]).argmax(1) == digits)
        .float()
        .mean()
        .item(),
        "generation_accuracy_rescaled": (classifier(generated["rescaled"]).argmax(1) == digits)
        .float()
        .mean()
        .item(),
        "shrinkage": generated["shrinkage"].item(),
        "factors": int(history["factors"][-1]),
        "classifier_test_accuracy": classifier_accuracy,
    }
    sha = save_model(config.checkpoint_path, model, history, len(history["seconds"]))
    return write_results(
        config.results_path,
        config.name,
        config,
        metrics,
        {
            "history": history,
            "train_images": len(train),
            "test_images": len(test),
            "seconds": time.perf_counter() - start,
            **environment(device),
            "checkpoint_sha256": {config.checkpoint_path.name: sha},
        },
    )
