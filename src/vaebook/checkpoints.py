"""Checkpoints: written atomically, read without running code, checked against the model.

A checkpoint is a dict of tensors, numbers, strings and containers (and the factor-analysis layer
of `vaebook.fa`, whose types it registers as safe), with the model's class name and its config as
a plain dict; `load_checkpoint` refuses one made for another class or config.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import torch
from torch import nn


class CheckpointMismatchError(ValueError):
    """A checkpoint was made for another model class or configuration."""


class DamagedCheckpointError(ValueError):
    """A checkpoint file is truncated, empty or not a vaebook checkpoint at all."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds Python objects that loading would have to run code to rebuild."""


def model_config(model: nn.Module) -> dict:
    """The model's config dataclass as a plain dict (empty if the model has none)."""
    config = getattr(model, "config", None)
    return asdict(config) if config is not None else {}


def _same_config(saved: dict, model: nn.Module) -> bool:
    """Whether a checkpoint's config is the model's. A field the checkpoint lacks counts as
    its default: the checkpoint was written before the field existed, when the model behaved
    as the default does."""
    current, config = model_config(model), getattr(model, "config", None)
    defaults = {f.name: f.default for f in fields(config)} if config is not None else {}
    saved = {**{k: defaults.get(k, MISSING) for k in current.keys() - saved.keys()}, **saved}

    # tuples become lists after a round trip through JSON or pickle-free storage
    def normalise(d: dict) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    return normalise(saved) == normalise(current)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` to `path`'s temporary file in the same folder, then rename it to
    `path`: a kill mid-write leaves the previous file intact, and the next write to `path`
    replaces the temporary a kill left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex: what a results file records of each checkpoint."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_atomic(state: dict, path: str | Path) -> None:
    """torch.save, atomically (`write_atomic`)."""
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path) -> dict:
    """A checkpoint's dict, on the CPU, read with ``torch.load(weights_only=True)``: tensors,
    numbers, strings, containers and the types vaebook registers (the factor-analysis layer of
    `vaebook.fa`). Raises `UnsafeCheckpointError` for anything else, so that a checkpoint from
    elsewhere cannot run code when it loads."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first or check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found is None:  # not a pickle torch can read: random or foreign bytes
            raise _damaged(path, "it is not a PyTorch checkpoint") from error
        raise UnsafeCheckpointError(
            f"checkpoint {path} holds a Python object that vaebook does not write "
            f"({found.group(1)}); loading it could run code, so it is refused. Use a checkpoint "
            "made by vaebook (the reproduce command or Trainer) or retrain"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:  # truncated, empty or unreadable
        first_line = (str(error).splitlines() or ["empty or cut short"])[0]
        raise _damaged(path, f"{type(error).__name__}: {first_line}") from error
    if not isinstance(state, dict):
        raise _damaged(path, f"it holds a {type(state).__name__}, not a checkpoint dict")
    return state


def _damaged(path: Path, reason: str) -> DamagedCheckpointError:
    return DamagedCheckpointError(
        f"checkpoint {path} cannot be read ({reason}); a kill during a copy or download leaves "
        "such a file. Delete it and train again (or fetch it again)"
    )


def load_checkpoint(path: str | Path, model: nn.Module) -> dict:
    """Load a checkpoint's weights into ``model`` after checking that it was made for the same
    model class and config; returns the whole checkpoint dict (history, epoch, configs)."""
    path = Path(path)
    state = load_state(path)
    if "model" not in state:
        raise _damaged(path, "it holds no model weights")
    cls, config = type(model).__name__, model_config(model)
    if state.get("model_class") != cls or not _same_config(state.get("model_config", {}), model):
        raise CheckpointMismatchError(
            f"checkpoint {path} holds a {state.get('model_class')} with config "
            f"{state.get('model_config')}, but the model is a {cls} with config {config}; "
            "build the model from the checkpoint's config "
            "(e.g. VAE(VAEConfig(**state['model_config']))) or retrain"
        )
    model.load_state_dict(state["model"])
    return state
