"""Every notebook runs in quick mode (papermill, once); the book is built from those executed
notebooks with warnings as errors; a real browser checks that a chapter's maths was typeset
and its figures loaded."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BOOK = REPO / "_build" / "test-book"  # a copy of the book whose notebooks papermill executed
HTML = BOOK / "_build" / "html"


@pytest.fixture(scope="session")
def executed_notebooks():
    """Run every notebook once in quick mode; {name: error or None}."""
    os.environ["VAEBOOK_QUICK"] = "1"
    shutil.rmtree(BOOK, ignore_errors=True)
    (BOOK / "notebooks").mkdir(parents=True)
    outcome = {}
    for notebook in NOTEBOOKS:
        try:
            papermill.execute_notebook(
                notebook,
                BOOK / "notebooks" / notebook.name,
                parameters={"quick": True},
                kernel_name="python3",
                cwd=notebook.parent,  # the notebook finds checkpoints/ and results/ beside it
                progress_bar=False,
            )
            outcome[notebook.name] = None
        except Exception as error:  # reported by the notebook's own test below
            outcome[notebook.name] = error
    return outcome


@pytest.mark.parametrize("name", [n.name for n in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(executed_notebooks, name):
    error = executed_notebooks[name]
    assert error is None, f"{name} failed in quick mode:\n{error}"


def test_every_notebook_is_in_the_table_of_contents():
    toc = (REPO / "_toc.yml").read_text()
    missing = [n.stem for n in NOTEBOOKS if f"notebooks/{n.stem}" not in toc]
    assert not missing, f"add these notebooks to _toc.yml: {missing}"


@pytest.fixture(scope="session")
def built_book(executed_notebooks):
    failed = [name for name, error in executed_notebooks.items() if error is not None]
    if failed:
        pytest.fail(f"the book needs every notebook to run; failed: {failed}")
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # papermill already ran them
    (BOOK / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(REPO / "_toc.yml", BOOK / "_toc.yml")
    shutil.copytree(REPO / "book", BOOK / "book")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter-book"),
            "build",
            str(BOOK),
            "-W",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    return HTML


def test_book_builds_with_warnings_as_errors(built_book):
    chapter = built_book / "notebooks" / "01_vae.html"
    assert chapter.exists()
    html = chapter.read_text()
    assert "IWAE" in html
    assert list((built_book / "_images").glob("*.png")), "no figures in the built book"
    # maths is served by the book itself, not a CDN
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert "cdn.jsdelivr.net/npm/mathjax" not in html


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        reason = (
            "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
        )
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_chapter_in_a_real_browser(built_book):
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get((built_book / "notebooks" / "01_vae.html").as_uri())
        WebDriverWait(browser, 60).until(
            lambda b: b.execute_script("return document.querySelectorAll('mjx-container').length")
        )
        typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length")
        text = browser.execute_script("return document.querySelector('main').innerText")
        images = browser.execute_script(
            "return Array.from(document.querySelectorAll('main img'))"
            ".map(i => [i.currentSrc.slice(0, 60), i.complete && i.naturalWidth > 0])"
        )
        browser.save_screenshot(str(BOOK / "screenshot-01_vae.png"))
    finally:
        browser.quit()
    assert typeset >= 20, f"only {typeset} formulas typeset by MathJax"
    assert "$$" not in text and "\\mathcal" not in text, "raw TeX left on the page"
    assert len(images) >= 5, f"expected the chapter's figures, found {len(images)} images"
    broken = [src for src, loaded in images if not loaded]
    assert not broken, f"figures that did not load: {broken}"
