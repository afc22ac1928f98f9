"""The Cycle-Consistent VAE (Jha et al. 2018, arXiv 1804.10469) and the two baselines of its
Table 1, Mathieu et al. 2016 and Szabo et al. 2017, on the same networks
(``vaebook.models.cyclevae_nets``).

Every model encodes an image into an unspecified latent z (style; a Gaussian q(z|x) with mean
and log-variance) and a specified latent s (the factor a pair shares, e.g. the class), and
decodes (z, s). Weak supervision is by pairs (x, x') that share the specified factor
(``vaebook.data.PairedData``): reconstructing x from its own z and its partner's s forces s to
hold what the pair shares. The models differ in how they keep that information out of z:

- Cycle-Consistent VAE: the forward cycle is a VAE on z with the swapped s,
  ``reconstruction_weight * (mse(x) + mse(x')) + kl_weight * KL(q(z|x) || N(0, I))``;
  the reverse cycle decodes one z ~ N(0, I) with the s of two unrelated images and pulls the
  means of z re-encoded from the two results together (L1). It updates the encoder only.
  Ours, off by default: ``independence_weight * HSIC(mean of z, s)`` in the forward cycle, a
  kernel measure of dependence that pushes the class out of the mean of z, where the authors'
  model still leaks it (a probe reads the digit from their released z means 63% of the time).
- Mathieu et al. 2016: the forward cycle's VAE, plus a discriminator on image pairs: a real
  pair shares the specified factor, a fake pair is (x, decode(z of an unrelated image, s of x));
  the encoder and decoder learn to fool it.
- Szabo et al. 2017: the same, with a deterministic autoencoder (z = the mean, no KL).

Losses follow the authors' code: squared error per pixel averaged over the batch and the pixels,
summed over the pair's two images; KL summed over z and the pair, divided by batch * pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaebook.checks import check_images
from vaebook.data import PairBatch
from vaebook.models.cyclevae_nets import NORM_MODES, CycleDecoder, CycleEncoder, cycle_conv_features
from vaebook.probability import kl_to_standard_normal, normalized_hsic, reparameterize
from vaebook.train import TrainConfig, adam

ADVERSARIAL_METHODS = ("mathieu", "szabo")


@dataclass
class PairModelConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)
    unspecified_dim: int = 16  # z: what a pair does not share (style, pose)
    specified_dim: int = 16  # s: what a pair shares (class, identity)
    reconstruction_weight: float = 2.0
    kl_weight: float = 3.0
    norm_mode: str = "per-image"  # what the InstanceNorm layers do in eval mode (see cyclevae_nets)

    def __post_init__(self):
        # imported here: this module's imports belong to the networks' code
        from vaebook.checks import require_choice, require_image_shape, require_int, require_real

        self.image_shape = tuple(self.image_shape)
        # each message names the field and a valid value
        require_image_shape(self.image_shape)
        require_int("unspecified_dim", self.unspecified_dim, 1, example=16)
        require_int("specified_dim", self.specified_dim, 1, example=16)
        require_real("reconstruction_weight", self.reconstruction_weight, example=2.0)
        require_real("kl_weight", self.kl_weight, example=3.0)
        require_choice("norm_mode", self.norm_mode, NORM_MODES)


@dataclass
class CycleVAEConfig(PairModelConfig):
    reverse_cycle_weight: float = 10.0
    independence_weight: float = 0.0  # ours: HSIC(mean of z, s) in the forward cycle; 0: authors'
    # training steps before the term joins: from the start it keeps z from ever carrying style
    independence_start: int = 0
    # False: the term trains z's mean head only, not the convolutional features s also reads
    independence_on_features: bool = True

    def __post_init__(self):
        from vaebook.checks import require_int, require_real

        super().__post_init__()
        values = (self.reverse_cycle_weight, self.independence_weight, self.independence_start)
        if any(isinstance(value, int | float) and value < 0 for value in values):
            raise ValueError(
                f"need reverse_cycle_weight, independence_weight and independence_start >= 0, "
                f"got {self.reverse_cycle_weight}, {self.independence_weight}, "
                f"{self.independence_start}; e.g. reverse_cycle_weight=10.0, "
                "independence_weight=0.0, independence_start=0"
            )
        require_real("reverse_cycle_weight", self.reverse_cycle_weight, example=10.0)
        require_real("independence_weight", self.independence_weight, example=0.0)
        require_int("independence_start", self.independence_start, 0, example=0)


@dataclass
class PairAdversarialConfig(PairModelConfig):
    method: str = "mathieu"  # 'mathieu' (VAE on z) or 'szabo' (deterministic z, no KL)
    adversarial_weight: float = 0.01  # ours: the papers' weights are for other losses and nets

    def __post_init__(self):
        from vaebook.checks import require_choice, require_real

        super().__post_init__()
        require_choice("method", self.method, ADVERSARIAL_METHODS)
        require_real("adversarial_weight", self.adversarial_weight, example=0.01)


def _pair_batch(batch: PairBatch) -> PairBatch:
    if not isinstance(batch, PairBatch):
        raise TypeError(
            f"pair models train on PairBatch batches, got {type(batch).__name__}; "
            "wrap the labelled data: PairedData(ImageData(images, labels))"
        )
    return batch


class PairModel(nn.Module):
    """What the three models share: the networks and the forward cycle (swapped reconstruction)."""

    variational = True  # z sampled from q(z|x) with a KL term; False: z is the mean

    def __init__(self, config: PairModelConfig):
        super().__init__()
        self.config = config
        self.kl_to_nats = math.prod(config.image_shape)  # the kl term is per pixel
        dims = (config.image_shape, config.unspecified_dim, config.specified_dim, config.norm_mode)
        self.encoder = CycleEncoder(*dims)
        self.decoder = CycleDecoder(*dims)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, C, H, W) in [0, 1] -> mean, logvar of q(z|x) (B, unspecified_dim), s (B,
        specified_dim)."""
        check_images(x, self.config.image_shape)
        return self.encoder(x)

    def decode(self, z: Tensor, s: Tensor) -> Tensor:
        """z (B, unspecified_dim), s (B, specified_dim) -> images (B, C, H, W) in [0, 1]."""
        return self.decoder(z, s)

    def forward_cycle(self, x: Tensor, partner: Tensor) -> dict[str, Tensor]:
        """Reconstruct each image of the pairs from its own z and its partner's s.

        x, partner: (B, C, H, W) sharing the specified factor. Returns total, reconstruction,
        kl (when variational), and the codes of both (2B, .) for the callers' use: z (sampled),
        mean, s, and the encoder's convolutional features (2B, 256)."""
        both = torch.cat([x, partner])
        features = self.encoder.features(both)
        mean, logvar, s = self.encoder.heads(features)
        z = reparameterize(mean, logvar) if self.variational else mean
        swapped = s.roll(len(x), dims=0)  # x gets the partner's s and the partner x's
        # the mean over both images' pixels is half the authors' sum over the pair
        reconstruction = 2 * F.mse_loss(self.decoder(z, swapped), both)
        cfg = self.config
        terms = {"reconstruction": reconstruction}
        total = cfg.reconstruction_weight * reconstruction
        if self.variational:
            pixels = x[0].numel()
            terms["kl"] = kl_to_standard_normal(mean, logvar).sum() / (len(x) * pixels)
            total = total + cfg.kl_weight * terms["kl"]
        return {"total": total, **terms, "z": z, "mean": mean, "s": s, "features": features}

    @torch.no_grad()
    def swap(self, style: Tensor, content: Tensor) -> Tensor:
        """The swap grid: row i takes the z (mean) of style[i], column j the s of content[j].

        style: (R, C, H, W), content: (K, C, H, W) -> (R, K, C, H, W) in [0, 1]."""
        z, _, _ = self.encode(style)
        _, _, s = self.encode(content)
        rows, columns = len(z), len(s)
        grid = self.decoder(z.repeat_interleave(columns, 0), s.repeat(rows, 1))
        return grid.view(rows, columns, *grid.shape[1:])


