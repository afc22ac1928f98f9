"""CelebA and Cartoon Set loaders on tiny files written here in the data sets' exact formats."""

import numpy as np
import pytest
import torch
from PIL import Image

from vaebook.data import DamagedDataError, MissingDataError, load_cartoonset, load_celeba

CELEBA_NAMES = ("5_o_Clock_Shadow", "Smiling", "Male")
CELEBA_ROWS = {"000001.jpg": (-1, 1, 1), "000002.jpg": (1, -1, -1), "000003.jpg": (-1, -1, 1)}
CELEBA_SPLIT = {"000001.jpg": 0, "000002.jpg": 0, "000003.jpg": 2}


def write_celeba(root, rows=CELEBA_ROWS, header=None):
    """<root>/celeba/ as torchvision lays it out: 178 x 218 aligned faces (here one colour
    each, red at the centre) and the two text files in their published format."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    for i, name in enumerate(rows):
        pixels = np.full((218, 178, 3), 40 * i, dtype=np.uint8)
        pixels[60:160, 40:140] = (255, 0, 0)  # inside the centred 148 x 148 crop
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)
    lines = [str(len(rows)) if header is None else header, " ".join(CELEBA_NAMES) + " "]
    # the release pads -1 and 1 to two characters: '-1  1  1'
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows.items()]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    split = [f"{name} {CELEBA_SPLIT[name]}" for name in rows]
    (folder / "list_eval_partition.txt").write_text("\n".join(split) + "\n")
    return folder


def test_celeba_reads_images_attributes_and_splits(tmp_path):
    write_celeba(tmp_path)
    everything = load_celeba("all", root=tmp_path)
    assert everything.images.shape == (3, 3, 64, 64) and everything.images.dtype == torch.uint8
    assert everything.attribute_names == CELEBA_NAMES
    assert everything.attribute_sizes == (2, 2, 2)
    expected = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 1]])
    assert torch.equal(everything.attributes, expected)
    assert torch.equal(everything.attribute("Male"), torch.tensor([1, 0, 1]))
    # the crop keeps the red square at the centre and the grey border around it
    centre = everything.images[0, :, 32, 32].int()
    assert centre[0] > 200 and centre[1] < 60
    train = load_celeba("train", root=tmp_path, size=32)
    assert train.images.shape == (2, 3, 32, 32)
    assert torch.equal(train.attributes, expected[:2])
    assert len(load_celeba("test", root=tmp_path)) == 1
    assert len(load_celeba("all", root=tmp_path, limit=2)) == 2
    x = everything.batch(torch.arange(3))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize(
    "rows, header, match",
    [
        ({**CELEBA_ROWS, "000003.jpg": (-1, 0, 1)}, None, r"line 5: expected a file name and 3"),
        ({**CELEBA_ROWS, "000003.jpg": (-1, 1)}, None, r"line 5: expected a file name and 3"),
        (CELEBA_ROWS, "7", r"line 1: expected 3 \(the image lines"),
        (CELEBA_ROWS, "many", r"line 1: expected the number of images"),
    ],
)
def test_celeba_refuses_a_damaged_attribute_file(tmp_path, rows, header, match):
    write_celeba(tmp_path, rows, header)
    with pytest.raises(ValueError, match=match + r".*copy list_attr_celeba.txt again"):
        load_celeba("all", root=tmp_path)


def test_celeba_missing_files_name_the_layout(tmp_path):
    with pytest.raises(MissingDataError, match=r"(?s)celeba.*img_align_celeba.*VAEBOOK_DATA"):
        load_celeba(root=tmp_path)
    folder = write_celeba(tmp_path)
    (folder / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(MissingDataError, match="000002.jpg; unpack img_align_celeba.zip"):
        load_celeba("all", root=tmp_path)
    (folder / "img_align_celeba" / "000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="000001.jpg is not a readable image"):
        load_celeba("train", root=tmp_path, limit=1)
    (folder / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(ValueError, match="no split for 2 images"):
        load_celeba("train", root=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_celeba("validation", root=tmp_path)


CARTOON = {
    "cs11502169665.png": [("eye_angle", 0, 3), ("hair", 29, 111), ("hair_color", 2, 10)],
    "cs10002165113.png": [("eye_angle", 2, 3), ("hair", 110, 111), ("hair_color", 9, 10)],
}


def write_cartoons(root, cartoons=CARTOON, folder="cartoonset10k"):
    """Cartoon Set as unpacked: RGBA pngs with a transparent background (here a blue face
    disc on 100 x 100 pixels, the release has 500 x 500) and one csv beside each."""
    directory = root / folder
    directory.mkdir(parents=True)
    for name, attributes in cartoons.items():
        pixels = np.zeros((100, 100, 4), dtype=np.uint8)  # fully transparent
        yy, xx = np.mgrid[:100, :100]
        pixels[(yy - 50) ** 2 + (xx - 50) ** 2 < 30**2] = (0, 0, 255, 255)
        Image.fromarray(pixels, mode="RGBA").save(directory / name)
        lines = [f'"{attribute}", {value}, {size}' for attribute, value, size in attributes]
        (directory / name).with_suffix(".csv").write_text("\n".join(lines) + "\n")
    return directory


def test_cartoonset_reads_images_and_attributes(tmp_path):
    write_cartoons(tmp_path)
    data = load_cartoonset(root=tmp_path)
    assert data.images.shape == (2, 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.attribute_names == ("eye_angle", "hair", "hair_color")
    assert data.attribute_sizes == (3, 111, 10)
    # files in name order: cs10002165113 first
    assert torch.equal(data.attributes, torch.tensor([[2, 110, 9], [0, 29, 2]]))
    assert data.images[0, :, 0, 0].tolist() == [255, 255, 255]  # transparency became white
    assert data.images[0, :, 32, 32].tolist() == [0, 0, 255]
    assert len(load_cartoonset(root=tmp_path, limit=1)) == 1


@pytest.mark.parametrize(
    "line, match",
    [
        ('"hair", 111, 111', r"line 2: expected .*0 <= variant < variants"),
        ('"hair", 29', r"line 2: expected"),
        ('"hair", blond, 111', r"line 2: expected"),
    ],
)
def test_cartoonset_refuses_a_damaged_csv(tmp_path, line, match):
    directory = write_cartoons(tmp_path)
    csv = directory / "cs10002165113.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], line, lines[2]]) + "\n")
    with pytest.raises(ValueError, match=match + r".*copy the file again"):
        load_cartoonset(root=tmp_path)


def test_cartoonset_refuses_inconsistent_or_missing_files(tmp_path):
    with pytest.raises(MissingDataError, match=r"(?s)Cartoon Set.*cartoonset10k.*google.github.io"):
        load_cartoonset(root=tmp_path)
    swapped = {name: attributes[::-1] for name, attributes in CARTOON.items()}
    directory = write_cartoons(tmp_path, {**CARTOON, "cs2.png": swapped["cs11502169665.png"]})
    with pytest.raises(ValueError, match="cs2.csv lists the attributes.*same order"):
        load_cartoonset(root=tmp_path)
    (directory / "cs2.png").unlink()
    (directory / "cs10002165113.csv").unlink()
    with pytest.raises(MissingDataError, match="cs10002165113.png has no attribute file"):
        load_cartoonset(root=tmp_path)


def test_damaged_celeba_files_name_the_file_and_the_fix(tmp_path):
    folder = write_celeba(tmp_path)
    (folder / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg\n000003.jpg 2\n")
    with pytest.raises(
        DamagedDataError, match=r"list_eval_partition.txt, line 2: expected a file name and one"
    ):
        load_celeba("train", root=tmp_path)
    (folder / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 7\n000003.jpg 2\n")
    with pytest.raises(DamagedDataError, match=r"line 2: .*got '000002.jpg 7'.*copy"):
        load_celeba("train", root=tmp_path)
    (folder / "list_attr_celeba.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe garbage")
    with pytest.raises(DamagedDataError, match=r"list_attr_celeba.txt is not a text file.*copy"):
        load_celeba("all", root=tmp_path)


def test_damaged_celeba_images_are_damaged_data(tmp_path):
    folder = write_celeba(tmp_path)
    jpeg = folder / "img_align_celeba" / "000002.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:200])  # truncated
    with pytest.raises(DamagedDataError, match=r"000002.jpg is not a readable image.*copy"):
        load_celeba("all", root=tmp_path)


def test_damaged_cartoon_files_name_the_file_and_the_fix(tmp_path):
    directory = write_cartoons(tmp_path)
    (directory / "cs10002165113.csv").write_text("\n")
    with pytest.raises(DamagedDataError, match=r"cs10002165113.csv lists no attributes.*copy"):
        load_cartoonset(root=tmp_path)
    (directory / "cs10002165113.csv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DamagedDataError, match=r"cs10002165113.csv is not a text file"):
        load_cartoonset(root=tmp_path)
    (directory / "cs10002165113.csv").write_text(
        '"eye_angle", 2, 3\n"hair", 110, 111\n"hair_color", 9, 10\n'
    )
    png = directory / "cs11502169665.png"
    png.write_bytes(png.read_bytes()[:60])  # truncated
    with pytest.raises(DamagedDataError, match=r"cs11502169665.png is not a readable image"):
        load_cartoonset(root=tmp_path)
