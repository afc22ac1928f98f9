"""Data: one data root, torchvision's folder layout, images held as tensors on the device.

The root is the environment variable ``VAEBOOK_DATA`` (default: ``~/.cache/vaebook/data``, or
under ``$XDG_CACHE_HOME``). MNIST lives in ``<root>/MNIST/raw/``, Fashion-MNIST in
``<root>/FashionMNIST/raw/``: the files torchvision downloads, so online users just run and
offline users point the variable at a folder that already holds them. Sprites lives in
``<root>/sprites/sprites_{walk,spellcard,slash}.npz``, CelebA in ``<root>/celeba/`` and Cartoon
Set in ``<root>/cartoonset10k/``. The submodules: ``root`` (the data root, and the errors for a
missing data set and for a damaged file), ``images`` (ImageData, pairs of same-label images,
MNIST and Fashion-MNIST), ``transforms`` (random affine copies, slant, deskewing), ``sprites``
(LPC Sprites), ``faces`` (CelebA and Cartoon Set with their attributes) and ``multiview`` (rows
seen through several views, as FA-VAE trains on them); every public name is importable from
here. Data classes check what enters them once, at construction, with errors that name the fix.
"""

from vaebook.data.faces import (
    CELEBA_CROP,
    CELEBA_SPLITS,
    AttributeData,
    load_cartoonset,
    load_celeba,
)
from vaebook.data.images import (
    SPLITS,
    TORCHVISION_DATASETS,
    VALIDATION_SIZE,
    ImageData,
    PairBatch,
    PairedData,
    PairSampler,
    as_float_images,
    hash_order,
    load_images,
    validation_indices,
)
from vaebook.data.multiview import FAVAEData
from vaebook.data.root import DATA_ENV, RAW_FILES, DamagedDataError, MissingDataError, data_root
from vaebook.data.sprites import (
    SPRITES_ACTIONS,
    SPRITES_TEST_CHARACTERS,
    SPRITES_VAL_SHARE,
    SpritesData,
    load_sprites,
    sprites_characters,
)
from vaebook.data.transforms import deskew, random_affine, slant

__all__ = [
    # root
    "DATA_ENV",
    "RAW_FILES",
    "data_root",
    "MissingDataError",
    "DamagedDataError",
    # images
    "TORCHVISION_DATASETS",
    "SPLITS",
    "VALIDATION_SIZE",
    "hash_order",
    "validation_indices",
    "as_float_images",
    "ImageData",
    "PairSampler",
    "PairBatch",
    "PairedData",
    "load_images",
    # transforms
    "random_affine",
    "slant",
    "deskew",
    # sprites
    "SPRITES_ACTIONS",
    "SPRITES_TEST_CHARACTERS",
    "SPRITES_VAL_SHARE",
    "sprites_characters",
    "SpritesData",
    "load_sprites",
    # faces
    "AttributeData",
    "CELEBA_SPLITS",
    "CELEBA_CROP",
    "load_celeba",
    "load_cartoonset",
    # multiview
    "FAVAEData",
]
