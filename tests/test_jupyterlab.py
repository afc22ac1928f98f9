"""A chapter opened in a real JupyterLab (headless Chromium) renders the book's MyST markup through
jupyterlab-myst: exercises as exercise boxes, solutions folded, maths typeset, equation
references resolved, and none of the raw directive text left on the page."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO
from test_book import _browser

CHAPTER = "notebooks/01_vae.ipynb"
SCREENSHOT = REPO / "_build" / "jupyterlab-01_vae.png"


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 over the repository; yields its URL."""
    settings = tmp_path_factory.mktemp("lab-settings")
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')  # render every cell, not only visible ones
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}"]
        + ["--ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password="]
        + [f"--ServerApp.root_dir={REPO}"],
        env={**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/lab", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait()


def test_jupyterlab_renders_exercises_and_folds_solutions(jupyterlab):
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(f"{jupyterlab}/lab/tree/{CHAPTER}")
        WebDriverWait(browser, 120).until(
            lambda b: b.execute_script("return document.querySelectorAll('.myst').length > 10")
        )
        time.sleep(3)  # let the last cells typeset
        browser.execute_script("document.querySelector('aside.myst-exercise')?.scrollIntoView()")
        page = browser.execute_script("""
            const exercise = document.querySelector('aside.myst-exercise');
            const solutions = [...document.querySelectorAll('.myst details.myst-exercise')];
            return {
                exercise: exercise ? exercise.textContent.slice(0, 60) : null,
                solutions: solutions.map(s => ({open: s.open, height: s.offsetHeight,
                    summary: s.querySelector('summary')?.textContent ?? ''})),
                maths: document.querySelectorAll('.myst .katex').length,
                references: [...document.querySelectorAll('.myst a.hover-link')]
                    .map(a => a.textContent),
                text: [...document.querySelectorAll('.myst')].map(m => m.innerText).join('\\n'),
            };
        """)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
    finally:
        browser.quit()
    assert page["exercise"] and page["exercise"].startswith("Exercise 1"), page["exercise"]
    assert page["solutions"], "no solution block rendered"
    for solution in page["solutions"]:
        assert not solution["open"] and solution["height"] < 100, solution  # folded
        assert solution["summary"].startswith("Solution to Exercise")
    assert page["maths"] > 50
    numbered = [r for r in page["references"] if re.fullmatch(r"\(\d+\)", r)]
    assert len(numbered) >= 5, page["references"]  # {eq} references resolved to numbers
    for raw in ("```{exercise}", "{solution}", ":label:", "{eq}`"):
        assert raw not in page["text"], f"raw MyST {raw!r} shows in JupyterLab"
