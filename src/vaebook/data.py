"""Data: one data root, torchvision's folder layout, images held as tensors on the device.

The root is the environment variable ``VAEBOOK_DATA`` (default: ``~/.cache/vaebook/data``, or
under ``$XDG_CACHE_HOME``). MNIST lives in ``<root>/MNIST/raw/``, Fashion-MNIST in
``<root>/FashionMNIST/raw/``: the files torchvision downloads, so online users just run and
offline users point the variable at a folder that already holds them. Sprites lives in
``<root>/sprites/sprites_{walk,spellcard,slash}.npz``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
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


def as_float_images(x: Tensor) -> Tensor:
    """uint8 images 0..255 -> float in [0, 1]; float images pass through unchanged."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def random_affine(
    x: Tensor, pixels: float, degrees: float = 0.0, zoom: float = 0.0, shear: float = 0.0
) -> Tensor:
    """Each image moved by its own random translation of up to ``pixels`` in x and y, rotated by
    up to ``degrees`` either way, scaled by a factor in [1 - zoom, 1 + zoom] and slanted by a
    horizontal shear x -> x + k y with k in [-shear, shear] (bilinear, zeros shifted in):
    x (B, C, H, W) -> (B, C, H, W). Augmentations that keep the class of a digit or garment.
    Each move draws its numbers only when it is on, so turning one on leaves the others' draws."""
    b, _, h, w = x.shape
    if pixels < 0 or degrees < 0 or shear < 0 or not 0 <= zoom < 1:
        raise ValueError(
            "need pixels >= 0, degrees >= 0, shear >= 0 and 0 <= zoom < 1, "
            f"got {pixels}, {degrees}, {shear}, {zoom}"
        )
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size
    offsets = (torch.rand(b, 2, device=x.device, dtype=x.dtype) * 2 - 1) * pixels
    theta[:, 0, 2], theta[:, 1, 2] = offsets[:, 0] * 2 / w, offsets[:, 1] * 2 / h
    if degrees > 0 or zoom > 0:
        angle, scale = (torch.rand(2, b, device=x.device, dtype=x.dtype) * 2 - 1).unbind()
        angle, scale = angle * math.radians(degrees), 1 + scale * zoom
        # the grid maps output to input coordinates: the inverse of rotate-then-scale
        cos, sin = angle.cos() / scale, angle.sin() / scale
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    if shear > 0:
        # the handwriting slant: (input) = A [[1, k], [0, 1]] (output), k the shear
        k = (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * shear
        theta[:, :, 1] = theta[:, :, 1] + k.unsqueeze(1) * theta[:, :, 0]
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


def _ink_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Centre row (B,) and slant (B,) of the ink of x (B, C, H, W); values below 0 (an
    adversarial perturbation's) are no ink and weigh nothing."""
    _, _, h, w = x.shape
    ink = x.clamp_min(0).sum(1)  # (B, H, W)
    mass = ink.sum((1, 2)).clamp_min(1e-8)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    row = (ink * rows).sum((1, 2)) / mass
    col = (ink * cols).sum((1, 2)) / mass
    d_row, d_col = rows - row.view(-1, 1, 1), cols - col.view(-1, 1, 1)
    slope = (ink * d_row * d_col).sum((1, 2)) / (ink * d_row**2).sum((1, 2)).clamp_min(1e-8)
    return row, slope


def slant(x: Tensor) -> Tensor:
    """The slant of each image, the regression slope of column on row over its ink (pixel
    values as weights; positive leans right going down): x (B, C, H, W) >= 0 -> (B,)."""
    return _ink_moments(x)[1]


def deskew(x: Tensor) -> Tensor:
    """Each image sheared horizontally about its centre of mass so that its ``slant`` becomes
    zero (the classic MNIST deskewing): x (B, C, H, W) >= 0 -> (B, C, H, W). Blank images pass
    through unchanged."""
    b, _, h, w = x.shape
    row, slope = _ink_moments(x)
    # output (r, c) reads input (r, c + slope (r - row)); in affine_grid's [-1, 1] coordinates
    # one pixel is 2 / size, so the slope scales by h / w and row becomes (2 row + 1) / h - 1
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 1] = slope * h / w
    theta[:, 0, 2] = -slope * h / w * ((2 * row + 1) / h - 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


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


def _missing_message(
    name: str, folder: Path, root: Path, files: tuple[str, ...] = RAW_FILES, source: str = ""
) -> str:
    """What is missing, where it was looked for, and how to get it. Defaults: torchvision's
    layout (``folder/raw/`` with the IDX files) and its download."""
    if not source:
        folder, source = (
            folder / "raw",
            "or go online and call with download=True (torchvision fetches the files), or copy "
            "them from the data set's home page (MNIST: yann.lecun.com/exdb/mnist, "
            "Fashion-MNIST: github.com/zalandoresearch/fashion-mnist)",
        )
    layout = folder.relative_to(root)
    return (
        f"{name} not found under the data root {root}.\n"
        f"Expected the layout {folder}/ holding {', '.join(files)}"
        f"{' (or their .gz files)' if files == RAW_FILES else ''}.\n"
        f"Fix: set the environment variable {DATA_ENV} to a folder that has {layout}/, "
        f"{source}."
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


SPRITES_ACTIONS = ("walk", "spellcard", "slash")
SPRITES_TEST_CHARACTERS = 296  # the last 296 of the 1,296 characters: no identity in both splits


@dataclass
class SpritesData(ImageData):
    """LPC Sprites with every factor of every image; labels are the character (the identity).

    images: (N, 3, 64, 64) uint8, returned by ``batch`` as float in [0, 1]; labels: (N,)
    character id 0..1295, the same id in both splits' numbering. Per image also:
    attributes (N, 4) long 0..5 with columns ``attribute_names`` (body, bottomwear, topwear,
    hair); action (N,) an index into ``SPRITES_ACTIONS``; direction (N,) an index into
    ``direction_names`` (front, left, right); frame (N,) 0..7. ``relabelled(factor)`` puts any
    factor in ``labels``; ``select(mask)`` picks a domain, e.g. one action.
    """

    attributes: Tensor | None = None
    action: Tensor | None = None
    direction: Tensor | None = None
    frame: Tensor | None = None
    character: Tensor | None = None
    attribute_names: tuple[str, ...] = ()
    direction_names: tuple[str, ...] = ()

    def factor(self, name: str) -> Tensor:
        """One factor per image (N,): 'character', 'action', 'direction', 'frame' or an
        attribute name such as 'hair'."""
        if name in ("character", "action", "direction", "frame"):
            return getattr(self, name)
        if name in self.attribute_names:
            return self.attributes[:, self.attribute_names.index(name)]
        choices = ["character", "action", "direction", "frame", *self.attribute_names]
        raise ValueError(f"unknown Sprites factor {name!r}; choose one of {choices}")

    def relabelled(self, factor: str) -> SpritesData:
        """The same images with ``factor`` (see ``factor``) as labels."""
        return replace(self, labels=self.factor(factor))


def load_sprites(
    split: str = "train", root: str | Path | None = None, device: str | torch.device = "cpu"
) -> SpritesData:
    """LPC Sprites (Li & Mandt 2018's files) split by character: 'train' (first 1,000
    characters, 72,000 images) or 'test' (last 296, 21,312 images), each character in
    3 actions x 3 directions x 8 frames, ordered character, action, direction, frame.

    Returns SpritesData with images (N, 3, 64, 64) uint8 (floats in [0, 1] per batch) labelled
    by character. Raises MissingDataError naming the files and the fix when they are absent.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else data_root()
    folder = root / "sprites"
    files = tuple(f"sprites_{action}.npz" for action in SPRITES_ACTIONS)
    if not all((folder / f).exists() for f in files):
        source = (
            "or generate the files with the scripts of Li & Mandt, 'Disentangled Sequential "
            "Autoencoder' (ICML 2018), one npz per action with the keys frames (1296, 3, 8, 64, "
            "64, 3) uint8, attributes, attribute_names and directions"
        )
        raise MissingDataError(_missing_message("sprites", folder, root, files, source))
    frames, attributes = [], None
    for name in files:
        with np.load(folder / name) as archive:
            n = len(archive["attributes"])
            characters = slice(0, n - SPRITES_TEST_CHARACTERS)
            if split == "test":
                characters = slice(n - SPRITES_TEST_CHARACTERS, n)
            frames.append(torch.from_numpy(archive["frames"][characters]))
            attributes = torch.from_numpy(archive["attributes"][characters].astype(np.int64))
            attribute_names = tuple(str(a) for a in archive["attribute_names"])
            direction_names = tuple(str(d) for d in archive["directions"])
    # (characters, actions, directions, frames, H, W, RGB) -> (N, RGB, H, W)
    stacked = torch.stack(frames, dim=1)
    factor_shape = stacked.shape[:4]
    images = stacked.reshape(-1, *stacked.shape[4:]).permute(0, 3, 1, 2).contiguous()
    first = n - SPRITES_TEST_CHARACTERS if split == "test" else 0
    grid = torch.meshgrid(*(torch.arange(size) for size in factor_shape), indexing="ij")
    character, action, direction, frame = (g.reshape(-1) for g in grid)
    return SpritesData(
        images=images.to(device),
        labels=(character + first).to(device),
        attributes=attributes[character].to(device),
        action=action.to(device),
        direction=direction.to(device),
        frame=frame.to(device),
        character=(character + first).to(device),
        attribute_names=attribute_names,
        direction_names=direction_names,
    )


@dataclass
class AttributeData(ImageData):
    """Images with named discrete attributes: CelebA's 40 binary ones, Cartoon Set's 18.

    images: (N, 3, size, size) uint8 (float in [0, 1] per batch); attributes: (N, A) long,
    column a in 0..attribute_sizes[a] - 1, named attribute_names[a]; labels: None.
    """

    attributes: Tensor | None = None
    attribute_names: tuple[str, ...] = ()
    attribute_sizes: tuple[int, ...] = ()

    def attribute(self, name: str) -> Tensor:
        """One attribute per image (N,), e.g. 'Smiling' (CelebA) or 'hair_color' (Cartoon Set)."""
        if name not in self.attribute_names:
            raise ValueError(f"unknown attribute {name!r}; choose one of {self.attribute_names}")
        return self.attributes[:, self.attribute_names.index(name)]


def _read_image(path: Path, size: int, crop: float) -> Tensor:
    """An image file -> (3, size, size) uint8: RGB (transparent pixels over white), the centred
    square of side crop * (shorter side), resized with antialiasing."""
    from PIL import Image, UnidentifiedImageError  # torchvision's dependency; only loaders need it

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"{path} is not a readable image ({error}); copy the file again"
        ) from error
    image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    side = round(crop * min(image.size))
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def _image_stack(paths: list[Path], size: int, crop: float, device) -> Tensor:
    if not paths:
        raise ValueError("no images selected; check the split, limit and files")
    return torch.stack([_read_image(p, size, crop) for p in paths]).to(device)


CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}  # codes of list_eval_partition.txt
CELEBA_CROP = 148 / 178  # the usual centred 148 x 148 crop of the aligned 178 x 218 faces


def _celeba_damaged(path: Path, line: int, expected: str, got: str) -> ValueError:
    return ValueError(
        f"{path}, line {line}: expected {expected}, got {got!r}; the file is damaged: copy "
        f"{path.name} again from the CelebA release"
    )


def _read_celeba_attributes(path: Path) -> tuple[list[str], tuple[str, ...], Tensor]:
    """list_attr_celeba.txt: the image count, the attribute names, then one line per image
    'NNNNNN.jpg' and one -1 or 1 per attribute. Returns (file names, names, (N, A) 0/1)."""
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        got = lines[0] if lines else ""
        raise _celeba_damaged(path, 1, "the number of images", got)
    names = tuple(lines[1].split())
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        words = line.split()
        if not words:
            continue
        if len(words) != len(names) + 1 or any(w not in ("-1", "1") for w in words[1:]):
            raise _celeba_damaged(
                path, number, f"a file name and {len(names)} values of -1 or 1", line
            )
        files.append(words[0])
        rows.append([w == "1" for w in words[1:]])
    if len(files) != int(lines[0]):
        raise _celeba_damaged(path, 1, f"{len(files)} (the image lines that follow)", lines[0])
    return files, names, torch.tensor(rows, dtype=torch.long).view(len(files), len(names))


def load_celeba(
    split: str = "train",
    root: str | Path | None = None,
    size: int = 64,
    limit: int | None = None,
    device: str | torch.device = "cpu",
) -> AttributeData:
    """CelebA in torchvision's layout: <root>/celeba/img_align_celeba/*.jpg with
    list_attr_celeba.txt and list_eval_partition.txt beside the folder.

    split: 'train', 'valid', 'test' (the official partition) or 'all'; limit: the first n
    images of the split. Returns AttributeData: images (N, 3, size, size) uint8, the centred
    148 x 148 crop resized; attributes (N, 40), 1 where the file says 1, 0 where it says -1.
    Raises MissingDataError when files are absent, ValueError naming the line of a damaged one.
    """
    if split not in (*CELEBA_SPLITS, "all"):
        raise ValueError(f"split must be one of {[*CELEBA_SPLITS, 'all']}, got {split!r}")
    root = Path(root) if root is not None else data_root()
    folder = root / "celeba"
    needed = ["img_align_celeba", "list_attr_celeba.txt"]
    if split != "all":
        needed.append("list_eval_partition.txt")
    if not all((folder / f).exists() for f in needed):
        source = (
            "or download it with torchvision.datasets.CelebA(root, download=True) or from "
            "mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped images)"
        )
        raise MissingDataError(_missing_message("celeba", folder, root, tuple(needed), source))
    files, names, attributes = _read_celeba_attributes(folder / "list_attr_celeba.txt")
    keep = torch.ones(len(files), dtype=torch.bool)
    if split != "all":
        partition_path = folder / "list_eval_partition.txt"
        partition = dict(line.split() for line in partition_path.read_text().splitlines() if line)
        missing = [f for f in files if f not in partition]
        if missing:
            raise ValueError(
                f"{partition_path} has no split for {len(missing)} images, e.g. {missing[0]}; "
                "copy list_eval_partition.txt again from the CelebA release"
            )
        keep = torch.tensor([partition[f] == str(CELEBA_SPLITS[split]) for f in files])
    index = keep.nonzero()[:, 0][:limit]
    paths = [folder / "img_align_celeba" / files[i] for i in index]
    absent = [p.name for p in paths if not p.exists()]
    if absent:
        raise MissingDataError(
            f"{len(absent)} images listed in list_attr_celeba.txt are not in "
            f"{folder / 'img_align_celeba'}, e.g. {absent[0]}; unpack img_align_celeba.zip again"
        )
    return AttributeData(
        images=_image_stack(paths, size, CELEBA_CROP, device),
        attributes=attributes[index].to(device),
        attribute_names=names,
        attribute_sizes=(2,) * len(names),
    )


def _read_cartoon_attributes(path: Path) -> tuple[tuple[str, ...], list[int], tuple[int, ...]]:
    """One Cartoon Set csv: lines '"face_shape", 4, 7' (name, chosen variant, variants).
    Returns (names, variants chosen, numbers of variants)."""
    import csv  # only this loader reads csv files

    names, values, sizes = [], [], []
    with path.open(newline="") as file:
        for number, row in enumerate(csv.reader(file, skipinitialspace=True), start=1):
            if not row:
                continue
            try:
                name, value, size = row[0], int(row[1]), int(row[2])
                if len(row) != 3 or not 0 <= value < size:
                    raise ValueError
            except (ValueError, IndexError):
                raise ValueError(
                    f"{path}, line {number}: expected '\"attribute\", variant, variants' with "
                    f"0 <= variant < variants, got {', '.join(row)!r}; copy the file again"
                ) from None
            names.append(name)
            values.append(value)
            sizes.append(size)
    return tuple(names), values, tuple(sizes)


def load_cartoonset(
    folder: str = "cartoonset10k",
    root: str | Path | None = None,
    size: int = 64,
    limit: int | None = None,
    device: str | torch.device = "cpu",
) -> AttributeData:
    """Google's Cartoon Set as unpacked: <root>/<folder>/**/csX.png, each with csX.csv listing
    its attributes, one line '"attribute", variant, variants' each.

    limit: the first n images in file-name order. Returns AttributeData: images (N, 3, size,
    size) uint8, the transparent background made white; attributes (N, 18) the variants,
    attribute_sizes the number of variants of each. Raises MissingDataError when no image is
    there, ValueError naming the file of a damaged or inconsistent csv.
    """
    root = Path(root) if root is not None else data_root()
    directory = root / folder
    paths = sorted(directory.glob("**/*.png"))[:limit]
    if not paths:
        source = (
            "or download cartoonset10k.tgz (or cartoonset100k.tgz) from "
            "google.github.io/cartoonset and unpack it there"
        )
        raise MissingDataError(
            _missing_message("Cartoon Set", directory, root, ("csX.png", "csX.csv"), source)
        )
    names, sizes, rows = None, None, []
    for path in paths:
        csv_path = path.with_suffix(".csv")
        if not csv_path.exists():
            raise MissingDataError(f"{path} has no attribute file {csv_path.name}; copy it there")
        these_names, values, these_sizes = _read_cartoon_attributes(csv_path)
        if names is None:
            names, sizes = these_names, these_sizes
        elif (these_names, these_sizes) != (names, sizes):
            raise ValueError(
                f"{csv_path} lists the attributes {these_names} with variants {these_sizes}, "
                f"but {paths[0].with_suffix('.csv').name} lists {names} with {sizes}; every "
                "csv must list the same attributes in the same order"
            )
        rows.append(values)
    return AttributeData(
        images=_image_stack(paths, size, 1.0, device),
        attributes=torch.tensor(rows, dtype=torch.long, device=device),
        attribute_names=names,
        attribute_sizes=sizes,
    )
