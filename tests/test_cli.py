import json
import subprocess

import pytest

from vaebook.cli import main
from vaebook.experiments.common import git_commit
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


def test_git_commit_is_dirty_only_for_edits_inside_the_package_folder(tmp_path):
    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path, check=True, capture_output=True,
        )  # fmt: skip

    package = tmp_path / "src"
    package.mkdir()
    (package / "model.py").write_text("x = 1\n")
    (tmp_path / "chapter.md").write_text("text\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    clean = git_commit(package)
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (tmp_path / "chapter.md").write_text("edited while a run trains\n")
    assert git_commit(package) == clean
    (package / "model.py").write_text("x = 2\n")
    assert git_commit(package) == clean + "-dirty"
