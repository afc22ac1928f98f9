"""The train / val / test splits: fixed, disjoint, stratified; and no choice a run makes can
see the test split (its labels poisoned, every selection and validation number stays)."""

import hashlib
import json
import shutil

import pytest
import torch
from conftest import REPO

from vaebook.cli import main
from vaebook.data import (
    SPRITES_TEST_CHARACTERS,
    VALIDATION_SIZE,
    ImageData,
    hash_order,
    load_images,
    load_sprites,
    sprites_characters,
    validation_indices,
)
from vaebook.data.images import _read_idx
from vaebook.data.root import data_root
from vaebook.experiments import cyclevae, infocatvae


def test_hash_order_is_a_fixed_permutation():
    # pinned: BLAKE2b gives these on every machine, so the splits are the same everywhere
    assert hash_order(10).tolist() == [3, 7, 9, 8, 5, 4, 2, 6, 0, 1]
    assert sorted(hash_order(1000).tolist()) == list(range(1000))
    assert hash_order(1000, seed=1).tolist() != hash_order(1000).tolist()


def test_validation_indices_are_stratified_and_exact():
    labels = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)
    picked = validation_indices(labels, 101)
    assert len(picked) == 101 and len(picked.unique()) == 101
    assert torch.bincount(labels[picked]).tolist() == [51, 30, 20]  # 50.5 rounds up: exact sum
    assert picked.tolist() == sorted(picked.tolist())
    assert torch.equal(picked, validation_indices(labels, 101))


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_image_splits_are_disjoint_fixed_and_cover_the_official_sets(name, folder):
    splits = {split: load_images(name, split, download=False) for split in ("train", "val", "test")}
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 50_000,
        "val": 10_000,
        "test": 10_000,
    }
    raw = data_root() / folder / "raw"
    official = _read_idx(raw / "train-images-idx3-ubyte", "images", "")
    labels = _read_idx(raw / "train-labels-idx1-ubyte", "labels", "").long()
    val = validation_indices(labels, VALIDATION_SIZE)
    train = torch.ones(len(labels), dtype=torch.bool)
    train[val] = False
    # val and train are the official training images at complementary indices, in file order
    for split, index in (("val", val), ("train", train)):
        assert torch.equal(splits[split].labels, labels[index])
        assert torch.equal((splits[split].images[:, 0] * 255).round().byte(), official[index])
    shares = torch.bincount(labels[val]).double() / torch.bincount(labels).double()
    assert shares.min() > 1 / 6 - 1e-3 and shares.max() < 1 / 6 + 1e-3  # stratified
    digest = hashlib.sha256(val.numpy().astype("<i8").tobytes()).hexdigest()[:16]
    assert digest == {"mnist": "91ce460375b8d1ef", "fashion-mnist": "46c7181b654708f5"}[name]


def test_sprites_splits_are_disjoint_and_the_test_characters_are_the_last_296():
    ids = {split: sprites_characters(1296, split) for split in ("train", "val", "test")}
    assert {k: len(v) for k, v in ids.items()} == {"train": 900, "val": 100, "test": 296}
    assert sorted(torch.cat(list(ids.values())).tolist()) == list(range(1296))
    assert ids["test"].tolist() == list(range(1296 - SPRITES_TEST_CHARACTERS, 1296))
    val = load_sprites("val", download=False)
    assert torch.equal(val.character.unique(), ids["val"])
    assert len(val) == 100 * 72


def _poisoned(load_images_function):
    """load_images with the test split's labels scrambled (a fixed permutation)."""

    def load(name, split="train", *args, **kwargs):
        data = load_images_function(name, split, *args, **kwargs)
        if split != "test":
            return data
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))
        return ImageData(data.images, data.labels[order])

    return load


def test_no_infocatvae_choice_sees_the_test_split(tmp_path, monkeypatch):
    shutil.copy(REPO / "checkpoints" / "classifier-mnist.pt", tmp_path / "classifier-mnist.pt")

    def run(folder):
        config = infocatvae.InfoCatExperiment(
            epochs=1, seeds=(0,), restarts=3, train_size=400, samples_per_category=5,
            device="cpu", progress=False, results_dir=str(folder), checkpoint_dir=str(tmp_path),
            save_checkpoint=False,
        )  # fmt: skip
        return infocatvae.run(config)

    honest = run(tmp_path / "honest")
    monkeypatch.setattr(infocatvae, "load_images", _poisoned(infocatvae.load_images))
    poisoned = run(tmp_path / "poisoned")
    assert honest["selected_on"].startswith("val") and poisoned["val_metrics"]
    assert poisoned["runs"][0]["restart"] == honest["runs"][0]["restart"]
    assert poisoned["val_metrics"] == honest["val_metrics"]
    pairs = zip(honest["runs"][0]["restarts"], poisoned["runs"][0]["restarts"], strict=True)
    for before, after in pairs:
        assert after["val_objective"] == before["val_objective"] and after["val"] == before["val"]
    # the poison reached the test numbers: only they moved
    assert poisoned["metrics"] != honest["metrics"]


def test_no_cyclevae_number_but_the_test_ones_sees_the_test_split(tmp_path, monkeypatch):
    def run(folder):
        main(
            [
                "reproduce", "cyclevae", "--dims", "4", "--epochs", "1", "--train-size", "128",
                "--test-size", "64", "--device", "cpu", "--no-progress", "--set",
                "probe_epochs=1", "--set", "seeds=0", "--set", "norm_modes=per-image",
                "--results-dir", str(folder), "--checkpoint-dir", str(folder),
            ]
        )  # fmt: skip
        return json.loads((folder / "cyclevae-mnist-4.json").read_text())

    honest = run(tmp_path / "honest")
    monkeypatch.setattr(cyclevae, "load_images", _poisoned(cyclevae.load_images))
    poisoned = run(tmp_path / "poisoned")
    assert poisoned["val_metrics"] == honest["val_metrics"]
    assert poisoned["metrics"] != honest["metrics"]