class CycleVAE(PairModel):
    """The Cycle-Consistent VAE: forward cycle on same-label pairs, reverse cycle on unrelated
    pairs with its own optimiser over the encoder only (the authors' two Adam optimisers)."""

    def __init__(self, config: CycleVAEConfig | None = None):
        super().__init__(config or CycleVAEConfig())
        if self.config.independence_weight > 0:  # in the state dict: a resumed run keeps its count
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward_terms(self, batch: PairBatch) -> dict[str, Tensor]:
        """The forward cycle's terms, plus ``independence`` = HSIC(mean of z, s) on both images
        of each pair when independence_weight > 0 (weighted from training step
        independence_start on). s is detached: the term moves the class out of z, it must not
        move it out of s; with independence_on_features False the shared features are detached
        too, so only z's mean head learns from it."""
        forward = self.forward_cycle(batch.x, batch.partner)
        terms = {k: forward[k] for k in ("total", "reconstruction", "kl")}
        if self.config.independence_weight > 0:
            weight = self.config.independence_weight * (
                self.steps >= self.config.independence_start
            )
            mean = forward["mean"]
            if not self.config.independence_on_features:
                mean = self.encoder.unspecified_mean(forward["features"].detach())
            terms["independence"] = normalized_hsic(mean, forward["s"].detach())
            terms["total"] = terms["total"] + weight * terms["independence"]
        return terms

    def reverse_cycle(self, x: Tensor, unrelated: Tensor) -> Tensor:
        """Decode one z ~ N(0, I) with the s of x and of unrelated (both (B, C, H, W)), re-encode
        both and return the mean absolute difference of the two z means (a scalar).

        s and the decoded images carry no gradient (the authors detach s, and the decoder is not
        updated here), so only the re-encoding is back-propagated."""
        with torch.no_grad():
            s = self.encoder(torch.cat([x, unrelated]))[2]
            z = torch.randn(len(x), self.config.unspecified_dim, device=x.device).repeat(2, 1)
            generated = self.decoder(z, s)
        first, second = self.encoder(generated)[0].chunk(2)
        return F.l1_loss(first, second)

    def loss(self, batch: PairBatch) -> dict[str, Tensor]:
        """Both cycles' terms on a PairBatch; total = forward total + reverse_cycle_weight *
        reverse_cycle, what the two optimisers minimise between them."""
        batch = _pair_batch(batch)
        check_images(batch.x, self.config.image_shape)
        forward = self.forward_terms(batch)
        reverse = self.reverse_cycle(batch.x, batch.unrelated)
        total = forward["total"] + self.config.reverse_cycle_weight * reverse
        return {**forward, "total": total, "reverse_cycle": reverse}

    def configure_optimizers(self, config: TrainConfig) -> list[torch.optim.Optimizer]:
        """Adam on encoder and decoder for the forward cycle, Adam on the encoder alone for the
        reverse cycle, both with the TrainConfig's learning rate and betas."""
        return [
            adam(self.parameters(), config),
            adam(self.encoder.parameters(), config),
        ]

    def training_step(
        self, batch: PairBatch, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, Tensor]:
        """One forward-cycle update, then one reverse-cycle update of the encoder."""
        batch = _pair_batch(batch)
        forward_optimizer, reverse_optimizer = optimizers
        forward = self.forward_terms(batch)
        forward_optimizer.zero_grad(set_to_none=True)
        forward["total"].backward()
        forward_optimizer.step()
        reverse = self.reverse_cycle(batch.x, batch.unrelated)
        reverse_optimizer.zero_grad(set_to_none=True)
        (self.config.reverse_cycle_weight * reverse).backward()
        reverse_optimizer.step()
        if self.config.independence_weight > 0:
            self.steps += 1
        total = forward["total"] + self.config.reverse_cycle_weight * reverse
        terms = {**forward, "total": total, "reverse_cycle": reverse}
        return {k: v.detach() for k, v in terms.items()}


