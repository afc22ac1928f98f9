"""CatVAE, InfoCatVAE and the Gumbel-softmax baseline on MNIST or Fashion-MNIST, several seeds:
clustering accuracy (Hungarian matching of categories to labels) and conditional-generation
accuracy (the share of images generated from category c that an independent CNN reads as the
label matched to c), on the validation and the test split. ``python -m vaebook reproduce
infocatvae --dataset mnist``.

With ``restarts`` R > 1 every seed trains R models (restart r of seed s starts from seed
s + 1000 r, so restart 0 is the plain run) and keeps the one whose objective on the validation
images is lowest, as k-means keeps the start of lowest inertia: no label and no test image is
used to choose. The results file holds every restart's objective and accuracies, so the choice
can be checked."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from vaebook.data import ImageData, load_images
from vaebook.experiments.classifier import trained_classifier
from vaebook.experiments.common import (
    EVALUATED_SPLITS,
    RunSettings,
    environment,
    fit_resumable,
    save_model,
    seed_summary,
    write_results,
)
from vaebook.metrics import clustering_accuracy
from vaebook.models import GumbelCatVAE, GumbelCatVAEConfig, InfoCatVAE, InfoCatVAEConfig
from vaebook.train import evaluate, pick_device, seed_everything

MODELS = ("infocatvae", "catvae", "gumbel")

# The authors' effective objective (their code): the ELBO summed over a batch of 128 plus 100 times
# the batch-mean information cross-entropy is, per image, an information weight of 100 / 128; and
# dropout 0.25 on the encoder's and the decoder's hidden layer. Their cross-entropy of softmax
# outputs (a second softmax) is left out: the package scores logits.
AUTHORS_SETTINGS = {"info_weight": 100.0 / 128, "dropout": 0.25, "decoder_dropout": 0.25}

# Ours, not the paper's (chapter 3, section 5): wider modes, a batch-level balance term instead of
# the per-image entropy penalty, a heavier KL on z so that the category carries more, and a
# consistency term that keeps the category of randomly moved copies under a small adversarial
# perturbation (IMSAT's self-augmentation with VAT), and an encoder that reads deskewed images.
OUR_SETTINGS = {
    "mode_scale": 5.0,
    "balance_weight": 100.0,
    "entropy_weight": 0.0,
    "kl_weight": 3.0,
    "consistency_weight": 100.0,
    "consistency_shift": 2.0,
    "consistency_degrees": 15.0,
    "consistency_zoom": 0.1,
    "consistency_adversarial": 1.0,
    "deskew": True,
}


@dataclass
class InfoCatExperiment(RunSettings):
    model: str = "infocatvae"  # infocatvae, catvae (no information term) or gumbel
    epochs: int = 20
    dataset: str = "mnist"
    seeds: tuple[int, ...] = (0, 1, 2)
    restarts: int = 1  # models trained per seed; the lowest objective on validation is kept
    categories: int = 10
    delta: int = 2
    mode_scale: float = 2.0  # lambda
    info_weight: float = 100.0  # used by infocatvae only
    kl_weight: float = 1.0
    entropy_weight: float = 1.0  # on sum_c q(c|x) log q(c|x); the ELBO's value is 1
    balance_weight: float = 0.0  # ours, not the paper's (0 = the paper's model)
    consistency_weight: float = 0.0  # ours, not the paper's (0 = the paper's model)
    consistency_shift: float = 2.0  # pixels, the largest shift of the consistency copies
    consistency_degrees: float = 0.0  # their largest rotation
    consistency_zoom: float = 0.0  # their largest relative change of scale
    consistency_shear: float = 0.0  # their largest horizontal shear (slant)
    consistency_adversarial: float = 0.0  # L2 norm of a VAT perturbation added to them
    deskew: bool = False  # ours: the encoder reads deskewed images
    dropout: float = 0.0  # on the encoder's features (the authors': 0.25)
    decoder_dropout: float = 0.0  # after the decoder's hidden layer (the authors': 0.25)
    arch: str = "mlp"
    hidden: tuple[int, ...] = (400,)
    samples_per_category: int = 100
    train_size: int | None = None
    tag: str = ""  # names a variant: results/<model>-<dataset>-<tag>.json
    save_checkpoint: bool = True  # the first seed's model, for the book to load

    def __post_init__(self):
        super().__post_init__()
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        self.seeds = tuple(self.seeds)
        self.hidden = tuple(self.hidden)
        if not self.seeds:
            raise ValueError("seeds must name at least one seed, e.g. seeds=(0, 1, 2)")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1 (1: no restarts), got {self.restarts}")

    @property
    def name(self) -> str:
        return "-".join(filter(None, (self.model, self.dataset, self.tag)))

    def build(self) -> InfoCatVAE:
        common = dict(
            categories=self.categories,
            delta=self.delta,
            mode_scale=self.mode_scale,
            arch=self.arch,
            hidden=self.hidden,
            kl_weight=self.kl_weight,
            entropy_weight=self.entropy_weight,
            # the Gumbel baseline refuses non-zero ones of these two
            balance_weight=self.balance_weight,
            consistency_weight=self.consistency_weight,
            consistency_shift=self.consistency_shift,
            consistency_degrees=self.consistency_degrees,
            consistency_zoom=self.consistency_zoom,
            consistency_shear=self.consistency_shear,
            consistency_adversarial=self.consistency_adversarial,
            deskew=self.deskew,
            dropout=self.dropout,
            decoder_dropout=self.decoder_dropout,
        )
        if self.model == "gumbel":
            return GumbelCatVAE(GumbelCatVAEConfig(**common))
        info = self.info_weight if self.model == "infocatvae" else 0.0
        return InfoCatVAE(InfoCatVAEConfig(info_weight=info, **common))


@torch.no_grad()
def conditional_generation_accuracy(
    model: InfoCatVAE, classifier, mapping: dict[int, int], per_category: int, seed: int = 0
) -> float:
    """Share of images sampled from each category c that the classifier labels mapping[c];
    categories with no matched label (see clustering_accuracy) count as errors."""
    model = model.cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    correct = 0
    for category, label in mapping.items():
        images = model.sample(category, per_category, generator=generator)
        correct += (classifier(images).argmax(1) == label).sum().item()
    return correct / (per_category * model.config.categories)


def measure(
    model: InfoCatVAE, test: ImageData, classifier, per_category: int = 100, seed: int = 0
) -> dict:
    """Test clustering accuracy (Hungarian matching), conditional-generation accuracy, the
    number of categories in use and the category -> label mapping, for a model on the CPU."""
    clusters = model.cpu().eval().classify(test.images)
    accuracy, mapping = clustering_accuracy(clusters, test.labels)
    return {
        "clustering_accuracy": accuracy,
        "conditional_generation_accuracy": conditional_generation_accuracy(
            model, classifier, mapping, per_category, seed
        ),
        "categories_used": int(clusters.unique().numel()),
        "mapping": mapping,
    }


def restart_seed(seed: int, restart: int) -> int:
    """The seed restart r of ``seed`` trains from: seed + 1000 r (restart 0 is the plain run)."""
    return seed + 1000 * restart


def validation_objective(model: InfoCatVAE, val: ImageData, seed: int = 0) -> float:
    """The training objective's mean over the validation images (their labels unused), with
    the random draws of its stochastic terms fixed by ``seed``: what restarts are chosen by."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return evaluate(model, ImageData(val.images))["total"]


