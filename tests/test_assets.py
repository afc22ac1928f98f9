"""vaebook.assets: where the project lives (said once), the manifest of published files, and a
published file resolved beside the notebook, from the cache, or by a checked download (served
here by a local http.server)."""

import json
import shutil

import pytest
import yaml
from conftest import REPO, SHARED_DATA, http_server

from vaebook import assets
from vaebook.assets import AssetError, asset
from vaebook.data import MissingDataError, load_sprites


@pytest.fixture
def outside_a_clone(tmp_path, monkeypatch):
    """A working folder outside the repository and an empty data root: what Colab gives."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("VAEBOOK_DATA", str(tmp_path / "data"))
    return tmp_path


def release_folder(root, *names):
    """A folder laid out like the release, holding copies of the repository's ``names``."""
    for name in names:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, target)
    return root


def test_the_manifest_lists_every_published_file_with_its_hash():
    listed = json.loads(assets.MANIFEST.read_text())
    assert listed == assets.published_files(REPO), (
        "results/ or checkpoints/ changed: run `python -m vaebook.assets` and commit assets.json"
    )


def test_the_book_and_the_package_name_one_repository():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"]["url"] == assets.repository()
    assert assets.release() == f"v{assets.metadata.version('vaebook')}"
    notebooks = [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("assignments/*.ipynb")]
    project = "/".join(assets.repository().split("/")[-2:])  # owner/name, in any URL
    spelled = [p.name for p in notebooks if project in p.read_text()]
    assert not spelled, f"these notebooks spell out where the project lives: {spelled}"


def test_a_clone_reads_its_own_files(monkeypatch):
    monkeypatch.chdir(REPO / "notebooks")
    assert asset("results/vae-mnist.json") == REPO / "results" / "vae-mnist.json"
    assert asset("results") == REPO / "results"


def test_outside_a_clone_files_are_downloaded_checked_and_cached(outside_a_clone, monkeypatch):
    authors = "checkpoints/cyclevae-authors-mnist-16-16"
    release = release_folder(outside_a_clone / "release", "results/vae-mnist.json", authors)
    with http_server(release) as url:
        monkeypatch.setenv(assets.ASSETS_URL_ENV, url)
        path = asset("results/vae-mnist.json")
        folder = asset(authors)
        (found,) = assets.assets("results/vae-m*.json")
    assert path == found == assets.cache_path("results/vae-mnist.json")
    assert str(outside_a_clone / "data") in str(path)
    assert path.read_bytes() == (REPO / "results" / "vae-mnist.json").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (REPO / authors).iterdir()
    )
    assert asset("results/vae-mnist.json") == path  # the server is gone: the cache answers


def test_a_damaged_or_failed_download_is_refused_with_the_fix(outside_a_clone, monkeypatch):
    release = release_folder(outside_a_clone / "release", "results/vae-mnist.json")
    (release / "results" / "vae-mnist.json").write_text("{}")  # not the published bytes
    with http_server(release) as url:
        monkeypatch.setenv(assets.ASSETS_URL_ENV, url)
        with pytest.raises(AssetError, match=r"(?s)vae-mnist\.json could not be downloaded.*hash"):
            asset("results/vae-mnist.json")
    assert not assets.cache_path("results/vae-mnist.json").exists()
    with pytest.raises(AssetError) as offline:  # the server has stopped
        asset("results/vae-mnist.json")
    message = str(offline.value)
    assert f"{url}/results/vae-mnist.json" in message and "go online" in message
    assert "clone of" in message and str(assets.cache_path("results/vae-mnist.json")) in message
    with pytest.raises(AssetError, match="not a file this book publishes"):
        asset("results/no-such-run.json")


@pytest.mark.skipif(not (SHARED_DATA / "sprites").exists(), reason="needs the shared Sprites")
def test_sprites_download_into_the_data_root(outside_a_clone, monkeypatch):
    with pytest.raises(MissingDataError, match="download=True"):
        load_sprites("test", download=False)
    release = outside_a_clone / "release" / "sprites"
    release.mkdir(parents=True)
    for name in assets.RELEASE_FILES:
        (release.parent / name).symlink_to(SHARED_DATA / name)
    with http_server(release.parent) as url:
        monkeypatch.setenv(assets.ASSETS_URL_ENV, url)
        sprites = load_sprites("test")
    assert len(sprites) == 296 * 72
    fetched = outside_a_clone / "data" / "sprites"
    assert sorted(p.name for p in fetched.iterdir()) == sorted(
        name.split("/")[1] for name in assets.RELEASE_FILES
    )
