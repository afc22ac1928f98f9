"""What every experiment writes: a results JSON (with the command that made it) and a small
model-only checkpoint that the book loads."""

from __future__ import annotations

import json
import math
import platform
import re
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from vaebook.assets import asset
from vaebook.checkpoints import file_sha256, write_atomic
from vaebook.train import (
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    load_checkpoint,
    model_config,
    save_atomic,
)

PACKAGE = Path(__file__).resolve().parents[1]  # src/vaebook


def git_commit(folder: Path = PACKAGE) -> str:
    """The commit checked out at `folder`, with '-dirty' when tracked files under `folder`
    differ from it (by default the package, whose code makes the numbers); 'unknown' outside
    git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


# read once, when a run imports the package: edits made while it trains do not change it
CODE_COMMIT = git_commit()


def environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": str(device),
        "device_name": name or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "git_commit": CODE_COMMIT,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass
class RunSettings:
    """The settings every experiment shares: how its models train and where the run writes.
    An experiment's config extends it (changing defaults where the paper's differ) and adds its
    own fields: its seeds (one ``seed`` or several ``seeds``) and its length (``epochs``, or
    FA-VAE's rounds), which differ in kind between experiments. Subclasses define ``name``.

    A run writes into its own folder, runs/<name>/, unless told where; ``publish`` writes into
    the book's results/ and checkpoints/ (the folders the chapters read)."""

    batch_size: int = 128
    lr: float = 1e-3
    device: str = "auto"  # 'auto' (cuda, then mps, then cpu) or a torch device string
    results_dir: str | None = None  # None: runs/<name>/, or results/ with publish
    checkpoint_dir: str | None = None  # None: runs/<name>/, or checkpoints/ with publish
    publish: bool = False  # write the results and checkpoint that the book quotes
    force: bool = False  # with publish: replace a published run that trained more
    allow_dirty: bool = False  # with publish: code with uncommitted edits (the file says so)
    resume: bool = False  # continue from the run checkpoints under <checkpoint_dir>/runs/
    progress: bool = True

    def __post_init__(self):
        if self.batch_size < 1 or not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(
                f"need batch_size >= 1 and a finite lr > 0, got {self.batch_size} and {self.lr}"
            )
        for field in ("epochs", "train_size", "test_size"):
            value = getattr(self, field, None)
            if value is not None and value < 1:
                raise ValueError(
                    f"{field} must be >= 1 (train_size, test_size: None for all), got {value}"
                )
        tag = getattr(self, "tag", "")
        if tag and not PLAIN_NAME.fullmatch(tag):
            raise ValueError(
                f"tag must be a plain name (letters, digits, '.', '_', '-'; no '/' or '..'), "
                f"got {tag!r}"
            )

    @property
    def name(self) -> str:
        raise NotImplementedError("an experiment's config names its files")

    @property
    def results_folder(self) -> Path:
        if self.results_dir is not None:
            return Path(self.results_dir)
        return Path("results") if self.publish else RUNS / self.name

    @property
    def checkpoint_folder(self) -> Path:
        if self.checkpoint_dir is not None:
            return Path(self.checkpoint_dir)
        return Path("checkpoints") if self.publish else RUNS / self.name

    @property
    def results_path(self) -> Path:
        return self.results_folder / f"{self.name}.json"

    @property
    def checkpoint_path(self) -> Path:
        """The small model-only checkpoint that the chapter loads."""
        return self.checkpoint_folder / f"{self.name}.pt"

    def shared_checkpoint(self, filename: str) -> Path:
        """A cached helper model (e.g. an independent classifier): the book's copy in
        checkpoints/ when there is one (only read), else this run's checkpoint folder."""
        published = Path("checkpoints") / filename
        return published if published.exists() else self.checkpoint_folder / filename

    def seed_checkpoint(self, seed: int, first: bool) -> Path:
        """The model-only checkpoint of one seed: `checkpoint_path` (the one the chapter loads)
        for the first seed, <name>-seed<k>.pt beside it for the others."""
        return (
            self.checkpoint_path if first else self.checkpoint_folder / f"{self.name}-seed{seed}.pt"
        )

    def run_checkpoint(self, part: str) -> Path:
        """The full checkpoint of one model of the run, e.g. part 'seed0' or 'beta4.0-seed0'."""
        return self.checkpoint_folder / "runs" / f"{self.name}-{part}.pt"

    def train_config(self, seed: int, epochs: int, **changes) -> TrainConfig:
        """The trainer's settings for one model of this run."""
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=seed,
            device=self.device,
            progress=self.progress,
            epoch_lines=self.progress,  # a long run's log keeps a line per epoch
            **changes,
        )


