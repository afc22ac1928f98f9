"""The reference for benchmarks/infocatvae_speed.py: InfoCatVAE's objective transcribed from the
paper as it reads, one category at a time in Python. Same networks, parameters and loss as
``vaebook.models.InfoCatVAE`` (a test-free copy kept here only to be timed against)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaebook.models import InfoCatVAE, InfoCatVAEConfig
from vaebook.probability import bernoulli_log_likelihood, kl_normal, reparameterize


class LoopInfoCatVAE(nn.Module):
    """Holds the package model's parameters; computes every per-category quantity in a loop:
    the head on [h, onehot(c)], the KL to N(mu_c, I), and the information term's samples."""

    def __init__(self, config: InfoCatVAEConfig):
        super().__init__()
        self.model = InfoCatVAE(config)
        self.config = config

    def head(self, h: Tensor, category_input: Tensor) -> tuple[Tensor, Tensor]:
        # one linear layer on the concatenation [h, c], as the paper writes it
        weight = torch.cat([self.model.shared_head.weight, self.model.category_bias.T], dim=1)
        out = torch.cat([h, category_input], dim=1) @ weight.T + self.model.shared_head.bias
        return out.chunk(2, dim=-1)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        m, cfg = self.model, self.config
        h = m.encoder(x)
        logits = m.category_head(h)
        probs, log_probs = logits.softmax(-1), logits.log_softmax(-1)
        mixed_mean, mixed_logvar = self.head(h, probs)
        z = reparameterize(mixed_mean, mixed_logvar)
        reconstruction = -bernoulli_log_likelihood(m.decoder(z), x).mean()
        kl = 0.0
        for c in range(cfg.categories):
            onehot = F.one_hot(torch.full((len(x),), c), cfg.categories).to(x.dtype)
            mean, logvar = self.head(h, onehot)
            prior = m.means[c].expand_as(mean)
            kl = kl + probs[:, c] * kl_normal(mean, logvar, prior, torch.zeros_like(prior))
        kl = kl.mean()
        neg_entropy = (probs * log_probs).sum(1).mean()
        info = 0.0
        for c in range(cfg.categories):
            z = m.means[c] + torch.randn(cfg.info_samples, cfg.latent_dim)
            generated = torch.sigmoid(m.decoder(z))
            target = torch.full((cfg.info_samples,), c)
            info = info + F.cross_entropy(m.category_head(m.encoder(generated)), target)
        info = info / cfg.categories
        total = reconstruction + kl + neg_entropy + cfg.info_weight * info
        return {"total": total}
