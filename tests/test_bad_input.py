"""Bad input, as a user's own data brings it, is refused once, where it enters, with a message
that names the fix: images and labels (ImageData, PairedData, FAVAEData, AttributeData,
SpritesData), batches (check_images), configs, damaged MNIST and Sprites files. Damaged files
are written small in tmp_path in the data sets' exact formats; CelebA and Cartoon Set are in
test_faces.py, metrics in test_metrics.py."""

import ast
import gzip
import math
import re

import numpy as np
import pytest
import torch

from vaebook import fa
from vaebook.data import (
    SPRITES_ACTIONS,
    SPRITES_TEST_CHARACTERS,
    AttributeData,
    DamagedDataError,
    FAVAEData,
    ImageData,
    MissingDataError,
    PairedData,
    PairSampler,
    SpritesData,
    load_images,
    load_sprites,
)
from vaebook.models import VAE, VAEConfig
from vaebook.models.cyclevae import CycleVAEConfig, PairAdversarialConfig
from vaebook.models.favae import FAVAEConfig
from vaebook.models.infocatvae import GumbelCatVAEConfig, InfoCatVAEConfig

NAN, INF = math.nan, math.inf

# -- images entering the data classes ----------------------------------------------------------


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(5, 28, 28), r"\(N, H, W\): add it with images\.unsqueeze\(1\)"),
        (torch.rand(5, 64, 64, 3), r"channels last .*images\.permute\(0, 3, 1, 2\)"),
        (torch.rand(5, 28, 28, 1), r"images\.permute\(0, 3, 1, 2\)"),
        (torch.rand(5, 784), r"images\.view\(-1, 1, 28, 28\)"),
        (torch.rand(5, 3 * 64 * 64), r"images\.view\(-1, 3, 64, 64\)"),
        (torch.rand(2, 5, 1, 28, 28), r"must have shape \(N, C, H, W\)"),
        (torch.randint(0, 2, (5, 1, 4, 4), dtype=torch.uint8), r"pass images\.float\(\)"),
        (torch.rand(5, 1, 4, 4) * 255, r"images / 255"),
        (torch.rand(5, 1, 4, 4) * 2 - 1, r"\(images \+ 1\) / 2"),
        (torch.full((5, 1, 4, 4), NAN), r"NaN"),
        (torch.randint(0, 256, (5, 1, 4, 4)), r"images\.float\(\) / 255.*to\(torch\.uint8\)"),
        (torch.randint(0, 2, (5, 1, 4, 4)).bool(), r"use images\.float\(\) \(not"),
    ],
)
def test_image_data_refuses_bad_images_with_the_fix(images, match):
    with pytest.raises(ValueError, match=match):
        ImageData(images)


def test_binary_uint8_images_are_an_error_that_does_not_advise_dividing_by_255():
    binary = torch.randint(0, 2, (6, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(ValueError) as error:
        ImageData(binary)
    message = str(error.value)
    assert "only 0 and 1" in message and "near-blank" in message
    assert "pass images.float() (binary floats in [0, 1]), not images.float() / 255" in message
    # the fix it names works: binary floats
    assert torch.equal(ImageData(binary.float()).batch(torch.arange(6)), binary.float())


def test_valid_images_of_every_kind_are_accepted():
    ImageData(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8))  # 0..255
    ImageData(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))  # blank: not known to be binary
    ImageData(torch.rand(4, 1, 8, 8, dtype=torch.float64))
    ImageData(torch.randint(0, 2, (4, 1, 8, 8)).float())  # binary floats
    ImageData(torch.rand(0, 1, 8, 8))  # empty


def test_images_that_are_not_a_tensor_are_refused():
    with pytest.raises(TypeError, match=r"torch\.as_tensor\(images\)"):
        ImageData(np.zeros((4, 1, 8, 8), dtype=np.float32))