RUNS = Path("runs")  # where a run writes unless published or told otherwise
# the splits a run measures: val for every choice a run makes, test read once for the table
EVALUATED_SPLITS = ("val", "test")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_publish(config: RunSettings) -> None:
    """Refuse to publish results made by package code with uncommitted edits (the results file
    could not name the code that made it) unless ``config.allow_dirty``, and a run that trains
    less than the published one it would replace (fewer epochs or a smaller training subset)
    unless ``config.force``."""
    if not config.publish:
        return
    if CODE_COMMIT.endswith("-dirty") and not config.allow_dirty:
        raise ValueError(
            f"the package has uncommitted edits (git status {PACKAGE}), so the results file "
            "could not name the code that made it; commit them first, or add --allow-dirty "
            "(the file then records it)"
        )
    if config.force or not config.results_path.exists():
        return
    published = json.loads(config.results_path.read_text())["config"]

    def size(settings: dict) -> tuple[float, float]:
        epochs = settings.get("epochs")
        if epochs is None:  # FA-VAE counts rounds
            epochs = settings["warmup_epochs"] + settings["rounds"] * settings["epochs_per_round"]
        data = settings.get("train_size", settings.get("train_characters"))
        return epochs, math.inf if data is None else data

    new, old = size(asdict(config)), size(published)
    if new[0] < old[0] or new[1] < old[1]:
        raise ValueError(
            f"{config.results_path} was made by a longer run (epochs, training data: {old}) than "
            f"this one ({new}); publishing would replace it. Run without --publish (the results go "
            f"to {RUNS / config.name}/), or add --force to replace it"
        )


# the command-line flags of `python -m vaebook reproduce`, each a config field: the CLI builds its
# parser from this table and `reproduce_command` writes results' commands with it
FLAGS: dict[str, dict] = {
    "dataset": {"help": "e.g. mnist, fashion-mnist, sprites"},
    "epochs": {"type": int},
    "device": {"help": "auto (default), cpu, cuda, cuda:1, mps"},
    "seed": {"type": int, "help": "the seed (several-seed experiments: run this one only)"},
    "dims": {"type": int, "help": "latent dimensions, e.g. 16 or 64 (cyclevae)"},
    "iwae_k": {"type": int},
    "train_size": {"type": int},
    "test_size": {"type": int},
    "results_dir": {"help": "where the results file goes (default runs/<name>/)"},
    "checkpoint_dir": {"help": "where checkpoints go (default runs/<name>/)"},
    "publish": {
        "action": "store_true",
        "help": "write into the book's results/ and checkpoints/ (run from the repository root)",
    },
    "force": {"action": "store_true", "help": "with --publish: replace a longer published run"},
    "allow_dirty": {
        "action": "store_true",
        "help": "with --publish: accept package code with uncommitted edits (recorded)",
    },
    "resume": {"action": "store_true", "help": "continue a killed run from its last checkpoint"},
    "progress": {"action": "store_false", "flag": "--no-progress"},
}
# fields no command spells: the experiment's name fixes the first two, the rest change no number
UNRECORDED = ("model", "experiment", "progress", "results_dir", "checkpoint_dir", "force")


def reproduce_command(experiment: str, config) -> str:
    """The CLI line that makes these results: every field that differs from its default, as
    its own flag (`FLAGS`, in their order) or, after them, as --set FIELD=VALUE."""
    words = ["python -m vaebook reproduce", experiment]
    flags_first = list(FLAGS) + [f.name for f in fields(config)]
    for f in sorted(fields(config), key=lambda f: flags_first.index(f.name)):
        value = getattr(config, f.name)
        default = f.default if f.default is not MISSING else None
        if value == default or f.name in UNRECORDED:
            continue
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        flag = "--" + f.name.replace("_", "-")
        if FLAGS.get(f.name, {}).get("action") == "store_true":
            words.append(flag)
        elif f.name in FLAGS:
            words += [flag, text]
        else:
            words += ["--set", f"{f.name}={text}"]
    return " ".join(words)


