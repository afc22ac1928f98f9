"""FA-VAE's four experiments (Guerrero-Lopez et al. 2022) on LPC Sprites, split by character.

- condition: FA-VAE on (images, the four attributes, the pose) against a vanilla VAE on the images:
  reconstruction and KL curves, attributes predicted from test images, images generated for
  attribute combinations and read by an independent classifier. The labels join the layer as
  the paper's categorical views or, with `label_views='real'`, as real views of their one-hot
  codes (then a categorical layer fitted on the trained codes reads the attributes back).
- private-shared: two image views of the same character (facing left, facing right), each in its
  own random action and frame, and the attributes: the factor-by-view activity map, the shared
  and private factors, images generated from the shared factors only and from one view's
  private factors only, and what each set of factors says about the pose of its view.
- domain: domain A (one action) and domain B (another), rows paired only through a shared label
  (hair): each A image with a random B image of another character with the same hair. A -> B
  through the shared factors, against two N(0, I) VAEs joined by a least-squares linear map.
- transfer: a beta-VAE trained alone, then its latent means as a real view beside a new image
  VAE (and the attributes): held-out reconstruction R^2 and KL of both.

``python -m vaebook reproduce favae-condition`` (or favae-private-shared, favae-domain,
favae-transfer) writes results/favae-<experiment>.json and checkpoints/favae-<experiment>.pt.
Every model it trains writes a full checkpoint under checkpoints/runs/ (the FA-VAE after every
warm-up epoch and round, the baselines after every epoch), and ``--resume`` continues a killed
run from them.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from vaebook import fa
from vaebook.data import (
    SPRITES_TEST_CHARACTERS,
    ImageData,
    SpritesData,
    as_float_images,
    load_sprites,
)
from vaebook.experiments.classifier import (
    SPRITES_VALUES,
    AttributeReader,
    trained_attribute_reader,
)
from vaebook.experiments.common import environment, fit_resumable, save_model, write_results
from vaebook.metrics import latent_probe
from vaebook.models import FAVAE, VAE, FAVAEConfig, FAVAEData, FAVAESchedule, VAEConfig
from vaebook.nets import activation_layer
from vaebook.probability import kl_normal, kl_to_standard_normal
from vaebook.train import TrainConfig, load_checkpoint, save_atomic, seed_everything

EXPERIMENT_NAMES = ("condition", "private-shared", "domain", "transfer")
LEFT, RIGHT = 1, 2  # direction indices of SpritesData (front, left, right)
ACTIONS = ("walk", "spellcard", "slash")
LABEL_VIEWS = ("categorical", "real")


@dataclass
class FAVAEExperiment:
    experiment: str = "condition"  # one of EXPERIMENT_NAMES, fixed by the CLI name
    train_characters: int | None = None  # n of the 1,000 training characters (None: all)
    test_characters: int | None = None  # n of the 296 test characters (None: all)
    frames: tuple[int, ...] = (0, 2, 4, 6)  # animation frames used, of 0..7
    latent_dim: int = 16
    hidden: tuple[int, ...] = (256,)
    # with 'relu' the VAEs ignore their codes for the first epochs (see vaebook.nets.ACTIVATIONS)
    activation: str = "leaky_relu"
    likelihood: str = "bernoulli"  # of the image VAEs, or 'gaussian' (one learned variance)
    factors: int = 40
    rounds: int = 20
    epochs_per_round: int = 1
    warmup_epochs: int = 4  # before the first FA round the latents must carry the attributes
    first_sweeps: int = 50
    sweeps: int = 5
    # how attributes and pose join the layer: 'categorical' (the paper's probit views) or 'real'
    # (their one-hot codes as real views; see `label_view`)
    label_views: str = "categorical"
    beta: float = 1.0  # weight of the KL to the factor-analysis prior (transfer: transfer_beta)
    beta_ramp_epochs: int = 0
    prior_from: str = "all"  # the VAEs' prior from Z of 'all' views or of the 'side' views only
    regrow: bool = False  # give the layer back its pruned factors every round (FAVAESchedule)
    batch_size: int = 64
    lr: float = 1e-3
    classifier_epochs: int = 3
    combinations: int | None = None  # condition: attribute combinations generated (None: all)
    # condition: action, direction and frame join as categorical views, so that an image can be
    # requested at one pose; without them a request decodes the mean code of all 36 poses, a blur
    pose_views: bool = True
    # private-shared: the right image of each row shows its character in another random action
    # and frame, so that pose is private to each view; False pairs the same pose, which leaves
    # nothing private (the two views then differ only by a constant, the direction)
    independent_poses: bool = True
    domain_a: str = "walk"  # domain: the action of domain A
    domain_b: str = "slash"  # domain: the action of domain B
    shared_label: str = "hair"  # domain: the attribute shared by the two domains
    transfer_beta: float = 4.0  # transfer: beta of the beta-VAE and of the new VAE
    seed: int = 0
    device: str = "auto"
    results_dir: str = "results"
    checkpoint_dir: str = "checkpoints"
    resume: bool = False  # continue from checkpoints/runs/favae-<experiment>*.pt if a run left them
    progress: bool = True

    def __post_init__(self):
        self.frames = tuple(self.frames)
        self.hidden = tuple(self.hidden)
        if (self.train_characters or 1) < 1 or (self.test_characters or 1) < 1:
            raise ValueError("train_characters and test_characters must be >= 1 (or None: all)")
        if self.experiment not in EXPERIMENT_NAMES:
            raise ValueError(
                f"experiment must be one of {EXPERIMENT_NAMES}, got {self.experiment!r}"
            )
        if self.likelihood not in ("bernoulli", "gaussian") or self.beta < 0:
            raise ValueError(
                "likelihood must be 'bernoulli' or 'gaussian' and beta >= 0, got "
                f"{self.likelihood!r} and {self.beta}"
            )
        if self.label_views not in LABEL_VIEWS:
            raise ValueError(f"label_views must be one of {LABEL_VIEWS}, got {self.label_views!r}")
        activation_layer(self.activation)  # refuses an unknown name before any data is loaded
        self.model_config(("image",))  # refuses a bad prior_from or factors before loading data
        if not self.frames or not set(self.frames) <= set(range(8)):
            raise ValueError(f"frames must be some of 0..7, got {self.frames}")
        if {self.domain_a, self.domain_b} - set(ACTIONS) or self.domain_a == self.domain_b:
            raise ValueError(
                f"domain_a and domain_b must be two different actions of {ACTIONS}, got "
                f"{self.domain_a!r} and {self.domain_b!r}"
            )

    @property
    def name(self) -> str:
        return f"favae-{self.experiment}"

    @property
    def epochs(self) -> int:
        """VAE epochs of the schedule, which every baseline gets too."""
        return self.warmup_epochs + self.rounds * self.epochs_per_round

    def schedule(self) -> FAVAESchedule:
        return FAVAESchedule(
            rounds=self.rounds,
            epochs_per_round=self.epochs_per_round,
            warmup_epochs=self.warmup_epochs,
            first_sweeps=self.first_sweeps,
            sweeps=self.sweeps,
            beta_ramp_epochs=self.beta_ramp_epochs,
            regrow=self.regrow,
        )

    def run_checkpoint(self, baseline: str = "") -> Path:
        """The full checkpoint of this run's FA-VAE (baseline '') or of a baseline model
        ('vae', 'vae-a', 'beta-vae', ...): checkpoints/runs/favae-<experiment>[-<baseline>].pt."""
        suffix = f"-{baseline}" if baseline else ""
        return Path(self.checkpoint_dir) / "runs" / f"{self.name}{suffix}.pt"

    def model_config(self, image_views: tuple[str, ...], beta: float = 1.0) -> FAVAEConfig:
        return FAVAEConfig(
            image_views=image_views,
            image_shape=(3, 64, 64),
            latent_dim=self.latent_dim,
            hidden=self.hidden,
            arch="conv",
            activation=self.activation,
            likelihood=self.likelihood,
            beta=beta,
            factors=self.factors,
            prior_from=self.prior_from,
            seed=self.seed,
        )

    def train_config(self, epochs: int = 0) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            device=self.device,
            progress=self.progress,
        )


# -- data ---------------------------------------------------------------------------------------


def sprites_split(
    train_characters: int | None,
    test_characters: int | None,
    frames: tuple[int, ...],
    seed: int = 0,
) -> tuple[SpritesData, SpritesData]:
    """Train and test images, split by character at random (seeded), at the given frames.

    The characters enumerate the 6^4 attribute combinations in order, so the loader's split (the
    last 296 as test) leaves body 5 out of training; a random split keeps every value in both.
    The test set holds 296 characters (or the first `test_characters` of them), the training
    set the other 1,000 (or the first `train_characters`), so no identity is in both.
    """
    splits = [load_sprites("train"), load_sprites("test")]
    characters = sum(len(s.character.unique()) for s in splits)
    order = torch.randperm(characters, generator=torch.Generator().manual_seed(seed))
    test_ids, train_ids = order[:SPRITES_TEST_CHARACTERS], order[SPRITES_TEST_CHARACTERS:]
    return (
        _characters(splits, train_ids[:train_characters], frames),
        _characters(splits, test_ids[:test_characters], frames),
    )


def _characters(splits: list[SpritesData], ids: Tensor, frames: tuple[int, ...]) -> SpritesData:
    """The images of characters `ids` at `frames`, gathered from the loader's splits."""
    parts = [
        s.select(torch.isin(s.character, ids) & torch.isin(s.frame, torch.tensor(frames)))
        for s in splits
    ]
    tensors = [f.name for f in fields(parts[0]) if isinstance(getattr(parts[0], f.name), Tensor)]
    return replace(parts[0], **{f: torch.cat([getattr(p, f) for p in parts]) for f in tensors})


