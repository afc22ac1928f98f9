"""FA-VAE's domain experiment: domain A (one action) and domain B (another), rows paired only
through a shared label (hair): each A image with a random B image of another character with
the same hair. A -> B through the shared factors, against two N(0, I) VAEs joined by a
least-squares linear map."""

from __future__ import annotations

import torch
from torch import Tensor

from vaebook.data import SpritesData
from vaebook.experiments.classifier import SPRITES_VALUES, AttributeReader
from vaebook.experiments.favae.config import FAVAEExperiment
from vaebook.experiments.favae.evaluation import (
    Measure,
    fit_favae,
    fraction_equal,
    posterior_means,
    train_vae,
)
from vaebook.experiments.favae.views import (
    FAVAESplit,
    action_images,
    label_view,
    same_label_partners,
)
from vaebook.models import FAVAE, FAVAEData


def run_domain(
    config: FAVAEExperiment, split: FAVAESplit, reader: AttributeReader
) -> tuple[FAVAE, Measure, dict]:
    """Translation A -> B through the shared factors, against two N(0, I) VAEs joined by a
    least-squares linear map, all trained once on `split.train`. Returns (model, measure, extra):
    measure(data) translates a held-out split's A images, and `reader` checks that the shared
    label survives."""
    train = split.train
    label = config.shared_label
    a, b = action_images(train, config.domain_a), action_images(train, config.domain_b)
    partners = same_label_partners(
        a.factor(label).cpu(), b.factor(label).cpu(), a.character.cpu(), b.character.cpu(),
        config.seed,
    )  # fmt: skip
    b_images = b.images[partners.to(b.images.device)]
    labels = a.factor(label).cpu()
    side = {label: label_view(labels, SPRITES_VALUES, config.label_views)}
    model, history = fit_favae(config, ("a", "b"), FAVAEData({"a": a.images, "b": b_images}, side))
    shared = model.shared_factors(["a", "b"])

    # baseline: two N(0, I) VAEs, a least-squares linear map from A's codes to B's
    vae_a, _ = train_vae(config, "vae-a", model.config.vae_config(), a.images, config.epochs)
    vae_b, _ = train_vae(config, "vae-b", model.config.vae_config(), b_images, config.epochs)
    codes_a, codes_b = posterior_means(vae_a, a.images)[0], posterior_means(vae_b, b_images)[0]
    linear_map = torch.linalg.lstsq(_with_bias(codes_a), codes_b).solution  # (D + 1, D)
    column = train.attribute_names.index(label)

    def measure(held_out: SpritesData) -> dict:
        held_a = action_images(held_out, config.domain_a)
        source = {"a": model.encode("a", held_a.images)}  # encoded once, used twice
        translated = model.predict(source, "b", factors=shared).cpu()
        with torch.no_grad():
            held_codes = posterior_means(vae_a, held_a.images)[0]
            baseline = vae_b.decode(_with_bias(held_codes) @ linear_map).cpu()
        source_labels = held_a.factor(label)
        predicted = model.predict(source, label).argmax(1)
        return {
            "favae_translation_accuracy": fraction_equal(
                reader.read(translated)[:, column], source_labels
            ),
            "baseline_translation_accuracy": fraction_equal(
                reader.read(baseline)[:, column], source_labels
            ),
            "label_accuracy_from_a": fraction_equal(predicted, source_labels),
            "shared_factors": int(shared.sum()),
            "factors": model.fa.k,
        }

    return model, measure, {"history": history}


def _with_bias(codes: Tensor) -> Tensor:
    """Codes (N, D) with a column of ones (N, D + 1), for a linear map with an offset."""
    return torch.cat([codes, torch.ones(len(codes), 1, device=codes.device)], 1)
