"""CatVAE and InfoCatVAE (Pineau & Lelarge 2018, arXiv 1806.08240), and a Gumbel-softmax baseline.

Latent: a category c in {1..K} and a continuous code z in R^d, d = K * delta. The prior is fixed:
p(c) uniform, p(z|c) = N(mu_c, I) with mu_c = lambda on the c-th block of delta coordinates and 0
elsewhere, so the K means are orthogonal and equidistant. Per example, the CatVAE loss is

    reconstruction + sum_c q(c|x) KL(q(z|x,c) || N(mu_c, I)) + sum_c q(c|x) log q(c|x)

and InfoCatVAE adds ``info_weight`` times the cross-entropy between c and q(c | decode(z)) for
z ~ N(mu_c, I): generated samples must be recognisable as their category (a lower bound on the
mutual information between c and the image, as in InfoGAN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaebook.checks import (
    check_images,
    require_choice,
    require_image_shape,
    require_int,
    require_real,
    require_sizes,
)
from vaebook.data import deskew, random_affine
from vaebook.nets import make_decoder, make_encoder
from vaebook.probability import bernoulli_log_likelihood, kl_to_standard_normal, reparameterize


@dataclass
class InfoCatVAEConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)
    categories: int = 10  # K
    delta: int = 2  # dimensions per category's block
    latent_dim: int | None = None  # d; must equal categories * delta (None: computed)
    mode_scale: float = 2.0  # lambda, the norm of every prior mean
    hidden: tuple[int, ...] = (400,)
    arch: str = "mlp"
    dropout: float = 0.0  # on the encoder's features, in training only (the authors': 0.25, on
    # at test time too)
    decoder_dropout: float = 0.0  # on the MLP decoder's hidden units (the authors': 0.25)
    kl_weight: float = 1.0
    entropy_weight: float = 1.0
    info_weight: float = 0.0  # 0: CatVAE; the authors' InfoCatVAE uses 100
    info_samples: int = 10  # generated images per category for the information term
    balance_weight: float = 0.0  # ours, not the paper's: entropy of the batch-mean q(c)
    consistency_weight: float = 0.0  # ours: q(c|x) kept by shifted copies of x
    consistency_shift: float = 2.0  # pixels, the largest shift of those copies
    consistency_degrees: float = 0.0  # the largest rotation of those copies, either way
    consistency_zoom: float = 0.0  # their scale factor lies in [1 - zoom, 1 + zoom]
    consistency_shear: float = 0.0  # the largest horizontal shear (slant) of those copies
    consistency_adversarial: float = 0.0  # L2 norm of a VAT perturbation added to them (0: none)
    deskew: bool = False  # ours: the encoder reads x with its slant removed; z must carry slant

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        self.hidden = tuple(self.hidden)
        # each message names the field and a valid value
        require_image_shape(self.image_shape)
        require_int("categories", self.categories, 2, example=10)
        require_int("delta", self.delta, 1, example=2)
        expected = self.categories * self.delta
        if self.latent_dim is None:
            self.latent_dim = expected
        require_int("latent_dim", self.latent_dim, 1, example=expected)
        if self.latent_dim != expected:
            raise ValueError(
                f"latent_dim must be categories * delta = {self.categories} * {self.delta} = "
                f"{expected} (one delta-dimensional block per category), got {self.latent_dim}; "
                "leave latent_dim=None to compute it"
            )
        require_real("mode_scale", self.mode_scale, example=2.0, strict=True, alias="lambda")
        require_sizes("hidden", self.hidden, example=(400,))
        require_choice("arch", self.arch, ("mlp", "conv"))
        require_real("dropout", self.dropout, example=0.0, below=1.0)
        require_real("decoder_dropout", self.decoder_dropout, example=0.0, below=1.0)
        if self.decoder_dropout > 0 and self.arch != "mlp":
            raise ValueError("decoder_dropout needs arch='mlp'; use decoder_dropout=0.0")
        for name in ("kl_weight", "entropy_weight", "info_weight"):
            require_real(name, getattr(self, name), example=1.0 if name != "info_weight" else 0.0)
        require_int("info_samples", self.info_samples, 1, example=10)
        require_real("balance_weight", self.balance_weight, example=0.0)
        require_real("consistency_weight", self.consistency_weight, example=0.0)
        moves = (
            self.consistency_shift,
            self.consistency_degrees,
            self.consistency_shear,
            self.consistency_adversarial,
        )
        names = ("consistency_shift", "consistency_degrees", "consistency_shear")
        names += ("consistency_adversarial",)
        negative = [
            name
            for name, move in zip(names, moves, strict=True)
            if isinstance(move, int | float) and move < 0
        ]
        if negative:
            raise ValueError(
                "consistency_shift, consistency_degrees, consistency_shear and "
                f"consistency_adversarial must be >= 0, got {moves}; e.g. {negative[0]}=0.0"
            )
        for name, move in zip(names, moves, strict=True):
            require_real(name, move, example=0.0)  # NaN and infinity
        if not 0 <= self.consistency_zoom < 1:
            raise ValueError(
                f"consistency_zoom must lie in [0, 1), got {self.consistency_zoom}; "
                "e.g. consistency_zoom=0.1"
            )


def prior_means(categories: int, delta: int, scale: float) -> Tensor:
    """The K prior means (K, K * delta): ``scale`` (lambda) on each of category c's delta
    coordinates, 0 elsewhere. Disjoint blocks make them orthogonal and pairwise equidistant."""
    return scale * torch.eye(categories).repeat_interleave(delta, dim=1)


class InfoCatVAE(nn.Module):
    def __init__(self, config: InfoCatVAEConfig | None = None):
        super().__init__()
        self.config = config = config or InfoCatVAEConfig()
        k, d = config.categories, config.latent_dim
        self.encoder = make_encoder(
            config.image_shape, config.arch, config.hidden, dropout=config.dropout
        )
        features = self.encoder.out_features
        self.category_head = nn.Linear(features, k)
        # Linear([h, onehot(c)]) = shared(h) + bias[c]: all K heads in one operation
        self.shared_head = nn.Linear(features, 2 * d)
        self.category_bias = nn.Parameter(torch.zeros(k, 2 * d))
        self.decoder = make_decoder(
            d, config.image_shape, config.arch, config.hidden, dropout=config.decoder_dropout
        )
        self.register_buffer("means", prior_means(k, config.delta, config.mode_scale))

    # -- encoder ----------------------------------------------------------------------------
    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W) -> category logits (B, K) and shared_head(h) (B, 2d), the part of
        every z head that does not depend on the category."""
        h = self.encoder(self.encoder_input(x))
        return self.category_head(h), self.shared_head(h)

    def category_logits(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> logits of q(c|x), (B, K), without the z heads."""
        return self.category_head(self.encoder(self.encoder_input(x)))

    def encoder_input(self, x: Tensor) -> Tensor:
        """What the encoder reads: x itself, or x deskewed (``config.deskew``), so that
        categories cannot split a digit by its slant."""
        return deskew(x) if self.config.deskew else x

    def head(self, shared: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The z head Linear([h, w]) = shared_head(h) + w @ category_bias, as mean and logvar.

        shared: (B, 2d) from ``features``. weights: (B, K), a one-hot for one category's head
        or q(c|x) for the authors' mixed head -> (B, d) each; None -> every category's head,
        (B, K, d) each. The head is linear in w, so the mixed head is the q(c|x)-weighted sum
        of the K heads, for the price of one (B, K) x (K, 2d) product.
        """
        if weights is None:
            heads = shared.unsqueeze(1) + self.category_bias
        else:
            heads = shared + weights @ self.category_bias
        mean, logvar = heads.chunk(2, dim=-1)
        return mean, logvar

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, C, H, W) -> category logits (B, K), and mean, logvar of q(z|x,c) for every
        category, each (B, K, d)."""
        logits, shared = self.features(x)
        return logits, *self.head(shared)

    def check_input(self, x: Tensor) -> None:
        check_images(x, self.config.image_shape)

    def decode(self, z: Tensor) -> Tensor:
        """Pixel probabilities: z (B, d) -> (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    # -- loss -------------------------------------------------------------------------------
    def loss(self, batch) -> dict[str, Tensor]:
        """Batch means of the terms; batch is x (B, C, H, W) in [0, 1] or (x, labels)."""
        x = batch[0] if isinstance(batch, tuple | list) else batch
        self.check_input(x)
        cfg = self.config
        logits, shared = self.features(x)  # (B, K), (B, 2d)
        probs, log_probs = logits.softmax(-1), logits.log_softmax(-1)
        mean, logvar = self.head(shared)  # every category's q(z|x,c): (B, K, d) each
        # reconstruction from the head fed with q(c|x) instead of a one-hot, as the authors do
        z = reparameterize(*self.head(shared, probs))
        if cfg.info_weight > 0:
            categories, generated_z = self.information_samples(cfg.info_samples)
            # one decoder pass for both: a larger product, and no gradient sum of two passes
            decoded = self.decoder(torch.cat([z, generated_z]))
            x_logits, generated_logits = decoded.split([len(z), len(generated_z)])
        else:
            x_logits = self.decoder(z)
        reconstruction = -bernoulli_log_likelihood(x_logits, x).mean()
        # KL(N(m, s^2) || N(mu_c, I)) = KL(N(m - mu_c, s^2) || N(0, I))
        kl = (probs * kl_to_standard_normal(mean - self.means, logvar)).sum(1).mean()
        neg_entropy = (probs * log_probs).sum(1).mean()
        total = reconstruction + cfg.kl_weight * kl + cfg.entropy_weight * neg_entropy
        terms = {"reconstruction": reconstruction, "kl": kl, "neg_entropy": neg_entropy}
        if cfg.info_weight > 0:
            terms["info"] = self.information_score(categories, generated_logits)
            total = total + cfg.info_weight * terms["info"]
        if cfg.balance_weight > 0:
            batch_probs = probs.mean(0)
            terms["balance"] = (batch_probs * batch_probs.clamp_min(1e-12).log()).sum()
            total = total + cfg.balance_weight * terms["balance"]
        if cfg.consistency_weight > 0:
            # cross-entropy of a moved copy's q(c|x') against q(c|x) held fixed (IMSAT's
            # self-augmentation): a category must survive moves that keep the class
            moved = random_affine(
                x,
                cfg.consistency_shift,
                cfg.consistency_degrees,
                cfg.consistency_zoom,
                cfg.consistency_shear,
            )
            if cfg.consistency_adversarial > 0:
                moved = moved + self.adversarial_perturbation(
                    moved, probs.detach(), cfg.consistency_adversarial
                )
            shifted = self.category_logits(moved)
            shifted_log_probs = shifted.log_softmax(-1)
            terms["consistency"] = -(probs.detach() * shifted_log_probs).sum(1).mean()
            total = total + cfg.consistency_weight * terms["consistency"]
        return {"total": total, **terms}

    def adversarial_perturbation(self, x: Tensor, target: Tensor, norm: float) -> Tensor:
        """Virtual adversarial training's perturbation (Miyato et al. 2018), as IMSAT uses it:
        for each image the r with ||r|| = norm along the gradient of KL(target || q(c|x + r)),
        taken at a small random start (VAT's one power iteration when target is q(c|x) itself).
        x: (B, C, H, W), target: (B, K) probabilities held fixed -> r (B, C, H, W); no gradient
        reaches the parameters."""

        def unit(v: Tensor) -> Tensor:
            return v / v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (v.dim() - 1))

        # a probe step a tenth of the final norm: small enough for the quadratic regime, large
        # enough that float32 does not cancel the change in q
        probe = (0.1 * norm * unit(torch.randn_like(x))).requires_grad_()
        with torch.enable_grad():
            log_q = self.category_logits(x.detach() + probe).log_softmax(-1)
            divergence = F.kl_div(log_q, target, reduction="batchmean")
            (direction,) = torch.autograd.grad(divergence, probe)
        return norm * unit(direction)

    def information_term(self, per_category: int) -> Tensor:
        """Cross-entropy between c and q(c | decode(z)) for z ~ N(mu_c, I), per_category
        samples for every c; logits throughout. Gradients reach encoder and decoder."""
        categories, z = self.information_samples(per_category)
        return self.information_score(categories, self.decoder(z))

    def information_samples(self, per_category: int) -> tuple[Tensor, Tensor]:
        """The term's draws: categories (K * per_category,) long, each c per_category times,
        and z ~ N(mu_c, I) for each, (K * per_category, d)."""
        k = self.config.categories
        categories = torch.arange(k, device=self.means.device).repeat_interleave(per_category)
        noise = torch.randn(len(categories), self.config.latent_dim, device=self.means.device)
        return categories, self.means[categories] + noise

    def information_score(self, categories: Tensor, decoded_logits: Tensor) -> Tensor:
        """Cross-entropy between the categories (N,) and q(c | x~) for the generated images
        x~ = sigmoid(decoded_logits) (N, C, H, W): the encoder reads what the decoder made."""
        return F.cross_entropy(self.category_logits(torch.sigmoid(decoded_logits)), categories)

    # -- use --------------------------------------------------------------------------------
    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """The most probable category of each image: (B, C, H, W) -> (B,) long."""
        self.check_input(x)
        return self.category_logits(x).argmax(-1)

    @torch.no_grad()
    def sample(self, category: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1] decoded from z ~ N(mu_category, I)."""
        if not 0 <= category < self.config.categories:
            raise ValueError(f"category must be in [0, {self.config.categories}), got {category}")
        noise = torch.randn(
            n, self.config.latent_dim, generator=generator, device=self.means.device
        )
        return self.decode(self.means[category] + noise)

    @torch.no_grad()
    def interpolate(self, start: int, end: int, steps: int = 8) -> Tensor:
        """Decode the straight line from centroid mu_start to mu_end: (steps, C, H, W)."""
        t = torch.linspace(0, 1, steps, device=self.means.device).unsqueeze(1)
        return self.decode((1 - t) * self.means[start] + t * self.means[end])

    @torch.no_grad()
    def traverse(self, category: int, scales: Tensor | None = None) -> Tensor:
        """Decode t * mu_category for t in scales (default 0 .. 2): moving away from the origin
        along the category's own subspace. Returns (len(scales), C, H, W)."""
        scales = torch.linspace(0, 2, 8) if scales is None else scales
        scales = scales.to(self.means.device).unsqueeze(1)
        return self.decode(scales * self.means[category])


