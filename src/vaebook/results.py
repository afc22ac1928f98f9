"""Results tables: the paper's numbers beside ours, read from the files the reproduce command
writes, each of ours with its seeds and spread, rounded to what the spread supports.

A chapter builds its one table in a few lines::

    table = results_table(
        {"clustering accuracy": "clustering_accuracy"},          # row -> metric path
        paper={"clustering accuracy": "0.92"},
        columns=[Column("ours, paper's settings", "infocatvae-mnist", chosen_on="the paper")],
    )
    display(Markdown(table))

A metric path is dotted into a results file's ``metrics`` (``"per-image.z_mean.test"``,
``"generation_accuracy.all"``, ``"betas.3.rate"``); a value with ``per_seed`` gives one number
per seed, a plain number one; a column may pool several files (one per seed), and a row may
name its own file (``"favae-domain:favae_translation_accuracy"``). A column reads the test
split's numbers (``metrics``) or, with ``split="val"``, the validation split's (``val_metrics``,
where a path's ``test`` part reads ``val``), so a table can show both side by side.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vaebook.assets import asset, manifest

MISSING = "–"  # a cell with nothing measured
DIRTY = "†"  # a number made by package code with uncommitted edits
DIRTY_NOTE = (
    f"{DIRTY} made by package code with uncommitted edits (the results file records the commit "
    "it started from): its command run at that commit may not give exactly this number."
)


@dataclass(frozen=True)
class Estimate:
    """One metric over seeds: the values, their mean and sample standard deviation, and
    whether a file they came from was made by code with uncommitted edits (marked DIRTY)."""

    values: tuple[float | int, ...]
    dirty: bool = False

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        return self._number() + (f" {DIRTY}" if self.dirty else "")

    def _number(self) -> str:
        seeds = f"{len(self.values)} seed{'s' if len(self.values) > 1 else ''}"
        if self.spread > 0:
            places = decimals(self.spread)
            return f"{self.mean:.{places}f} ± {self.spread:.{places}f} ({seeds})"
        if all(isinstance(v, int) for v in self.values):  # counts: factors, units
            return f"{int(self.mean)} ({seeds})"
        places = min(decimals(abs(self.mean), significant=3), 4)  # no seed spread to go by
        return f"{self.mean:.{places}f} ({seeds})"


def decimals(value: float, significant: int = 1) -> int:
    """Decimal places that keep ``significant`` digits of ``value`` (none for large numbers)."""
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, significant - 1 - math.floor(math.log10(value)))


def read(name: str, folder: str | Path | None = None) -> dict:
    """The results file ``name`` (without .json): from ``folder``, else the published one."""
    path = Path(folder) / f"{name}.json" if folder is not None else asset(f"results/{name}.json")
    return json.loads(Path(path).read_text())


def exists(name: str, folder: str | Path | None = None) -> bool:
    """Whether the results file ``name`` is in ``folder``, or (None) the book publishes it."""
    if folder is not None:
        return (Path(folder) / f"{name}.json").exists()
    return f"results/{name}.json" in manifest()


SPLITS = ("val", "test")


def values(results: dict, metric: str, scale: float = 1.0, split: str = "test") -> list[float]:
    """The per-seed values of ``metric`` (a dotted path into ``results["metrics"]``, or with
    ``split="val"`` into ``results["val_metrics"]`` with its ``test`` parts read as ``val``; a
    whole-number part indexes a list)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    keys = metric.split(".")
    if split == "val":
        keys = ["val" if key == "test" else key for key in keys]
    node = results.get("metrics" if split == "test" else "val_metrics")
    if node is None:
        raise KeyError(f"{results.get('experiment', 'results')} has no validation metrics")
    for key in keys:  # a whole-number key indexes a list: "betas.3.rate"
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            raise KeyError(f"{results.get('experiment', 'results')} has no metric {metric!r}")
    found = node["per_seed"] if isinstance(node, Mapping) and "per_seed" in node else [node]
    # counts stay whole numbers (printed as such); everything else is a float, scaled
    return [v if isinstance(v, int) and scale == 1 else scale * float(v) for v in found]