@pytest.mark.parametrize(
    "labels, match",
    [
        (torch.arange(5).float(), r"labels\.long\(\)"),
        (torch.arange(5, dtype=torch.int32), r"labels\.long\(\)"),
        (torch.arange(5)[:, None], r"labels\.squeeze\(1\)"),
        (torch.eye(5, dtype=torch.long), r"labels\.argmax\(1\)"),
        (torch.arange(5) - 1, r"labels must be >= 0.*torch\.unique"),
        (torch.arange(4), r"labels must have shape \(5,\)"),
        ([0, 1, 2, 3, 4], r"torch\.as_tensor\(labels\)\.long\(\)"),
    ],
)
def test_image_data_refuses_bad_labels_with_the_fix(labels, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ImageData(torch.rand(5, 1, 4, 4), labels)


def test_pairs_refuse_bad_labels_and_bare_tensors():
    with pytest.raises(ValueError, match=r"labels\.long\(\)"):
        PairSampler(torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels\.squeeze\(1\)"):
        PairSampler(torch.tensor([[0], [0], [1], [1]]))
    with pytest.raises(TypeError, match=r"PairedData\(ImageData\(images, labels\)\)"):
        PairedData(torch.rand(4, 1, 28, 28))


def test_favae_data_refuses_bad_images_with_the_fix():
    with pytest.raises(ValueError, match=r"images\['a'\]\.unsqueeze\(1\)"):
        FAVAEData({"a": torch.rand(4, 28, 28)})
    with pytest.raises(ValueError, match=r"images\['a'\]\.permute\(0, 3, 1, 2\)"):
        FAVAEData({"a": torch.rand(4, 16, 16, 3)})
    with pytest.raises(ValueError, match=r"pass images\['a'\]\.float\(\)"):
        FAVAEData({"a": torch.randint(0, 2, (4, 1, 8, 8), dtype=torch.uint8)})
    with pytest.raises(ValueError, match=r"images\['a'\] must lie in \[0, 1\]"):
        FAVAEData({"a": torch.rand(4, 1, 8, 8) * 255})
    with pytest.raises(ValueError, match=r"images=\{'image': x"):
        FAVAEData(torch.rand(4, 1, 8, 8))
    labels = fa.Categorical(torch.tensor([0, 1, 0, 1]))
    data = FAVAEData({"a": torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)}, {"y": labels})
    assert len(data) == 4


def test_attribute_and_sprites_factors_are_checked():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"attributes\[:, None\]"):
        AttributeData(images, attributes=torch.tensor([0, 1, 1, 0]), attribute_names=("Male",))
    with pytest.raises(ValueError, match=r"column 1 must lie in 0\.\.1"):
        AttributeData(images, attributes=torch.tensor([[0, 2]] * 4), attribute_sizes=(2, 2))
    with pytest.raises(ValueError, match=r"attributes\.long\(\)"):
        AttributeData(images, attributes=torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"action\.long\(\)"):
        SpritesData(images, action=torch.zeros(4))
    with pytest.raises(ValueError, match=r"frame must be >= 0"):
        SpritesData(images, frame=-torch.ones(4, dtype=torch.long))


# -- batches entering a model -----------------------------------------------------------------


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(2, 1, 64, 64), r"set image_shape=\(1, 64, 64\) in the model's config"),
        (torch.rand(2, 3, 28, 28), r"set image_shape=\(3, 28, 28\) in the model's config"),
        (torch.rand(2, 28, 28), r"no channel axis: add it with x\.unsqueeze\(1\)"),
        (torch.rand(2, 28, 28, 1), r"channels last: .*x\.permute\(0, 3, 1, 2\)"),
        (torch.rand(1, 28, 28), r"x\.unsqueeze\(0\)"),
        (torch.rand(2, 784), r"x\.view\(-1, \*\(1, 28, 28\)\)"),
        (torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8), r"use x\.float\(\) / 255"),
        (torch.randint(0, 2, (2, 1, 28, 28), dtype=torch.uint8), r"use x\.float\(\) \(not"),
    ],
)
def test_a_batch_of_the_wrong_kind_names_the_fix(x, match):
    with pytest.raises(ValueError, match=match):
        VAE().loss(x)


def test_binary_uint8_batch_message_does_not_advise_dividing_by_255():
    with pytest.raises(ValueError) as error:
        VAE().loss(torch.randint(0, 2, (2, 1, 28, 28), dtype=torch.uint8))
    assert "use x.float() (not x.float() / 255" in str(error.value)


