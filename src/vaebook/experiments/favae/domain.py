"""FA-VAE's domain experiment: domain A (one action) and domain B (another), rows paired only
through a shared label (hair): each A image with a random B image of another character with
the same hair. A -> B through the shared factors, against two N(0, I) VAEs joined by a
least-squares linear map."""

from __future__ import annotations

import torch

from vaebook.data import SpritesData
from vaebook.experiments.classifier import SPRITES_VALUES, AttributeReader
from vaebook.experiments.favae.config import FAVAEExperiment
from vaebook.experiments.favae.evaluation import (
    fit_favae,
    fraction_equal,
    posterior_means,
    train_vae,
)
from vaebook.experiments.favae.views import action_images, label_view, same_label_partners
from vaebook.models import FAVAE, FAVAEData


def run_domain(
    config: FAVAEExperiment, train: SpritesData, test: SpritesData, reader: AttributeReader
) -> tuple[FAVAE, dict, dict]:
    """Translation A -> B through the shared factors, against two N(0, I) VAEs joined by a
    least-squares linear map; `reader` checks that the shared label survives. Returns (model,
    metrics, extra)."""
    label = config.shared_label
    a, b = action_images(train, config.domain_a), action_images(train, config.domain_b)
    test_a = action_images(test, config.domain_a)
    partners = same_label_partners(
        a.factor(label).cpu(), b.factor(label).cpu(), a.character.cpu(), b.character.cpu(),
        config.seed,
    )  # fmt: skip
    b_images = b.images[partners.to(b.images.device)]
    labels = a.factor(label).cpu()
    side = {label: label_view(labels, SPRITES_VALUES, config.label_views)}
    model, history = fit_favae(config, ("a", "b"), FAVAEData({"a": a.images, "b": b_images}, side))
    shared = model.shared_factors(["a", "b"])
    source = {"a": model.encode("a", test_a.images)}  # encoded once, used twice
    translated = model.predict(source, "b", factors=shared).cpu()

    # baseline: two N(0, I) VAEs, a least-squares linear map from A's codes to B's
    vae_a, _ = train_vae(config, "vae-a", model.config.vae_config(), a.images, config.epochs)
    vae_b, _ = train_vae(config, "vae-b", model.config.vae_config(), b_images, config.epochs)
    codes_a, codes_b = posterior_means(vae_a, a.images)[0], posterior_means(vae_b, b_images)[0]
    with_bias = torch.cat([codes_a, torch.ones(len(codes_a), 1, device=codes_a.device)], 1)
    linear_map = torch.linalg.lstsq(with_bias, codes_b).solution  # (D + 1, D)
    test_codes = posterior_means(vae_a, test_a.images)[0]
    test_with_bias = torch.cat(
        [test_codes, torch.ones(len(test_codes), 1, device=test_codes.device)], 1
    )
    with torch.no_grad():
        baseline = vae_b.decode(test_with_bias @ linear_map).cpu()

    column = train.attribute_names.index(label)
    source_labels = test_a.factor(label)
    predicted = model.predict(source, label).argmax(1)
    metrics = {
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
    return model, metrics, {"history": history}
