"""Runs never lose or corrupt files: run folders, --publish, atomic writes, resume rules, NaN
anywhere, damaged checkpoints, and the warnings for a collapsed code."""

import json
import warnings

import pytest
import torch
from conftest import synthetic_images
from test_favae import CLASSES, SMALL, two_views
from torch import nn

from vaebook import fa
from vaebook.checkpoints import write_atomic
from vaebook.cli import main
from vaebook.data import FAVAEData, ImageData
from vaebook.experiments import common
from vaebook.experiments.common import load_or_train, save_model, write_results
from vaebook.experiments.vae import VAEExperiment
from vaebook.models import FAVAE, VAE, FAVAEConfig, FAVAESchedule, VAEConfig
from vaebook.models.favae import FactorCollapseWarning
from vaebook.train import (
    CheckpointMismatchError,
    DamagedCheckpointError,
    NonFiniteLossError,
    PosteriorCollapseWarning,
    TrainConfig,
    Trainer,
    fit_rounds,
    load_checkpoint,
)

TINY = ["--epochs", "1", "--train-size", "256", "--test-size", "32", "--iwae-k", "2"]
TINY += ["--device", "cpu", "--no-progress"]


def small_vae():
    return VAE(VAEConfig(latent_dim=4, hidden=(32,)))


def config(**changes):
    return TrainConfig(
        **{"epochs": 2, "batch_size": 32, "device": "cpu", "progress": False} | changes
    )


def test_a_run_writes_into_its_own_folder_and_publishing_keeps_a_longer_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "CODE_COMMIT", "0" * 40)  # as from a clean work tree
    assert main(["reproduce", "vae", *TINY]) == 0
    run_folder = tmp_path / "runs" / "vae-mnist"
    assert (run_folder / "vae-mnist.json").exists() and (run_folder / "vae-mnist.pt").exists()
    assert (run_folder / "runs" / "vae-mnist-seed0.pt").exists()  # the seed names the run
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()

    assert main(["reproduce", "vae", *TINY, "--epochs", "2", "--publish"]) == 0
    published = json.loads((tmp_path / "results" / "vae-mnist.json").read_text())
    assert "--publish" in published["command"] and published["config"]["epochs"] == 2
    with pytest.raises(SystemExit):  # a 1-epoch trial would replace the 2-epoch results
        main(["reproduce", "vae", *TINY, "--publish"])
    assert json.loads((tmp_path / "results" / "vae-mnist.json").read_text()) == published
    assert main(["reproduce", "vae", *TINY, "--publish", "--force"]) == 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--set", "tag=../../x"], "plain name"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--train-size", "0"], "train_size must be >= 1"),
    ],
)
def test_meaningless_run_settings_are_refused(flags, message, capsys):
    experiment = "infocatvae" if "tag" in flags[1] else "vae"
    with pytest.raises(SystemExit):
        main(["reproduce", experiment, *flags])
    assert message in capsys.readouterr().err


def test_publishing_from_uncommitted_code_needs_allow_dirty(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "CODE_COMMIT", "0" * 40 + "-dirty")
    with pytest.raises(SystemExit):
        main(["reproduce", "vae", *TINY, "--publish"])
    assert "--allow-dirty" in capsys.readouterr().err and not (tmp_path / "results").exists()
    assert main(["reproduce", "vae", *TINY]) == 0  # a run folder takes any code
    assert main(["reproduce", "vae", *TINY, "--publish", "--allow-dirty"]) == 0
    published = json.loads((tmp_path / "results" / "vae-mnist.json").read_text())
    assert "--allow-dirty" in published["command"] and published["git_commit"].endswith("-dirty")


def test_a_kill_during_a_results_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"elbo": -98.26}\n')

    def killed(tmp):
        tmp.write_text('{"elbo": -4')  # half written, then the process dies
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, killed)
    assert json.loads(path.read_text()) == {"elbo": -98.26}
    write_atomic(path, lambda tmp: tmp.write_text('{"elbo": -97.0}\n'))
    assert json.loads(path.read_text()) == {"elbo": -97.0}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left


def test_no_results_file_ever_holds_nan(tmp_path):
    path = tmp_path / "vae-mnist.json"
    metrics = {"test_elbo": -98.0, "per_seed": [{"rate": float("nan")}]}
    with pytest.raises(NonFiniteLossError, match=r"per_seed\[0\].rate"):
        write_results(path, "vae", VAEExperiment(), metrics, {})
    assert not path.exists()


def test_resume_refuses_a_changed_run_and_a_shorter_schedule(tmp_path):
    from vaebook.experiments.common import fit_resumable

    data = ImageData(synthetic_images(64), binarize=True)
    path = tmp_path / "run.pt"
    fit_resumable(small_vae(), data, config(), path, resume=False)
    for change in ({"seed": 3}, {"lr": 1e-2}, {"batch_size": 16}):
        with pytest.raises(CheckpointMismatchError, match=next(iter(change))):
            fit_resumable(small_vae(), data, config(**change), path, resume=True)
    with pytest.raises(CheckpointMismatchError, match="data size"):
        fit_resumable(small_vae(), data.subset(32), config(), path, resume=True)
    with pytest.raises(CheckpointMismatchError, match="--epochs 2 or more"):
        fit_resumable(small_vae(), data, config(epochs=1), path, resume=True)
    # a longer run, on another path: it continues there and writes there
    copy = tmp_path / "copy.pt"
    copy.write_bytes(path.read_bytes())
    trainer = fit_resumable(small_vae(), data, config(epochs=3), copy, resume=True)
    assert trainer.epoch == 3 and load_checkpoint(copy, small_vae())["epoch"] == 3
    assert load_checkpoint(path, small_vae())["epoch"] == 2