def label_view(labels: Tensor, n_classes: int, kind: str = "categorical") -> fa.View:
    """Labels (N,) in 0..n_classes-1 as a view of the layer: 'categorical', the paper's probit
    view, or 'real', their one-hot codes (N, n_classes) as a real view, whose Gaussian
    conditioning pins Z down where a few probit observations leave it near its prior mean."""
    labels = labels.cpu()
    if kind == "real":
        return fa.Real(torch.nn.functional.one_hot(labels, n_classes).float())
    return fa.Categorical(labels, n_classes=n_classes)


def attribute_views(
    attributes: Tensor, names: tuple[str, ...], kind: str = "categorical"
) -> dict[str, fa.View]:
    """One view per attribute (`label_view` of `kind`): attributes (N, A) -> {name: view}."""
    return {
        name: label_view(attributes[:, a], SPRITES_VALUES, kind) for a, name in enumerate(names)
    }


def label_inputs(model: FAVAE, labels: dict[str, Tensor]) -> dict[str, fa.View]:
    """Labels {view: (B,)} of new rows as `FAVAE.predict` inputs, each a view of the kind the
    model's layer was fitted with (categorical, or one-hot real)."""
    inputs = {}
    for name, values in labels.items():
        template = model.fa.views[name]
        if isinstance(template, fa.Real):
            inputs[name] = label_view(values, template.data.shape[1], "real")
        else:
            inputs[name] = label_view(values, template.n_classes)
    return inputs


