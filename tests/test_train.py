import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import synthetic_images
from torch import nn

from vaebook.data import ImageData
from vaebook.models import VAE, VAEConfig
from vaebook.train import (
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    UnsafeCheckpointError,
    load_checkpoint,
    load_state,
    pick_device,
)


def _data(n=256):
    return ImageData(synthetic_images(n), binarize=True)


def _config(**overrides):
    return TrainConfig(
        **{"epochs": 2, "batch_size": 32, "device": "cpu", "progress": False, **overrides}
    )


def test_training_lowers_the_loss_and_records_every_term():
    model = VAE(VAEConfig(latent_dim=4, hidden=(64,)))
    data = ImageData(synthetic_images(512))
    config = _config(epochs=6, lr=1e-2)
    history = Trainer(model, data, config, eval_data=ImageData(synthetic_images(64, seed=1))).fit()
    assert history["total"][-1] < history["total"][0] - 10
    assert {"total", "reconstruction", "kl", "test_total", "test_kl", "seconds"} <= set(history)
    assert all(len(v) == 6 for v in history.values())


class ExplodingModel(nn.Module):
    """A linear model whose loss becomes NaN at its fourth call."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.calls = 0

    def loss(self, batch):
        self.calls += 1
        value = self.weight * batch.mean()
        total = value * float("nan") if self.calls == 4 else value
        return {"total": total, "scaled": 2 * value}


def test_non_finite_loss_stops_with_step_and_last_finite_terms():
    model = ExplodingModel()
    with pytest.raises(NonFiniteLossError) as error:
        Trainer(model, _data(96), _config(batch_size=32)).fit()
    message = str(error.value)
    assert "epoch 2, step 1" in message and "last finite terms" in message and "scaled" in message
    assert torch.isfinite(model.weight).all()  # the NaN step touched no weight


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    path = tmp_path / "run.pt"
    model = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    Trainer(model, _data(64), _config(epochs=1, checkpoint_path=str(path))).fit()
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    same = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    state = load_checkpoint(path, same)
    assert state["epoch"] == 1 and torch.equal(same.head.linear.weight, model.head.linear.weight)
    with pytest.raises(CheckpointMismatchError, match="from the checkpoint's config"):
        load_checkpoint(path, VAE(VAEConfig(latent_dim=5, hidden=(32,))))


def test_checkpoint_from_before_a_config_field_existed_loads_only_at_its_default(tmp_path):
    path = tmp_path / "old.pt"
    model = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    Trainer(model, _data(64), _config(epochs=1, checkpoint_path=str(path))).fit()
    state = torch.load(path, weights_only=True)
    del state["model_config"]["beta"]  # as if written before VAEConfig had beta
    torch.save(state, path)
    load_checkpoint(path, VAE(VAEConfig(latent_dim=4, hidden=(32,))))  # beta at its default
    with pytest.raises(CheckpointMismatchError, match="from the checkpoint's config"):
        load_checkpoint(path, VAE(VAEConfig(latent_dim=4, hidden=(32,), beta=2.0)))


class TwoOptimiserModel(nn.Module):
    """Uses the trainer's hooks: two optimisers, its own update order."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(3.0)), nn.Parameter(torch.tensor(-3.0))

    def configure_optimizers(self, config):
        return [torch.optim.SGD([self.a], lr=0.1), torch.optim.SGD([self.b], lr=0.1)]

    def training_step(self, batch, optimizers):
        for parameter, optimizer in zip((self.a, self.b), optimizers, strict=True):
            loss = parameter**2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {"total": (self.a**2 + self.b**2).detach()}


def test_models_with_their_own_step_use_the_hooks():
    model = TwoOptimiserModel()
    history = Trainer(model, _data(64), _config(epochs=3)).fit()
    assert history["total"][-1] < history["total"][0] and abs(model.a.item()) < 3


def test_device_and_amp_errors():
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
        with pytest.raises(ValueError, match="amp=False"):
            Trainer(VAE(), _data(8), _config(amp=True))
    with pytest.raises(ValueError, match="epochs >= 0"):
        TrainConfig(epochs=-1)


