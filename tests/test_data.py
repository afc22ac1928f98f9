import pytest
import torch

from vaebook.data import ImageData, MissingDataError, data_root, load_images


def test_data_root_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("VAEBOOK_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "vaebook" / "data"


def test_missing_data_names_the_variable_and_layout(tmp_path):
    with pytest.raises(MissingDataError) as error:
        load_images("mnist", root=tmp_path, download=False)
    message = str(error.value)
    assert (
        "VAEBOOK_DATA" in message
        and "MNIST/raw" in message
        and "train-images-idx3-ubyte" in message
    )


def test_unknown_dataset_and_split_are_refused():
    with pytest.raises(ValueError, match="fashion-mnist"):
        load_images("cifar")
    with pytest.raises(ValueError, match="one of \\('train', 'val', 'test'\\)"):
        load_images("mnist", split="valid")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_data_loads_as_tensors(name):
    test = load_images(name, "test", download=False)
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.float32
    assert 0 <= test.images.min() and test.images.max() <= 1
    assert test.labels.shape == (10_000,) and set(test.labels.unique().tolist()) == set(range(10))


def test_mnist_label_counts_match_the_published_files():
    test = load_images("mnist", "test", download=False)
    counts = torch.bincount(test.labels).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_image_data_batches_binarize_and_subset():
    data = ImageData(torch.rand(20, 1, 4, 4), torch.arange(20), binarize=True)
    x, y = data.batch(torch.tensor([3, 5]))
    assert set(x.unique().tolist()) <= {0.0, 1.0} and y.tolist() == [3, 5]
    fixed = data.binarized(seed=1)
    assert torch.equal(fixed.images, data.binarized(seed=1).images) and not fixed.binarize
    assert len(data.subset(7)) == 7 and len(data.subset(100)) == 20


def test_image_data_refuses_mismatched_labels_and_bad_values():
    with pytest.raises(ValueError, match="labels must have shape"):
        ImageData(torch.rand(5, 1, 4, 4), torch.arange(4))
    with pytest.raises(ValueError, match="images / 255"):
        ImageData(torch.rand(5, 1, 4, 4) * 255)
