"""Files the chapters read besides code: published results, checkpoints, the authors' weights and
the Sprites data, each resolved to a local path wherever the notebook runs.

``asset("results/vae-mnist.json")`` looks, in order, in the repository beside the notebook (a
clone), in the cache under the data root, and finally downloads the file from the project's
release, checking its SHA-256 against the manifest shipped in the package (``assets.json``). Where
the project lives is said once, in ``pyproject.toml`` (the ``Repository`` URL; the release tag is
``v`` + the package version), and read here from the installed package's metadata; environment
variables override it for forks and mirrors:

- ``VAEBOOK_REPOSITORY``: the repository URL; ``VAEBOOK_RELEASE``: the release tag;
- ``VAEBOOK_ASSETS_URL``: a folder laid out like the release (``results/``, ``checkpoints/``,
  ``sprites/``), e.g. a local web server, used instead of both.

``python -m vaebook.assets`` rewrites the manifest from the repository's files.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from vaebook.checkpoints import file_sha256
from vaebook.data.root import data_root

REPOSITORY_ENV, RELEASE_ENV, ASSETS_URL_ENV = (
    "VAEBOOK_REPOSITORY",
    "VAEBOOK_RELEASE",
    "VAEBOOK_ASSETS_URL",
)
MANIFEST = Path(__file__).with_name("assets.json")
PUBLISHED = ("results", "checkpoints")  # the repository's folders the manifest lists
# files too large for the repository, attached to each release instead; data_root()/sprites/
RELEASE_FILES = {
    "sprites/sprites_walk.npz": "aa9c4f27161ad123560c7287268182c5e785356ba225b4b07cb656afab503c0d",
    "sprites/sprites_spellcard.npz": (
        "1c016569c6df754568b45df9d83730fcd34305034dcb9660ecab5fd634aa710a"
    ),
    "sprites/sprites_slash.npz": "e24ae58c2675297783a92a827410f2349eb2d868e59c6b4cbcb9dba6bf620e30",
    "sprites/CC-BY-SA-3.0-LICENSE": (
        "f199af7e90e29e197a4be87b9a6d585a29ff5eae2b977503e590c4bd8fe6e8b3"
    ),
}


class AssetError(FileNotFoundError):
    """An asset is neither beside the notebook nor cached, and could not be downloaded; the
    message names the file, the URL and the fix."""


def repository() -> str:
    """The project's repository URL: $VAEBOOK_REPOSITORY, else the package's metadata."""
    if os.environ.get(REPOSITORY_ENV):
        return os.environ[REPOSITORY_ENV].rstrip("/")
    urls = metadata.metadata("vaebook").get_all("Project-URL") or []
    found = dict(url.split(", ", 1) for url in urls)
    return found["Repository"].rstrip("/")


def release() -> str:
    """The release whose files this package was made with: $VAEBOOK_RELEASE, else v<version>."""
    return os.environ.get(RELEASE_ENV) or f"v{metadata.version('vaebook')}"


def url(name: str) -> str:
    """Where ``name`` is downloaded from: repository files from the tagged tree, larger files
    from the release's attachments, or both from $VAEBOOK_ASSETS_URL."""
    if os.environ.get(ASSETS_URL_ENV):
        return f"{os.environ[ASSETS_URL_ENV].rstrip('/')}/{name}"
    if name in RELEASE_FILES:
        return f"{repository()}/releases/download/{release()}/{Path(name).name}"
    return f"{repository()}/raw/{release()}/{name}"


def manifest() -> dict[str, str]:
    """Every asset's SHA-256, by name (a path relative to the repository or the data root)."""
    return {**json.loads(MANIFEST.read_text()), **RELEASE_FILES}


def repository_root(start: Path | None = None) -> Path | None:
    """The clone this notebook runs in: the first folder at or above ``start`` (default: the
    working folder) holding the book's table of contents and the published folders."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").exists() and all((folder / f).is_dir() for f in PUBLISHED):
            return folder
    return None


def cache_path(name: str) -> Path:
    """Where a downloaded asset is kept: the data root's own layout for data sets, else a
    folder per release under <data root>/vaebook-assets/."""
    if name in RELEASE_FILES:
        return data_root() / name
    return data_root() / "vaebook-assets" / release() / name


def asset(name: str) -> Path:
    """A local path to ``name`` (e.g. ``"results/vae-mnist.json"``, or a folder such as
    ``"checkpoints/cyclevae-authors-mnist-16-16"`` for all the files under it): the repository
    beside the notebook, else the cache, else downloaded with a SHA-256 check. Raises AssetError
    naming the file, the URL and the fix when none of the three works."""
    known = manifest()
    names = [n for n in known if n == name or n.startswith(name.rstrip("/") + "/")]
    if not names:
        raise AssetError(
            f"{name!r} is not a file this book publishes (the manifest {MANIFEST.name} lists "
            f"{len(known)}); check the spelling, e.g. 'results/vae-mnist.json'"
        )
    root = repository_root()
    if root is not None and name not in RELEASE_FILES and (root / name).exists():
        return root / name
    for each in names:
        download(each, cache_path(each))
    return cache_path(name)


def assets(pattern: str) -> list[Path]:
    """Local paths, sorted by name, of every published file matching a glob ``pattern`` such as
    ``"results/ablation/*catvae-*.json"`` (each resolved as by ``asset``)."""
    return [asset(n) for n in sorted(fnmatch.filter(manifest(), pattern))]


def download(name: str, target: Path) -> Path:
    """``target``, downloaded from ``url(name)`` with a SHA-256 check first if it is absent."""
    if target.exists():
        return target
    import torch.hub  # here: only a download needs it

    sha256, source = manifest()[name], url(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch writes to a temporary file and moves it into place only when the hash matches
        torch.hub.download_url_to_file(source, str(target), hash_prefix=sha256, progress=False)
    except (OSError, RuntimeError) as error:  # offline, not found, or a hash mismatch
        clone = f"; or run the notebook from a clone of {repository()}"
        clone = "" if name in RELEASE_FILES else clone
        raise AssetError(
            f"{name} could not be downloaded from {source}: {error}.\nFix: go online and run "
            f"again{clone}; or copy the file to {target} yourself (its SHA-256 is {sha256})."
        ) from error
    return target


def published_files(root: Path) -> dict[str, str]:
    """Every file git tracks under the repository's published folders, with its SHA-256."""
    listed = subprocess.run(
        ["git", "ls-files", *PUBLISHED], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    return {name: file_sha256(root / name) for name in sorted(listed)}


def write_manifest(root: Path) -> dict[str, str]:
    """Write the package's manifest from the repository at ``root``; returns it."""
    found = published_files(root)
    MANIFEST.write_text(json.dumps(found, indent=1) + "\n")
    return found


if __name__ == "__main__":
    root = repository_root(Path(__file__).parent)
    if root is None:
        raise SystemExit("run this from a clone of the repository (its results/ and checkpoints/)")
    print(f"{MANIFEST}: {len(write_manifest(root))} files")