def test_compiled_loss_trains_as_the_eager_one_with_the_same_checkpoint(tmp_path):
    torch._dynamo.reset()
    data = _data(240)  # batches of 32 and a last one of 16: the compiled loss meets two shapes
    totals = {}
    for compile in (False, True):
        torch.manual_seed(0)
        model = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
        path = tmp_path / f"compile-{compile}.pt"
        config = _config(epochs=3, lr=1e-2, compile=compile, checkpoint_path=str(path))
        totals[compile] = Trainer(model, data, config).fit()["total"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    # same start; the compiled loss draws its own noise, so the runs agree closely, not exactly
    eager, compiled = totals[False], totals[True]
    assert compiled[-1] < compiled[0] - 3, (eager, compiled)  # it learns (eager: about 9)
    assert abs(compiled[-1] - eager[-1]) < 0.005 * eager[-1], (eager, compiled)
    load_checkpoint(tmp_path / "compile-True.pt", VAE(VAEConfig(latent_dim=4, hidden=(32,))))
    with pytest.raises(ValueError, match="own training_step; set compile=False"):
        Trainer(TwoOptimiserModel(), _data(8), _config(compile=True))


RUN = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {tests!r})
    from conftest import synthetic_images
    from vaebook.data import ImageData
    from vaebook.models import VAE, VAEConfig
    from vaebook.train import Trainer, TrainConfig, seed_everything

    torch.set_num_threads(1)
    mode, path, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = ImageData(synthetic_images(512), binarize=True)
    seed_everything(7)
    model = VAE(VAEConfig(latent_dim=4, hidden=(64,)))
    if mode == "resume":
        trainer = Trainer.resume(path, model, data, epochs=epochs)
    else:
        config = TrainConfig(epochs=epochs, batch_size=32, device="cpu", seed=3, progress=False,
                             lr_milestones=(2,), checkpoint_path=path)
        trainer = Trainer(model, data, config)
    trainer.fit()
    torch.save(model.state_dict(), path + ".final")
    """
)


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN.format(tests=str(__import__("pathlib").Path(__file__).parent)))

    def run(*args):
        return [sys.executable, str(script), *args]

    killed = str(tmp_path / "killed.pt")
    process = subprocess.Popen(run("fresh", killed, "1000"))
    try:
        import time

        deadline = time.time() + 120
        while time.time() < deadline:
            if (tmp_path / "killed.pt").exists():
                epoch = torch.load(killed, weights_only=True)["epoch"]
                if epoch >= 2:
                    break
            time.sleep(0.05)
        process.kill()
    finally:
        process.wait()
    epoch = torch.load(killed, weights_only=True)["epoch"]
    assert epoch >= 2, f"checkpoint at epoch {epoch}; the run was killed before it could resume"
    # the uninterrupted run goes three epochs past the kill, however late the kill came
    end = str(epoch + 3)
    reference = str(tmp_path / "reference.pt")
    subprocess.run(run("fresh", reference, end), check=True)
    subprocess.run(run("resume", killed, end), check=True)

    expected = torch.load(reference + ".final")
    resumed = torch.load(killed + ".final")
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), f"{name} differs after resume"


def test_load_or_train_loads_a_matching_checkpoint_and_trains_otherwise(tmp_path, capsys):
    from vaebook.experiments.common import load_or_train, save_model

    path = tmp_path / "book.pt"
    saved = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    save_model(path, saved, {"total": [1.0]}, epoch=7)
    calls = []

    def train(model):
        calls.append(model)
        return {"total": [2.0]}

    model, history = load_or_train(VAE(VAEConfig(latent_dim=4, hidden=(32,))), path, train)
    assert not calls and history == {"total": [1.0]} and not model.training
    assert torch.equal(model.head.linear.weight, saved.head.linear.weight)
    assert "7 epochs" in capsys.readouterr().out
    for other, load in ((VAE(VAEConfig(latent_dim=5, hidden=(32,))), True), (saved, False)):
        _, history = load_or_train(other, path, train, load=load)
        assert calls[-1] is other and history == {"total": [2.0]}
    assert "training here" in capsys.readouterr().out
    load_or_train(saved, tmp_path / "missing.pt", train)
    assert len(calls) == 3


class RunsCodeOnLoad:
    """What a hostile checkpoint carries: unpickling it calls a function of its choice."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(tmp_path, capsys):
    from vaebook.experiments.common import load_or_train, save_model

    path = tmp_path / "hostile.pt"
    model = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    save_model(path, model, {"total": [1.0]}, epoch=1)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "history": RunsCodeOnLoad()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"\(print\).*refused.*retrain"):
        load_checkpoint(path, VAE(VAEConfig(latent_dim=4, hidden=(32,))))
    assert "this ran" not in capsys.readouterr().out
    # the book trains instead, and says why
    _, history = load_or_train(model, path, lambda m: {"total": [2.0]})
    output = capsys.readouterr().out
    assert history == {"total": [2.0]} and "refused" in output and "this ran" not in output


def test_run_checkpoints_hold_only_what_loads_safely(tmp_path):
    path = tmp_path / "run.pt"
    config = _config(epochs=1, checkpoint_path=str(path), lr_milestones=(1,))
    Trainer(VAE(VAEConfig(latent_dim=4, hidden=(32,))), _data(64), config).fit()
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    state = load_state(path)
    assert state["rng"]["numpy"]["keys"].shape == (624,)
