"""Every notebook runs in quick mode (papermill, once); the book is built from those executed
notebooks with warnings as errors; a real browser checks that a chapter's maths was typeset,
its figures loaded and its explorers answer."""

import json
import os
import re
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
    shutil.copytree(REPO / "_static", BOOK / "_static")
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


def test_numbering_restarts_per_chapter(built_book):
    """Equations and exercises are numbered per chapter, as in a textbook: (6.3), Exercise 6.2."""
    for page in sorted((built_book / "notebooks").glob("[0-9][0-9]_*.html")):
        chapter = int(page.name[:2])
        html = page.read_text()
        equations = re.findall(r'class="eqno">\((\d+)\.(\d+)\)', html)
        exercises = re.findall(r"Exercise (\d+)\.(\d+)", html)
        assert exercises, f"{page.name}: no numbered exercise"
        wrong = {f"{a}.{b}" for a, b in equations + exercises if int(a) != chapter}
        assert not wrong, f"{page.name} (chapter {chapter}) numbers {sorted(wrong)}"


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


# what a page never shows: how the project is run, or a path of any machine
BANNED = re.compile(
    r"\b(?:issues?|sessions?|scratch|committed|budgets?)\b|\b(?:our|the issue's) targets?\b"
    r"|\btargets? (?:met|missed|reached)\b|(?:/work|/root|/home|/tmp)/",
    re.IGNORECASE,
)
PAGES = [
    line.split("file:")[1].strip()
    for line in (REPO / "_toc.yml").read_text().splitlines()
    if "file:" in line
] + [yaml.safe_load((REPO / "_toc.yml").read_text())["root"]]

# per page: display equations wider than their box, output lines or tables cut off on the
# right, images that did not load, formulas typeset, raw TeX left
INSPECT_PAGE = """
const main = document.querySelector('main');
const wider = (inner, box) => inner.getBoundingClientRect().width > box.clientWidth + 1;
const column = main.querySelector('article') || main;
const equations = [...main.querySelectorAll('mjx-container[display="true"]')]
  .filter(c => wider(c.querySelector('mjx-math') || c, c) || c.getBoundingClientRect().width
    > column.clientWidth + 1)
  .map(c => (c.querySelector('mjx-assistive-mml') || c).textContent.slice(0, 80));
const cut = [...main.querySelectorAll('.cell_output pre, .cell_output table, .output pre')]
  .filter(e => e.scrollWidth > e.clientWidth + 1 || wider(e, column))
  .map(e => e.textContent.trim().split('\\n')[0].slice(0, 80));
const tables = [...main.querySelectorAll('table')]
  .filter(t => t.getBoundingClientRect().right > column.getBoundingClientRect().right + 1)
  .map(t => t.textContent.trim().slice(0, 60));
return {
  equations, cut, tables,
  images: [...main.querySelectorAll('img')].filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => i.currentSrc.slice(-60)),
  typeset: main.querySelectorAll('mjx-container').length,
  text: main.innerText,
};
"""


@pytest.fixture(scope="module")
def browser():
    browser = _browser()
    yield browser
    browser.quit()


@pytest.mark.parametrize("page", PAGES)
def test_page_in_a_real_browser(built_book, browser, page):
    """Every page: maths typeset, figures loaded, no display equation wider than the text
    column, no output line or table cut off on the right, no word about how the project is run;
    a screenshot of each is kept in _build/test-book/screenshots/."""
    from selenium.webdriver.support.ui import WebDriverWait

    path = built_book / f"{page}.html"
    assert path.exists(), f"{page} is in _toc.yml but was not built"
    has_maths = 'class="math' in path.read_text()  # Sphinx's mark on every formula
    browser.get(path.as_uri())
    WebDriverWait(browser, 60).until(
        lambda b: (
            b.execute_script("return document.readyState") == "complete"
            and (
                not has_maths
                or b.execute_script("return !!document.querySelector('mjx-container')")
            )
        )
    )
    found = browser.execute_script(INSPECT_PAGE)
    shots = BOOK / "screenshots"
    shots.mkdir(exist_ok=True)
    browser.save_screenshot(str(shots / f"{Path(page).name}.png"))
    assert not has_maths or found["typeset"] > 0, "no formula typeset by MathJax"
    assert "$$" not in found["text"] and "\\mathcal" not in found["text"], "raw TeX left"
    assert not found["images"], f"figures that did not load: {found['images']}"
    assert not found["equations"], f"display equations wider than the column: {found['equations']}"
    assert not found["cut"], f"output cut off on the right: {found['cut']}"
    assert not found["tables"], f"tables wider than the column: {found['tables']}"
    banned = sorted({m.group(0) for m in BANNED.finditer(found["text"])})
    assert not banned, f"words about how the project is run, or machine paths: {banned}"