class PairDiscriminator(nn.Module):
    """Does a pair of images share the specified factor? Each image goes through the same
    convolutional features as the encoder (256 each); the two feature vectors, concatenated,
    go through Linear 512 -> 256, LeakyReLU 0.2, Linear 256 -> 1.

    a, b: (B, C, H, W) -> logits (B,), high for a pair that shares it."""

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.features = cycle_conv_features(image_shape)
        self.head = nn.Sequential(nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        first, second = self.features(torch.cat([a, b])).chunk(2)
        return self.head(torch.cat([first, second], dim=1)).squeeze(1)


class PairAdversarial(PairModel):
    """Mathieu et al. 2016 (``method='mathieu'``: VAE on z) or Szabo et al. 2017
    (``method='szabo'``: deterministic autoencoder): the forward cycle plus a pair
    discriminator. Real pairs: (x, partner); fake pairs: (x, decode(z of unrelated, s of x))."""

    def __init__(self, config: PairAdversarialConfig | None = None):
        config = config or PairAdversarialConfig()
        super().__init__(config)
        self.variational = config.method == "mathieu"
        self.discriminator = PairDiscriminator(config.image_shape)

    def _generate(self, batch: PairBatch) -> tuple[dict[str, Tensor], Tensor]:
        """The forward cycle's terms and the fake images decode(z of unrelated, s of x)."""
        forward = self.forward_cycle(batch.x, batch.partner)
        mean, logvar, _ = self.encoder(batch.unrelated)
        z = reparameterize(mean, logvar) if self.variational else mean
        return forward, self.decoder(z, forward["s"][: len(batch.x)])

    def _discriminator_loss(self, batch: PairBatch, fake: Tensor) -> Tensor:
        real_logits = self.discriminator(batch.x, batch.partner)
        fake_logits = self.discriminator(batch.x, fake)
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    def _generator_terms(self, batch: PairBatch, forward: dict, fake: Tensor) -> dict:
        logits = self.discriminator(batch.x, fake)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        total = forward["total"] + self.config.adversarial_weight * adversarial
        terms = {"total": total, "reconstruction": forward["reconstruction"]}
        if self.variational:
            terms["kl"] = forward["kl"]
        return {**terms, "adversarial": adversarial}

    def loss(self, batch: PairBatch) -> dict[str, Tensor]:
        """The generator's terms (total, reconstruction, kl for Mathieu, adversarial) and the
        discriminator's loss, on a PairBatch."""
        batch = _pair_batch(batch)
        check_images(batch.x, self.config.image_shape)
        forward, fake = self._generate(batch)
        terms = self._generator_terms(batch, forward, fake)
        return {**terms, "discriminator": self._discriminator_loss(batch, fake)}

    def configure_optimizers(self, config: TrainConfig) -> list[torch.optim.Optimizer]:
        """Adam on encoder and decoder, Adam on the discriminator."""
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [
            adam(autoencoder, config),
            adam(self.discriminator.parameters(), config),
        ]

    def training_step(
        self, batch: PairBatch, optimizers: list[torch.optim.Optimizer]
    ) -> dict[str, Tensor]:
        """One discriminator update on the current fakes, then one encoder-decoder update."""
        batch = _pair_batch(batch)
        autoencoder_optimizer, discriminator_optimizer = optimizers
        forward, fake = self._generate(batch)
        discriminator = self._discriminator_loss(batch, fake.detach())
        discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator.backward()
        discriminator_optimizer.step()
        terms = self._generator_terms(batch, forward, fake)
        autoencoder_optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        autoencoder_optimizer.step()
        return {
            **{k: v.detach() for k, v in terms.items()},
            "discriminator": discriminator.detach(),
        }