def train_restart(
    config: InfoCatExperiment, seed: int, restart: int, train: ImageData
) -> tuple[InfoCatVAE, dict]:
    """Train one model of ``seed``'s ``restart``, resumable from checkpoints/runs/; returns the
    model on the CPU in eval mode and its per-epoch history."""
    run_seed = restart_seed(seed, restart)
    seed_everything(run_seed)
    model = config.build()
    train_config = config.train_config(run_seed, config.epochs)
    suffix = f"-restart{restart}" if restart else ""
    run_checkpoint = config.run_checkpoint(f"seed{seed}{suffix}")
    trainer = fit_resumable(model, train, train_config, run_checkpoint, config.resume)
    return model.cpu().eval(), dict(trainer.history)


def run(config: InfoCatExperiment) -> dict:
    """Train config.model once per seed (the best of ``restarts`` by the objective on the
    validation images); measure on the validation and the test split; write
    results/<name>.json and the first seed's checkpoint checkpoints/<name>.pt."""
    data = {split: load_images(config.dataset, split) for split in ("train", *EVALUATED_SPLITS)}
    train = data["train"]
    if config.train_size:
        train = train.subset(config.train_size, torch.Generator().manual_seed(0))
    train = ImageData(train.images, train.labels)
    classifier, classifier_accuracy = trained_classifier(
        config.dataset,
        checkpoint_dir=config.shared_checkpoint(f"classifier-{config.dataset}.pt").parent,
        device=config.device,
    )
    per_seed, checkpoints = [], {}
    start = time.perf_counter()
    for seed in config.seeds:
        restarts, kept = [], None  # kept: (objective, restart, model, history)
        for restart in range(config.restarts):
            model, history = train_restart(config, seed, restart, train)
            objective = validation_objective(model, data["val"], seed)
            scores = {
                split: measure(model, data[split], classifier, config.samples_per_category, seed)
                for split in EVALUATED_SPLITS
            }
            restarts.append(
                {
                    "restart": restart,
                    "seed": restart_seed(seed, restart),
                    "final_objective": history["total"][-1],
                    "val_objective": objective,
                    **scores,
                    "train_seconds": sum(history["seconds"]),  # kept by the run checkpoint
                }
            )
            if kept is None or objective < kept[0]:
                kept = (objective, restart, model, history)
        _, chosen, model, history = kept
        per_seed.append(
            {
                "seed": seed,
                "restart": chosen,
                **{split: restarts[chosen][split] for split in EVALUATED_SPLITS},
                "final_terms": {k: v[-1] for k, v in history.items()},
                "restarts": restarts,
            }
        )
        if config.save_checkpoint:
            path = config.seed_checkpoint(seed, first=seed == config.seeds[0])
            checkpoints[path.name] = save_model(path, model, history, config.epochs)

    def summary(split: str) -> dict:
        keys = ("clustering_accuracy", "conditional_generation_accuracy")
        return {key: seed_summary([r[split][key] for r in per_seed]) for key in keys}

    metrics = {**summary("test"), "classifier_test_accuracy": classifier_accuracy}
    extra = {
        "seconds": time.perf_counter() - start,
        "runs": per_seed,
        "checkpoint_sha256": checkpoints,
        **environment(pick_device(config.device)),
    }
    selected_on = "nothing chosen"
    if config.restarts > 1:
        selected_on = "val: restarts by their objective on the validation images"
    return write_results(
        config.results_path, config.model, config, metrics, extra, summary("val"), selected_on
    )
