"""The reference for benchmarks/cyclevae_speed.py: one Cycle-Consistent VAE training iteration
transcribed the way the authors' code does it (github.com/ananyahjha93/cycle-consistent-vae,
``training.py``): in the forward cycle, each image of the pair is encoded separately and each of
the four loss terms gets its own backward pass with ``retain_graph=True``; in the reverse cycle,
s is computed with gradients and then detached, the two images are decoded and re-encoded
separately, and the backward pass runs through the decoder too. Their networks are PyTorch's
own layers (``vaebook.nets.with_torch_layers``: nn.InstanceNorm2d with running statistics,
nn.Conv2d, nn.ConvTranspose2d) and their optimisers plain Adam (``authors_optimizers``);
parameters and loss values are ``vaebook.models.CycleVAE``'s (kept here only to be timed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vaebook.data import PairBatch
from vaebook.models import CycleVAE


def authors_optimizers(model: CycleVAE, lr: float) -> list[torch.optim.Optimizer]:
    """Their two plain Adam optimisers: encoder and decoder for the forward cycle, the encoder
    for the reverse cycle."""
    return [
        torch.optim.Adam(model.parameters(), lr=lr),
        torch.optim.Adam(model.encoder.parameters(), lr=lr),
    ]


def authors_kl(mean: Tensor, logvar: Tensor, pixels: int) -> Tensor:
    # their kl_divergence_loss: summed over z and the batch, divided by batch * pixels
    return -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / (len(mean) * pixels)


def reference_step(model: CycleVAE, batch: PairBatch, optimizers) -> dict[str, float]:
    """One forward-cycle and one reverse-cycle update of ``model``, the authors' way."""
    cfg = model.config
    encoder, decoder = model.encoder, model.decoder
    autoencoder_optimizer, reverse_optimizer = optimizers
    x1, x2 = batch.x, batch.partner
    pixels = x1[0].numel()

    autoencoder_optimizer.zero_grad()
    mean1, logvar1, s1 = encoder(x1)
    z1 = mean1 + torch.exp(0.5 * logvar1) * torch.randn_like(mean1)
    kl1 = cfg.kl_weight * authors_kl(mean1, logvar1, pixels)
    kl1.backward(retain_graph=True)
    mean2, logvar2, s2 = encoder(x2)
    z2 = mean2 + torch.exp(0.5 * logvar2) * torch.randn_like(mean2)
    kl2 = cfg.kl_weight * authors_kl(mean2, logvar2, pixels)
    kl2.backward(retain_graph=True)
    reconstruction1 = cfg.reconstruction_weight * F.mse_loss(decoder(z1, s2), x1)
    reconstruction1.backward(retain_graph=True)
    reconstruction2 = cfg.reconstruction_weight * F.mse_loss(decoder(z2, s1), x2)
    reconstruction2.backward()
    autoencoder_optimizer.step()

    reverse_optimizer.zero_grad()
    z = torch.randn(len(x1), cfg.unspecified_dim, device=x1.device)
    _, _, s1 = encoder(x1)
    _, _, s2 = encoder(batch.unrelated)
    mean1, _, _ = encoder(decoder(z, s1.detach()))
    mean2, _, _ = encoder(decoder(z, s2.detach()))
    reverse = cfg.reverse_cycle_weight * F.l1_loss(mean1, mean2)
    reverse.backward()
    reverse_optimizer.step()
    return {
        "reconstruction": (reconstruction1 + reconstruction2).item() / cfg.reconstruction_weight,
        "kl": (kl1 + kl2).item() / cfg.kl_weight,
        "reverse_cycle": reverse.item() / cfg.reverse_cycle_weight,
    }