POSE_FACTORS = ("action", "direction", "frame")


def pose_labels(data: SpritesData, frames: tuple[int, ...]) -> Tensor:
    """Each image's pose (N, 3): action, direction and the index of its frame in `frames`."""
    frame_index = torch.full((8,), -1, dtype=torch.long)
    frame_index[list(frames)] = torch.arange(len(frames))
    return torch.stack([data.action, data.direction, frame_index[data.frame]], 1)


def pose_views(
    data: SpritesData, frames: tuple[int, ...], kind: str = "categorical"
) -> dict[str, fa.View]:
    """One view (`label_view` of `kind`) per pose factor that takes more than one value in
    `frames`' images: {'action', 'direction', 'frame' (with several frames)} -> view."""
    sizes = (len(ACTIONS), len(data.direction_names), len(frames))
    poses = pose_labels(data, frames)
    return {
        name: label_view(poses[:, i], size, kind)
        for i, (name, size) in enumerate(zip(POSE_FACTORS, sizes, strict=True))
        if size > 1
    }


def condition_inputs(
    model: FAVAE, attributes: Tensor, names: tuple[str, ...], poses: Tensor | None = None
) -> dict[str, fa.View]:
    """`FAVAE.predict` inputs (`label_inputs`) that request attributes (B, A) and, if the
    model has pose views, the poses (B, 3) from `pose_labels`."""
    labels = {name: attributes[:, a] for a, name in enumerate(names)}
    if poses is not None:
        labels |= {
            name: poses[:, i] for i, name in enumerate(POSE_FACTORS) if name in model.fa.views
        }
    return label_inputs(model, labels)


def attribute_reader(
    config: FAVAEExperiment, train: SpritesData, test: SpritesData
) -> tuple[AttributeReader, dict[str, float]]:
    """The attribute reader for this split (the seed picks it), cached, trained on first use;
    and its test accuracy per attribute."""
    characters = "all" if config.train_characters is None else config.train_characters
    frames = "".join(map(str, config.frames))
    path = Path(config.checkpoint_dir) / (
        f"classifier-sprites-attributes-{characters}c-{frames}f-{config.classifier_epochs}e-"
        f"seed{config.seed}.pt"
    )
    return trained_attribute_reader(
        train, test, path, config.train_config(config.classifier_epochs)
    )


