"""LPC Sprites (Li & Mandt 2018's files), split by character, with every factor of every
image (SpritesData, load_sprites).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vaebook.data.images import ImageData
from vaebook.data.root import MissingDataError, _missing_message, data_root

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
