"""Images as tensors on the device (ImageData), pairs of same-label images for weak
supervision (PairSampler, PairBatch, PairedData), and MNIST / Fashion-MNIST in torchvision's
layout (load_images).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from vaebook.checks import check_image_data, check_labels
from vaebook.data.root import RAW_FILES, MissingDataError, _damaged, _missing_message, data_root

TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
SPLITS = ("train", "val", "test")
VALIDATION_SIZE = 10_000  # images of the official training set held out as the validation split
SPLIT_SEED = 0


def hash_order(count: int, seed: int = SPLIT_SEED) -> Tensor:
    """0..count-1 in a fixed pseudo-random order: sorted by BLAKE2b("seed:i"), which every
    machine, library version and thread count computes alike (a generator's stream may not)."""
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in range(count)]
    return torch.tensor(sorted(range(count), key=keys.__getitem__), dtype=torch.long)


def validation_indices(labels: Tensor, size: int, seed: int = SPLIT_SEED) -> Tensor:
    """A class-stratified validation set of ``size`` examples: each class gives its share of
    ``size`` in proportion to its count (largest remainders make the total exact), the examples
    that come first in ``hash_order``. labels: (N,) long; returns sorted indices (size,)."""
    labels = labels.cpu()
    counts = torch.bincount(labels)
    quota = counts.double() * size / len(labels)
    share = quota.floor().long()
    leftover = size - int(share.sum())
    share[torch.argsort(quota - share, descending=True, stable=True)[:leftover]] += 1
    order = hash_order(len(labels), seed)
    ranked = labels[order]
    # rank of each example within its class, in hash order
    within = torch.empty_like(order)
    for label in range(len(counts)):
        mask = ranked == label
        within[mask] = torch.arange(int(mask.sum()))
    return order[within < share[ranked]].sort().values


def as_float_images(x: Tensor) -> Tensor:
    """uint8 images 0..255 -> float in [0, 1]; float images pass through unchanged.

    Used per batch, so it checks nothing: uint8 images holding only 0 and 1 would become
    near-blank (0 and 1/255). ImageData and FAVAEData refuse those once, at construction."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


@dataclass
class ImageData:
    """Images (N, C, H, W) and optional labels (N,) long, on one device.

    Images are float in [0, 1], or uint8 in 0..255 (a quarter of the memory, for the large
    colour sets): ``batch`` always returns float in [0, 1]. Construction checks the data once
    (``vaebook.checks.check_image_data`` and ``check_labels``), with errors that name the fix:
    (N, H, W) or channels-last images, uint8 images holding only 0 and 1 (use ``x.float()``),
    floats outside [0, 1], float, negative or (N, 1) labels. Every tensor field holds one row per
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
        check_image_data(self.images, "images")  # layout, dtype and range: one pass
        if self.labels is not None:
            check_labels(self.labels, len(self.images), "labels")
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
        check_labels(labels, len(labels) if isinstance(labels, Tensor) and labels.dim() else 1)
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
        if not isinstance(self.data, ImageData):
            raise TypeError(
                f"PairedData takes an ImageData, got {type(self.data).__name__}; wrap the "
                "tensors: PairedData(ImageData(images, labels))"
            )
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


# IDX headers: a magic number (0x08 = unsigned bytes, then the number of dimensions), the sizes
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
MNIST_SIDE = 28
MNIST_CLASSES = 10


