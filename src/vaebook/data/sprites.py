"""LPC Sprites (Li & Mandt 2018's files), split by character, with every factor of every
image (SpritesData, load_sprites).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from vaebook.checks import check_label_matrix, check_labels
from vaebook.data.images import SPLITS, ImageData, hash_order
from vaebook.data.root import MissingDataError, _damaged, _missing_message, data_root

SPRITES_ACTIONS = ("walk", "spellcard", "slash")
SPRITES_TEST_CHARACTERS = 296  # the last 296 of the 1,296 characters: no identity in two splits
SPRITES_VAL_SHARE = 10  # one in ten of the other characters (100 of 1,000) is the validation split
SPRITES_KEYS = ("frames", "attributes", "attribute_names", "directions")
SPRITES_SOURCE = (
    "the scripts of Li & Mandt, 'Disentangled Sequential Autoencoder' (ICML 2018), one npz per "
    "action with the keys frames (1296, 3, 8, 64, 64, 3) uint8, attributes, attribute_names and "
    "directions"
)
# what a zip archive that numpy cannot read raises: not a zip, truncated, bad CRC or deflate data,
# or no npz at all (numpy then refuses to unpickle it: ValueError)
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


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

    def __post_init__(self):
        super().__post_init__()  # images, labels, one row per image in every field
        n = len(self.images)
        for name in ("action", "direction", "frame", "character"):
            if getattr(self, name) is not None:
                check_labels(getattr(self, name), n, name)
        if self.attributes is not None:
            columns = len(self.attribute_names) or None
            check_label_matrix(self.attributes, n, "attributes", columns)

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
    split: str = "train",
    root: str | Path | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
) -> SpritesData:
    """LPC Sprites (Li & Mandt 2018's files) split by character: 'test' (the last 296
    characters, 21,312 images), 'val' (100 of the first 1,000, fixed by ``sprites_characters``,
    7,200 images) and 'train' (the other 900, 64,800 images), each character in 3 actions x
    3 directions x 8 frames, ordered character, action, direction, frame.

    Returns SpritesData with images (N, 3, 64, 64) uint8 (floats in [0, 1] per batch) labelled
    by character. Raises MissingDataError naming the files and the fix when they are absent,
    DamagedDataError naming the file when one cannot be read, lacks a key, has arrays of the
    wrong shape or too few characters for the split (more than SPRITES_TEST_CHARACTERS).
    With ``download`` (the default, like torchvision's), absent files are fetched from the
    book's release into ``root/sprites/`` with a SHA-256 check (``vaebook.assets``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root) if root is not None else data_root()
    folder = root / "sprites"
    files = tuple(f"sprites_{action}.npz" for action in SPRITES_ACTIONS)
    failed = ""
    if download and not all((folder / f).exists() for f in files):
        failed = _download_sprites(folder)
    if not all((folder / f).exists() for f in files):
        source = (
            "or call with download=True (the files come with each release of the book), or "
            f"generate them with {SPRITES_SOURCE}"
        )
        raise MissingDataError(_missing_message("sprites", folder, root, files, source) + failed)
    archives = [_read_sprites_archive(folder / name, split) for name in files]
    first_archive = archives[0]
    for name, archive in zip(files[1:], archives[1:], strict=True):
        mismatch = ""
        if archive.characters != first_archive.characters:
            mismatch = (
                f"it holds {archive.characters} characters, {files[0]} holds "
                f"{first_archive.characters}; the three files must hold the same characters"
            )
        elif archive.frames.shape[1:] != first_archive.frames.shape[1:]:
            mismatch = (
                f"its frames per character are {tuple(archive.frames.shape[1:])}, those of "
                f"{files[0]} {tuple(first_archive.frames.shape[1:])}"
            )
        if mismatch:
            raise _damaged(folder / name, mismatch, f"generate or copy {name} again")
    frames = [archive.frames for archive in archives]
    n = first_archive.characters
    attributes = archives[-1].attributes
    attribute_names, direction_names = archives[-1].attribute_names, archives[-1].direction_names
    # (characters, actions, directions, frames, H, W, RGB) -> (N, RGB, H, W)
    stacked = torch.stack(frames, dim=1)
    factor_shape = stacked.shape[:4]
    images = stacked.reshape(-1, *stacked.shape[4:]).permute(0, 3, 1, 2).contiguous()
    ids = sprites_characters(n, split)
    grid = torch.meshgrid(*(torch.arange(size) for size in factor_shape), indexing="ij")
    character, action, direction, frame = (g.reshape(-1) for g in grid)
    return SpritesData(
        images=images.to(device),
        labels=ids[character].to(device),
        attributes=attributes[character].to(device),
        action=action.to(device),
        direction=direction.to(device),
        frame=frame.to(device),
        character=ids[character].to(device),
        attribute_names=attribute_names,
        direction_names=direction_names,
    )


def sprites_characters(characters: int, split: str) -> Tensor:
    """The ids (sorted) of a split's characters in a file of ``characters``: 'test' the last
    ``SPRITES_TEST_CHARACTERS``, 'val' one in ``SPRITES_VAL_SHARE`` of the others (those first in
    ``hash_order``: the same on every machine), 'train' the rest."""
    if split == "test":
        return torch.arange(characters - SPRITES_TEST_CHARACTERS, characters)
    others = characters - SPRITES_TEST_CHARACTERS
    val = torch.zeros(others, dtype=torch.bool)
    val[hash_order(others)[: others // SPRITES_VAL_SHARE]] = True
    return (val if split == "val" else ~val).nonzero().flatten()


class _SpritesArchive(NamedTuple):
    frames: Tensor  # the split's characters: (characters, directions, frames, H, W, RGB) uint8
    attributes: Tensor  # (characters, A) long
    attribute_names: tuple[str, ...]
    direction_names: tuple[str, ...]
    characters: int  # in the whole file, both splits


def _download_sprites(folder: Path) -> str:
    """Fetch the three archives and their licence from the release; returns "" or, when that
    failed (offline), why, for the caller's MissingDataError."""
    from vaebook import assets  # here: assets imports this package

    try:
        for name in assets.RELEASE_FILES:
            assets.download(name, folder / Path(name).name)
    except assets.AssetError as error:
        return f"\nDownloading them failed: {error}"
    return ""


def _read_sprites_archive(path: Path, split: str) -> _SpritesArchive:
    """One action's npz, the split's part of it; DamagedDataError names the file and what is
    wrong with it."""
    fix = (
        f"generate or copy {path.name} again ({SPRITES_SOURCE}); if it was copied, delete it "
        "and copy it again"
    )
    try:
        archive = np.load(path)
    except _UNREADABLE as error:
        raise _damaged(path, f"it is not a readable npz archive ({error})", fix) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _damaged(path, f"it holds one array, not an npz archive of {SPRITES_KEYS}", fix)
    with archive:
        missing = [key for key in SPRITES_KEYS if key not in archive.files]
        if missing:
            raise _damaged(path, f"it lacks the key(s) {missing} (it has {archive.files})", fix)
        try:
            attributes = archive["attributes"]
            names = archive["attribute_names"]
            directions = archive["directions"]
        except _UNREADABLE as error:
            raise _damaged(path, f"an array cannot be read ({error})", fix) from error
        if (
            attributes.ndim != 2
            or attributes.dtype.kind not in "ui"
            or names.shape != (attributes.shape[1],)
        ):
            raise _damaged(
                path,
                f"attributes must be (characters, A) integers with A attribute_names, got "
                f"{attributes.shape} {attributes.dtype} and {names.shape} names",
                fix,
            )
        n = len(attributes)
        if n <= SPRITES_TEST_CHARACTERS:
            raise _damaged(
                path,
                f"it holds {n} characters, and the split by character needs more than "
                f"{SPRITES_TEST_CHARACTERS} (the last {SPRITES_TEST_CHARACTERS} are the test "
                "split, the others the training split; the published files hold 1,296)",
                fix,
            )
        characters = sprites_characters(n, split).numpy()
        if len(characters) == 0:
            raise _damaged(
                path,
                f"it holds {n} characters, too few for a {split!r} split (one in "
                f"{SPRITES_VAL_SHARE} of those before the last {SPRITES_TEST_CHARACTERS})",
                fix,
            )
        try:
            frames = archive["frames"]
        except _UNREADABLE as error:
            raise _damaged(path, f"its frames cannot be read ({error})", fix) from error
        if (
            frames.ndim != 6
            or directions.ndim != 1
            or frames.shape[0] != n
            or frames.shape[1] != len(directions)
            or frames.shape[-1] != 3
            or frames.dtype != np.uint8
        ):
            raise _damaged(
                path,
                f"frames must be ({n} characters, {len(directions)} directions, frames, H, W, "
                f"3) uint8, got {frames.shape} {frames.dtype}",
                fix,
            )
        return _SpritesArchive(
            torch.from_numpy(frames[characters]),
            torch.from_numpy(attributes[characters].astype(np.int64)),
            tuple(str(a) for a in names),
            tuple(str(d) for d in directions),
            n,
        )
