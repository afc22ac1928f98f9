"""FA-VAE's Sprites data: the split by character, and each experiment's rows as views of the
factor-analysis layer: attributes and pose as label views, left and right images of a
character, and the two action domains paired through a shared label."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import NamedTuple

import torch
from torch import Tensor

from vaebook import fa
from vaebook.data import SPLITS, SPRITES_TEST_CHARACTERS, SpritesData, load_sprites
from vaebook.experiments.classifier import SPRITES_VALUES
from vaebook.experiments.favae.config import ACTIONS, FAVAEExperiment
from vaebook.models import FAVAE, FAVAEData

LEFT, RIGHT = 1, 2  # direction indices of SpritesData (front, left, right)


class FAVAESplit(NamedTuple):
    """FA-VAE's Sprites split by character: train, val (None when no character is held out for
    validation) and test, each SpritesData with images (N, 3, 64, 64) at the kept frames."""

    train: SpritesData
    val: SpritesData | None
    test: SpritesData


def sprites_split(
    train_characters: int | None,
    test_characters: int | None,
    frames: tuple[int, ...],
    seed: int = 0,
    val_characters: int = 0,
) -> FAVAESplit:
    """Train, val and test images, split by character at random (seeded), at the given frames.

    The characters enumerate the 6^4 attribute combinations in order, so the loader's split (the
    last 296 as test) leaves body 5 out of training; a random split keeps every value in each.
    In a seeded order of all 1,296 characters, the first 296 are the test set (or the first
    `test_characters` of them), the next `val_characters` the validation set and the rest the
    training set (or the first `train_characters` of it), so no identity is in two sets; with
    val_characters 0 the training set holds the other 1,000 and val is None.
    """
    if val_characters < 0:
        raise ValueError(
            f"val_characters must be >= 0 (0: no validation set), got {val_characters}"
        )
    splits = [load_sprites(split) for split in SPLITS]  # the pool is every character of the file
    characters = sum(len(s.character.unique()) for s in splits)
    order = torch.randperm(characters, generator=torch.Generator().manual_seed(seed))
    held_out = SPRITES_TEST_CHARACTERS + val_characters
    if held_out >= characters:
        raise ValueError(
            f"val_characters={val_characters} and the {SPRITES_TEST_CHARACTERS} test characters "
            f"leave none of the {characters} for training; lower val_characters"
        )
    test_ids, val_ids = order[:SPRITES_TEST_CHARACTERS], order[SPRITES_TEST_CHARACTERS:held_out]
    return FAVAESplit(
        train=_characters(splits, order[held_out:][:train_characters], frames),
        val=_characters(splits, val_ids, frames) if val_characters else None,
        test=_characters(splits, test_ids[:test_characters], frames),
    )


def _characters(splits: list[SpritesData], ids: Tensor, frames: tuple[int, ...]) -> SpritesData:
    """The images of characters `ids` at `frames`, gathered from the loader's splits, ordered
    character, action, direction, frame as in the files."""
    parts = [
        s.select(torch.isin(s.character, ids) & torch.isin(s.frame, torch.tensor(frames)))
        for s in splits
    ]
    tensors = [f.name for f in fields(parts[0]) if isinstance(getattr(parts[0], f.name), Tensor)]
    gathered = replace(parts[0], **{f: torch.cat([getattr(p, f) for p in parts]) for f in tensors})
    # the loader's val characters lie among its train ones; the file's order keeps batches as before
    return gathered.select(torch.argsort(gathered.character, stable=True))


def label_view(labels: Tensor, n_classes: int, kind: str = "categorical") -> fa.View:
    """Labels (N,) in 0..n_classes-1 as a view of the layer: 'categorical', the paper's probit
    view, or 'real', their one-hot codes (N, n_classes) as a real view, whose Gaussian
    conditioning pins Z down where a few probit observations leave it near its prior mean."""
    labels = labels.cpu()
    if kind == "real":
        return fa.Real(torch.nn.functional.one_hot(labels, n_classes).float())
    return fa.Categorical(labels, n_classes=n_classes)


def attribute_views(
    attributes: Tensor, names: tuple[str, ...], kind: str = "categorical"
) -> dict[str, fa.View]:
    """One view per attribute (`label_view` of `kind`): attributes (N, A) -> {name: view}."""
    return {
        name: label_view(attributes[:, a], SPRITES_VALUES, kind) for a, name in enumerate(names)
    }


def label_inputs(model: FAVAE, labels: dict[str, Tensor]) -> dict[str, fa.View]:
    """Labels {view: (B,)} of new rows as `FAVAE.predict` inputs, each a view of the kind the
    model's layer was fitted with (categorical, or one-hot real)."""
    inputs = {}
    for name, values in labels.items():
        template = model.fa.views[name]
        if isinstance(template, fa.Real):
            inputs[name] = label_view(values, template.data.shape[1], "real")
        else:
            inputs[name] = label_view(values, template.n_classes)
    return inputs


