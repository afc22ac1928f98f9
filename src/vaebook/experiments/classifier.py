"""An independent CNN classifier trained on a real training set, cached as a small checkpoint:
it reads generated images (conditional-generation accuracy, FA-VAE's attribute checks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vaebook.assets import AssetError, asset, cache_path
from vaebook.data import SpritesData, as_float_images, load_images
from vaebook.experiments.common import save_model
from vaebook.nets import CNNClassifier
from vaebook.train import TrainConfig, Trainer, load_checkpoint, pick_device, seed_everything

SPRITES_VALUES = 6  # every Sprites attribute takes one of 6 values


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
    checkpoint_dir: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
) -> tuple[CNNClassifier, float]:
    """The cached classifier for ``dataset`` (trained on first use); returns it, in eval mode on
    the CPU, with its test accuracy. ``checkpoint_dir`` None: the book's published classifier
    (``vaebook.assets``: beside the notebook, cached, or downloaded), trained into the cache when
    it cannot be had."""
    filename = f"classifier-{dataset}.pt"
    if checkpoint_dir is not None:
        path = Path(checkpoint_dir) / filename
    else:
        try:
            path = asset(f"checkpoints/{filename}")
        except AssetError as error:
            print(f"training the classifier here ({error})")
            path = cache_path(f"checkpoints/{filename}")
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


@dataclass
class AttributeBatches(SpritesData):
    """Sprites whose batches are (images (B, 3, 64, 64) in [0, 1], attributes (B, 4))."""

    def batch(self, index: Tensor, generator: torch.Generator | None = None):
        return as_float_images(self.images[index]), self.attributes[index]


class AttributeReader(nn.Module):
    """An independent classifier of the four Sprites attributes, trained on real images:
    x (B, 3, 64, 64) in [0, 1] -> logits (B, 4, 6)."""

    def __init__(self, attributes: int = 4):
        super().__init__()
        self.attributes = attributes
        self.net = CNNClassifier((3, 64, 64), attributes * SPRITES_VALUES)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(len(x), self.attributes, SPRITES_VALUES)

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Summed cross-entropy of the attributes; batch = (x, attributes (B, 4))."""
        x, attributes = batch
        logits = self(x)
        total = nn.functional.cross_entropy(logits.transpose(1, 2), attributes) * self.attributes
        accuracy = (logits.argmax(-1) == attributes).float().mean().detach()
        return {"total": total, "accuracy": accuracy}

    @torch.no_grad()
    def read(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """The attributes it reads: images (N, 3, 64, 64), float or uint8 -> (N, 4) long."""
        self.eval()
        device = next(self.parameters()).device
        return torch.cat(
            [
                self(as_float_images(images[i : i + batch_size].to(device))).argmax(-1).cpu()
                for i in range(0, len(images), batch_size)
            ]
        )

    def accuracy(self, data: SpritesData) -> dict[str, float]:
        """Share of `data`'s images (N, 3, 64, 64) whose attribute it reads right, per
        attribute name."""
        shares = (self.read(data.images) == data.attributes.cpu()).float().mean(0)
        return dict(zip(data.attribute_names, shares.tolist(), strict=True))


def trained_attribute_reader(
    train: SpritesData, test: SpritesData, path: str | Path, config: TrainConfig
) -> tuple[AttributeReader, dict[str, float]]:
    """The attribute reader cached at `path` (trained on `train` with `config` on first use),
    on the training device in eval mode, and its test accuracy per attribute."""
    path = Path(path)
    reader = AttributeReader()
    if path.exists():
        load_checkpoint(path, reader)
    else:
        seed_everything(config.seed)
        history = Trainer(reader, AttributeBatches(**vars(train)), config).fit()
        save_model(path, reader.cpu(), history, config.epochs)
    reader = reader.to(pick_device(config.device))
    return reader, reader.accuracy(test)
