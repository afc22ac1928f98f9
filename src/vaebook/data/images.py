"""Images as tensors on the device (ImageData), pairs of same-label images for weak
supervision (PairSampler, PairBatch, PairedData), and MNIST / Fashion-MNIST in torchvision's
layout (load_images).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from vaebook.checks import check_images
from vaebook.data.root import RAW_FILES, MissingDataError, _missing_message, data_root

TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def as_float_images(x: Tensor) -> Tensor:
    """uint8 images 0..255 -> float in [0, 1]; float images pass through unchanged."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


@dataclass
class ImageData:
    """Images (N, C, H, W) and optional labels (N,) long, on one device.

    Images are float in [0, 1], or uint8 in 0..255 (a quarter of the memory, for the large
    colour sets): ``batch`` always returns float in [0, 1]. Every tensor field holds one row per
    example, so a subclass that adds per-example fields (see SpritesData) keeps them through
    ``to``, ``select`` and ``subset``.

    With ``binarize=True`` every batch is a fresh Bernoulli draw with the pixel values as
    probabilities (dynamic binarisation, as in Burda et al. 2016), so a Bernoulli decoder
    models real binary data and its log-likelihood is a proper one.
    """

    images: Tensor
    labels: Tensor | None = None
    binarize: bool = False

    def __post_init__(self):
        # uint8 pixels are in range by their type: check the shape on one converted image
        uint8 = self.images.dtype == torch.uint8
        checked = as_float_images(self.images[:1]) if uint8 else self.images
        check_images(checked, tuple(self.images.shape[1:]), name="images")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels must have shape ({len(self.images)},) to match the images, "
                f"got {tuple(self.labels.shape)}"
            )
        for name, values in self._per_example().items():
            if len(values) != len(self.images):
                raise ValueError(
                    f"{name} must have one row per image ({len(self.images)}), got {len(values)}"
                )

    def _per_example(self) -> dict[str, Tensor]:
        """Every tensor field: images, labels and those a subclass adds, one row per example."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if isinstance(value, Tensor)}

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: str | torch.device) -> ImageData:
        return replace(self, **{k: v.to(device) for k, v in self._per_example().items()})

    def select(self, index: Tensor) -> ImageData:
        """The examples at ``index``: a long index (M,) or a boolean mask (N,), e.g.
        ``sprites.select(sprites.action == 0)``; every per-example field follows."""
        index = index.to(self.device)
        return replace(self, **{k: v[index] for k, v in self._per_example().items()})

    def subset(self, n: int, generator: torch.Generator | None = None) -> ImageData:
        """A random subset of n examples (all of them if n >= len)."""
        if n >= len(self):
            return self
        return self.select(torch.randperm(len(self), generator=generator)[:n])

    def binarized(self, seed: int = 0) -> ImageData:
        """One fixed Bernoulli draw of every image (a static binarised test set)."""
        generator = torch.Generator(self.device).manual_seed(seed)
        binary = torch.bernoulli(as_float_images(self.images), generator=generator)
        return replace(self, images=binary, binarize=False)

    def batch(self, index: Tensor, generator: torch.Generator | None = None):
        """The batch at ``index``: float images (B, C, H, W) in [0, 1], with labels as
        (images, labels)."""
        x = as_float_images(self.images[index])
        if self.binarize:
            # rand < p is a Bernoulli(p) draw, several times faster than torch.bernoulli on CPU
            x = (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)
        return x if self.labels is None else (x, self.labels[index])


class PairSampler:
    """Partners drawn by index, for weak supervision by pairs (Cycle-Consistent VAE and its
    baselines): no per-class lists of images, only index tensors on the labels' device.

    labels: (N,) long. Every label present needs two examples or more.
    """

    def __init__(self, labels: Tensor | None):
        if labels is None:
            raise ValueError(
                "pairs need labels: same-label partners are drawn from them; "
                "build the data with labels, e.g. ImageData(images, labels)"
            )
        if labels.dim() != 1 or labels.dtype != torch.long or (labels < 0).any():
            raise ValueError(
                f"labels must be (N,) long >= 0, got {labels.dtype} {tuple(labels.shape)}"
            )
        counts = torch.bincount(labels)
        single = ((counts == 1).nonzero().flatten()).tolist()
        if single:
            raise ValueError(
                f"label(s) {single[:10]} have a single example, so no same-label partner; "
                "drop them (data.select(mask)) or add examples"
            )
        self.labels = labels
        self.count = counts
        self.order = torch.argsort(labels, stable=True)  # indices grouped by label
        self.start = counts.cumsum(0) - counts  # where each label's group begins in order
        self.rank = torch.empty_like(labels)  # each example's position inside its group
        self.rank[self.order] = (
            torch.arange(len(labels), device=labels.device) - self.start[labels[self.order]]
        )

    def same_label(self, index: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """For each i in index (B,), a partner j != i with the same label, uniform among them:
        (B,). Shifting i's rank by 1..count-1 within its group never lands on i itself."""
        label = self.labels[index]
        count = self.count[label]
        uniform = torch.rand(len(index), generator=generator, device=index.device)
        shift = 1 + (uniform * (count - 1)).long().clamp_max(count - 2)
        return self.order[self.start[label] + (self.rank[index] + shift) % count]

    def unrelated(self, index: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """For each i in index (B,), a partner drawn uniformly from all N, whatever its label."""
        n = len(self.labels)
        return torch.randint(n, (len(index),), generator=generator, device=index.device)


class PairBatch(NamedTuple):
    """Images (B, C, H, W) in [0, 1]: x, a same-label partner of each, an unrelated image for
    each; and x's labels (B,)."""

    x: Tensor
    partner: Tensor
    unrelated: Tensor
    labels: Tensor


@dataclass
class PairedData:
    """A labelled ImageData served as pairs: ``batch(index)`` -> PairBatch. The trainer draws
    ``index`` from a permutation of all examples, so every class is paired each epoch."""

    data: ImageData

    def __post_init__(self):
        self.sampler = PairSampler(self.data.labels)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.data.image_shape

    @property
    def device(self) -> torch.device:
        return self.data.device

    def to(self, device: str | torch.device) -> PairedData:
        return self if torch.device(device) == self.device else PairedData(self.data.to(device))

    def batch(self, index: Tensor, generator: torch.Generator | None = None) -> PairBatch:
        partner = self.sampler.same_label(index, generator)
        unrelated = self.sampler.unrelated(index, generator)
        x, _ = self.data.batch(torch.cat([index, partner, unrelated]), generator)
        return PairBatch(*x.chunk(3), self.data.labels[index])


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