def share_equal(a: Tensor, b: Tensor) -> float:
    """Share of rows where a and b (N,) agree."""
    return (a.cpu() == b.cpu()).float().mean().item()


def agreement(read: Tensor, requested: Tensor, names: tuple[str, ...]) -> dict[str, float]:
    """Share of rows whose read attributes equal the requested ones, per attribute and 'all'."""
    requested = requested.cpu()
    shares = dict(zip(names, (read == requested).float().mean(0).tolist(), strict=True))
    return {**shares, "all": (read == requested).all(1).float().mean().item()}


# -- evaluation of one VAE ----------------------------------------------------------------------


@torch.no_grad()
def posterior_means(vae: VAE, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Encoder mean and log-variance (N, D) of every image, float or uint8."""
    vae.eval()
    device = next(vae.parameters()).device
    moments = [
        vae.encode(as_float_images(images[i : i + batch_size].to(device)))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat([m for m, _ in moments]), torch.cat([v for _, v in moments])


@torch.no_grad()
def reconstructions(vae: VAE, images: Tensor, batch_size: int = 500) -> Tensor:
    """The decoded posterior means (N, C, H, W) in [0, 1] of `images`, float or uint8."""
    means = posterior_means(vae, images, batch_size)[0]
    return torch.cat([vae.decode(m).cpu() for m in means.split(batch_size)])


def code_probes(vae: VAE, train: SpritesData, test: SpritesData) -> dict[str, dict[str, float]]:
    """Test accuracy of probes that read each attribute from `vae`'s code means (train on
    `train`, score on `test`): 'linear' (logistic regression, what a linear layer can read) and
    'mlp' (Jha et al.'s 256-256 probe, what the codes hold at all), each {attribute: accuracy}."""
    codes = [posterior_means(vae, data.images)[0].cpu() for data in (train, test)]
    return {
        kind: {
            name: latent_probe(
                codes[0], train.attributes[:, a], codes[1], test.attributes[:, a], hidden=hidden
            )["test_accuracy"]
            for a, name in enumerate(train.attribute_names)
        }
        for kind, hidden in (("linear", ()), ("mlp", (256, 256)))
    }


@torch.no_grad()
def reconstruction_scores(vae: VAE, images: Tensor, batch_size: int = 500) -> dict[str, float]:
    """Held-out log p(x | h = posterior mean) per image (nats) and the pixel R^2 of the
    reconstructions, 1 - sum (x - x_hat)^2 / sum (x - mean pixel value)^2."""
    vae.eval()
    device = next(vae.parameters()).device
    loglik, squared_error, n = 0.0, 0.0, len(images)
    pixel_sum, pixel_sq_sum = 0.0, 0.0
    for i in range(0, n, batch_size):
        x = as_float_images(images[i : i + batch_size].to(device))
        mean = vae.encode(x)[0]
        loglik += vae.log_likelihood(x, mean).sum().item()
        squared_error += (x - vae.decode(mean)).pow(2).sum().item()
        pixel_sum += x.sum().item()
        pixel_sq_sum += x.pow(2).sum().item()
    pixels = n * images[0].numel()
    total_variation = pixel_sq_sum - pixel_sum**2 / pixels
    return {"loglik": loglik / n, "r2": 1 - squared_error / total_variation}


def train_vae(
    config: FAVAEExperiment, baseline: str, vae_config: VAEConfig, images: Tensor, epochs: int
) -> tuple[VAE, dict]:
    """A VAE with N(0, I) prior, built after seeding, trained on `images` (N, C, H, W) for
    `epochs` epochs with a full checkpoint every epoch at `config.run_checkpoint(baseline)`
    (resumed from it with `config.resume`); returns the VAE and its history."""
    seed_everything(config.seed)
    vae = VAE(vae_config)
    trainer = fit_resumable(
        vae,
        ImageData(images),
        config.train_config(epochs),
        config.run_checkpoint(baseline),
        config.resume,
    )
    return vae, dict(trainer.history)


def fit_favae(
    config: FAVAEExperiment,
    image_views: tuple[str, ...],
    data: FAVAEData,
    beta: float | None = None,
) -> tuple[FAVAE, dict]:
    """An FA-VAE with `image_views`, built after seeding, trained on `data` with the
    experiment's schedule and a full checkpoint after every round at `config.run_checkpoint()`
    (resumed from it with `config.resume`); returns the model and its history. beta: the KL
    weight (None: `config.beta`)."""
    seed_everything(config.seed)
    model = FAVAE(config.model_config(image_views, config.beta if beta is None else beta))
    train = replace(config.train_config(), checkpoint_path=str(config.run_checkpoint()))
    return model, model.fit(data, config.schedule(), train, resume=config.resume)


def round_seconds(history: dict, schedule: FAVAESchedule) -> dict[str, float]:
    """Median seconds of an FA-VAE round from `FAVAE.fit`'s history, over the rounds between
    the first (which starts the layer with `first_sweeps`) and the final refit: `vae` (the
    round's epochs), `encode` (latent views from the encoders), `fa` (sweeps and priors),
    `round` (their sum) and `fa_share` (fa / round)."""
    middle = range(1, schedule.rounds)
    if not middle:
        raise ValueError(
            "round_seconds needs a schedule with rounds >= 2 (one between first and last)"
        )
    epochs = history["seconds"][schedule.warmup_epochs :]
    per = schedule.epochs_per_round
    vae = statistics.median(sum(epochs[r * per : (r + 1) * per]) for r in middle)
    encode = statistics.median(history["encode_seconds"][r] for r in middle)
    fa_seconds = statistics.median(history["fa_seconds"][r] for r in middle)
    total = vae + encode + fa_seconds
    return {
        "vae": vae,
        "encode": encode,
        "fa": fa_seconds,
        "round": total,
        "fa_share": fa_seconds / total,
    }


def final(history: dict, key: str) -> float:
    return history[key][-1]


# -- the four experiments -----------------------------------------------------------------------


def condition_data(config: FAVAEExperiment, train: SpritesData) -> FAVAEData:
    """The conditioning experiment's rows: the images, the four attributes as views of kind
    `config.label_views` and, with `config.pose_views`, the pose factors as views too."""
    side_views = attribute_views(train.attributes, train.attribute_names, config.label_views)
    if config.pose_views:
        side_views |= pose_views(train, config.frames, config.label_views)
    return FAVAEData({"image": train.images}, side_views)


READING_SWEEPS = 100  # of the reading layer, from its PCA start (a run's first round has 50)


def reading_layer_path(config: FAVAEExperiment) -> Path:
    """Where `run_condition` keeps the categorical reading layer of a real-label-view run."""
    return Path(config.checkpoint_dir) / f"{config.name}-categorical-layer.pt"


def categorical_reading_layer(
    config: FAVAEExperiment, model: FAVAE, train: SpritesData
) -> fa.SSHIBA:
    """The paper's read-out of labels from codes, for a model trained with one-hot real label
    views: a factor-analysis layer with the trained encoder's moments on `train` as its latent
    view and the attributes and pose as categorical views, fitted afresh. Reading a one-hot
    code by least squares masks the middle values of an attribute whose codes lie along one
    direction (Hastie et al., ESL section 4.2); the probit views do not."""
    data = condition_data(replace(config, label_views="categorical"), train)
    views = {"image": model.encode("image", data.images["image"]), **data.side_views}
    settings = fa.FAConfig(seed=config.seed, device=model.device, dtype=torch.float64)
    return fa.SSHIBA(views, k=config.factors, config=settings).fit(n_iter=READING_SWEEPS)


def run_condition(config, train, test, reader) -> tuple[FAVAE, dict, dict]:
    names = train.attribute_names
    model, history = fit_favae(config, ("image",), condition_data(config, train))
    # the vanilla VAE keeps the plain ELBO (beta 1) whatever KL weight the FA-VAE uses
    vanilla = replace(model.config.vae_config(), beta=1.0)
    vae, vae_history = train_vae(config, "vae", vanilla, train.images, config.epochs)

    source = {"image": model.encode("image", test.images)}  # encoded once, read four times
    predicted = torch.stack([model.predict(source, name).argmax(1).cpu() for name in names], 1)
    combinations = torch.cartesian_prod(*[torch.arange(SPRITES_VALUES)] * len(names))
    if config.combinations is not None:
        generator = torch.Generator().manual_seed(config.seed)
        order = torch.randperm(len(combinations), generator=generator)
        combinations = combinations[order[: config.combinations]]
    # every combination at the pose of a random test image (seeded)
    generator = torch.Generator().manual_seed(config.seed + 1)
    rows = torch.randint(len(test), (len(combinations),), generator=generator)
    poses = pose_labels(test, config.frames)[rows]
    generated = torch.cat(
        [
            model.predict(
                condition_inputs(model, combinations[i : i + 500], names, poses[i : i + 500]),
                "image",
            ).cpu()
            for i in range(0, len(combinations), 500)
        ]
    )
    favae_test = reconstruction_scores(model.vaes["image"], test.images)
    vae_test = reconstruction_scores(vae, test.images)
    favae_loglik, vae_loglik = (
        -final(history, "reconstruction"),
        -final(vae_history, "reconstruction"),
    )
    read = {"attribute_accuracy": agreement(predicted, test.attributes, names)}
    if config.label_views == "real":  # the trained layer's read-out, then the paper's
        layer = categorical_reading_layer(config, model, train)
        save_atomic({"layer": layer.for_prediction()}, reading_layer_path(config))
        categorical = torch.stack([layer.predict(source, n).argmax(1).cpu() for n in names], 1)
        read = {
            "attribute_accuracy": agreement(categorical, test.attributes, names),
            "attribute_accuracy_real_views": read["attribute_accuracy"],
            "reading_layer_factors": layer.k,
        }
    metrics = {
        **read,
        "generation_accuracy": agreement(reader.read(generated), combinations, names),
        # the ceiling of generation: what the reader sees in the decoder's own reconstructions
        "reconstruction_accuracy": agreement(
            reader.read(reconstructions(model.vaes["image"], test.images)), test.attributes, names
        ),
        "combinations_generated": len(combinations),
        "favae_train_reconstruction_loglik": favae_loglik,
        "vae_train_reconstruction_loglik": vae_loglik,
        "loglik_gap_percent": 100 * (vae_loglik - favae_loglik) / abs(vae_loglik),
        "favae_train_kl": final(history, "kl"),
        "vae_train_kl": final(vae_history, "kl"),
        "favae_test_reconstruction_loglik": favae_test["loglik"],
        "vae_test_reconstruction_loglik": vae_test["loglik"],
        "factors": model.fa.k,
        "code_probe_accuracy": code_probes(model.vaes["image"], train, test),
    }
    return model, metrics, {"history": history, "vae_history": vae_history}


def directions(data: SpritesData) -> tuple[SpritesData, SpritesData]:
    """The left- and right-facing images of every (character, action, frame), row-aligned."""
    left, right = data.select(data.direction == LEFT), data.select(data.direction == RIGHT)
    for factor in ("character", "action", "frame"):
        if not torch.equal(left.factor(factor), right.factor(factor)):
            raise RuntimeError(f"left and right images are not aligned by {factor}")
    return left, right


def same_character_partners(character: Tensor, seed: int) -> Tensor:
    """(N,) for every row a random row of the same character: a permutation within each
    character, so that every image is used once."""
    generator = torch.Generator().manual_seed(seed)
    character = character.cpu().double()
    grouped = torch.argsort(character, stable=True)
    shuffled = torch.argsort(character + torch.rand(len(character), generator=generator))
    partners = torch.empty_like(grouped)
    partners[grouped] = shuffled  # rank i of the grouped order takes rank i of the shuffled one
    return partners


def pose_probes(model: FAVAE, factors: dict[str, Tensor], train, test, test_inputs) -> dict:
    """Test accuracy of a linear probe that reads the action and the frame of a left image from
    E[Z | that image] restricted to each set of `factors` ((K,) bool); a set with no factor
    reads nothing (a constant feature: the majority class). test_inputs: {"left": the latent
    view of test.images}, as `FAVAE.encode` gives it."""
    train_z = model.fa.z_from(["left"]).float().cpu()
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


def run_private_shared(config, train, test, reader) -> tuple[FAVAE, dict, dict]:
    names = train.attribute_names
    (left, right), (test_left, test_right) = directions(train), directions(test)
    if config.independent_poses:
        right = right.select(same_character_partners(right.character, config.seed))
    side = attribute_views(left.attributes, names, config.label_views)
    data = FAVAEData({"left": left.images, "right": right.images}, side)
    model, history = fit_favae(config, ("left", "right"), data)
    shared = model.shared_factors(["left", "right"])
    private_left, private_right = model.private_factors("left"), model.private_factors("right")
    # encoded once, used by every reading below
    source = {"left": model.encode("left", test_left.images)}
    from_shared = model.predict(source, "right", factors=shared).cpu()
    from_all = model.predict(source, "right").cpu()
    from_private = model.predict(source, "left", factors=private_left).cpu()
    predicted = torch.stack([model.predict(source, n).argmax(1).cpu() for n in names], 1)
    # the left character at the pose of a random right image: shared factors from the one,
    # the right view's private factors from the other
    donors = torch.randperm(len(test_right), generator=torch.Generator().manual_seed(config.seed))
    pose_donors = test_right.select(donors)
    at_donor_pose = model.combine(
        [(source, shared), ({"right": pose_donors.images}, private_right)], "right"
    ).cpu()
    metrics = {
        "views": list(model.fa.views),
        "activity": model.fa.activity().tolist(),
        "shared_factors": int(shared.sum()),
        "private_factors_left": int(private_left.sum()),
        "private_factors_right": int(private_right.sum()),
        "factors": model.fa.k,
        "attribute_accuracy_from_left": agreement(predicted, test_left.attributes, names),
        "left_to_right_shared_attribute_accuracy": agreement(
            reader.read(from_shared), test_left.attributes, names
        ),
        "left_to_right_all_attribute_accuracy": agreement(
            reader.read(from_all), test_left.attributes, names
        ),
        "left_private_only_attribute_accuracy": agreement(
            reader.read(from_private), test_left.attributes, names
        ),
        "left_to_right_at_donor_pose_attribute_accuracy": agreement(
            reader.read(at_donor_pose), test_left.attributes, names
        ),
        "left_pose_probe_accuracy": pose_probes(
            model, {"shared": shared, "private": private_left}, left, test_left, source
        ),
    }
    return model, metrics, {"history": history}


def domain(data: SpritesData, action: str) -> SpritesData:
    return data.select(data.action == ACTIONS.index(action))


def same_label_partners(labels_a: Tensor, labels_b: Tensor, characters_a, characters_b, seed):
    """For every row of A, a random row of B with the same label and another character."""
    generator = torch.Generator().manual_seed(seed)
    partners = torch.empty(len(labels_a), dtype=torch.long)
    for i in range(len(labels_a)):
        pool = ((labels_b == labels_a[i]) & (characters_b != characters_a[i])).nonzero()[:, 0]
        if len(pool) == 0:
            raise ValueError(
                f"no domain-B image of another character has label {int(labels_a[i])}; "
                "use more train_characters"
            )
        partners[i] = pool[torch.randint(len(pool), (1,), generator=generator)]
    return partners


def run_domain(config, train, test, reader) -> tuple[FAVAE, dict, dict]:
    label = config.shared_label
    a, b = domain(train, config.domain_a), domain(train, config.domain_b)
    test_a = domain(test, config.domain_a)
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
        "favae_translation_accuracy": share_equal(
            reader.read(translated)[:, column], source_labels
        ),
        "baseline_translation_accuracy": share_equal(
            reader.read(baseline)[:, column], source_labels
        ),
        "label_accuracy_from_a": share_equal(predicted, source_labels),
        "shared_factors": int(shared.sum()),
        "factors": model.fa.k,
    }
    return model, metrics, {"history": history}


