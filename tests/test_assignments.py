"""Every assignment: the student notebook has neither solutions nor hidden tests and fails
unfilled, the master's answers filled in score 100% with the grader run locally (hidden tests
included), and a typical mistake loses points with feedback a student can act on."""

import copy
import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("assignments_build", REPO / "assignments/build.py")
assignments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(assignments)
NAMES = [m.stem for m in assignments.masters()]

# per assignment, tests/mistakes/NAME.json: a change to one question's correct answer that a
# student typically makes ("right" -> "wrong"), and words the feedback must contain ("hint")
MISTAKES = {p.stem: json.loads(p.read_text()) for p in (REPO / "tests" / "mistakes").glob("*.json")}


def solution_cells_with_markers(master: dict) -> list[str]:
    """The sources of the master's code answers (inside raw SOLUTION cells), in order."""
    cells, inside = [], False
    for cell in master["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "raw" and source.strip() in MARKERS:
            inside = source.strip() == "# BEGIN SOLUTION"
        elif inside and cell["cell_type"] == "code":
            cells.append(source)
    return cells


def solution_cells(master: dict) -> list[str]:
    """The master's code answers as a student would write them: marker lines removed."""
    return [
        "\n".join(
            line.removesuffix(" # SOLUTION")
            for line in source.splitlines()
            if line.strip() not in MARKERS
        )
        for source in solution_cells_with_markers(master)
    ]


MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")


def solution_lines(master: dict) -> list[str]:
    """The lines of code answers a student must not be given (stripped, non-empty)."""
    lines, inside = [], False
    for answer in solution_cells_with_markers(master):
        for line in answer.splitlines():
            if line.strip() in MARKERS:
                inside = line.strip() == "# BEGIN SOLUTION"
            elif (inside or line.endswith("# SOLUTION")) and line.strip():
                lines.append(line.removesuffix(" # SOLUTION").strip())
    return lines


def answer_cells(student: dict) -> list[dict]:
    """The student notebook's code cells to be filled in, in order."""
    return [
        cell
        for cell in student["cells"]
        if cell["cell_type"] == "code" and "otter_answer_cell" in cell["metadata"].get("tags", [])
    ]


def fill(student: dict, answers: list[str]) -> dict:
    filled = copy.deepcopy(student)
    cells = answer_cells(filled)
    assert len(cells) == len(answers), "the student notebook and the master differ in answer cells"
    for cell, answer in zip(cells, answers, strict=True):
        cell["source"] = answer
    return filled


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (folder, master, student). otter's own check of the master is skipped: the correct
    submission below grades the master's answers with every test, hidden ones included."""
    out = tmp_path_factory.mktemp("assignments")
    cache = {}

    def get(name: str):
        if name not in cache:
            folder = assignments.build(REPO / "assignments" / f"{name}.ipynb", out, check=False)
            master = json.loads((REPO / "assignments" / f"{name}.ipynb").read_text())
            student = json.loads((folder / "student" / f"{name}.ipynb").read_text())
            cache[name] = folder, master, student
        return cache[name]

    return get


def grade(folder: Path, notebook: dict, name: str) -> dict[str, dict]:
    submission = folder / "submissions" / name / f"{folder.name}.ipynb"
    submission.parent.mkdir(parents=True, exist_ok=True)
    submission.write_text(json.dumps(notebook))
    return assignments.grade(folder, submission)


def test_every_chapter_has_an_assignment():
    chapters = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert NAMES == chapters
    assert set(MISTAKES) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_assignment(built, name):
    folder, master, student = built(name)
    answers = solution_cells(master)
    graded = [
        c for c in master["cells"] if c["cell_type"] == "raw" and "name: q" in "".join(c["source"])
    ]
    autograded = [c for c in graded if "manual: true" not in "".join(c["source"])]
    assert len(autograded) >= 2 and len(graded) > len(autograded), "2+ coded, 1+ written question"

    # the student's copy: no solution line, no hidden test, no model answer
    given = "\n".join("".join(c["source"]) for c in answer_cells(student))
    assert not [line for line in solution_lines(master) if line in given]
    text = json.dumps(student)
    assert "hidden: true" not in text and "Model answer" not in text

    question, right, wrong, hint = (
        MISTAKES[name][k] for k in ("question", "right", "wrong", "hint")
    )
    changed = [a.replace(right, wrong) if right in a else a for a in answers]
    assert changed != answers, f"the mistake {right!r} -> {wrong!r} matches no answer"
    submissions = {
        "unfilled": student,
        "correct": fill(student, answers),
        "mistaken": fill(student, changed),
    }
    with ThreadPoolExecutor(len(submissions)) as pool:  # each grading is its own process
        futures = {k: pool.submit(grade, folder, nb, k) for k, nb in submissions.items()}
    graded = {kind: future.result() for kind, future in futures.items()}

    unfilled, correct = graded["unfilled"], graded["correct"]
    assert all(t["score"] < t["max_score"] for t in unfilled.values()), unfilled
    assert all(t["score"] == t["max_score"] for t in correct.values()), correct
    assert len(correct) == len(autograded)
    mistaken = graded["mistaken"][question]
    assert mistaken["score"] < mistaken["max_score"]
    assert hint in mistaken["output"], mistaken["output"]
