"""Faces with named discrete attributes (AttributeData): CelebA and Google's Cartoon Set,
read from their image and attribute files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vaebook.checks import check_label_matrix
from vaebook.data.images import ImageData
from vaebook.data.root import (
    DATA_ENV,
    DamagedDataError,
    MissingDataError,
    _missing_message,
    data_root,
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

    def __post_init__(self):
        super().__post_init__()  # images, labels, one row per image in every field
        if self.attributes is not None:
            columns = len(self.attribute_names) or len(self.attribute_sizes) or None
            check_label_matrix(
                self.attributes, len(self.images), "attributes", columns, self.attribute_sizes
            )

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
        raise DamagedDataError(
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


def _celeba_damaged(path: Path, line: int, expected: str, got: str) -> DamagedDataError:
    return DamagedDataError(
        f"{path}, line {line}: expected {expected}, got {got!r}; the file is damaged: copy "
        f"{path.name} again from the CelebA release (or point {DATA_ENV} at the right data root)"
    )


def _text_lines(path: Path, what: str) -> list[str]:
    """The lines of a text file; a file that is not text (a binary or garbled copy) raises
    DamagedDataError naming it."""
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError as error:
        raise DamagedDataError(
            f"{path} is not a text file ({error}); the file is damaged: copy {path.name} again "
            f"from {what}"
        ) from error


def _read_celeba_attributes(path: Path) -> tuple[list[str], tuple[str, ...], Tensor]:
    """list_attr_celeba.txt: the image count, the attribute names, then one line per image
    'NNNNNN.jpg' and one -1 or 1 per attribute. Returns (file names, names, (N, A) 0/1)."""
    lines = _text_lines(path, "the CelebA release")
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


def _read_celeba_partition(path: Path) -> dict[str, str]:
    """list_eval_partition.txt: one line 'NNNNNN.jpg 0' per image, 0 train, 1 valid, 2 test.
    Returns {file name: code}."""
    partition = {}
    codes = [str(code) for code in CELEBA_SPLITS.values()]
    for number, line in enumerate(_text_lines(path, "the CelebA release"), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2 or words[1] not in codes:
            raise _celeba_damaged(path, number, f"a file name and one of {codes}", line)
        partition[words[0]] = words[1]
    return partition


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
        partition = _read_celeba_partition(partition_path)
        missing = [f for f in files if f not in partition]
        if missing:
            raise DamagedDataError(
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
    lines = _text_lines(path, "the Cartoon Set archive")
    for number, row in enumerate(csv.reader(lines, skipinitialspace=True), start=1):
        if not row:
            continue
        try:
            name, value, size = row[0], int(row[1]), int(row[2])
            if len(row) != 3 or not 0 <= value < size:
                raise ValueError
        except (ValueError, IndexError):
            raise DamagedDataError(
                f"{path}, line {number}: expected '\"attribute\", variant, variants' with "
                f"0 <= variant < variants, got {', '.join(row)!r}; copy the file again"
            ) from None
        names.append(name)
        values.append(value)
        sizes.append(size)
    if not names:
        raise DamagedDataError(
            f"{path} lists no attributes (expected lines '\"attribute\", variant, variants'); "
            "the file is empty or damaged: copy the file again"
        )
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