@dataclass
class GumbelCatVAEConfig(InfoCatVAEConfig):
    temperature: float = 0.5  # of the Gumbel-softmax relaxation; -> 0 recovers one-hot samples

    def __post_init__(self):
        super().__post_init__()
        require_real("temperature", self.temperature, example=0.5, strict=True)
        if self.info_weight or self.balance_weight or self.consistency_weight:
            raise ValueError(
                "the Gumbel-softmax baseline has no information, balance or consistency term; "
                "set info_weight=0, balance_weight=0 and consistency_weight=0, or use InfoCatVAE"
            )


class GumbelCatVAE(InfoCatVAE):
    """The relaxation baseline the InfoCatVAE paper argues against: instead of summing over
    categories with weights q(c|x), draw a relaxed one-hot c ~ GumbelSoftmax(q(c|x), tau)
    (Jang et al. 2017; Maddison et al. 2017), feed it to the z head and to the prior mean:

        reconstruction + KL(q(z|x,c) || N(c @ means, I)) + KL(q(c|x) || uniform)

    with one sample of c and z per example. Same networks and prior as InfoCatVAE.
    """

    def __init__(self, config: GumbelCatVAEConfig | None = None):
        super().__init__(config or GumbelCatVAEConfig())

    def loss(self, batch) -> dict[str, Tensor]:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        self.check_input(x)
        logits, shared = self.features(x)
        relaxed = F.gumbel_softmax(logits, tau=self.config.temperature)  # (B, K)
        mean_c, logvar_c = self.head(shared, relaxed)
        z = reparameterize(mean_c, logvar_c)
        reconstruction = -bernoulli_log_likelihood(self.decoder(z), x).mean()
        kl_z = kl_to_standard_normal(mean_c - relaxed @ self.means, logvar_c).mean()
        log_probs = logits.log_softmax(-1)
        kl_c = (log_probs.exp() * (log_probs + math.log(self.config.categories))).sum(1).mean()
        total = reconstruction + self.config.kl_weight * kl_z + self.config.entropy_weight * kl_c
        return {"total": total, "reconstruction": reconstruction, "kl": kl_z, "kl_category": kl_c}
