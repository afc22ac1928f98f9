"""The reference for benchmarks/infocatvae_speed.py: InfoCatVAE's objective transcribed with a
Python loop over the K categories wherever the paper says "for every category": the encoder's
heads, as the authors' code builds them (github.com/edouardpineau/infoCatVAE: separate mean and
log-variance layers on the concatenation [h, onehot(c)], one call per category); the KL; and the
information term (sample mode c, decode, re-encode, score c). Same networks, parameters and loss
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
        # the information term as the paper states it: for every category, sample its mode,
        # decode, re-encode, and score the category
        info = 0.0
        # one draw for all categories, so that the noise equals the package's draw
        noise = torch.randn(cfg.categories, cfg.info_samples, cfg.latent_dim)
        for c in range(cfg.categories):
            z = m.means[c] + noise[c]
            scores = m.category_head(m.encoder(torch.sigmoid(m.decoder(z))))
            info = info + F.cross_entropy(scores, torch.full((cfg.info_samples,), c))
        info = info / cfg.categories
        total = reconstruction.mean() + kl.mean() + neg_entropy + cfg.info_weight * info
        return {"total": total}
