"""The four FA-VAE experiments end to end through the CLI, on a tiny stand-in for Sprites."""

import json
from dataclasses import replace

import pytest
import torch
from test_favae import killed_in_round

from vaebook import fa
from vaebook.checkpoints import file_sha256
from vaebook.cli import main, parse_command
from vaebook.data import SpritesData
from vaebook.experiments import favae as favae_experiments
from vaebook.experiments.favae import views as favae_views
from vaebook.experiments.favae.condition import seen_combinations
from vaebook.models import FAVAE, FAVAEConfig, FAVAESchedule
from vaebook.train import load_checkpoint

CHARACTERS, TEST_CHARACTERS, VAL_CHARACTERS = 16, 4, 2  # VAL: the runs' val_characters
TRAIN_CHARACTERS = CHARACTERS - TEST_CHARACTERS - VAL_CHARACTERS
LOADER_SPLITS = {"train": [0, 1, 3, 4, 5, 6, 8, 9, 10, 11], "val": [2, 7], "test": [12, 13, 14, 15]}
NAMES = ("body", "bottomwear", "topwear", "hair")


def tiny_sprites(split: str, root=None, device="cpu") -> SpritesData:
    """load_sprites' layout for 16 characters (10 train, 2 val among them, the last 4 test), 3
    actions x 3 directions x 2 frames, random pixels (seeded by the character); character c has
    hair c % 2, so every hair has several characters on each side of the experiments' random
    split."""
    ids = torch.tensor(LOADER_SPLITS[split])
    grid = torch.meshgrid(*(torch.arange(s) for s in (len(ids), 3, 3, 2)), indexing="ij")
    row, action, direction, frame = (g.reshape(-1) for g in grid)
    character = ids[row]
    attributes = torch.stack([character % 6, character // 6, character % 3, character % 2], 1)
    seeded = (torch.Generator().manual_seed(int(c)) for c in ids)
    images = torch.cat(
        [torch.randint(256, (18, 3, 64, 64), generator=g, dtype=torch.uint8) for g in seeded]
    )
    return SpritesData(
        images=images,
        labels=character,
        attributes=attributes,
        action=action,
        direction=direction,
        frame=frame,
        character=character,
        attribute_names=NAMES,
        direction_names=("front", "left", "right"),
    )


@pytest.fixture(autouse=True)
def tiny_data_and_one_thread(monkeypatch):
    monkeypatch.setattr(favae_views, "load_sprites", tiny_sprites)
    monkeypatch.setattr(favae_views, "SPRITES_TEST_CHARACTERS", TEST_CHARACTERS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


QUICK = [
    "--set", "frames=0", "--set", "rounds=1", "--set", "warmup_epochs=1",
    "--set", "first_sweeps=5", "--set", "sweeps=2", "--set", "latent_dim=4",
    "--set", "factors=6", "--set", "classifier_epochs=1", "--set", "combinations=12",
    "--set", f"val_characters={VAL_CHARACTERS}", "--device", "cpu", "--no-progress",
]  # fmt: skip
METRICS = {
    "condition": {
        "attribute_accuracy",
        "generation_accuracy",
        "loglik_gap_percent",
        "code_probe_accuracy",
        "reconstruction_accuracy",
        "generation_accuracy_rescaled",
        "offset_scale",
    },
    "private-shared": {
        "activity",
        "shared_factors",
        "left_to_right_shared_attribute_accuracy",
        "left_pose_probe_accuracy",
        "left_to_right_at_donor_pose_attribute_accuracy",
    },
    "domain": {"favae_translation_accuracy", "baseline_translation_accuracy"},
    "transfer": {"favae_test_r2", "beta_vae_test_r2", "favae_test_kl", "beta_vae_test_kl"},
}


@pytest.mark.parametrize("experiment", sorted(METRICS))
def test_experiment_writes_results_and_a_loadable_checkpoint(experiment, tmp_path):
    results_dir, checkpoint_dir = tmp_path / "results", tmp_path / "checkpoints"
    folders = ["--results-dir", str(results_dir), "--checkpoint-dir", str(checkpoint_dir)]
    assert main(["reproduce", f"favae-{experiment}", *QUICK, *folders]) == 0
    results = json.loads((results_dir / f"favae-{experiment}.json").read_text())
    assert results["command"].startswith(f"python -m vaebook reproduce favae-{experiment} --")
    assert "experiment=" not in results["command"]  # fixed by the name
    assert METRICS[experiment] <= set(results["metrics"])
    assert set(results["metrics"]["classifier_test_accuracy"]) == set(NAMES)
    assert results["train_images"] == TRAIN_CHARACTERS * 9 and results["test_images"] == 36
    # trained once, measured on the validation characters too, with the test's keys
    assert (
        results["val_images"] == VAL_CHARACTERS * 9 and results["selected_on"] == "nothing chosen"
    )
    assert list(results["val_metrics"]) == list(results["metrics"])
    state = torch.load(checkpoint_dir / f"favae-{experiment}.pt", weights_only=True)
    model = FAVAE(FAVAEConfig(**state["model_config"]))
    load_checkpoint(checkpoint_dir / f"favae-{experiment}.pt", model)
    assert model.fa is not None and set(model.config.image_views) <= set(model.fa.views)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("label_views", ["categorical", "real"])
@pytest.mark.parametrize("experiment", sorted(METRICS))
def test_experiment_runs_with_the_layer_and_the_vaes_on_the_gpu(experiment, label_views, tmp_path):
    on_gpu = [*QUICK[: QUICK.index("--device")], "--device", "cuda", "--no-progress"]
    folders = ["--results-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path)]
    args = ["--set", f"label_views={label_views}", "--set", "prior_from=side", *folders]
    assert main(["reproduce", f"favae-{experiment}", *on_gpu, *args]) == 0
    results = json.loads((tmp_path / f"favae-{experiment}.json").read_text())
    assert results["device"].startswith("cuda") and METRICS[experiment] <= set(results["metrics"])
    model = FAVAE(
        FAVAEConfig(
            **torch.load(tmp_path / f"favae-{experiment}.pt", weights_only=True)["model_config"]
        )
    )
    load_checkpoint(tmp_path / f"favae-{experiment}.pt", model)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_same_character_partners_permute_the_rows_within_each_character():
    character = torch.tensor([3, 1, 3, 1, 3, 2, 1, 3])
    partners = favae_experiments.same_character_partners(character, seed=0)
    assert sorted(partners.tolist()) == list(range(len(character)))  # every image used once
    assert torch.equal(character[partners], character)
    moved = [favae_experiments.same_character_partners(character, seed=s) for s in range(5)]
    assert any(not torch.equal(p, torch.arange(len(character))) for p in moved)


def test_experiment_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="experiment must be one of"):
        favae_experiments.FAVAEExperiment(experiment="conditioning")
    with pytest.raises(ValueError, match="two different actions"):
        favae_experiments.FAVAEExperiment(domain_a="walk", domain_b="walk")
    with pytest.raises(ValueError, match="frames must be some of 0..7"):
        favae_experiments.FAVAEExperiment(frames=(8,))
    with pytest.raises(ValueError, match="likelihood must be 'bernoulli' or 'gaussian'"):
        favae_experiments.FAVAEExperiment(likelihood="poisson")
    with pytest.raises(ValueError, match="beta >= 0"):
        favae_experiments.FAVAEExperiment(beta=-1.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        favae_experiments.FAVAEExperiment(activation="gelu")
    with pytest.raises(ValueError, match="prior_from must be one of"):
        favae_experiments.FAVAEExperiment(prior_from="labels")
    with pytest.raises(ValueError, match="label_views must be one of"):
        favae_experiments.FAVAEExperiment(label_views="onehot")


def test_condition_with_one_hot_real_label_views_and_the_side_prior(tmp_path):
    folders = ["--results-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path)]
    flags = ["--set", "label_views=real", "--set", "prior_from=side"]
    assert main(["reproduce", "favae-condition", *QUICK, *flags, *folders]) == 0
    results, config, model = favae_experiments.load_run("condition", tmp_path, tmp_path)
    assert config.label_views == "real" and model.config.prior_from == "side"
    # every attribute and pose factor is a real view of its one-hot codes
    widths = {name: view.data.shape[1] for name, view in model.fa.views.items()}
    assert widths == {"image": 4, **dict.fromkeys(NAMES, 6), "action": 3, "direction": 3}
    requested = torch.tensor([[0, 1, 2, 3], [5, 4, 3, 2]])
    inputs = favae_experiments.condition_inputs(
        model, requested, NAMES, torch.tensor([[2, 0, 0], [1, 2, 0]])
    )
    assert set(inputs) == {*NAMES, "action", "direction"}  # one frame kept: no frame view
    assert torch.equal(inputs["topwear"].data, torch.eye(6)[[2, 3]])
    assert torch.equal(inputs["action"].data, torch.eye(3)[[2, 1]])
    assert model.predict(inputs, "image").shape == (2, 3, 64, 64)
    for key in ("attribute_accuracy", "attribute_accuracy_real_views"):
        read = results["metrics"][key]
        assert set(read) == {*NAMES, "all"} and all(0 <= v <= 1 for v in read.values())
    # the categorical reading layer is kept and reads the recorded accuracy again
    layer = torch.load(favae_experiments.reading_layer_path(config), weights_only=True)["layer"]
    assert all(isinstance(layer.views[name], fa.Categorical) for name in NAMES)
    split = favae_experiments.split_for(config)
    for key, held_out in (("metrics", split.test), ("val_metrics", split.val)):
        source = {"image": model.encode("image", held_out.images)}
        predicted = torch.stack([layer.predict(source, n).argmax(1) for n in NAMES], 1)
        expected = results[key]["attribute_accuracy"]
        agreement = favae_experiments.attribute_agreement(predicted, held_out.attributes, NAMES)
        assert agreement == pytest.approx(expected), key


def test_label_view_is_the_probit_view_or_the_one_hot_real_view():
    labels = torch.tensor([2, 0, 1])
    categorical = favae_experiments.label_view(labels, 4)
    assert isinstance(categorical, fa.Categorical) and categorical.n_classes == 4
    assert torch.equal(categorical.data, labels)
    real = favae_experiments.label_view(labels, 4, "real")
    assert isinstance(real, fa.Real) and torch.equal(real.data, torch.eye(4)[labels])


def test_a_killed_run_resumed_with_resume_ends_as_an_uninterrupted_run(tmp_path):
    def reproduce(folder, *flags):
        folders = ["--results-dir", str(folder), "--checkpoint-dir", str(folder)]
        torch.manual_seed(0)  # the attribute reader's initial weights
        main(["reproduce", "favae-condition", *QUICK, "--set", "rounds=3", *folders, *flags])
        return json.loads((folder / "favae-condition.json").read_text())

    whole = reproduce(tmp_path / "whole")
    with killed_in_round(2):
        reproduce(tmp_path / "killed")
    saved = torch.load(tmp_path / "killed" / "runs" / "favae-condition-seed0.pt", weights_only=True)
    assert len(saved["history"]["fa_bound"]) == 2 and saved["epoch"] == 1 + 2
    resumed = reproduce(tmp_path / "killed", "--resume")
    assert " --resume" in resumed["command"]
    assert resumed["metrics"] == whole["metrics"]
    for model in ("history", "vae_history"):
        for term in ("total", "reconstruction", "kl"):
            assert resumed[model][term] == whole[model][term], (model, term)


def test_run_refuses_a_split_its_config_does_not_describe_and_load_run_names_the_command(
    tmp_path,
):
    config = favae_experiments.FAVAEExperiment(
        train_characters=5, test_characters=2, val_characters=VAL_CHARACTERS, frames=(0,)
    )
    for change in ({"train_characters": 6}, {"val_characters": 0}, {"val_characters": 1}):
        other = favae_experiments.split_for(replace(config, **change))
        with pytest.raises(ValueError, match="split_for"):
            favae_experiments.run(config, other)
    with pytest.raises(ValueError, match="val_characters must be >= 0"):
        favae_experiments.FAVAEExperiment(val_characters=-1)
    with pytest.raises(ValueError, match="lower val_characters"):
        favae_experiments.split_for(replace(config, val_characters=CHARACTERS - TEST_CHARACTERS))
    with pytest.raises(FileNotFoundError, match="reproduce favae-domain"):
        favae_experiments.load_run("domain", tmp_path, tmp_path)


def test_the_split_holds_disjoint_characters_and_validation_leaves_the_test_ones_alone():
    config = favae_experiments.FAVAEExperiment(val_characters=VAL_CHARACTERS, frames=(0, 1))
    split = favae_experiments.split_for(config)
    sets = [set(part.character.tolist()) for part in split]  # train, val, test
    assert [len(s) for s in sets] == [TRAIN_CHARACTERS, VAL_CHARACTERS, TEST_CHARACTERS]
    assert set.union(*sets) == set(range(CHARACTERS))  # disjoint (sizes add up) and the pool
    for part in split:  # the files' row order: character, action, direction, frame
        assert torch.equal(part.character, part.character.sort().values)
        assert len(part) == len(part.character.unique()) * 18
    without = favae_experiments.split_for(replace(config, val_characters=0))
    assert without.val is None
    assert torch.equal(without.test.character, split.test.character)
    assert torch.equal(without.test.images, split.test.images)
    # without validation the training set takes the validation characters back
    assert set(without.train.character.tolist()) == sets[0] | sets[1]


def test_a_tag_names_the_files_of_a_further_seed(tmp_path):
    folders = ["--results-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path)]
    flags = ["--seed", "3", "--set", "tag=seed3"]
    assert main(["reproduce", "favae-domain", *QUICK, *flags, *folders]) == 0
    assert not (tmp_path / "favae-domain.json").exists()
    results, config, _ = favae_experiments.load_run("domain", tmp_path, tmp_path, tag="seed3")
    assert (config.seed, config.name) == (3, "favae-domain-seed3")
    # the recorded command is one the CLI takes, and makes the same files
    assert results["command"].startswith("python -m vaebook reproduce favae-domain --")
    _, again = parse_command(results["command"].split()[3:])
    assert (again.seed, again.name) == (3, "favae-domain-seed3")
    with pytest.raises(FileNotFoundError, match="favae-domain --set tag=seed4 --publish"):
        favae_experiments.load_run("domain", tmp_path, tmp_path, tag="seed4")
    with pytest.raises(ValueError, match="tag must be a plain name"):
        favae_experiments.FAVAEExperiment(tag="../seed3")


def test_a_run_without_validation_characters_and_an_old_results_file_load_as_none(tmp_path):
    folders = ["--results-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path)]
    flags = ["--set", "val_characters=0"]
    assert main(["reproduce", "favae-condition", *QUICK, *flags, *folders]) == 0
    path = tmp_path / "favae-condition.json"
    results = json.loads(path.read_text())
    assert "val_metrics" not in results and "val_images" not in results
    assert results["train_images"] == (CHARACTERS - TEST_CHARACTERS) * 9
    del results["config"]["val_characters"]  # as the files written before the field
    path.write_text(json.dumps(results))
    _, config, _ = favae_experiments.load_run("condition", tmp_path, tmp_path)
    assert config.val_characters == 0 and favae_experiments.split_for(config).val is None


def test_round_seconds_are_medians_over_the_rounds_between_the_first_and_the_refit():
    schedule = FAVAESchedule(rounds=4, epochs_per_round=2, warmup_epochs=1)
    history = {
        "seconds": [9.0, 1.0, 1.0, 2.0, 2.0, 3.0, 1.0, 4.0, 4.0],  # warm-up, then 4 rounds x 2
        "encode_seconds": [5.0, 1.0, 2.0, 3.0, 5.0],  # rounds 0..4, the last the refit
        "fa_seconds": [50.0, 1.0, 1.0, 4.0, 9.0],
    }
    seconds = favae_experiments.round_seconds(history, schedule)
    assert seconds == {"vae": 4.0, "encode": 2.0, "fa": 1.0, "round": 7.0, "fa_share": 1 / 7}
    with pytest.raises(ValueError, match="rounds >= 2"):
        favae_experiments.round_seconds(history, FAVAESchedule(rounds=1))


def test_pose_views_index_frames_within_the_kept_ones_and_skip_constant_factors():
    data = tiny_sprites("train")  # frames 0 and 1
    kept = data.select(data.frame == 1)
    poses = favae_experiments.pose_labels(kept, (1,))
    assert torch.equal(poses[:, 0], kept.action) and torch.equal(poses[:, 1], kept.direction)
    assert (poses[:, 2] == 0).all()  # frame 1 is the first of the kept frames
    assert set(favae_experiments.pose_views(kept, (1,))) == {"action", "direction"}
    views = favae_experiments.pose_views(data, (0, 1))
    assert {name: view.n_classes for name, view in views.items()} == {
        "action": 3,
        "direction": 3,
        "frame": 2,
    }


def test_chapter_7s_mnist_run_writes_a_checkpoint_the_chapter_can_load(tmp_path):
    from vaebook.experiments.favae_mnist import FAVAEMNISTExperiment
    from vaebook.experiments.favae_mnist import run as run_mnist

    config = FAVAEMNISTExperiment(
        n_train=300,
        n_test=100,
        hidden=(32,),
        rounds=1,
        warmup_epochs=1,
        first_sweeps=3,
        sweeps=1,
        results_dir=str(tmp_path),
        checkpoint_dir=str(tmp_path),
        progress=False,
    )
    results = run_mnist(config)
    metrics = results["metrics"]
    for name in ("digit_accuracy_from_images", "generation_accuracy"):
        assert 0 <= metrics[name] <= 1
    assert "generation_accuracy_rescaled" in metrics and metrics["factors"] >= 1
    model = FAVAE(config.model_config())
    load_checkpoint(tmp_path / "favae-mnist.pt", model)
    checkpoint = tmp_path / "favae-mnist.pt"
    assert results["checkpoint_sha256"][checkpoint.name] == file_sha256(checkpoint)


def test_generation_is_split_into_combinations_seen_and_unseen_in_training():
    train_attributes = torch.tensor([[0, 1, 2, 3], [5, 5, 5, 5], [0, 1, 2, 3]])
    combinations = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [5, 5, 5, 5], [5, 5, 5, 4]])
    assert seen_combinations(combinations, train_attributes).tolist() == [True, False, True, False]
