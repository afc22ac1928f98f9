import numpy as np
import pytest
import torch

from vaebook.data import (
    SPRITES_ACTIONS,
    ImageData,
    MissingDataError,
    SpritesData,
    data_root,
    load_sprites,
)

needs_sprites = pytest.mark.skipif(
    not (data_root() / "sprites" / "sprites_walk.npz").exists(),
    reason="Sprites files not under $VAEBOOK_DATA/sprites (see the data README)",
)


@pytest.fixture(scope="module")
def sprites_test() -> SpritesData:
    return load_sprites("test")


@needs_sprites
def test_test_split_holds_the_last_296_characters_in_every_pose(sprites_test):
    assert sprites_test.images.shape == (296 * 72, 3, 64, 64)
    assert sprites_test.images.dtype == torch.uint8  # 1 byte a pixel; float per batch
    assert sprites_test.labels.unique().tolist() == list(range(1000, 1296))
    assert torch.equal(torch.bincount(sprites_test.labels)[1000:], torch.full((296,), 72))
    # every character appears in all 3 actions x 3 directions x 8 frames
    pose = (sprites_test.action * 3 + sprites_test.direction) * 8 + sprites_test.frame
    assert torch.equal(pose.view(296, 72), torch.arange(72).expand(296, 72))
    assert sprites_test.attribute_names == ("body", "bottomwear", "topwear", "hair")
    assert sprites_test.attributes.shape == (len(sprites_test), 4)
    assert sprites_test.attributes.min() >= 0 and sprites_test.attributes.max() <= 5


@needs_sprites
def test_images_and_attributes_match_the_files(sprites_test):
    character, action, direction, frame = 1010, 2, 1, 5
    with np.load(data_root() / "sprites" / f"sprites_{SPRITES_ACTIONS[action]}.npz") as archive:
        expected = torch.from_numpy(archive["frames"][character, direction, frame])
        attributes = torch.from_numpy(archive["attributes"][character].astype(np.int64))
    index = (((character - 1000) * 3 + action) * 3 + direction) * 8 + frame
    x, label = sprites_test.batch(torch.tensor([index]))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x[0], expected.permute(2, 0, 1).float() / 255)
    assert label.item() == character
    assert torch.equal(sprites_test.attributes[index], attributes)
    assert sprites_test.factor("hair")[index] == attributes[3]


@needs_sprites
def test_domains_and_relabelling_keep_every_factor(sprites_test):
    walking_left = sprites_test.select((sprites_test.action == 0) & (sprites_test.direction == 1))
    assert isinstance(walking_left, SpritesData) and len(walking_left) == 296 * 8
    assert walking_left.attributes.shape == (296 * 8, 4) and walking_left.frame.max() == 7
    by_hair = walking_left.relabelled("hair")
    assert torch.equal(by_hair.labels, walking_left.attributes[:, 3])
    assert torch.equal(by_hair.character, walking_left.labels)
    small = sprites_test.subset(10, torch.Generator().manual_seed(0))
    assert len(small) == 10 and len(small.action) == 10
    with pytest.raises(ValueError, match="choose one of"):
        sprites_test.factor("hat")


def test_missing_sprites_name_the_files_and_the_fix(tmp_path):
    with pytest.raises(MissingDataError) as error:
        load_sprites("train", root=tmp_path, download=False)
    message = str(error.value)
    assert "sprites_walk.npz" in message and "VAEBOOK_DATA" in message and "Li & Mandt" in message
    with pytest.raises(ValueError, match="one of \\('train', 'val', 'test'\\)"):
        load_sprites("valid")


def test_uint8_images_become_floats_per_batch():
    pixels = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    data = ImageData(pixels, torch.arange(6))
    x, _ = data.batch(torch.tensor([1, 4]))
    torch.testing.assert_close(x, pixels[[1, 4]].float() / 255)
    assert set(data.binarized().images.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="one row per image"):
        SpritesData(pixels, action=torch.zeros(5, dtype=torch.long))
