import json

import pytest

from vaebook.cli import main
from vaebook.models import VAE, VAEConfig
from vaebook.train import load_checkpoint


def test_reproduce_vae_writes_results_and_a_loadable_checkpoint(tmp_path):
    code = main(
        [
            "reproduce", "vae", "--dataset", "mnist", "--epochs", "1", "--train-size", "512",
            "--test-size", "64", "--iwae-k", "5", "--device", "cpu", "--no-progress",
            "--results-dir", str(tmp_path / "results"), "--checkpoint-dir", str(tmp_path / "ckpt"),
        ]
    )  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "results" / "vae-mnist.json").read_text())
    assert results["command"].startswith("python -m vaebook reproduce vae --epochs 1 --device cpu")
    assert {"test_elbo", "test_iwae_k5", "test_kl"} <= set(results["metrics"])
    assert results["metrics"]["test_iwae_k5"] >= results["metrics"]["test_elbo"] - 5
    assert {"device", "torch", "git_commit", "train_seconds"} <= set(results)
    state = load_checkpoint(tmp_path / "ckpt" / "vae-mnist.pt", VAE(VAEConfig()))
    assert state["epoch"] == 1


def test_unknown_experiment_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "gan"])
    assert "invalid choice" in capsys.readouterr().err