def seed_summary(values: list[float]) -> dict:
    """{mean, std (0 for one seed), per_seed} of one metric over seeds, as results files hold it."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": spread, "per_seed": values}


def write_results(
    path: str | Path,
    experiment: str,
    config,
    metrics: dict,
    extra: dict,
    val_metrics: dict | None = None,
    selected_on: str | None = None,
) -> dict:
    """Write {command, experiment config, metrics (test), val_metrics, selected_on, environment,
    ...} as JSON, atomically, and return it. ``val_metrics`` has the shape of ``metrics``,
    measured on the validation split; ``selected_on`` says what the run's own choices
    (restarts, a reading layer's settings) were made on: 'val: ...' or 'nothing chosen'.
    Raises NonFiniteLossError, writing nothing, if any metric is NaN or infinite."""
    path = Path(path)
    bad = non_finite(metrics) + non_finite(val_metrics or {}, "val")
    if bad:
        raise NonFiniteLossError(
            f"metrics {bad[:5]} are not finite, so {path} was not written; the training "
            "diverged or an evaluation failed: lower the learning rate or set grad_clip"
        )
    results = {
        "experiment": path.stem,
        "command": reproduce_command(experiment, config),
        "config": asdict(config),
        "metrics": metrics,
        **({"val_metrics": val_metrics} if val_metrics is not None else {}),
        "selected_on": selected_on or "nothing chosen",
        **extra,
    }
    text = json.dumps(results, indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return results


def non_finite(value, where: str = "") -> list[str]:
    """The places (e.g. 'betas[2].rate') of NaN or infinite numbers inside nested dicts/lists."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{where}.{k}".lstrip("."))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    return []


def save_model(path: str | Path, model: nn.Module, history: dict, epoch: int) -> str:
    """A model-only checkpoint (no optimiser state): small enough to commit, loadable with
    ``vaebook.train.load_checkpoint``, which checks the config. Returns its SHA-256, which the
    results file records."""
    save_atomic(
        {
            "model_class": type(model).__name__,
            "model_config": model_config(model),
            # non-tensor entries are a module's extra state, e.g. FA-VAE's factor-analysis layer
            "model": {
                k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                for k, v in model.state_dict().items()
            },
            "history": history,
            "epoch": epoch,
        },
        path,
    )
    return file_sha256(path)


def fit_resumable(
    model: nn.Module,
    data,
    config: TrainConfig,
    run_checkpoint: str | Path,
    resume: bool,
    eval_data=None,
) -> Trainer:
    """Train with a full checkpoint (optimiser and RNG included) written to ``run_checkpoint``
    every epoch; with ``resume`` and a checkpoint there, continue from its last epoch (a
    finished run trains no further). A resumed run keeps the checkpoint's seed, learning rate,
    batch size and data (`Trainer.resume` refuses a change) and may only train longer; the
    device may change. Returns the trainer after ``fit()``."""
    config.checkpoint_path = str(run_checkpoint)
    if resume and Path(run_checkpoint).exists():

        def no_shorter(saved: TrainConfig, new: TrainConfig) -> list[str]:
            fix = f"use --epochs {saved.epochs} or more"
            shorter = f"epochs: started for {saved.epochs}, {new.epochs} now ({fix})"
            return [shorter] if new.epochs < saved.epochs else []

        trainer = Trainer.resume(
            run_checkpoint, model, data, eval_data, config=config, check=no_shorter
        )
    else:
        trainer = Trainer(model, data, config, eval_data)
    trainer.fit()
    return trainer


def load_or_train(
    model: nn.Module, checkpoint: str | Path, train: Callable[[nn.Module], dict], load: bool = True
) -> tuple[nn.Module, dict]:
    """What a chapter does in book mode: the weights of ``checkpoint`` (written by the reproduce
    command) when ``load`` is true and the file holds this model's class and config; else
    ``train(model)``, which trains ``model`` in place and returns its history. ``checkpoint`` is a
    path, or (a str) the name of a published file such as ``"checkpoints/vae-mnist.pt"``, which
    ``vaebook.assets.asset`` finds or downloads only when it is loaded. Prints which of the two
    happened. Returns the model on the CPU in eval mode and its per-epoch history."""
    reason = "quick mode trains a small model"
    if load:
        try:
            if isinstance(checkpoint, str):
                checkpoint = asset(checkpoint)
            state = load_checkpoint(checkpoint, model)
            print(f"loaded {Path(checkpoint).name}: {state['epoch']} epochs of the reproduce run")
            return model.cpu().eval(), state["history"]
        except (FileNotFoundError, ValueError) as error:  # absent, another config, damaged
            reason = str(error)
    print(f"training here ({reason})")
    history = train(model)
    return model.cpu().eval(), history