# -- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, kwargs, field",
    [
        (VAEConfig, {"beta": NAN}, "beta"),
        (VAEConfig, {"beta": -1.0}, "beta"),
        (VAEConfig, {"beta": INF}, "beta"),
        (VAEConfig, {"latent_dim": 0}, "latent_dim"),
        (VAEConfig, {"latent_dim": 2.5}, "latent_dim"),
        (VAEConfig, {"hidden": (0,)}, "hidden"),
        (VAEConfig, {"hidden": ()}, "hidden"),
        (VAEConfig, {"hidden": (400, -1)}, "hidden"),
        (VAEConfig, {"arch": "cnn"}, "arch"),
        (VAEConfig, {"activation": "tanh"}, "activation"),
        (VAEConfig, {"likelihood": "poisson"}, "likelihood"),
        (VAEConfig, {"image_shape": (28, 28)}, "image_shape"),
        (VAEConfig, {"image_shape": (1, 0, 28)}, "image_shape"),
        (InfoCatVAEConfig, {"kl_weight": -1.0}, "kl_weight"),
        (InfoCatVAEConfig, {"kl_weight": NAN}, "kl_weight"),
        (InfoCatVAEConfig, {"entropy_weight": INF}, "entropy_weight"),
        (InfoCatVAEConfig, {"info_weight": -100.0}, "info_weight"),
        (InfoCatVAEConfig, {"info_samples": 0}, "info_samples"),
        (InfoCatVAEConfig, {"dropout": 1.0}, "dropout"),
        (InfoCatVAEConfig, {"dropout": -0.1}, "dropout"),
        (InfoCatVAEConfig, {"balance_weight": NAN}, "balance_weight"),
        (InfoCatVAEConfig, {"consistency_weight": -1.0}, "consistency_weight"),
        (InfoCatVAEConfig, {"consistency_shift": NAN}, "consistency_shift"),
        (InfoCatVAEConfig, {"consistency_degrees": -5.0}, "consistency_degrees"),
        (InfoCatVAEConfig, {"consistency_zoom": NAN}, "consistency_zoom"),
        (InfoCatVAEConfig, {"mode_scale": NAN}, "mode_scale"),
        (InfoCatVAEConfig, {"categories": 2.5}, "categories"),
        (InfoCatVAEConfig, {"delta": 0}, "delta"),
        (InfoCatVAEConfig, {"latent_dim": 20.0}, "latent_dim"),
        (InfoCatVAEConfig, {"hidden": (0,)}, "hidden"),
        (InfoCatVAEConfig, {"arch": "resnet"}, "arch"),
        (GumbelCatVAEConfig, {"temperature": NAN}, "temperature"),
        (GumbelCatVAEConfig, {"temperature": 0.0}, "temperature"),
        (CycleVAEConfig, {"reconstruction_weight": NAN}, "reconstruction_weight"),
        (CycleVAEConfig, {"kl_weight": -1.0}, "kl_weight"),
        (CycleVAEConfig, {"reverse_cycle_weight": NAN}, "reverse_cycle_weight"),
        (CycleVAEConfig, {"independence_weight": INF}, "independence_weight"),
        (CycleVAEConfig, {"independence_weight": -1.0}, "independence_weight"),
        (CycleVAEConfig, {"independence_start": 1.5}, "independence_start"),
        (CycleVAEConfig, {"unspecified_dim": 0}, "unspecified_dim"),
        (CycleVAEConfig, {"specified_dim": 0}, "specified_dim"),
        (CycleVAEConfig, {"norm_mode": "batch"}, "norm_mode"),
        (CycleVAEConfig, {"image_shape": (1, 28)}, "image_shape"),
        (PairAdversarialConfig, {"adversarial_weight": NAN}, "adversarial_weight"),
        (PairAdversarialConfig, {"adversarial_weight": -0.01}, "adversarial_weight"),
        (PairAdversarialConfig, {"method": "gan"}, "method"),
        (PairAdversarialConfig, {"kl_weight": NAN}, "kl_weight"),
        (FAVAEConfig, {"beta": NAN}, "beta"),
        (FAVAEConfig, {"latent_dim": 0}, "latent_dim"),
        (FAVAEConfig, {"hidden": (0,)}, "hidden"),
        (FAVAEConfig, {"factors": 0}, "factors"),
        (FAVAEConfig, {"likelihood": "poisson"}, "likelihood"),
        (FAVAEConfig, {"activation": "tanh"}, "activation"),
        (FAVAEConfig, {"arch": "transformer"}, "arch"),
        (FAVAEConfig, {"prior_from": "labels"}, "prior_from"),
        (FAVAEConfig, {"seed": -1}, "seed"),
        (FAVAEConfig, {"image_shape": (3, 64)}, "image_shape"),
    ],
)
def test_meaningless_config_values_are_refused_naming_the_field_and_a_valid_value(
    config, kwargs, field
):
    with pytest.raises(ValueError, match=rf"(?s){field}.*e\.g\. [^;]*{field}=") as error:
        config(**kwargs)
    # the valid value it names is accepted
    example = re.search(rf"{field}=(\([^)]*\)|'[^']*'|[-\w.]+)", str(error.value)).group(1)
    config(**{field: ast.literal_eval(example)})


