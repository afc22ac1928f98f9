"""FA-VAE's conditioning experiment: FA-VAE on (images, the four attributes, the pose)
against a vanilla VAE. Attributes are read from test images, and images are generated for
attribute combinations and read by an independent classifier. The labels join the layer as the
paper's categorical views or, with `label_views='real'`, as real views of their one-hot codes
(then a categorical layer fitted on the trained codes reads the attributes back)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from vaebook import fa
from vaebook.data import SpritesData
from vaebook.experiments.classifier import SPRITES_VALUES, AttributeReader
from vaebook.experiments.favae.config import FAVAEExperiment
from vaebook.experiments.favae.evaluation import (
    Measure,
    attribute_agreement,
    code_probes,
    fit_favae,
    reconstruction_scores,
    reconstructions,
    train_vae,
)
from vaebook.experiments.favae.views import (
    FAVAESplit,
    condition_data,
    condition_inputs,
    pose_labels,
)
from vaebook.models import FAVAE
from vaebook.train import save_atomic

READING_SWEEPS = 100  # of the reading layer, from its PCA start (a run's first round has 50)


def reading_layer_path(config: FAVAEExperiment) -> Path:
    """Where `run_condition` keeps the categorical reading layer of a real-label-view run."""
    return config.checkpoint_folder / f"{config.name}-categorical-layer.pt"


def categorical_reading_layer(
    config: FAVAEExperiment, model: FAVAE, train: SpritesData
) -> fa.SSHIBA:
    """The paper's read-out of labels from codes, for a model trained with one-hot real label
    views: a factor-analysis layer with the trained encoder's moments on `train` as its latent
    view and the attributes and pose as categorical views, fitted afresh. Reading a one-hot
    code by least squares masks the middle values of an attribute whose codes lie along one
    direction (Hastie et al., ESL section 4.2); the probit views do not."""
    data = condition_data(replace(config, label_views="categorical"), train)
    return model.reading_layer(data, sweeps=READING_SWEEPS)


def seen_combinations(combinations: Tensor, train_attributes: Tensor) -> Tensor:
    """Which rows of ``combinations`` (M, A) some training image has as its attributes (N, A),
    values 0..SPRITES_VALUES-1: (M,) bool."""
    digits = SPRITES_VALUES ** torch.arange(combinations.shape[1])
    return torch.isin(combinations.cpu() @ digits, train_attributes.cpu() @ digits)


def run_condition(
    config: FAVAEExperiment, split: FAVAESplit, reader: AttributeReader
) -> tuple[FAVAE, Measure, dict]:
    """FA-VAE on the images, the attributes and the pose, against a vanilla VAE, both trained
    once on `split.train`. Returns (model, measure, extra): measure(data) gives the metrics on a
    held-out split's images: attributes read from them, images generated for attribute
    combinations at their poses and read back by `reader` (also with the code's offset
    rescaled by `FAVAE.offset_scale` fitted on `split.val`, when there is one), and both
    models' reconstruction and KL."""
    train = split.train
    names = train.attribute_names
    model, history = fit_favae(config, ("image",), condition_data(config, train))
    # the vanilla VAE keeps the plain ELBO (beta 1) whatever KL weight the FA-VAE uses
    vanilla = replace(model.config.vae_config(), beta=1.0)
    vae, vae_history = train_vae(config, "vae", vanilla, train.images, config.epochs)
    combinations = torch.cartesian_prod(*[torch.arange(SPRITES_VALUES)] * len(names))
    if config.combinations is not None:
        generator = torch.Generator().manual_seed(config.seed)
        order = torch.randperm(len(combinations), generator=generator)
        combinations = combinations[order[: config.combinations]]
    # combinations no training character has: what the model composes rather than recalls
    seen = seen_combinations(combinations, train.attributes)
    layer = None
    if config.label_views == "real":  # the paper's read-out, beside the trained layer's
        layer = categorical_reading_layer(config, model, train)
        save_atomic({"layer": layer.for_prediction()}, reading_layer_path(config))
    favae_loglik, vae_loglik = -history["reconstruction"][-1], -vae_history["reconstruction"][-1]
    # ours, not the paper's: chosen on the validation characters, applied to every split
    scale = None
    if split.val is not None:
        poses = pose_labels(split.val, config.frames)
        requests = condition_inputs(model, split.val.attributes, names, poses)
        scale = model.offset_scale(requests, split.val.images, "image")

    def measure(held_out: SpritesData) -> dict:
        source = {"image": model.encode("image", held_out.images)}  # encoded once, read four times
        predicted = torch.stack([model.predict(source, name).argmax(1).cpu() for name in names], 1)
        # every combination at the pose of a random image of the split (seeded)
        generator = torch.Generator().manual_seed(config.seed + 1)
        rows = torch.randint(len(held_out), (len(combinations),), generator=generator)
        poses = pose_labels(held_out, config.frames)[rows]
        batches = [slice(i, i + 500) for i in range(0, len(combinations), 500)]
        requests = [condition_inputs(model, combinations[b], names, poses[b]) for b in batches]

        def generate(scale: float) -> Tensor:  # the same requests, decoded at an offset scale
            return torch.cat(
                [model.predict(r, "image", offset_scale=scale).cpu() for r in requests]
            )

        generated = generate(1.0)
        favae_scores = reconstruction_scores(model.vaes["image"], held_out.images)
        vae_scores = reconstruction_scores(vae, held_out.images)
        read = {"attribute_accuracy": attribute_agreement(predicted, held_out.attributes, names)}
        if layer is not None:  # the trained layer's read-out, then the paper's
            categorical = torch.stack([layer.predict(source, n).argmax(1).cpu() for n in names], 1)
            read = {
                "attribute_accuracy": attribute_agreement(categorical, held_out.attributes, names),
                "attribute_accuracy_real_views": read["attribute_accuracy"],
                "reading_layer_factors": layer.k,
            }
        generated_read = reader.read(generated)
        by_novelty = {
            f"generation_accuracy_{kind}": attribute_agreement(
                generated_read[mask], combinations[mask], names
            )
            for kind, mask in (("seen", seen), ("unseen", ~seen))
            if mask.any()
        }
        if scale is not None:
            by_novelty |= {
                "generation_accuracy_rescaled": attribute_agreement(
                    reader.read(generate(scale)), combinations, names
                ),
                "offset_scale": scale,
            }
        return {
            **read,
            "generation_accuracy": attribute_agreement(generated_read, combinations, names),
            **by_novelty,
            "combinations_seen_in_training": int(seen.sum()),
            # the ceiling of generation: what the reader sees in the decoder's reconstructions
            "reconstruction_accuracy": attribute_agreement(
                reader.read(reconstructions(model.vaes["image"], held_out.images)),
                held_out.attributes,
                names,
            ),
            "combinations_generated": len(combinations),
            "favae_train_reconstruction_loglik": favae_loglik,
            "vae_train_reconstruction_loglik": vae_loglik,
            "loglik_gap_percent": 100 * (vae_loglik - favae_loglik) / abs(vae_loglik),
            "favae_train_kl": history["kl"][-1],
            "vae_train_kl": vae_history["kl"][-1],
            "favae_test_reconstruction_loglik": favae_scores["loglik"],
            "vae_test_reconstruction_loglik": vae_scores["loglik"],
            "factors": model.fa.k,
            "code_probe_accuracy": code_probes(model.vaes["image"], train, held_out),
        }

    return model, measure, {"history": history, "vae_history": vae_history}