def run_transfer(config, train, test, reader) -> tuple[FAVAE, dict, dict]:
    names = train.attribute_names
    vae_config = config.model_config(("image",), beta=config.transfer_beta).vae_config()
    beta_vae, beta_history = train_vae(config, "beta-vae", vae_config, train.images, config.epochs)
    pretrained = posterior_means(beta_vae, train.images)[0].cpu()
    side = {
        "pretrained": fa.Real(pretrained),
        **attribute_views(train.attributes, names, config.label_views),
    }
    data = FAVAEData({"image": train.images}, side)
    model, history = fit_favae(config, ("image",), data, beta=config.transfer_beta)

    inputs = {
        "pretrained": posterior_means(beta_vae, test.images)[0].cpu(),
        **condition_inputs(model, test.attributes, names),
    }
    prior_mean, prior_logvar = model.prior_from(inputs, "image")
    mean, logvar = posterior_means(model.vaes["image"], test.images)
    beta_mean, beta_logvar = posterior_means(beta_vae, test.images)
    favae_scores = reconstruction_scores(model.vaes["image"], test.images)
    beta_scores = reconstruction_scores(beta_vae, test.images)
    metrics = {
        "favae_test_r2": favae_scores["r2"],
        "beta_vae_test_r2": beta_scores["r2"],
        "favae_test_kl": kl_normal(mean, logvar, prior_mean, prior_logvar).mean().item(),
        "beta_vae_test_kl": kl_to_standard_normal(beta_mean, beta_logvar).mean().item(),
        "favae_test_reconstruction_loglik": favae_scores["loglik"],
        "beta_vae_test_reconstruction_loglik": beta_scores["loglik"],
        "factors": model.fa.k,
    }
    return model, metrics, {"history": history, "beta_vae_history": beta_history}


