import json
import subprocess
from dataclasses import asdict, fields, replace

import pytest

from vaebook.cli import main, parse_command
from vaebook.experiments import EXPERIMENTS
from vaebook.experiments.common import FLAGS, RunSettings, git_commit, reproduce_command
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


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_results_command_parses_back_to_its_config(name):
    experiment = EXPERIMENTS[name]
    assert issubclass(experiment.config, RunSettings)
    config = experiment.config(**experiment.fixed)
    # change one run setting, the experiment's seeds and one of its own fields
    config = replace(config, batch_size=7, device="cpu", resume=True)
    if hasattr(config, "seeds"):
        config = replace(config, seeds=(10, 11))
    else:
        config = replace(config, seed=10)
    own = {
        "VAEExperiment": {"latent_dim": 5},
        "BetaVAEExperiment": {"betas": (1.0, 3.0), "checkpoint_beta": 3.0},
        "InfoCatExperiment": {"hidden": (64, 32)},
        "CycleVAEExperiment": {"independence_weight": 0.5},
        "FAVAEExperiment": {"regrow": True},
        "FAVAEMNISTExperiment": {"hidden": (64, 32)},
    }
    config = replace(config, **own[type(config).__name__])
    command = reproduce_command(name, config)
    assert command.startswith(f"python -m vaebook reproduce {name} --device cpu")
    parsed_experiment, parsed = parse_command(command.split()[3:])
    assert parsed_experiment is experiment
    assert asdict(parsed) == asdict(config)


def test_flags_are_the_parsers_and_the_commands():
    # a flag of the table that no config field takes would be refused at once
    with pytest.raises(SystemExit):
        parse_command(["reproduce", "favae-condition", "--dims", "16"])
    experiment, config = parse_command(["reproduce", "infocatvae", "--seed", "4", "--no-progress"])
    assert config.seeds == (4,) and config.progress is False
    assert set(FLAGS) <= {
        f.name for c in {e.config for e in EXPERIMENTS.values()} for f in fields(c)
    }
