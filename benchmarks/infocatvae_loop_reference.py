"""The reference for benchmarks/infocatvae_speed.py: InfoCatVAE's objective transcribed the way
the authors' code computes it (github.com/edouardpineau/infoCatVAE, ``infoCatVAE.py`` and
``utils.py``): separate mean and log-variance layers on the concatenation [h, onehot(c)], called
once per category in a Python loop inside ``encode``; the KL summed in a loop over categories;
the generated samples re-encoded with that same ``encode``. Same networks, parameters and loss
as ``vaebook.models.InfoCatVAE`` (a test-free copy kept here only to be timed against)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaebook.models import InfoCatVAE, InfoCatVAEConfig
from vaebook.probability import bernoulli_log_likelihood, kl_normal, reparameterize


class LoopInfoCatVAE(nn.Module):
    """Holds the package model's parameters; computes every per-category quantity in a loop."""

    def __init__(self, config: InfoCatVAEConfig):
        super().__init__()
        self.model = InfoCatVAE(config)
        self.config = config

    def layer(self, h: Tensor, category_input: Tensor, half: int) -> Tensor:
        # the authors' fc21 (half 0, mean) or fc22 (half 1, log-variance) on [h, c]
        d = self.config.latent_dim
        rows = slice(half * d, (half + 1) * d)
        m = self.model
        weight = torch.cat([m.shared_head.weight[rows], m.category_bias.T[rows]], dim=1)
        return torch.cat([h, category_input], dim=1) @ weight.T + m.shared_head.bias[rows]

    def encode(self, x: Tensor):
        m, k = self.model, self.config.categories
        h = m.encoder(x)
        logits = m.category_head(h)
        eye = torch.eye(k)
        all_mean = torch.stack([self.layer(h, eye[c].repeat(len(h), 1), 0) for c in range(k)])
        all_logvar = torch.stack([self.layer(h, eye[c].repeat(len(h), 1), 1) for c in range(k)])
        probs = logits.softmax(-1)
        return self.layer(h, probs, 0), self.layer(h, probs, 1), logits, all_mean, all_logvar

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        m, cfg = self.model, self.config
        mean, logvar, logits, all_mean, all_logvar = self.encode(x)
        probs, log_probs = logits.softmax(-1), logits.log_softmax(-1)
        reconstruction = -bernoulli_log_likelihood(m.decoder(reparameterize(mean, logvar)), x)
        kl = 0.0
        for c in range(cfg.categories):
            prior = m.means[c].expand_as(all_mean[c])
            kl = kl + probs[:, c] * kl_normal(
                all_mean[c], all_logvar[c], prior, torch.zeros_like(prior)
            )
        neg_entropy = (probs * log_probs).sum(1).mean()
        # as the authors' sampling(): info_samples z per category, decoded in one batch
        categories = torch.arange(cfg.categories).repeat_interleave(cfg.info_samples)
        z = m.means[categories] + torch.randn(len(categories), cfg.latent_dim)
        info = F.cross_entropy(self.encode(torch.sigmoid(m.decoder(z)))[2], categories)
        total = reconstruction.mean() + kl.mean() + neg_entropy + cfg.info_weight * info
        return {"total": total}