RUNS = {
    "condition": run_condition,
    "private-shared": run_private_shared,
    "domain": run_domain,
    "transfer": run_transfer,
}


def split_for(config: FAVAEExperiment) -> tuple[SpritesData, SpritesData]:
    """The (train, test) Sprites split of `config` (characters, frames, seed)."""
    return sprites_split(
        config.train_characters, config.test_characters, config.frames, config.seed
    )


def _check_split(config: FAVAEExperiment, train: SpritesData, test: SpritesData) -> None:
    """Refuse a split that `config` does not describe: the results would misreport it."""
    for name, data, characters in (
        ("train", train, config.train_characters),
        ("test", test, config.test_characters),
    ):
        found = len(data.character.unique())
        frames = tuple(sorted(data.frame.unique().tolist()))
        if (characters is not None and found != characters) or frames != tuple(
            sorted(config.frames)
        ):
            raise ValueError(
                f"the {name} split holds {found} characters at frames {frames}, but the config "
                f"asks for {characters} at {config.frames}; make it with split_for(config)"
            )


def run(config: FAVAEExperiment, split: tuple[SpritesData, SpritesData] | None = None) -> dict:
    """Run config.experiment; write results/favae-<experiment>.json and the FA-VAE's checkpoint
    checkpoints/favae-<experiment>.pt (VAE weights and the factor-analysis layer).

    split: (train, test) from `split_for(config)` when the caller holds it already (the chapter
    runs the four experiments on one split); None: loaded here.
    """
    start = time.perf_counter()
    train, test = split if split is not None else split_for(config)
    _check_split(config, train, test)
    reader, reader_accuracy = attribute_reader(config, train, test)
    model, metrics, extra = RUNS[config.experiment](config, train, test, reader)
    metrics["classifier_test_accuracy"] = reader_accuracy
    history = extra["history"]
    model.fa = model.fa.for_prediction()  # the book predicts; resuming reads the run checkpoint
    save_model(Path(config.checkpoint_dir) / f"{config.name}.pt", model, history, config.epochs)
    extra = {
        **extra,
        "train_images": len(train),
        "test_images": len(test),
        "seconds": time.perf_counter() - start,
        "train_seconds": training_seconds(history),
        **environment(model.device),
    }
    path = Path(config.results_dir) / f"{config.name}.json"
    return write_results(path, config.name, config, metrics, extra)


