"""Build every assignment's student notebook and autograder, and grade a submission.

    python assignments/build.py [NAME ...]          # `make assignments`: all masters, or the named
    python assignments/build.py --grade NAME FILE   # grade one submission against NAME's autograder

A master (``assignments/NN_name.ipynb``) is in otter-grader's notebook format: questions, solutions
and tests, public and hidden. Building runs ``otter assign``, which executes the master, checks that
it passes its own tests and writes
``_build/assignments/NN_name/student/NN_name.ipynb`` (solutions replaced by ``...``, no hidden
tests) and ``_build/assignments/NN_name/autograder/NN_name-autograder_*.zip``. Grading runs
``otter run`` locally: no Docker, no network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "_build" / "assignments"
BIN = Path(sys.executable).parent  # otter and jupyter live beside this interpreter


def masters() -> list[Path]:
    """Every master notebook, in chapter order."""
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def _run(*command: str | Path, cwd: Path | None = None) -> None:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}")


def build(master: Path, out: Path = OUT, check: bool = True) -> Path:
    """Run ``otter assign`` on ``master``; returns the assignment's output folder. ``check=False``
    skips otter's run of the master against its tests, for callers that grade the master's answers
    themselves (the tests do, through the student notebook)."""
    folder = out / master.stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(master, folder / master.name)
    _run(
        BIN / "otter",
        "assign",
        *([] if check else ["--no-run-tests"]),
        master.name,
        ".",
        cwd=folder,
    )
    return folder


def autograder(folder: Path) -> Path:
    """The autograder zip ``otter assign`` wrote into ``folder``."""
    (zip_path,) = (folder / "autograder").glob("*-autograder_*.zip")
    return zip_path


def grade(folder: Path, submission: Path) -> dict[str, dict]:
    """Grade ``submission`` with the autograder in ``folder``: {question: {score, max_score,
    output}}, hidden tests included (what a teacher sees; the student sees the public ones)."""
    results = submission.parent / f"{submission.stem}-results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir()
    _run(BIN / "otter", "run", "-a", autograder(folder), "-o", results, submission)
    tests = json.loads((results / "results.json").read_text())["tests"]
    return {t["name"]: t for t in tests if "max_score" in t}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="assignments to build (default: all)")
    parser.add_argument("--grade", nargs=2, metavar=("NAME", "SUBMISSION"))
    args = parser.parse_args(argv)
    if args.grade:
        name, submission = args.grade
        for question, test in grade(OUT / name, Path(submission).resolve()).items():
            print(f"{question}: {test['score']:g} / {test['max_score']:g}")
        return
    chosen = [m for m in masters() if not args.names or m.stem in args.names]
    if args.names and len(chosen) != len(args.names):
        known = ", ".join(m.stem for m in masters())
        parser.error(f"unknown assignment in {args.names}; the masters are: {known}")
    for master in chosen:
        folder = build(master)
        print(f"{master.stem}: {folder / 'student' / master.name}, {autograder(folder).name}")


if __name__ == "__main__":
    main()
