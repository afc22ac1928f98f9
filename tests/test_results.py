"""vaebook.results: numbers read from results files, pooled over seeds, rounded to their spread,
and laid out as the chapters' one table."""

import json

import pytest

from vaebook.results import (
    DIRTY,
    DIRTY_NOTE,
    MISSING,
    Column,
    Estimate,
    notes_table,
    results_table,
    values,
)


def write(folder, name, metrics):
    (folder / f"{name}.json").write_text(json.dumps({"experiment": name, "metrics": metrics}))


def test_numbers_are_rounded_to_what_their_spread_supports():
    assert str(Estimate((0.9311, 0.9280, 0.9341))) == "0.931 ± 0.003 (3 seeds)"
    assert str(Estimate((98.26,))) == "98.3 (1 seed)"
    assert str(Estimate((0.7425,))) == "0.743 (1 seed)"
    assert str(Estimate((49.0, 51.0))) == "50 ± 1 (2 seeds)"
    assert str(Estimate((17,))) == "17 (1 seed)" and str(Estimate((17.0,))) == "17.0 (1 seed)"
    assert str(Estimate((0.000772,))) == "0.0008 (1 seed)"


def test_a_table_pools_seed_files_and_marks_what_was_not_measured(tmp_path):
    write(tmp_path, "run", {"acc": {"per_seed": [0.5, 0.7], "mean": 0.6}, "probe": {"z": 0.2}})
    write(tmp_path, "run-seed1", {"acc": {"per_seed": [0.6]}, "probe": {"z": 0.4}})
    write(tmp_path, "variant", {"acc": 0.9})
    table = results_table(
        {"accuracy": "acc", "z probe (%)": "probe.z"},
        columns=[
            Column("ours, paper's settings", ("run", "run-seed1"), "the paper", folder=tmp_path),
            Column("ours, variant", "variant", "validation", folder=tmp_path, scale=100),
        ],
        paper={"accuracy": "0.92"},
    )
    lines = table.splitlines()
    assert lines[0] == "| | paper | ours, paper's settings | ours, variant |"
    assert lines[2] == "| accuracy | 0.92 | 0.6 ± 0.1 (3 seeds) | 90.0 (1 seed) |"
    assert lines[3] == "| z probe (%) | – | 0.3 ± 0.1 (2 seeds) | – |"
    assert lines[4] == "| settings chosen on | the authors | the paper | validation |"


def test_a_validation_column_reads_the_validation_metrics(tmp_path):
    for name, test, val in (("new", 0.5, 0.75), ("new-seed1", 0.7, 0.25)):
        results = {
            "experiment": name,
            "metrics": {"acc": test, "probe": {"z": {"train": 1.0, "test": test}}},
            "val_metrics": {"acc": val, "probe": {"z": {"train": 1.0, "val": val}}},
        }
        (tmp_path / f"{name}.json").write_text(json.dumps(results))
    write(tmp_path, "old", {"acc": 0.9, "probe": {"z": {"test": 0.9}}})
    seeds = ("new", "new-seed1")
    table = results_table(
        {"accuracy": "acc", "z probe": "probe.z.test"},
        [
            Column("validation", seeds, "validation", folder=tmp_path, split="val"),
            Column("test", seeds, "validation", folder=tmp_path),
            Column("old, validation", "old", "test", folder=tmp_path, split="val"),
        ],
    ).splitlines()
    assert table[2] == "| accuracy | 0.5 ± 0.4 (2 seeds) | 0.6 ± 0.1 (2 seeds) | – |"
    assert table[3] == "| z probe | 0.5 ± 0.4 (2 seeds) | 0.6 ± 0.1 (2 seeds) | – |"
    with pytest.raises(ValueError, match="split must be one of"):
        values({"metrics": {}}, "acc", split="train")


