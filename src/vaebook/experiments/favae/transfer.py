"""FA-VAE's transfer experiment: a beta-VAE trained alone, then its latent means as a real view
beside a new image VAE (and the attributes): held-out reconstruction R^2 and KL of both."""

from __future__ import annotations

from vaebook import fa
from vaebook.data import SpritesData
from vaebook.experiments.classifier import AttributeReader
from vaebook.experiments.favae.config import FAVAEExperiment
from vaebook.experiments.favae.evaluation import (
    Measure,
    fit_favae,
    posterior_means,
    reconstruction_scores,
    train_vae,
)
from vaebook.experiments.favae.views import FAVAESplit, attribute_views, condition_inputs
from vaebook.models import FAVAE, FAVAEData
from vaebook.probability import kl_normal, kl_to_standard_normal


def run_transfer(
    config: FAVAEExperiment, split: FAVAESplit, reader: AttributeReader
) -> tuple[FAVAE, Measure, dict]:
    """A beta-VAE trained alone, then its code means as a real view beside a new image VAE and
    the attributes, both trained once on `split.train`. Returns (model, measure, extra):
    measure(data) gives both models' R^2, log-likelihood and KL on a held-out split's images
    (`reader` is not used: nothing is generated)."""
    train = split.train
    names = train.attribute_names
    vae_config = config.model_config(("image",), beta=config.transfer_beta).vae_config()
    beta_vae, beta_history = train_vae(config, "beta-vae", vae_config, train.images, config.epochs)
    pretrained = posterior_means(beta_vae, train.images)[0].cpu()
    side = {
        "pretrained": fa.Real(pretrained),
        **attribute_views(train.attributes, names, config.label_views),
    }
    data = FAVAEData({"image": train.images}, side)
    model, history = fit_favae(config, ("image",), data, beta=config.transfer_beta)

    def measure(held_out: SpritesData) -> dict:
        beta_mean, beta_logvar = posterior_means(beta_vae, held_out.images)
        inputs = {
            "pretrained": beta_mean.cpu(),
            **condition_inputs(model, held_out.attributes, names),
        }
        prior_mean, prior_logvar = model.prior_from(inputs, "image")
        mean, logvar = posterior_means(model.vaes["image"], held_out.images)
        favae_scores = reconstruction_scores(model.vaes["image"], held_out.images)
        beta_scores = reconstruction_scores(beta_vae, held_out.images)
        return {
            "favae_test_r2": favae_scores["r2"],
            "beta_vae_test_r2": beta_scores["r2"],
            "favae_test_kl": kl_normal(mean, logvar, prior_mean, prior_logvar).mean().item(),
            "beta_vae_test_kl": kl_to_standard_normal(beta_mean, beta_logvar).mean().item(),
            "favae_test_reconstruction_loglik": favae_scores["loglik"],
            "beta_vae_test_reconstruction_loglik": beta_scores["loglik"],
            "factors": model.fa.k,
        }

    return model, measure, {"history": history, "beta_vae_history": beta_history}
