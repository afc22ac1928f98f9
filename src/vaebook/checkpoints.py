"""Checkpoints: written atomically, read without running code, checked against the model.

A checkpoint is a dict of tensors, numbers, strings and containers (and the factor-analysis layer
of `vaebook.fa`, whose types it registers as safe), with the model's class name and its config as
a plain dict; `load_checkpoint` refuses one made for another class or config.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import torch
from torch import nn


class CheckpointMismatchError(ValueError):
    """A checkpoint was made for another model class or configuration."""


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


def save_atomic(state: dict, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: a kill mid-write
    leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: str | Path) -> dict:
    """A checkpoint's dict, on the CPU, read with ``torch.load(weights_only=True)``: tensors,
    numbers, strings, containers and the types vaebook registers (the factor-analysis layer of
    `vaebook.fa`). Raises `UnsafeCheckpointError` for anything else, so that a checkpoint from
    elsewhere cannot run code when it loads."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first or check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        raise UnsafeCheckpointError(
            f"checkpoint {path} holds a Python object that vaebook does not write "
            f"({found.group(1) if found else 'not a tensor, number or container'}); loading it "
            "could run code, so it is refused. Use a checkpoint made by vaebook (the reproduce "
            "command or Trainer) or retrain"
        ) from error


def load_checkpoint(path: str | Path, model: nn.Module) -> dict:
    """Load a checkpoint's weights into ``model`` after checking that it was made for the same
    model class and config; returns the whole checkpoint dict (history, epoch, configs)."""
    path = Path(path)
    state = load_state(path)
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