def test_numbers_from_uncommitted_code_are_marked_and_explained(tmp_path):
    for name, commit in (("clean", "abc"), ("edited", "abc-dirty")):
        (tmp_path / f"{name}.json").write_text(
            json.dumps({"experiment": name, "metrics": {"acc": 0.5}, "git_commit": commit})
        )
    clean = Column("clean", "clean", "the paper", folder=tmp_path)
    table = results_table({"accuracy": "acc"}, [clean])
    assert DIRTY not in table
    edited = Column("edited", ("clean", "edited"), "the paper", folder=tmp_path)
    table = results_table({"accuracy": "acc"}, [clean, edited]).splitlines()
    assert table[2] == f"| accuracy | 0.500 (1 seed) | 0.500 (2 seeds) {DIRTY} |"
    assert table[-1] == DIRTY_NOTE
    notes = notes_table([("edited", "an edit")], {"acc": "acc"}, folder=tmp_path)
    assert DIRTY in notes.splitlines()[2] and notes.endswith(DIRTY_NOTE)


def test_a_row_may_name_its_own_file(tmp_path):
    write(tmp_path, "one", {"acc": 0.25})
    write(tmp_path, "two", {"r2": {"per_seed": [0.5, 0.7]}})
    table = results_table(
        {"one's accuracy": "one:acc", "two's R2": "two:r2"},
        [Column("ours", (), "validation", folder=tmp_path)],
    ).splitlines()
    assert table[2] == "| one's accuracy | 0.250 (1 seed) |"
    assert table[3] == "| two's R2 | 0.6 ± 0.1 (2 seeds) |"


def test_a_tagged_column_pools_the_tagged_runs_of_a_rows_file_that_exist(tmp_path):
    write(tmp_path, "run", {"acc": 0.1})  # the untagged run: not read by the tagged column
    write(tmp_path, "run-seed10", {"acc": 0.5})
    write(tmp_path, "run-seed11", {"acc": 0.7})
    write(tmp_path, "other-seed10", {"acc": 0.4})  # other has no seed11 run
    fresh = Column("fresh", (), "val", folder=tmp_path, tags=("seed10", "seed11"))
    table = results_table(
        {"run": "run:acc", "other": "other:acc", "never run": "none:acc"},
        [Column("first", (), "test", folder=tmp_path), fresh],
    ).splitlines()
    assert table[2] == "| run | 0.100 (1 seed) | 0.6 ± 0.1 (2 seeds) |"
    assert table[3] == f"| other | {MISSING} | 0.400 (1 seed) |"
    assert table[4] == f"| never run | {MISSING} | {MISSING} |"


def test_a_wrong_metric_names_the_file(tmp_path):
    write(tmp_path, "run", {"acc": 0.5, "runs": [{"rate": 2.0}]})
    assert values(json.loads((tmp_path / "run.json").read_text()), "runs.0.rate") == [2.0]
    with pytest.raises(KeyError, match="run has no metric 'accuracy'"):
        values(json.loads((tmp_path / "run.json").read_text()), "accuracy")


def test_a_published_file_reads_as_the_chapter_quotes_it():
    column = Column("ours", "infocatvae-mnist-ours", "test")
    assert str(column.estimate("clustering_accuracy")) == "0.926 ± 0.002 (3 seeds)"


def test_lab_notes_give_one_line_per_run_with_its_file(tmp_path):
    write(tmp_path, "a", {"acc": {"per_seed": [0.5, 0.7]}})
    write(tmp_path, "b", {"other": 1.0})
    table = notes_table(
        [("a", "deskewed inputs: clustering up"), ("b", "no accuracy measured")],
        {"clustering acc.": "acc"},
        folder=tmp_path,
    ).splitlines()
    assert table[0] == "| what changed, and what it did | clustering acc. | results file |"
    assert table[2] == "| deskewed inputs: clustering up | 0.6 ± 0.1 (2 seeds) | a.json |"
    assert table[3] == "| no accuracy measured | – | b.json |"