def training_seconds(history: dict) -> float:
    """Seconds of an FA-VAE's epochs, encodings and sweeps from `FAVAE.fit`'s history: over
    every session of a resumed run, whose `seconds` in the results count only the last."""
    return sum(sum(history.get(key, [])) for key in ("seconds", "encode_seconds", "fa_seconds"))


def load_run(
    experiment: str, results_dir: str | Path = "results", checkpoint_dir: str | Path = "checkpoints"
) -> tuple[dict, FAVAEExperiment, FAVAE]:
    """What `run` wrote for `experiment` (one of EXPERIMENT_NAMES): the results dict, its
    experiment config and the trained FA-VAE (eval mode, on the CPU). Raises
    FileNotFoundError naming the command that makes the files when they are absent."""
    if experiment not in EXPERIMENT_NAMES:
        raise ValueError(f"experiment must be one of {EXPERIMENT_NAMES}, got {experiment!r}")
    results_path = Path(results_dir) / f"favae-{experiment}.json"
    checkpoint = Path(checkpoint_dir) / f"favae-{experiment}.pt"
    if not (results_path.exists() and checkpoint.exists()):
        raise FileNotFoundError(
            f"{results_path} or {checkpoint} is missing; make both with "
            f"`python -m vaebook reproduce favae-{experiment}`"
        )
    results = json.loads(results_path.read_text())
    config = FAVAEExperiment(**results["config"])
    model = FAVAE(FAVAEConfig(**torch.load(checkpoint, weights_only=False)["model_config"]))
    load_checkpoint(checkpoint, model)
    return results, config, model.eval()
