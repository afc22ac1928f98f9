"""Data: one data root, torchvision's folder layout, images held as tensors on the device.

The root is the environment variable ``VAEBOOK_DATA`` (default: ``~/.cache/vaebook/data``, or
under ``$XDG_CACHE_HOME``). MNIST lives in ``<root>/MNIST/raw/``, Fashion-MNIST in
``<root>/FashionMNIST/raw/``: the files torchvision downloads, so online users just run and
offline users point the variable at a folder that already holds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from vaebook.checks import check_images

DATA_ENV = "VAEBOOK_DATA"
TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def data_root() -> Path:
    """The data root: $VAEBOOK_DATA, else <cache>/vaebook/data (created on first download)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "vaebook" / "data"


class MissingDataError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message says where to put it."""


@dataclass
class ImageData:
    """Images (N, C, H, W) float in [0, 1] and optional labels (N,) long, on one device.

    With ``binarize=True`` every batch is a fresh Bernoulli draw with the pixel values as
    probabilities (dynamic binarisation, as in Burda et al. 2016), so a Bernoulli decoder
    models real binary data and its log-likelihood is a proper one.
    """

    images: Tensor
    labels: Tensor | None = None
    binarize: bool = False

    def __post_init__(self):
        check_images(self.images, tuple(self.images.shape[1:]), name="images")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels must have shape ({len(self.images)},) to match the images, "
                f"got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: str | torch.device) -> ImageData:
        labels = None if self.labels is None else self.labels.to(device)
        return ImageData(self.images.to(device), labels, self.binarize)

    def subset(self, n: int, generator: torch.Generator | None = None) -> ImageData:
        """A random subset of n examples (all of them if n >= len)."""
        if n >= len(self):
            return self
        index = torch.randperm(len(self), generator=generator)[:n].to(self.device)
        labels = None if self.labels is None else self.labels[index]
        return ImageData(self.images[index], labels, self.binarize)

    def binarized(self, seed: int = 0) -> ImageData:
        """One fixed Bernoulli draw of every image (a static binarised test set)."""
        generator = torch.Generator(self.device).manual_seed(seed)
        binary = torch.bernoulli(self.images, generator=generator)
        return ImageData(binary, self.labels, binarize=False)

    def batch(self, index: Tensor, generator: torch.Generator | None = None):
        """The batch at ``index``: images (B, C, H, W), with labels as (images, labels)."""
        x = self.images[index]
        if self.binarize:
            # rand < p is a Bernoulli(p) draw, several times faster than torch.bernoulli on CPU
            x = (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)
        return x if self.labels is None else (x, self.labels[index])


def _missing_message(name: str, folder: Path, root: Path) -> str:
    files = ", ".join(RAW_FILES)
    return (
        f"{name} not found under the data root {root}.\n"
        f"Expected torchvision's layout: {folder}/raw/ holding {files} "
        "(or their .gz files).\n"
        f"Fix: set the environment variable {DATA_ENV} to a folder that has {folder.name}/raw/, "
        f"or go online and call with download=True (torchvision fetches the files), or copy them "
        f"from the data set's home page (MNIST: yann.lecun.com/exdb/mnist, Fashion-MNIST: "
        f"github.com/zalandoresearch/fashion-mnist)."
    )


def load_images(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
    binarize: bool = False,
) -> ImageData:
    """MNIST or Fashion-MNIST as tensors: images (N, 1, 28, 28) in [0, 1], labels (N,).

    name: 'mnist' or 'fashion-mnist'; split: 'train' (60,000) or 'test' (10,000).
    Raises MissingDataError naming the folder layout and the fix when the files are absent
    and cannot be downloaded.
    """
    import torchvision  # imported here: importing it is slow and most of the package needs none

    if name not in TORCHVISION_DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(TORCHVISION_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else data_root()
    folder_name = TORCHVISION_DATASETS[name]
    folder = root / folder_name / "raw"
    on_disk = all((folder / f).exists() for f in RAW_FILES)
    if not on_disk and not download:
        raise MissingDataError(_missing_message(name, folder.parent, root))
    dataset_class = getattr(torchvision.datasets, folder_name)
    try:
        # torchvision unpacks .gz files it finds and downloads only what is missing
        dataset = dataset_class(root=str(root), train=split == "train", download=not on_disk)
    except (RuntimeError, OSError) as error:
        raise MissingDataError(_missing_message(name, folder.parent, root)) from error
    images = dataset.data.unsqueeze(1).to(device=device, dtype=torch.float32) / 255.0
    labels = dataset.targets.to(device=device, dtype=torch.long)
    return ImageData(images, labels, binarize=binarize)
