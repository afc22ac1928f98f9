"""The data root: where every data set lives (``$VAEBOOK_DATA``), and the errors, with their
messages, for a data set that is not there (MissingDataError) and for a file that is there but
damaged (DamagedDataError). The message names torchvision's MNIST layout by default, so the
names of its files (RAW_FILES) live here too.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "VAEBOOK_DATA"
# the IDX files of MNIST and Fashion-MNIST under <root>/<name>/raw/, as torchvision downloads them
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def data_root() -> Path:
    """The data root: $VAEBOOK_DATA, else <cache>/vaebook/data (created on first download)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "vaebook" / "data"


class MissingDataError(FileNotFoundError):
    """A data set is neither on disk nor downloadable; the message says where to put it."""


class DamagedDataError(ValueError):
    """A data file is on disk but cannot be used (truncated, wrong format, missing keys, too
    few examples); the message names the file, what is wrong and how to get it again."""


def _damaged(path: Path, problem: str, fix: str) -> DamagedDataError:
    """The error for a damaged file: which file, what is wrong with it, how to replace it; a
    wrong data root is the other common cause, so the message names it too."""
    return DamagedDataError(
        f"{path} is damaged or incomplete: {problem}.\n"
        f"Fix: {fix}; or, if this is not the file you meant, point {DATA_ENV} (or root=) at "
        "the data root that holds the right one."
    )


def _missing_message(
    name: str, folder: Path, root: Path, files: tuple[str, ...] = RAW_FILES, source: str = ""
) -> str:
    """What is missing, where it was looked for, and how to get it. Defaults: torchvision's
    layout (``folder/raw/`` with the IDX files) and its download."""
    if not source:
        folder, source = (
            folder / "raw",
            "or go online and call with download=True (torchvision fetches the files), or copy "
            "them from the data set's home page (MNIST: yann.lecun.com/exdb/mnist, "
            "Fashion-MNIST: github.com/zalandoresearch/fashion-mnist)",
        )
    layout = folder.relative_to(root)
    return (
        f"{name} not found under the data root {root}.\n"
        f"Expected the layout {folder}/ holding {', '.join(files)}"
        f"{' (or their .gz files)' if files == RAW_FILES else ''}.\n"
        f"Fix: set the environment variable {DATA_ENV} to a folder that has {layout}/, "
        f"{source}."
    )