# chapters with pre-rendered explorers, and how many each page holds
EXPLORER_CHAPTERS = {
    "03_infocatvae": 2,
    "05_cyclevae": 1,
    "06_factor_analysis": 1,
    "08_favae_experiments": 1,
    "09_beta_vae": 1,
}

# Move one control of an explorer as a reader would: try its other options in turn (a menu's
# next option, a slider's next value) until the picture changes, dispatching 'input' and
# 'change' each time; the control stays where the picture changed, or goes back to where it
# was if none changed it. Returns the picture's src before, the last src seen and the option
# that changed it (null: none did).
MOVE_CONTROL = """
const field = arguments[0];
const image = field.closest('.vaebook-explorer').querySelector('img.explorer-image');
const count = field.tagName === 'SELECT' ? field.options.length : Number(field.max) + 1;
const original = field.value, before = image.src;
function set(value) {
  field.value = String(value);
  field.dispatchEvent(new Event('input', {bubbles: true}));
  field.dispatchEvent(new Event('change', {bubbles: true}));
}
let after = before, changedAt = null;
for (let step = 1; step < count && changedAt === null; step++) {
  const value = (Number(original) + step) % count;
  set(value);
  after = image.src;
  if (after !== before) changedAt = value;
}
if (changedAt === null) set(original);
return [before, after, changedAt];
"""


def open_page(browser, url: str, timeout: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, timeout).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def check_explorer(browser, explorer, screenshot: Path) -> list[str]:
    """Drive one pre-rendered explorer (`widgets.static_html`) on an open page: its controls
    are visible (its script ran), and each control, moved, changes the picture. The controls
    are moved one after another, as a reader would; one that changes nothing is tried again
    once the others have moved (a traversal's unit does nothing at offset 0). Saves a
    screenshot of the explorer. Returns what went wrong (empty when it all answered)."""
    from selenium.webdriver.common.by import By

    title = explorer.get_attribute("data-title")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", explorer)
    problems = []
    if not explorer.find_element(By.CSS_SELECTOR, ".explorer-controls").is_displayed():
        problems.append(f"{title}: controls hidden, so its script did not run")
    fields = explorer.find_elements(By.CSS_SELECTOR, "[data-name]")
    if not fields:
        problems.append(f"{title}: no controls")

    def moved(field) -> bool:
        before, after, changed_at = browser.execute_script(MOVE_CONTROL, field)
        if not before.startswith("data:image/png;base64,"):
            problems.append(f"{title}: the picture is not a pre-rendered PNG")
        return changed_at is not None and after != before

    hidden = [f for f in fields if not f.is_displayed()]
    problems += [f"{title}: control {f.get_attribute('data-name')} is hidden" for f in hidden]
    still = [f for f in fields if f not in hidden and not moved(f)]
    for field in [f for f in still if not moved(f)]:
        problems.append(
            f"{title}: no option of control {field.get_attribute('data-name')} changes the picture"
        )
    loaded = browser.execute_script(
        "const i = arguments[0].querySelector('img.explorer-image');"
        "return i.complete && i.naturalWidth > 0;",
        explorer,
    )
    if not loaded:
        problems.append(f"{title}: the picture did not load")
    explorer.screenshot(str(screenshot))
    return problems


def check_explorers_on_page(browser, url: str, prefix: str) -> tuple[int, list[str]]:
    """Open `url` and `check_explorer` every `.vaebook-explorer` on it, saving screenshots
    `<prefix>-<n>.png` (n from 1). Returns (number of explorers, problems)."""
    from selenium.webdriver.common.by import By

    open_page(browser, url)
    explorers = browser.find_elements(By.CSS_SELECTOR, ".vaebook-explorer")
    problems = []
    for n, explorer in enumerate(explorers, 1):
        problems += check_explorer(browser, explorer, Path(f"{prefix}-{n}.png"))
    return len(explorers), problems


def test_explorers_in_the_built_book(built_book):
    browser = _browser()
    found, problems, sizes = {}, [], {}
    try:
        for chapter in EXPLORER_CHAPTERS:
            page = built_book / "notebooks" / f"{chapter}.html"
            sizes[chapter] = page.stat().st_size
            found[chapter], wrong = check_explorers_on_page(
                browser, page.as_uri(), str(BOOK / f"explorer-{chapter}")
            )
            problems += [f"{chapter}: {problem}" for problem in wrong]
    finally:
        browser.quit()
    (BOOK / "explorer-page-sizes.json").write_text(json.dumps(sizes, indent=1) + "\n")
    print("page sizes (bytes):", sizes)
    assert found == EXPLORER_CHAPTERS, f"explorers found per page: {found}"
    assert not problems, "explorers that do not answer:\n" + "\n".join(problems)
