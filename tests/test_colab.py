"""Chapters run as a Colab user runs them: in an empty folder outside the repository, with
`google.colab` importable, the first cell installing the package (here a wheel built from this
checkout), MNIST in the data root but no Sprites, and every published file and the Sprites coming
from the release (here a local `python -m http.server` serving a folder laid out like it)."""

import os
import subprocess
import sys

import papermill
import pytest
from conftest import REPO, SHARED_DATA, http_server

from vaebook import assets

CHAPTERS = ["01_vae", "05_cyclevae", "08_favae_experiments"]


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """The environment variables of a Colab-like kernel, and the folders behind them."""
    if not (SHARED_DATA / "MNIST").exists() or not (SHARED_DATA / "sprites").exists():
        pytest.skip("needs MNIST and the Sprites in the shared data root to serve them")
    root = tmp_path_factory.mktemp("colab")
    names = ("wheels", "site", "stub", "data", "release")
    wheels, site, stub, data, release = (root / name for name in names)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(wheels), str(REPO)],
        check=True,
        cwd=root,  # setuptools' build/ folder goes here, not into the checkout
    )
    (wheel,) = wheels.glob("vaebook-*.whl")
    # Colab imports google.colab before the first cell runs; a namespace package beside any
    # installed google.* packages, imported at start-up by sitecustomize
    (stub / "google" / "colab").mkdir(parents=True)
    (stub / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab."""\n')
    (stub / "sitecustomize.py").write_text("import google.colab  # noqa: F401\n")
    data.mkdir()
    (data / "MNIST").symlink_to(SHARED_DATA / "MNIST")  # Colab users have MNIST, not Sprites
    release.mkdir()
    for folder in assets.PUBLISHED:
        (release / folder).symlink_to(REPO / folder)
    (release / "sprites").symlink_to(SHARED_DATA / "sprites")
    site.mkdir()
    env = {
        "VAEBOOK_INSTALL": str(wheel),
        "PIP_TARGET": str(site),  # pip installs beside the test's own environment, not into it
        "PIP_NO_DEPS": "1",
        "PIP_NO_INDEX": "1",
        "PYTHONPATH": os.pathsep.join([str(site), str(stub)]),
        "VAEBOOK_DATA": str(data),
        "VAEBOOK_QUICK": "1",
    }
    return env, release, root


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_as_in_colab(colab, chapter, monkeypatch):
    env, release, root = colab
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    work = root / "content"  # Colab's working folder: nothing of the repository in it
    work.mkdir(exist_ok=True)
    with http_server(release) as url:
        monkeypatch.setenv(assets.ASSETS_URL_ENV, url)
        papermill.execute_notebook(
            REPO / "notebooks" / f"{chapter}.ipynb",
            work / f"{chapter}.ipynb",
            parameters={"quick": True},
            kernel_name="python3",
            cwd=work,
            progress_bar=False,
        )
    # the kernel imported the installed wheel, not the checkout
    where = subprocess.run(
        [sys.executable, "-c", "import google.colab, vaebook; print(vaebook.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
    ).stdout
    assert where.startswith(env["PIP_TARGET"]), where
    cached = root / "data" / "vaebook-assets" / assets.release()
    assert (cached / "results").is_dir(), "the published results were not downloaded"
    if chapter != "01_vae":
        assert (root / "data" / "sprites" / "sprites_walk.npz").exists()
