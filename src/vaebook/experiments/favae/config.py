"""The configuration of FA-VAE's four Sprites experiments: one dataclass for all four, the
experiment named by `experiment`, with the FA-VAE, schedule and baseline settings each needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vaebook.experiments.common import RunSettings
from vaebook.models import FAVAEConfig, FAVAESchedule
from vaebook.nets import activation_layer

EXPERIMENT_NAMES = ("condition", "private-shared", "domain", "transfer")
ACTIONS = ("walk", "spellcard", "slash")
LABEL_VIEWS = ("categorical", "real")


@dataclass
class FAVAEExperiment(RunSettings):
    batch_size: int = 64
    experiment: str = "condition"  # one of EXPERIMENT_NAMES, fixed by the CLI name
    # n of the 1,000 - val_characters training characters (None: all)
    train_characters: int | None = None
    test_characters: int | None = None  # n of the 296 test characters (None: all)
    val_characters: int = 100  # held out for validation, of the 1,000 non-test characters
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
    tag: str = ""  # names a variant or a further seed: results/favae-<experiment>-<tag>.json

    def __post_init__(self):
        super().__post_init__()
        self.frames = tuple(self.frames)
        self.hidden = tuple(self.hidden)
        if (self.train_characters or 1) < 1 or (self.test_characters or 1) < 1:
            raise ValueError("train_characters and test_characters must be >= 1 (or None: all)")
        if self.val_characters < 0:
            raise ValueError(
                f"val_characters must be >= 0 (0: no validation split), got {self.val_characters}"
            )
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
        return "-".join(filter(None, ("favae", self.experiment, self.tag)))

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

    def model_checkpoint(self, baseline: str = "") -> Path:
        """The full checkpoint of this run's FA-VAE (baseline '') or of a baseline model
        ('vae', 'vae-a', 'beta-vae', ...): runs/favae-<experiment>[-<baseline>]-seed<s>.pt in
        the checkpoint folder."""
        return self.run_checkpoint(
            f"{baseline}-seed{self.seed}" if baseline else f"seed{self.seed}"
        )

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