def _idx_file(folder: Path, name: str) -> Path | None:
    """The IDX file ``name`` in folder, unpacked or else gzipped; None if neither is there."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.exists():
            return path
    return None


def _read_idx(path: Path, kind: str, fix: str) -> Tensor:
    """An MNIST-style IDX file of unsigned bytes (unpacked or .gz) -> uint8 tensor of its shape:
    images (N, 28, 28) or labels (N,). A damaged file raises DamagedDataError naming it."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise _damaged(path, f"it cannot be read ({error})", fix) from error
    dims = 3 if kind == "images" else 1
    header = 4 * (dims + 1)
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < header:
        raise _damaged(
            path, f"it holds {len(raw)} bytes, less than an IDX header of {kind} ({header})", fix
        )
    if magic != IDX_MAGIC[kind]:
        gzipped = " (gzip data: name the file .gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise _damaged(
            path,
            f"an IDX file of {kind} starts with the magic number {IDX_MAGIC[kind]:#010x}, got "
            f"{magic:#010x}{gzipped}",
            fix,
        )
    shape = [int.from_bytes(raw[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(dims)]
    expected = header + int(torch.Size(shape).numel())
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "too long"
        raise _damaged(
            path,
            f"{problem}: its header announces {kind} of shape {tuple(shape)}, {expected} bytes, "
            f"but it holds {len(raw)} bytes",
            fix,
        )
    if kind == "images" and shape[1:] != [MNIST_SIDE, MNIST_SIDE]:
        raise _damaged(
            path, f"it holds {shape[1]}x{shape[2]} images, expected {MNIST_SIDE}x{MNIST_SIDE}", fix
        )
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header).view(shape)


def load_images(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
    binarize: bool = False,
) -> ImageData:
    """MNIST or Fashion-MNIST as tensors: images (N, 1, 28, 28) in [0, 1], labels (N,).

    name: 'mnist' or 'fashion-mnist'; split: 'train' (50,000), 'val' (10,000) or 'test' (the
    official 10,000). 'val' is a class-stratified set of ``VALIDATION_SIZE`` images taken out of
    the official 60,000 training images (``validation_indices``: fixed, the same on every
    machine) and 'train' is the other 50,000, so settings can be chosen without the test split.
    Reads the IDX files of torchvision's layout (unpacked or .gz); torchvision downloads
    missing ones.
    Raises MissingDataError naming the folder layout and the fix when the files are absent
    and cannot be downloaded, DamagedDataError naming the file when one is damaged.
    """
    if name not in TORCHVISION_DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(TORCHVISION_DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root) if root is not None else data_root()
    folder_name = TORCHVISION_DATASETS[name]
    folder = root / folder_name / "raw"
    if not all(_idx_file(folder, f) for f in RAW_FILES):
        if not download:
            raise MissingDataError(_missing_message(name, folder.parent, root))
        import torchvision  # imported here: importing it is slow and only downloads need it

        try:
            # torchvision downloads and unpacks only what is missing, then reads its split
            getattr(torchvision.datasets, folder_name)(root=str(root), download=True)
        except Exception as error:
            if not all(_idx_file(folder, f) for f in RAW_FILES):
                raise MissingDataError(_missing_message(name, folder.parent, root)) from error
            # the files are there but torchvision could not read one: the reader names it
    prefix = "t10k" if split == "test" else "train"
    fix = (
        f"delete the file and call load_images({name!r}, download=True) to fetch it again, "
        "or copy it again from the data set's home page"
    )
    images_path = _idx_file(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_file(folder, f"{prefix}-labels-idx1-ubyte")
    images = _read_idx(images_path, "images", fix)
    labels = _read_idx(labels_path, "labels", fix)
    if len(labels) != len(images):
        raise _damaged(
            labels_path,
            f"it holds {len(labels)} labels for the {len(images)} images of {images_path.name}",
            fix,
        )
    if len(labels) and int(labels.max()) >= MNIST_CLASSES:
        raise _damaged(
            labels_path, f"labels must lie in 0..{MNIST_CLASSES - 1}, got {int(labels.max())}", fix
        )
    if split != "test":
        held_out = validation_indices(labels.long(), min(VALIDATION_SIZE, len(labels) // 6))
        keep = torch.zeros(len(labels), dtype=torch.bool)
        keep[held_out] = True
        keep = keep if split == "val" else ~keep
        images, labels = images[keep], labels[keep]
    images = images.unsqueeze(1).to(device=device, dtype=torch.float32) / 255.0
    return ImageData(images, labels.to(device=device, dtype=torch.long), binarize=binarize)
