"""One small module per paper experiment: a config dataclass plus run(config) -> results dict.

The CLI (``python -m vaebook reproduce NAME``), the tests (with a quick config) and the
chapters all call the same ``run``. EXPERIMENTS maps a CLI name to its `Experiment`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vaebook.experiments import beta_vae, cyclevae, favae, favae_mnist, infocatvae, vae


@dataclass(frozen=True)
class Experiment:
    """What ``reproduce NAME`` runs: ``run(config(**settings, **fixed))``."""

    config: type  # the experiment's config dataclass (a `common.RunSettings`)
    run: Callable[..., dict]
    fixed: dict = field(default_factory=dict)  # settings the name fixes, e.g. the model


EXPERIMENTS = {
    "vae": Experiment(vae.VAEExperiment, vae.run),
    "beta-vae": Experiment(beta_vae.BetaVAEExperiment, beta_vae.run),
    "infocatvae": Experiment(infocatvae.InfoCatExperiment, infocatvae.run, {"model": "infocatvae"}),
    "catvae": Experiment(infocatvae.InfoCatExperiment, infocatvae.run, {"model": "catvae"}),
    "gumbel": Experiment(infocatvae.InfoCatExperiment, infocatvae.run, {"model": "gumbel"}),
    "cyclevae": Experiment(cyclevae.CycleVAEExperiment, cyclevae.run, {"model": "cyclevae"}),
    "mathieu": Experiment(cyclevae.CycleVAEExperiment, cyclevae.run, {"model": "mathieu"}),
    "szabo": Experiment(cyclevae.CycleVAEExperiment, cyclevae.run, {"model": "szabo"}),
    "cyclevae-authors": Experiment(cyclevae.CycleVAEExperiment, cyclevae.run, {"model": "authors"}),
    "favae-mnist": Experiment(favae_mnist.FAVAEMNISTExperiment, favae_mnist.run),
    **{
        f"favae-{name}": Experiment(favae.FAVAEExperiment, favae.run, {"experiment": name})
        for name in favae.EXPERIMENT_NAMES
    },
}

__all__ = ["EXPERIMENTS", "Experiment"]
