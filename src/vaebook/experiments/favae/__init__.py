"""FA-VAE's four experiments (Guerrero-Lopez et al. 2022) on LPC Sprites, split by character.

One module each: `condition` (FA-VAE conditioned on the attributes and the pose, against a
vanilla VAE), `private_shared` (left and right views: shared and private factors), `domain`
(two actions paired through one label: translation against a linear map between two VAEs) and
`transfer` (a trained beta-VAE's codes as a view of a new VAE's layer); `config` holds their
settings, `views` the Sprites split and the views of the layer, `evaluation` what they measure
and the models they train.

``python -m vaebook reproduce favae-condition`` (or favae-private-shared, favae-domain,
favae-transfer) writes favae-<experiment>.json and favae-<experiment>.pt into its run folder
(with --publish: results/ and checkpoints/). Every model it trains writes a full checkpoint under
the checkpoint folder's runs/ (the FA-VAE after every warm-up epoch and round, the baselines
after every epoch), and ``--resume`` continues a killed run from them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vaebook.assets import asset
from vaebook.data import SpritesData
from vaebook.experiments.common import environment, save_model, write_results
from vaebook.experiments.favae.condition import (
    READING_SWEEPS,
    categorical_reading_layer,
    reading_layer_path,
    run_condition,
)
from vaebook.experiments.favae.config import ACTIONS, EXPERIMENT_NAMES, LABEL_VIEWS, FAVAEExperiment
from vaebook.experiments.favae.domain import run_domain
from vaebook.experiments.favae.evaluation import (
    attribute_agreement,
    attribute_reader,
    code_probes,
    fit_favae,
    fraction_equal,
    posterior_means,
    reconstruction_scores,
    reconstructions,
    round_seconds,
    train_vae,
    training_seconds,
)
from vaebook.experiments.favae.private_shared import pose_probes, run_private_shared
from vaebook.experiments.favae.transfer import run_transfer
from vaebook.experiments.favae.views import (
    POSE_FACTORS,
    FAVAESplit,
    action_images,
    attribute_views,
    condition_data,
    condition_inputs,
    label_inputs,
    label_view,
    left_and_right,
    pose_labels,
    pose_views,
    same_character_partners,
    same_label_partners,
    sprites_split,
)
from vaebook.models import FAVAE, FAVAEConfig
from vaebook.train import load_checkpoint, load_state

RUNS = {
    "condition": run_condition,
    "private-shared": run_private_shared,
    "domain": run_domain,
    "transfer": run_transfer,
}


def split_for(config: FAVAEExperiment) -> FAVAESplit:
    """The (train, val, test) Sprites split of `config` (characters, frames, seed); val is None
    when `config.val_characters` is 0."""
    return sprites_split(
        config.train_characters,
        config.test_characters,
        config.frames,
        config.seed,
        config.val_characters,
    )


def _check_split(config: FAVAEExperiment, split: FAVAESplit) -> None:
    """Refuse a split that `config` does not describe: the results would misreport it."""
    wanted = tuple(sorted(config.frames))
    for name, data, characters in (
        ("train", split.train, config.train_characters),
        ("val", split.val, config.val_characters),  # val None holds 0 characters
        ("test", split.test, config.test_characters),
    ):
        found = 0 if data is None else len(data.character.unique())
        frames = wanted if data is None else tuple(sorted(data.frame.unique().tolist()))
        if (characters is not None and found != characters) or frames != wanted:
            raise ValueError(
                f"the {name} split holds {found} characters at frames {frames}, but the config "
                f"asks for {characters} at {config.frames}; make it with split_for(config)"
            )


def run(config: FAVAEExperiment, split: FAVAESplit | None = None) -> dict:
    """Run config.experiment; write results/favae-<experiment>.json and the FA-VAE's checkpoint
    checkpoints/favae-<experiment>.pt (VAE weights and the factor-analysis layer).

    The models train once on the train split; the results hold `metrics` measured on the test
    split and, with `config.val_characters`, `val_metrics` (the same keys) on the validation
    split. split: from `split_for(config)` when the caller holds it already (the chapter runs
    the four experiments on one split); None: loaded here.
    """
    start = time.perf_counter()
    split = split if split is not None else split_for(config)
    _check_split(config, split)
    reader, _ = attribute_reader(config, split.train, split.test)
    model, measure, extra = RUNS[config.experiment](config, split, reader)

    def measured(data: SpritesData) -> dict:
        return {**measure(data), "classifier_test_accuracy": reader.accuracy(data)}

    metrics = measured(split.test)
    val_metrics = measured(split.val) if split.val is not None else None
    history = extra["history"]
    model.fa = model.fa.for_prediction()  # the book predicts; resuming reads the run checkpoint
    checkpoint_sha256 = {
        config.checkpoint_path.name: save_model(
            config.checkpoint_path, model, history, config.epochs
        )
    }
    extra = {
        **extra,
        "train_images": len(split.train),
        **({"val_images": len(split.val)} if split.val is not None else {}),
        "test_images": len(split.test),
        "seconds": time.perf_counter() - start,
        "train_seconds": training_seconds(history),
        "checkpoint_sha256": checkpoint_sha256,
        **environment(model.device),
    }
    return write_results(
        config.results_path,
        f"favae-{config.experiment}",  # the CLI's name; a tag goes in as --set tag=...
        config,
        metrics,
        extra,
        val_metrics=val_metrics,
        selected_on="nothing chosen",  # FA-VAE runs choose nothing among candidates
    )


def load_run(
    experiment: str,
    results_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    tag: str = "",
) -> tuple[dict, FAVAEExperiment, FAVAE]:
    """What `run` wrote for `experiment` (one of EXPERIMENT_NAMES) and `tag` (the config's, e.g.
    'seed10'): the results dict, its experiment config and the trained FA-VAE (eval mode, on the
    CPU). Folders None: the book's published files (``vaebook.assets``: beside the notebook,
    cached, or downloaded). Raises FileNotFoundError naming the command that makes the files when
    they are absent."""
    if experiment not in EXPERIMENT_NAMES:
        raise ValueError(f"experiment must be one of {EXPERIMENT_NAMES}, got {experiment!r}")
    stem = FAVAEExperiment(experiment=experiment, tag=tag).name

    def published(folder: str | Path | None, kind: str, suffix: str) -> Path:
        name = f"{stem}{suffix}"
        return Path(folder) / name if folder is not None else asset(f"{kind}/{name}")

    results_path = published(results_dir, "results", ".json")
    checkpoint = published(checkpoint_dir, "checkpoints", ".pt")
    if not (results_path.exists() and checkpoint.exists()):
        raise FileNotFoundError(
            f"{results_path} or {checkpoint} is missing; make both with "
            f"`python -m vaebook reproduce favae-{experiment}"
            + (f" --set tag={tag}" if tag else "")
            + " --publish`"
        )
    results = json.loads(results_path.read_text())
    # files written before the validation split trained on every non-test character: 0 held out
    config = FAVAEExperiment(**{"val_characters": 0, **results["config"]})
    model = FAVAE(FAVAEConfig(**load_state(checkpoint)["model_config"]))
    load_checkpoint(checkpoint, model)
    return results, config, model.eval()


__all__ = [
    "ACTIONS",
    "EXPERIMENT_NAMES",
    "LABEL_VIEWS",
    "FAVAEExperiment",
    "FAVAESplit",
    "run",
    "load_run",
    "split_for",
    "READING_SWEEPS",
    "categorical_reading_layer",
    "reading_layer_path",
    "run_condition",
    "run_private_shared",
    "run_domain",
    "run_transfer",
    "pose_probes",
    "attribute_agreement",
    "attribute_reader",
    "code_probes",
    "fit_favae",
    "fraction_equal",
    "posterior_means",
    "reconstruction_scores",
    "reconstructions",
    "round_seconds",
    "train_vae",
    "training_seconds",
    "POSE_FACTORS",
    "action_images",
    "attribute_views",
    "condition_data",
    "condition_inputs",
    "label_inputs",
    "label_view",
    "left_and_right",
    "pose_labels",
    "pose_views",
    "same_character_partners",
    "same_label_partners",
    "sprites_split",
]
