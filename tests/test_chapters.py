"""What every chapter notebook holds, read from its source (no kernel): a summary of three
take-aways in at most 150 words, at least two exercises with folded solutions, one results table
built by vaebook.results in a short cell, published files named through vaebook.assets, and a
lab-notes page per model in the appendix of the table of contents."""

import json
import re

import pytest
import yaml
from conftest import REPO

from vaebook import assets

CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# chapters that quote numbers of a paper, and their lab notes
MODEL_CHAPTERS = ["01", "02", "03", "04", "05", "07", "08", "09"]
LAB_NOTES = ["A1_infocatvae_notes", "A2_cyclevae_notes", "A3_favae_notes"]


def cells(path, kind):
    return [
        "".join(c["source"])
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == kind
    ]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_summary_has_three_take_aways_in_150_words(path):
    text = "\n".join(cells(path, "markdown"))
    match = re.search(r"^## Summary\n(.*?)(?=^#{1,2} |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{path.name} has no '## Summary' section"
    summary = match.group(1)
    bullets = [
        line  # take-aways; a closing "Next:" line may be a bullet too
        for line in summary.splitlines()
        if line.startswith("- ") and not line.startswith("- **Next")
    ]
    assert len(bullets) == 3, f"{path.name}: {len(bullets)} take-aways, not 3"
    assert len(summary.split()) <= 150, f"{path.name}: summary of {len(summary.split())} words"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_have_folded_solutions(path):
    text = "\n".join(cells(path, "markdown"))
    exercises = re.findall(r"```\{exercise\}", text)
    solutions = re.findall(r"`{3,4}\{solution\}[^\n]*\n:class: dropdown", text)
    assert len(exercises) >= 2 and len(solutions) >= len(exercises), path.name


@pytest.mark.parametrize("number", MODEL_CHAPTERS)
def test_a_model_chapter_builds_its_table_from_the_results_files(number):
    (path,) = (REPO / "notebooks").glob(f"{number}_*.ipynb")
    code = cells(path, "code")
    tables = [c for c in code if "results_table(" in c or 'read("' in c]
    assert tables, f"{path.name} builds no results table with vaebook.results"
    assert all(len(c.splitlines()) <= 30 for c in tables), f"{path.name}: a long table cell"
    assert not any("json.loads(" in c for c in code), f"{path.name} reads results files by hand"


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_published_files_are_named_through_the_manifest(path):
    code = "\n".join(cells(path, "code"))
    named = set(re.findall(r'"((?:checkpoints|results)/[^"{}*]+\.(?:pt|json))"', code))
    unknown = named - set(assets.manifest())
    assert not unknown, f"{path.name} names files that are not published: {sorted(unknown)}"


def test_every_model_has_lab_notes_in_the_appendix():
    parts = yaml.safe_load((REPO / "_toc.yml").read_text())["parts"]
    (appendix,) = [p for p in parts if p["caption"] == "Appendix"]
    assert [c["file"] for c in appendix["chapters"]] == [f"notebooks/{n}" for n in LAB_NOTES]
    for name in LAB_NOTES:
        text = (REPO / "notebooks" / f"{name}.ipynb").read_text()
        assert "notes_table(" in text, f"{name} builds its tables with vaebook.results"
