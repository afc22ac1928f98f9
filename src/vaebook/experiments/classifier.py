"""An independent CNN classifier trained on a real training set, cached as a small checkpoint:
it reads generated images (conditional-generation accuracy, FA-VAE's attribute checks)."""

from __future__ import annotations

from pathlib import Path

import torch

from vaebook.data import load_images
from vaebook.experiments.common import save_model
from vaebook.nets import CNNClassifier
from vaebook.train import TrainConfig, Trainer, load_checkpoint, seed_everything


@torch.no_grad()
def accuracy(model: CNNClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images (N, 1, 28, 28) classified as labels (N,)."""
    model.eval()
    predictions = torch.cat(
        [model(images[i : i + 1000]).argmax(1) for i in range(0, len(images), 1000)]
    )
    return (predictions == labels).float().mean().item()


def trained_classifier(
    dataset: str = "mnist",
    epochs: int = 6,
    checkpoint_dir: str | Path = "checkpoints",
    device: str = "auto",
    progress: bool = False,
) -> tuple[CNNClassifier, float]:
    """The cached classifier for ``dataset`` (trained on first use); returns it, in eval mode on
    the CPU, with its test accuracy."""
    path = Path(checkpoint_dir) / f"classifier-{dataset}.pt"
    model = CNNClassifier()
    test = load_images(dataset, "test")
    if path.exists():
        load_checkpoint(path, model)
    else:
        seed_everything(0)
        train = load_images(dataset, "train")
        # the last two epochs at a tenth of the learning rate
        config = TrainConfig(
            epochs=epochs, lr=1e-3, lr_milestones=(epochs - 2,), device=device, progress=progress
        )
        history = Trainer(model, train, config).fit()
        save_model(path, model.cpu(), history, epochs)
    model = model.cpu().eval()
    return model, accuracy(model, test.images, test.labels)