@dataclass(frozen=True)
class Column:
    """One column of ours: its title, its results files (one, or one per seed, pooled; a row's
    "file:metric" names its own), the split its settings were chosen on, a scale for every
    value (100 for percentages), the split it reports ('test', or 'val') and, for rows that name
    their file, the tags of that file's runs to pool (``("seed10", "seed11")`` reads
    <file>-seed10 and <file>-seed11, those of them that exist; a row whose file was not made
    reads as not measured)."""

    title: str
    files: str | Sequence[str]
    chosen_on: str
    scale: float = 1.0
    folder: str | Path | None = None
    split: str = "test"
    tags: tuple[str, ...] = ()

    def estimate(self, metric: str) -> Estimate | None:
        """``metric``'s values pooled over the column's files; "file:metric" reads that file
        instead (a table whose rows come from different runs)."""
        names = [self.files] if isinstance(self.files, str) else list(self.files)
        if ":" in metric:
            name, metric = metric.split(":", 1)
            # the runs of that file with the column's tags, those that were made
            tagged = [f"{name}-{tag}" for tag in self.tags] if self.tags else [name]
            names = [n for n in tagged if exists(n, self.folder)]
            if not names:
                return None
        found: list[float] = []
        dirty = False
        for name in names:
            results = read(name, self.folder)
            dirty |= str(results.get("git_commit", "")).endswith("-dirty")
            try:
                found += values(results, metric, self.scale, self.split)
            except KeyError:
                return None
        return Estimate(tuple(found), dirty)

    def cell(self, metric: str) -> str:
        """The table cell of ``metric``: its estimate, or MISSING where it was not measured."""
        found = self.estimate(metric)
        return str(found) if found is not None else MISSING


def results_table(
    rows: Mapping[str, str],
    columns: Sequence[Column],
    paper: Mapping[str, str] | None = None,
    paper_title: str = "paper",
) -> str:
    """A Markdown table: one row per metric (label -> metric path), the paper's numbers as
    given (text: a number, or "figure only"), then each column of ours; a last row says the
    split each column's settings were chosen on, and a line under the table explains DIRTY
    when a cell carries it."""
    titles = ([paper_title] if paper is not None else []) + [c.title for c in columns]
    lines = [
        "| | " + " | ".join(titles) + " |",
        "| --- |" + " --- |" * len(titles),
    ]
    for label, metric in rows.items():
        cells = [paper.get(label, MISSING)] if paper is not None else []
        cells += [column.cell(metric) for column in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    chosen = (["the authors"] if paper is not None else []) + [c.chosen_on for c in columns]
    lines.append("| settings chosen on | " + " | ".join(chosen) + " |")
    if any(DIRTY in line for line in lines[2:]):
        lines += ["", DIRTY_NOTE]
    return "\n".join(lines)


def notes_table(
    runs: Sequence[tuple[str, str]],
    metrics: Mapping[str, str],
    folder: str | Path | None = None,
    scale: float = 1.0,
    split: str = "test",
) -> str:
    """A lab-notes table: one row per run, (results file name, what changed and what it did, in
    one line), then each metric (column label -> metric path) with its seeds and spread, on the
    test split or, with ``split="val"``, the validation split."""
    lines = [
        "| what changed, and what it did | " + " | ".join(metrics) + " | results file |",
        "| --- |" + " --- |" * (len(metrics) + 1),
    ]
    for name, change in runs:
        column = Column(change, name, "", scale, folder, split)
        cells = [
            str(e) if (e := column.estimate(m)) is not None else MISSING for m in metrics.values()
        ]
        # plain text, not a code span: a long name may break at its hyphens to fit the column
        lines.append(f"| {change} | " + " | ".join(cells) + f" | {name}.json |")
    if any(DIRTY in line for line in lines[2:]):
        lines += ["", DIRTY_NOTE]
    return "\n".join(lines)
