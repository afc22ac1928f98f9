"""What every experiment writes: a results JSON (with the command that made it) and a small
model-only checkpoint that the book loads."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from vaebook.train import (
    CheckpointMismatchError,
    TrainConfig,
    Trainer,
    UnsafeCheckpointError,
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
    FA-VAE's rounds), which differ in kind between experiments."""

    batch_size: int = 128
    lr: float = 1e-3
    device: str = "auto"  # 'auto' (cuda, then mps, then cpu) or a torch device string
    results_dir: str = "results"
    checkpoint_dir: str = "checkpoints"
    resume: bool = False  # continue from the run checkpoints under <checkpoint_dir>/runs/
    progress: bool = True

    def train_config(self, seed: int, epochs: int, **changes) -> TrainConfig:
        """The trainer's settings for one model of this run."""
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=seed,
            device=self.device,
            progress=self.progress,
            **changes,
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
    "results_dir": {},
    "checkpoint_dir": {},
    "resume": {"action": "store_true", "help": "continue a killed run from its last checkpoint"},
    "progress": {"action": "store_false", "flag": "--no-progress"},
}
# fields no command spells: the experiment's name fixes the first two, the rest change no number
UNRECORDED = ("model", "experiment", "progress", "results_dir", "checkpoint_dir")


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


def write_results(path: str | Path, experiment: str, config, metrics: dict, extra: dict) -> dict:
    """Write {command, experiment config, metrics, environment, ...} as JSON and return it."""
    results = {
        "experiment": path.stem if isinstance(path, Path) else Path(path).stem,
        "command": reproduce_command(experiment, config),
        "config": asdict(config),
        "metrics": metrics,
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def save_model(path: str | Path, model: nn.Module, history: dict, epoch: int) -> None:
    """A model-only checkpoint (no optimiser state): small enough to commit, loadable with
    ``vaebook.train.load_checkpoint``, which checks the config."""
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
    finished run trains no further). Returns the trainer after ``fit()``."""
    config.checkpoint_path = str(run_checkpoint)
    if resume and Path(run_checkpoint).exists():
        trainer = Trainer.resume(
            run_checkpoint, model, data, eval_data, epochs=config.epochs, progress=config.progress
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
    ``train(model)``, which trains ``model`` in place and returns its history. Prints which of the
    two happened. Returns the model on the CPU in eval mode and its per-epoch history."""
    reason = "quick mode trains a small model"
    if load:
        try:
            state = load_checkpoint(checkpoint, model)
            print(f"loaded {Path(checkpoint).name}: {state['epoch']} epochs of the reproduce run")
            return model.cpu().eval(), state["history"]
        except (FileNotFoundError, CheckpointMismatchError, UnsafeCheckpointError) as error:
            reason = str(error)
    print(f"training here ({reason})")
    history = train(model)
    return model.cpu().eval(), history
