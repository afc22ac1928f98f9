import json

import pytest
import torch

from vaebook.cli import main
from vaebook.data import ImageData
from vaebook.experiments.beta_vae import BetaVAEExperiment, code_usage
from vaebook.models import VAE
from vaebook.train import load_checkpoint


def test_code_usage_adds_up_and_counts_only_units_that_vary():
    model = VAE(BetaVAEExperiment().model_config(beta=1.0)).eval()
    with torch.no_grad():  # the first two units follow the image, the others are constant
        model.head.linear.weight.zero_()
        model.head.linear.bias.zero_()
        model.head.linear.weight[:2] = 0.5
    images = (torch.rand(200, 1, 28, 28) > 0.5).float()
    usage = code_usage(model, ImageData(images), batch_size=64)
    assert usage["active_units"] == 2
    assert sum(usage["kl_per_dimension"]) == pytest.approx(usage["rate"], rel=1e-5)
    assert min(usage["kl_per_dimension"][2:]) == pytest.approx(0.0, abs=1e-6)
    assert usage["distortion"] > 0


def test_reproduce_beta_vae_trades_rate_for_distortion(tmp_path):
    code = main(
        [
            "reproduce", "beta-vae", "--epochs", "2", "--train-size", "2048", "--test-size", "256",
            "--set", "betas=0.5,8", "--set", "checkpoint_beta=8", "--device", "cpu",
            "--no-progress", "--results-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "beta-vae-mnist.json").read_text())
    low, high = results["metrics"]["betas"]
    assert (low["beta"], high["beta"]) == (0.5, 8.0)
    # a heavier price on the code buys a smaller code and worse reconstructions
    assert high["rate"] < low["rate"] and high["distortion"] > low["distortion"]
    assert high["active_units"] <= low["active_units"] <= 10
    config = BetaVAEExperiment(**results["config"])
    assert load_checkpoint(tmp_path / "beta-vae-mnist.pt", VAE(config.model_config(8.0)))


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="positive"):
        BetaVAEExperiment(betas=(0.0, 1.0))
    with pytest.raises(ValueError, match="add it to betas"):
        BetaVAEExperiment(betas=(1.0, 2.0), checkpoint_beta=4.0)
