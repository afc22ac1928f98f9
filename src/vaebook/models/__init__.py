"""The models of the book: one module each, each an nn.Module with loss(batch) -> named terms."""

from vaebook.models.cyclevae import (
    CycleVAE,
    CycleVAEConfig,
    PairAdversarial,
    PairAdversarialConfig,
)
from vaebook.models.favae import FAVAE, FAVAEConfig, FAVAEData, FAVAESchedule
from vaebook.models.infocatvae import (
    GumbelCatVAE,
    GumbelCatVAEConfig,
    InfoCatVAE,
    InfoCatVAEConfig,
)
from vaebook.models.vae import VAE, VAEConfig

__all__ = [
    "VAE",
    "VAEConfig",
    "InfoCatVAE",
    "InfoCatVAEConfig",
    "GumbelCatVAE",
    "GumbelCatVAEConfig",
    "FAVAE",
    "FAVAEConfig",
    "FAVAEData",
    "FAVAESchedule",
    "CycleVAE",
    "CycleVAEConfig",
    "PairAdversarial",
    "PairAdversarialConfig",
]