def test_default_configs_are_valid():
    for config in (VAEConfig, InfoCatVAEConfig, GumbelCatVAEConfig, CycleVAEConfig):
        config()
    PairAdversarialConfig(method="szabo")
    FAVAEConfig(image_views=("left", "right"), likelihood="gaussian", arch="mlp")


# -- damaged MNIST files ------------------------------------------------------------------------


def idx_bytes(values: np.ndarray, magic: int) -> bytes:
    """An IDX file of unsigned bytes: the magic number, the sizes (big-endian), the values."""
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in values.shape)
    return header + values.astype(np.uint8).tobytes()


def write_mnist(root, images=None, labels=None, gz=False):
    """<root>/MNIST/raw/ with the four IDX files of a tiny MNIST (3 test, 4 train images)."""
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("t10k", 3), ("train", 4)):
        x = rng.integers(0, 256, (n, 28, 28)) if images is None or prefix == "train" else images
        y = np.arange(n) if labels is None or prefix == "train" else labels
        for name, data in (
            (f"{prefix}-images-idx3-ubyte", idx_bytes(x, 0x803)),
            (f"{prefix}-labels-idx1-ubyte", idx_bytes(y, 0x801)),
        ):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return folder


def test_tiny_mnist_files_load_unpacked_or_gzipped(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    folder = write_mnist(tmp_path)
    test = load_images("mnist", "test", download=False)
    assert test.images.shape == (3, 1, 28, 28) and test.labels.tolist() == [0, 1, 2]
    raw = np.frombuffer((folder / "t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    assert torch.equal((test.images * 255).round().byte().flatten(), torch.from_numpy(raw.copy()))
    gz_root = tmp_path / "gz"
    write_mnist(gz_root, gz=True)
    assert len(load_images("mnist", "train", root=gz_root, download=False)) == 4


def damage(path, how):
    raw = path.read_bytes()
    if how == "magic":
        path.write_bytes(b"\x00\x00\x08\x04" + raw[4:])
    elif how == "truncated":
        path.write_bytes(raw[:-1])
    elif how == "half":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "long":
        path.write_bytes(raw + b"\x00" * 7)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "html":
        path.write_bytes(b"<html><body>404 Not Found</body></html>")


@pytest.mark.parametrize(
    "file, how, match",
    [
        ("t10k-images-idx3-ubyte", "magic", r"magic number 0x00000803"),
        ("t10k-images-idx3-ubyte", "truncated", r"truncated: its header announces images"),
        ("t10k-images-idx3-ubyte", "long", r"too long"),
        ("t10k-images-idx3-ubyte", "empty", r"it holds 0 bytes, less than an IDX header"),
        ("t10k-labels-idx1-ubyte", "html", r"magic number 0x00000801"),
        ("t10k-labels-idx1-ubyte", "truncated", r"truncated"),
    ],
)
def test_damaged_mnist_files_name_the_file_and_the_fix(tmp_path, monkeypatch, file, how, match):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    folder = write_mnist(tmp_path)
    damage(folder / file, how)
    with pytest.raises(DamagedDataError, match=rf"(?s){file} is damaged.*{match}") as error:
        load_images("mnist", "test", download=False)
    message = str(error.value)
    assert not isinstance(error.value, MissingDataError) and "not found" not in message
    assert "delete the file and call load_images('mnist', download=True)" in message
    assert "VAEBOOK_DATA" in message


def test_inconsistent_mnist_files_are_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    write_mnist(tmp_path, labels=np.arange(2))
    with pytest.raises(DamagedDataError, match="holds 2 labels for the 3 images"):
        load_images("mnist", "test", download=False)
    write_mnist(tmp_path, labels=np.array([0, 1, 200]))
    with pytest.raises(DamagedDataError, match=r"labels must lie in 0\.\.9, got 200"):
        load_images("mnist", "test", download=False)
    write_mnist(tmp_path, images=np.zeros((3, 32, 32)))
    with pytest.raises(DamagedDataError, match="holds 32x32 images, expected 28x28"):
        load_images("mnist", "test", download=False)
    gz_root = tmp_path / "gz"
    folder = write_mnist(gz_root, gz=True)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(
        DamagedDataError, match=r"t10k-images-idx3-ubyte\.gz is damaged.*cannot be read"
    ):
        load_images("mnist", "test", root=gz_root, download=False)


# -- damaged Sprites files ----------------------------------------------------------------------


def sprites_arrays(characters=SPRITES_TEST_CHARACTERS + 1, side=2, seed=0):
    """One action's arrays in the published format, with tiny side x side frames."""
    rng = np.random.default_rng(seed)
    return {
        "frames": rng.integers(0, 256, (characters, 3, 8, side, side, 3), dtype=np.uint8),
        "attributes": rng.integers(0, 6, (characters, 4), dtype=np.uint8),
        "attribute_names": np.array(["body", "bottomwear", "topwear", "hair"]),
        "directions": np.array(["front", "left", "right"]),
    }


def write_sprites(root, **changes):
    """<root>/sprites/sprites_<action>.npz; changes: action -> the arrays of that file."""
    folder = root / "sprites"
    folder.mkdir(parents=True, exist_ok=True)
    for action in SPRITES_ACTIONS:
        np.savez(folder / f"sprites_{action}.npz", **changes.get(action, sprites_arrays()))
    return folder


def test_tiny_sprites_files_load(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    write_sprites(tmp_path)
    train, test = load_sprites("train"), load_sprites("test")
    assert len(train) == 72 and len(test) == SPRITES_TEST_CHARACTERS * 72
    assert test.images.shape[1:] == (3, 2, 2) and test.labels.min() == 1


def test_a_sprites_archive_without_a_key_names_the_file_and_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    arrays = sprites_arrays()
    del arrays["directions"]
    write_sprites(tmp_path, slash=arrays)
    with pytest.raises(DamagedDataError, match=r"sprites_slash\.npz is damaged.*\['directions'\]"):
        load_sprites("test")


@pytest.mark.parametrize("how", ["truncated", "half", "html", "empty"])
def test_an_unreadable_sprites_archive_names_the_file(tmp_path, monkeypatch, how):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    folder = write_sprites(tmp_path)
    damage(folder / "sprites_spellcard.npz", how)
    with pytest.raises(
        DamagedDataError,
        match=r"(?s)sprites_spellcard\.npz is damaged.*not a readable npz.*copy "
        r"sprites_spellcard\.npz again",
    ):
        load_sprites("train")


def test_a_sprites_archive_with_a_damaged_member_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    folder = write_sprites(tmp_path)
    path = folder / "sprites_walk.npz"
    raw = bytearray(path.read_bytes())
    raw[2000:2100] = bytes(100)  # inside the stored frames: the CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedDataError, match=r"sprites_walk\.npz is damaged.*cannot be read"):
        load_sprites("test")


def test_sprites_with_fewer_characters_than_the_test_split_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    write_sprites(tmp_path, walk=sprites_arrays(characters=5))
    for split in ("train", "test"):
        with pytest.raises(
            DamagedDataError, match=r"sprites_walk\.npz .*holds 5 characters.*more than 296"
        ):
            load_sprites(split)


def test_sprites_files_that_disagree_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    write_sprites(tmp_path, slash=sprites_arrays(characters=SPRITES_TEST_CHARACTERS + 2))
    with pytest.raises(
        DamagedDataError, match=r"sprites_slash\.npz .*298 characters, sprites_walk\.npz holds 297"
    ):
        load_sprites("test")
    wrong = sprites_arrays()
    wrong["frames"] = wrong["frames"].astype(np.float32)
    write_sprites(tmp_path, walk=wrong)
    with pytest.raises(DamagedDataError, match=r"frames must be \(297 characters, 3 directions"):
        load_sprites("test")