POSE_FACTORS = ("action", "direction", "frame")


def pose_labels(data: SpritesData, frames: tuple[int, ...]) -> Tensor:
    """Each image's pose (N, 3): action, direction and the index of its frame in `frames`."""
    frame_index = torch.full((8,), -1, dtype=torch.long)
    frame_index[list(frames)] = torch.arange(len(frames))
    return torch.stack([data.action, data.direction, frame_index[data.frame]], 1)


def pose_views(
    data: SpritesData, frames: tuple[int, ...], kind: str = "categorical"
) -> dict[str, fa.View]:
    """One view (`label_view` of `kind`) per pose factor that takes more than one value in
    `frames`' images: {'action', 'direction', 'frame' (with several frames)} -> view."""
    sizes = (len(ACTIONS), len(data.direction_names), len(frames))
    poses = pose_labels(data, frames)
    return {
        name: label_view(poses[:, i], size, kind)
        for i, (name, size) in enumerate(zip(POSE_FACTORS, sizes, strict=True))
        if size > 1
    }


def condition_inputs(
    model: FAVAE, attributes: Tensor, names: tuple[str, ...], poses: Tensor | None = None
) -> dict[str, fa.View]:
    """`FAVAE.predict` inputs (`label_inputs`) that request attributes (B, A) and, if the
    model has pose views, the poses (B, 3) from `pose_labels`."""
    labels = {name: attributes[:, a] for a, name in enumerate(names)}
    if poses is not None:
        labels |= {
            name: poses[:, i] for i, name in enumerate(POSE_FACTORS) if name in model.fa.views
        }
    return label_inputs(model, labels)


def condition_data(config: FAVAEExperiment, train: SpritesData) -> FAVAEData:
    """The conditioning experiment's rows: the images, the four attributes as views of kind
    `config.label_views` and, with `config.pose_views`, the pose factors as views too."""
    side_views = attribute_views(train.attributes, train.attribute_names, config.label_views)
    if config.pose_views:
        side_views |= pose_views(train, config.frames, config.label_views)
    return FAVAEData({"image": train.images}, side_views)


def left_and_right(data: SpritesData) -> tuple[SpritesData, SpritesData]:
    """The left- and right-facing images of every (character, action, frame), row-aligned."""
    left, right = data.select(data.direction == LEFT), data.select(data.direction == RIGHT)
    for factor in ("character", "action", "frame"):
        if not torch.equal(left.factor(factor), right.factor(factor)):
            raise RuntimeError(f"left and right images are not aligned by {factor}")
    return left, right


def same_character_partners(character: Tensor, seed: int) -> Tensor:
    """(N,) for every row a random row of the same character: a permutation within each
    character, so that every image is used once."""
    generator = torch.Generator().manual_seed(seed)
    character = character.cpu().double()
    grouped = torch.argsort(character, stable=True)
    shuffled = torch.argsort(character + torch.rand(len(character), generator=generator))
    partners = torch.empty_like(grouped)
    partners[grouped] = shuffled  # rank i of the grouped order takes rank i of the shuffled one
    return partners


def action_images(data: SpritesData, action: str) -> SpritesData:
    return data.select(data.action == ACTIONS.index(action))


def same_label_partners(labels_a: Tensor, labels_b: Tensor, characters_a, characters_b, seed):
    """For every row of A, a random row of B with the same label and another character."""
    generator = torch.Generator().manual_seed(seed)
    partners = torch.empty(len(labels_a), dtype=torch.long)
    for i in range(len(labels_a)):
        pool = ((labels_b == labels_a[i]) & (characters_b != characters_a[i])).nonzero()[:, 0]
        if len(pool) == 0:
            raise ValueError(
                f"no domain-B image of another character has label {int(labels_a[i])}; "
                "use more train_characters"
            )
        partners[i] = pool[torch.randint(len(pool), (1,), generator=generator)]
    return partners
