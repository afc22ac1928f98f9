"""The Cycle-Consistent VAE's disentanglement table (Jha et al. 2018, Table 1) and its two
baselines (Mathieu et al. 2016, Szabo et al. 2017): train on same-label pairs, then three probes
(a small classifier reading the label from the sampled z, from the mean of z, and from s), each
with the encoder's InstanceNorm layers in both eval modes. Low z accuracy with high s accuracy
means the label went to s and stayed out of z.

``python -m vaebook reproduce cyclevae|mathieu|szabo --dataset mnist|fashion-mnist|sprites
--dims 16``; ``reproduce cyclevae-authors`` applies the probes to the authors' released MNIST
16/16 checkpoint instead of training.

MNIST and Fashion-MNIST: the model and the probes train on the training split (50,000 images)
and the probes are measured on the validation and the test split. Sprites: the label is the
character; the encoder trains on the training split's 900 characters, and for each of the
validation and the test split the probes train on the even frames of its characters and are
measured on their odd frames (a probe cannot name characters it never saw, and the encoder never
saw these). Every probe is also run as a plain MLP on the mean of z (``z_mean_plain``), so a
reader sees how much of that number is the probe's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vaebook.data import ImageData, PairedData, load_images, load_sprites
from vaebook.experiments.common import (
    EVALUATED_SPLITS,
    RunSettings,
    environment,
    fit_resumable,
    save_model,
    seed_summary,
    write_results,
)
from vaebook.metrics import latent_probe
from vaebook.models import CycleVAE, CycleVAEConfig, PairAdversarial, PairAdversarialConfig
from vaebook.models.cyclevae_nets import (
    NORM_MODES,
    CycleEncoder,
    load_authors_cyclevae,
    set_norm_mode,
)
from vaebook.train import pick_device, seed_everything

MODELS = ("cyclevae", "mathieu", "szabo", "authors")
DATASETS = ("mnist", "fashion-mnist", "sprites")
# the authors' released MNIST 16/16 weights (MIT licence), in the repository's checkpoints/
AUTHORS_CHECKPOINT = Path("checkpoints")


@dataclass
class CycleVAEExperiment(RunSettings):
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    model: str = "cyclevae"  # cyclevae, mathieu, szabo, or authors (their released weights)
    dataset: str = "mnist"  # mnist, fashion-mnist or sprites
    dims: int = 16  # both the unspecified (z) and the specified (s) dimension
    seeds: tuple[int, ...] = (0, 1)
    lr_milestones: tuple[int, ...] = (80,)  # the learning rate is divided by 10 after these
    reconstruction_weight: float | None = None  # None: the authors' 2, or 3 for 64 dimensions
    kl_weight: float = 3.0
    reverse_cycle_weight: float = 10.0  # cyclevae only
    independence_weight: float = 0.0  # cyclevae only; ours: HSIC(mean of z, s), 0: the authors'
    independence_start: int = 0  # cyclevae only: training steps before that term joins
    independence_on_features: bool = True  # cyclevae only; False: that term trains z's head only
    adversarial_weight: float = 0.01  # mathieu and szabo only
    probe_epochs: int = 30
    norm_modes: tuple[str, ...] = NORM_MODES  # eval modes the probes are run in
    train_size: int | None = None  # a random subset (Sprites: whole characters), for quick runs
    test_size: int | None = None
    authors_checkpoint: str = str(AUTHORS_CHECKPOINT / "cyclevae-authors-mnist-16-16")
    tag: str = ""  # names a variant or a further seed: results/<model>-<dataset>-<dims>-<tag>.json

    def __post_init__(self):
        super().__post_init__()
        self.seeds = tuple(self.seeds)
        self.lr_milestones = tuple(self.lr_milestones)
        self.norm_modes = tuple(self.norm_modes)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed, e.g. seeds=(0, 1)")
        if not self.norm_modes or set(self.norm_modes) - set(NORM_MODES):
            raise ValueError(f"norm_modes must be a non-empty subset of {NORM_MODES}")
        if self.model == "authors" and (self.dataset, self.dims) != ("mnist", 16):
            raise ValueError("the authors' released checkpoint is MNIST 16/16: use --dims 16")

    @property
    def name(self) -> str:
        model = "cyclevae-authors" if self.model == "authors" else self.model
        return "-".join(filter(None, (model, self.dataset, str(self.dims), self.tag)))

    def build(self, image_shape: tuple[int, int, int]) -> CycleVAE | PairAdversarial:
        weight = self.reconstruction_weight or (3.0 if self.dims == 64 else 2.0)
        common = dict(
            image_shape=image_shape,
            unspecified_dim=self.dims,
            specified_dim=self.dims,
            reconstruction_weight=weight,
            kl_weight=self.kl_weight,
        )
        if self.model == "cyclevae":
            return CycleVAE(
                CycleVAEConfig(
                    reverse_cycle_weight=self.reverse_cycle_weight,
                    independence_weight=self.independence_weight,
                    independence_start=self.independence_start,
                    independence_on_features=self.independence_on_features,
                    **common,
                )
            )
        return PairAdversarial(
            PairAdversarialConfig(
                method=self.model, adversarial_weight=self.adversarial_weight, **common
            )
        )


def load_probe_data(
    config: CycleVAEExperiment,
) -> tuple[ImageData, dict[str, tuple[ImageData, ImageData]]]:
    """(training data for the model, {split: (probe-train data, probe-eval data)} for 'val' and
    'test'), on the CPU. MNIST-like sets share one probe-train set (the model's training data)."""
    generator = torch.Generator().manual_seed(0)
    if config.dataset == "sprites":
        train = load_sprites("train")
        held_out = {split: load_sprites(split) for split in EVALUATED_SPLITS}
    else:
        train = load_images(config.dataset, "train")
        held_out = {split: load_images(config.dataset, split) for split in EVALUATED_SPLITS}
    if config.train_size and config.dataset == "sprites":
        # whole characters (the first ones), so that every identity keeps its pairs
        ids = train.character.unique()
        per_character = len(train) // len(ids)
        keep = ids[: math.ceil(config.train_size / per_character)]
        train = train.select(torch.isin(train.character, keep))
    elif config.train_size:
        train = train.subset(config.train_size, generator)
    probes = {}
    for split, data in held_out.items():
        if config.test_size:
            data = data.subset(config.test_size, torch.Generator().manual_seed(0))
        if config.dataset == "sprites":
            probes[split] = (data.select(data.frame % 2 == 0), data.select(data.frame % 2 == 1))
        else:
            probes[split] = (train, data)
    return train, probes


@torch.no_grad()
def encode_all(
    encoder: CycleEncoder, data: ImageData, device: torch.device, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mean, logvar (N, z_dim) and s (N, s_dim) of every image of ``data``, on ``device``."""
    encoder.eval()
    parts = []
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)))
        x, _ = data.batch(index)
        parts.append(encoder(x.to(device)))
    return tuple(torch.cat(codes) for codes in zip(*parts, strict=True))


def probe_latents(
    encoder: CycleEncoder,
    probe_train: ImageData,
    probe_test: ImageData,
    epochs: int,
    device: torch.device,
    seed: int = 0,
    variational: bool = True,
    probe_val: ImageData | None = None,
) -> dict[str, dict[str, float]]:
    """Train and test (and, with ``probe_val``, val) accuracy of the probe on the sampled z (a
    fresh sample each epoch), the mean of z, the mean of z read by a plain MLP instead
    (``z_mean_plain``), and s, with the encoder as it is (eval mode, its current norm mode).
    For a deterministic z (variational=False: Szabo et al.) the sampled z is the mean."""
    evaluated = {"test": probe_test} | ({"val": probe_val} if probe_val is not None else {})
    # labels as 0..K-1 (Sprites ids are 1000..1295)
    parts = [probe_train, *evaluated.values()]
    _, labels = torch.cat([p.labels for p in parts]).unique(return_inverse=True)
    labels = labels.to(device).split([len(p) for p in parts])
    moments = ("mean", "logvar", "s")
    train = dict(zip(moments, encode_all(encoder, probe_train, device), strict=True))
    held_out = {
        name: dict(zip(moments, encode_all(encoder, data, device), strict=True)) | {"labels": y}
        for (name, data), y in zip(evaluated.items(), labels[1:], strict=True)
    }

    def probe(code: str, sampled: bool = False, **options) -> dict[str, float]:
        """`latent_probe` of the label from `code` ('mean' or 's'); with ``sampled``, from a
        fresh sample of z each epoch and one sample of the held-out codes."""
        evaluated_codes = {}
        for name, codes in held_out.items():
            evaluated_codes |= {f"{name}_codes": codes[code], f"{name}_labels": codes["labels"]}
            if sampled:
                evaluated_codes[f"{name}_logvar"] = codes["logvar"]
        return latent_probe(
            train[code],
            labels[0],
            epochs=epochs,
            seed=seed,
            train_logvar=train["logvar"] if sampled else None,
            **evaluated_codes,
            **options,
        )

    z_mean = probe("mean")
    return {
        "z_sample": probe("mean", sampled=True) if variational else z_mean,
        "z_mean": z_mean,
        "z_mean_plain": probe("mean", batch_norm=False),
        "s": probe("s"),
    }


PROBES = ("z_sample", "z_mean", "z_mean_plain", "s")


def probe_splits(
    encoder: CycleEncoder,
    probe_data: dict[str, tuple[ImageData, ImageData]],
    epochs: int,
    device: torch.device,
    seed: int,
    variational: bool,
) -> dict[str, dict[str, float]]:
    """`probe_latents` for every split of ``probe_data`` ({split: (probe-train, probe-eval)}):
    one probe per probe-train set (MNIST's val and test share one), {probe: {train_accuracy,
    val_accuracy, test_accuracy}} with train accuracy from the test split's probe."""
    (val_train, val), (test_train, test) = probe_data["val"], probe_data["test"]
    if val_train is test_train:
        return probe_latents(encoder, test_train, test, epochs, device, seed, variational, val)
    on_val = probe_latents(encoder, val_train, val, epochs, device, seed, variational)
    on_test = probe_latents(encoder, test_train, test, epochs, device, seed, variational)
    return {
        probe: {**scores, "val_accuracy": on_val[probe]["test_accuracy"]}
        for probe, scores in on_test.items()
    }


def run(config: CycleVAEExperiment) -> dict:
    """Train config.model once per seed (none for 'authors') and probe its encoder; write
    results/<name>.json and the first seed's checkpoints/<name>.pt."""
    train, probe_data = load_probe_data(config)
    device = pick_device(config.device)
    runs, checkpoints = [], {}
    start = time.perf_counter()
    for seed in config.seeds:
        seed_everything(seed)
        if config.model == "authors":
            encoder, _ = load_authors_cyclevae(config.authors_checkpoint)
            encoder, history, epochs, variational = encoder.to(device), {}, 0, True
        else:
            model = config.build(train.image_shape)
            train_config = config.train_config(
                seed, config.epochs, lr_milestones=config.lr_milestones
            )
            run_checkpoint = config.run_checkpoint(f"seed{seed}")
            trainer = fit_resumable(
                model, PairedData(train), train_config, run_checkpoint, config.resume
            )
            history = dict(trainer.history)
            encoder, epochs, variational = model.encoder, trainer.epoch, model.variational
            path = config.seed_checkpoint(seed, first=seed == config.seeds[0])
            checkpoints[path.name] = save_model(path, model, history, epochs)
        # summed over epochs, so that a resumed run counts the epochs of every session
        train_seconds = sum(history.get("seconds", []))
        probe_start, probes = time.perf_counter(), {}
        for mode in config.norm_modes:
            set_norm_mode(encoder, mode)
            probes[mode] = probe_splits(
                encoder, probe_data, config.probe_epochs, device, seed, variational
            )
        runs.append(
            {
                "seed": seed,
                "epochs": epochs,
                "train_seconds": train_seconds,
                "probe_seconds": time.perf_counter() - probe_start,
                "probes": probes,
                "final_terms": {k: v[-1] for k, v in history.items()},
            }
        )

    def summary(splits: tuple[str, ...]) -> dict:
        return {
            mode: {
                probe: {
                    split: seed_summary(
                        [r["probes"][mode][probe][f"{split}_accuracy"] for r in runs]
                    )
                    for split in splits
                }
                for probe in PROBES
            }
            for mode in config.norm_modes
        }

    metrics, val_metrics = summary(("train", "test")), summary(("train", "val"))
    extra = {
        "seconds": time.perf_counter() - start,
        "probe_data": {
            split: {"train": len(probe_train), split: len(probe_eval)}
            for split, (probe_train, probe_eval) in probe_data.items()
        },
        "runs": runs,
        "checkpoint_sha256": checkpoints,
        **environment(device),
    }
    experiment = "cyclevae-authors" if config.model == "authors" else config.model
    return write_results(
        config.results_path, experiment, config, metrics, extra, val_metrics, "nothing chosen"
    )
