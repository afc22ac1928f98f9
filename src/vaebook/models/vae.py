"""The variational autoencoder of Kingma & Welling (2014), with a beta weight on the KL term.

    loss(x) = -E_q(z|x)[log p(x|z)] + beta * KL(q(z|x) || N(0, I))

One reparameterised sample per example estimates the expectation; beta = 1 gives the ELBO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vaebook.checks import (
    check_images,
    require_choice,
    require_image_shape,
    require_int,
    require_real,
    require_sizes,
)
from vaebook.nets import ACTIVATIONS, GaussianHead, make_decoder, make_encoder
from vaebook.probability import (
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    iwae_log_likelihood,
    kl_to_standard_normal,
    reparameterize,
)


@dataclass
class VAEConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    arch: str = "mlp"  # 'mlp' or 'conv'
    activation: str = "relu"  # of the hidden layers: 'relu' or 'leaky_relu' (slope 0.2)
    likelihood: str = "bernoulli"  # 'bernoulli' (x in [0, 1]) or 'gaussian' (learned variance)
    beta: float = 1.0

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        self.hidden = tuple(self.hidden)
        # each message names the field and a valid value
        require_image_shape(self.image_shape)
        require_int("latent_dim", self.latent_dim, 1, example=20)
        require_sizes("hidden", self.hidden, example=(400,))
        require_choice("arch", self.arch, ("mlp", "conv"))
        require_choice("activation", self.activation, ACTIVATIONS)
        require_choice("likelihood", self.likelihood, ("bernoulli", "gaussian"))
        require_real("beta", self.beta, example=1.0)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config = config or VAEConfig()
        self.encoder = make_encoder(
            config.image_shape, config.arch, config.hidden, config.activation
        )
        self.head = GaussianHead(self.encoder.out_features, config.latent_dim)
        self.decoder = make_decoder(
            config.latent_dim, config.image_shape, config.arch, config.hidden, config.activation
        )
        if config.likelihood == "gaussian":
            # one learned log-variance shared by all pixels: a proper density, unlike plain MSE
            self.decoder_logvar = nn.Parameter(torch.zeros(()))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, C, H, W) -> mean, logvar of q(z|x), each (B, latent_dim)."""
        return self.head(self.encoder(x))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z): x (B, C, H, W), z (B, latent_dim) -> (B,)."""
        out = self.decoder(z)
        if self.config.likelihood == "bernoulli":
            return bernoulli_log_likelihood(out, x)
        return gaussian_log_likelihood(torch.sigmoid(out), self.decoder_logvar, x)

    def decode(self, z: Tensor) -> Tensor:
        """The mean image E[x|z]: z (B, latent_dim) -> (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def check_input(self, x: Tensor) -> None:
        check_images(x, self.config.image_shape, unit_range=self.config.likelihood == "bernoulli")

    def loss(self, batch) -> dict[str, Tensor]:
        """Batch-mean loss terms; batch is x (B, C, H, W) or a (x, labels) pair.

        Returns reconstruction (-log p(x|z), one z per example), kl, and
        total = reconstruction + beta * kl, the negative ELBO when beta = 1 (nats per image).
        """
        x = batch[0] if isinstance(batch, tuple | list) else batch
        self.check_input(x)
        mean, logvar = self.encode(x)
        z = reparameterize(mean, logvar)
        reconstruction = -self.log_likelihood(x, z).mean()
        kl = kl_to_standard_normal(mean, logvar).mean()
        total = reconstruction + self.config.beta * kl
        return {"total": total, "reconstruction": reconstruction, "kl": kl}

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decode the posterior mean: x (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
        self.check_input(x)
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n mean images decoded from z ~ N(0, I): (n, C, H, W) in [0, 1]."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        return self.decode(z)

    @torch.no_grad()
    def iwae(self, x: Tensor, k: int = 1000, chunk: int = 100) -> Tensor:
        """Importance-weighted log p(x) estimate with k samples: x (B, C, H, W) -> (B,) nats."""
        self.check_input(x)
        return iwae_log_likelihood(x, self.encode, self.log_likelihood, k, chunk)
