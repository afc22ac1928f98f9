"""FA-VAE's private-shared experiment: two image views of the same character (facing left,
facing right), each in its own random action and frame, and the attributes. Which factors the
views share and which each keeps, images generated from the shared factors only and from one
view's private factors only, and what each set of factors says about the pose of its view."""

from __future__ import annotations

import torch
from torch import Tensor

from vaebook.data import SpritesData
from vaebook.experiments.classifier import AttributeReader
from vaebook.experiments.favae.config import FAVAEExperiment
from vaebook.experiments.favae.evaluation import Measure, attribute_agreement, fit_favae
from vaebook.experiments.favae.views import (
    FAVAESplit,
    attribute_views,
    left_and_right,
    same_character_partners,
)
from vaebook.metrics import latent_probe
from vaebook.models import FAVAE, FAVAEData


def pose_probes(
    model: FAVAE,
    factors: dict[str, Tensor],
    train: SpritesData,
    train_z: Tensor,
    test: SpritesData,
    test_inputs: dict,
) -> dict:
    """Test accuracy of a linear probe that reads the action and the frame of a left image from
    E[Z | that image] restricted to each set of `factors` ((K,) bool); a set with no factor
    reads nothing (a constant feature: the majority class). train_z: E[Z | left image] (N, K) of
    the training rows `train`, `model.fa.z_from(["left"])`; test_inputs: {"left": the latent
    view of test.images}, as `FAVAE.encode` gives it."""
    train_z = train_z.float().cpu()
    test_z = model.fa.posterior_z(test_inputs).mean.float().cpu()

    def restricted(z: Tensor, mask: Tensor) -> Tensor:
        return z[:, mask.cpu()] if mask.any() else torch.zeros(len(z), 1)

    return {
        name: {
            pose: latent_probe(
                restricted(train_z, mask),
                train.factor(pose).cpu(),
                restricted(test_z, mask),
                test.factor(pose).cpu(),
                hidden=(),
            )["test_accuracy"]
            for pose in ("action", "frame")
        }
        for name, mask in factors.items()
    }


def run_private_shared(
    config: FAVAEExperiment, split: FAVAESplit, reader: AttributeReader
) -> tuple[FAVAE, Measure, dict]:
    """Two image views (left, right) and the attributes, trained once on `split.train`. Returns
    (model, measure, extra): measure(data) gives the factor-by-view activity, the shared and
    private factors, what images generated from each set carry on a held-out split (read by
    `reader`), and what each set says about the pose."""
    train = split.train
    names = train.attribute_names
    left, right = left_and_right(train)
    if config.independent_poses:
        right = right.select(same_character_partners(right.character, config.seed))
    side = attribute_views(left.attributes, names, config.label_views)
    data = FAVAEData({"left": left.images, "right": right.images}, side)
    model, history = fit_favae(config, ("left", "right"), data)
    shared = model.shared_factors(["left", "right"])
    private_left, private_right = model.private_factors("left"), model.private_factors("right")
    train_z = model.fa.z_from(["left"])  # the pose probes' training codes

    def measure(held_out: SpritesData) -> dict:
        held_left, held_right = left_and_right(held_out)
        # encoded once, used by every reading below
        source = {"left": model.encode("left", held_left.images)}
        from_shared = model.predict(source, "right", factors=shared).cpu()
        from_all = model.predict(source, "right").cpu()
        from_private = model.predict(source, "left", factors=private_left).cpu()
        predicted = torch.stack([model.predict(source, n).argmax(1).cpu() for n in names], 1)
        # the left character at the pose of a random right image: shared factors from the one,
        # the right view's private factors from the other
        generator = torch.Generator().manual_seed(config.seed)
        pose_donors = held_right.select(torch.randperm(len(held_right), generator=generator))
        at_donor_pose = model.combine(
            [(source, shared), ({"right": pose_donors.images}, private_right)], "right"
        ).cpu()
        return {
            "views": list(model.fa.views),
            "activity": model.fa.activity().tolist(),
            "shared_factors": int(shared.sum()),
            "private_factors_left": int(private_left.sum()),
            "private_factors_right": int(private_right.sum()),
            "factors": model.fa.k,
            "attribute_accuracy_from_left": attribute_agreement(
                predicted, held_left.attributes, names
            ),
            "left_to_right_shared_attribute_accuracy": attribute_agreement(
                reader.read(from_shared), held_left.attributes, names
            ),
            "left_to_right_all_attribute_accuracy": attribute_agreement(
                reader.read(from_all), held_left.attributes, names
            ),
            "left_private_only_attribute_accuracy": attribute_agreement(
                reader.read(from_private), held_left.attributes, names
            ),
            "left_to_right_at_donor_pose_attribute_accuracy": attribute_agreement(
                reader.read(at_donor_pose), held_left.attributes, names
            ),
            "left_pose_probe_accuracy": pose_probes(
                model,
                {"shared": shared, "private": private_left},
                left,
                train_z,
                held_left,
                source,
            ),
        }

    return model, measure, {"history": history}