class DivergesOnItsLastStep(nn.Module):
    """A model whose weights become NaN in the step after its last finite loss."""

    def __init__(self, steps_before: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.steps_before = steps_before

    def loss(self, batch):
        x = batch[0] if isinstance(batch, tuple) else batch
        total = (self.weight * x.mean()).pow(2)
        return {"total": total, "kl": total.detach() + 1}

    def training_step(self, batch, optimizers):
        terms = self.loss(batch)
        self.steps_before -= 1
        if self.steps_before == 0:
            with torch.no_grad():
                self.weight.fill_(float("nan"))
        return {k: v.detach() for k, v in terms.items()}


def test_weights_that_turn_nan_on_the_last_step_stop_the_run():
    data = ImageData(synthetic_images(64))
    with pytest.raises(NonFiniteLossError, match="non-finite weights after epoch 2"):
        Trainer(DivergesOnItsLastStep(steps_before=4), data, config()).fit()


def test_non_finite_evaluation_terms_stop_the_run():
    class NaNWhenEvaluated(DivergesOnItsLastStep):
        def loss(self, batch):
            terms = super().loss(batch)
            return terms if self.training else {**terms, "total": terms["total"] * float("nan")}

    data = ImageData(synthetic_images(64))
    with pytest.raises(NonFiniteLossError, match="evaluation terms after epoch 1"):
        Trainer(NaNWhenEvaluated(steps_before=-1), data, config(), eval_data=data).fit()


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "not a dict"])
def test_a_damaged_checkpoint_is_named_and_the_book_trains_instead(tmp_path, damage, capsys):
    path = tmp_path / "vae.pt"
    save_model(path, small_vae(), {"total": [1.0]}, epoch=1)
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "random":
        path.write_bytes(torch.randint(256, (800,), dtype=torch.uint8).numpy().tobytes())
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save(torch.ones(3), path)
    with pytest.raises(DamagedCheckpointError, match=r"vae.pt cannot be read.*Delete it"):
        load_checkpoint(path, small_vae())
    _, history = load_or_train(small_vae(), path, lambda model: {"total": [2.0]})
    assert history == {"total": [2.0]} and "cannot be read" in capsys.readouterr().out


@pytest.mark.parametrize(
    "data",
    [
        torch.rand(8, 1, 28, 28),
        torch.utils.data.TensorDataset(torch.rand(8, 1, 28, 28)),
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(8, 1, 28, 28))),
    ],
    ids=["tensor", "TensorDataset", "DataLoader"],
)
def test_the_trainer_refuses_what_is_not_a_data_object(data):
    with pytest.raises(TypeError, match=r"ImageData\(images, labels\)"):
        Trainer(small_vae(), data, config())


def test_a_collapsed_posterior_is_warned_about_once():
    data = ImageData(synthetic_images(64))

    class NoCode(DivergesOnItsLastStep):
        def loss(self, batch):
            return {**super().loss(batch), "kl": torch.tensor(0.001)}

    with pytest.warns(PosteriorCollapseWarning, match="kl_weight") as caught:
        Trainer(NoCode(steps_before=-1), data, config(epochs=3)).fit()
    assert len([w for w in caught if w.category is PosteriorCollapseWarning]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorCollapseWarning)
        Trainer(DivergesOnItsLastStep(steps_before=-1), data, config()).fit()


def test_an_fa_layer_pruned_to_two_factors_is_warned_about():
    images, labels = two_views(64, seed=0)
    data = FAVAEData({"a": images["a"]}, {"label": fa.Categorical(labels, n_classes=CLASSES)})
    model = FAVAE(FAVAEConfig(image_views=("a",), **{**SMALL, "factors": 2}))
    schedule = FAVAESchedule(rounds=1, warmup_epochs=1, first_sweeps=3, sweeps=2)
    with pytest.warns(FactorCollapseWarning, match="regrow=True"):
        fit_rounds(model, data, schedule, config(batch_size=32))


def test_every_seed_has_a_checkpoint_whose_sha256_the_results_record(tmp_path):
    from vaebook.checkpoints import file_sha256
    from vaebook.experiments.infocatvae import InfoCatExperiment, run

    config = InfoCatExperiment(
        model="catvae", epochs=1, seeds=(0, 1), train_size=256, hidden=(32,),
        samples_per_category=2, device="cpu", progress=False,
        results_dir=str(tmp_path), checkpoint_dir=str(tmp_path),
    )  # fmt: skip
    results = run(config)
    files = results["checkpoint_sha256"]
    assert sorted(files) == ["catvae-mnist-seed1.pt", "catvae-mnist.pt"]
    for name, sha in files.items():
        assert file_sha256(tmp_path / name) == sha and len(sha) == 64
