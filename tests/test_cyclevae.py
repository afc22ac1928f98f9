import json

import pytest
import torch
from conftest import REPO

from vaebook.cli import main
from vaebook.data import ImageData, PairBatch, PairedData, PairSampler, load_images
from vaebook.experiments.cyclevae import CycleVAEExperiment, probe_latents
from vaebook.metrics import latent_probe
from vaebook.models import CycleVAE, CycleVAEConfig, PairAdversarial, PairAdversarialConfig
from vaebook.models.cyclevae_nets import (
    NORM_MODES,
    CycleDecoder,
    CycleEncoder,
    RunningInstanceNorm2d,
    load_authors_cyclevae,
    set_norm_mode,
)
from vaebook.nets import CNNClassifier, FoldConvTranspose2d, UnfoldConv2d, with_torch_layers
from vaebook.probability import normalized_hsic
from vaebook.train import TrainConfig, Trainer, load_checkpoint


def test_pair_sampler_gives_same_label_partners_covering_every_class():
    labels = torch.tensor([3, 0, 1, 1, 0, 2, 2, 2, 3, 1, 0, 3])
    sampler = PairSampler(labels)
    generator = torch.Generator().manual_seed(0)
    index = torch.randperm(len(labels), generator=generator).repeat(200)
    partner = sampler.same_label(index, generator)
    assert torch.equal(labels[partner], labels[index]) and (partner != index).all()
    # every example of every class is drawn as somebody's partner
    assert torch.equal(partner.unique(), torch.arange(len(labels)))
    unrelated = sampler.unrelated(index, generator)
    assert (labels[unrelated] != labels[index]).any() and unrelated.max() < len(labels)


def test_paired_batches_hold_the_partners_images():
    images = torch.rand(6, 1, 28, 28)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    batch = PairedData(ImageData(images, labels)).batch(torch.tensor([0, 4]))
    torch.testing.assert_close(batch.x, images[[0, 4]])
    torch.testing.assert_close(batch.partner, images[[2, 5]])  # each class has two examples
    assert batch.unrelated.shape == (2, 1, 28, 28) and batch.labels.tolist() == [0, 2]


def test_pairs_refuse_unlabelled_data_and_lonely_classes():
    with pytest.raises(ValueError, match="pairs need labels"):
        PairedData(ImageData(torch.rand(4, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"label\(s\) \[2\] have a single example"):
        PairSampler(torch.tensor([0, 0, 1, 1, 2]))


AUTHORS = REPO / "checkpoints" / "cyclevae-authors-mnist-16-16"


@torch.no_grad()
def _encode(encoder, images: torch.Tensor) -> list[torch.Tensor]:
    """(mean, logvar, s) of every image, 2,000 at a time."""
    chunks = [encoder(images[i : i + 2000]) for i in range(0, len(images), 2000)]
    return [torch.cat(parts) for parts in zip(*chunks, strict=True)]


@pytest.mark.skipif(
    not (AUTHORS / "encoder.pt").exists(),
    reason=f"the authors' released checkpoint is not at {AUTHORS}",
)
def test_authors_checkpoint_loads_and_gives_the_published_probes():
    """The full protocol (30 probe epochs on all 60,000 codes) is `python -m vaebook reproduce
    cyclevae-authors`; here 5 epochs (15 for the mean of z) on 20,000 codes."""
    encoder, decoder = load_authors_cyclevae(AUTHORS)
    train = load_images("mnist", "train", download=False).subset(
        20_000, torch.Generator().manual_seed(0)
    )
    test = load_images("mnist", "test", download=False)
    probes = {}
    for mode in NORM_MODES:
        set_norm_mode(encoder, mode)
        (mean, logvar, s), (test_mean, test_logvar, test_s) = (
            _encode(encoder, train.images),
            _encode(encoder, test.images),
        )
        args = dict(train_labels=train.labels, test_labels=test.labels, epochs=5)
        probes[mode, "z"] = latent_probe(
            mean, test_codes=test_mean, train_logvar=logvar, test_logvar=test_logvar, **args
        )["test_accuracy"]
        if mode == "per-image":
            # the mean of z leaks the class slowly: give its probe more epochs
            probes[mode, "mean"] = latent_probe(
                mean, test_codes=test_mean, **{**args, "epochs": 15}
            )["test_accuracy"]
            probes[mode, "s"] = latent_probe(s, test_codes=test_s, **args)["test_accuracy"]
    # published: sampled z 17.1%, s 98.4%, mean of z 65% after 30 epochs; running stats: z 34%
    assert probes["per-image", "z"] < 0.22, probes
    assert probes["per-image", "s"] > 0.975, probes
    assert 0.3 < probes["per-image", "mean"] < 0.75, probes
    assert probes["running", "z"] > 0.27, probes
    # the decoder loaded too: an independent classifier reads the class of s in the swapped image
    set_norm_mode(encoder, "per-image")
    classifier = CNNClassifier().eval()
    load_checkpoint(REPO / "checkpoints" / "classifier-mnist.pt", classifier)
    with torch.no_grad():
        mean, _, s = encoder(test.images[:500])
        other = torch.roll(torch.arange(500), 1)
        read = classifier(decoder(mean[other], s)).argmax(1)
    assert (read == test.labels[:500]).float().mean() > 0.85  # paper's swap grid: class from s
    assert (read == test.labels[other]).float().mean() < 0.2  # and not from z


def test_norm_modes_per_image_and_running_statistics():
    encoder = CycleEncoder()
    x = torch.rand(4, 1, 28, 28)
    encoder.train()
    training_codes = encoder(x)
    running_mean = encoder.features.norm1.running_mean.clone()
    encoder.eval()
    torch.testing.assert_close(encoder(x), training_codes)  # per-image: the same as training
    assert torch.equal(encoder.features.norm1.running_mean, running_mean)  # and no update
    set_norm_mode(encoder, "running")
    assert not torch.allclose(encoder(x)[2], training_codes[2])
    with pytest.raises(ValueError, match="per-image"):
        set_norm_mode(encoder, "batch")


@pytest.mark.parametrize("size", [(13, 13), (2, 2), (6, 5)])
def test_instance_norm_equals_pytorchs_with_running_statistics(size):
    ours, theirs = RunningInstanceNorm2d(8), torch.nn.InstanceNorm2d(8, track_running_stats=True)
    x = 3 * torch.randn(6, 8, *size) + torch.arange(8.0)[:, None, None]
    for _ in range(3):  # training: each image by its own statistics, the running ones updated
        x = x.detach().requires_grad_()
        outputs = [layer(x) for layer in (ours, theirs)]
        torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
        grad_out = torch.randn_like(x)
        grads = [torch.autograd.grad(out, x, grad_out)[0] for out in outputs]
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-4)
        x = 2 * x
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    assert ours.running_var.min() > 1.5  # the statistics moved from their start
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x), torch.nn.functional.instance_norm(x), atol=1e-5, rtol=1e-4)
    ours.per_image = False
    torch.testing.assert_close(ours(x), theirs(x))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        ours.train()(torch.randn(2, 8, 1, 1))


def test_training_step_equals_the_step_with_pytorchs_own_layers():
    torch.manual_seed(0)
    ours = CycleVAE()
    plain = with_torch_layers(ours)
    fast = (RunningInstanceNorm2d, UnfoldConv2d, FoldConvTranspose2d)
    assert sum(isinstance(layer, fast) for layer in ours.modules()) == 7  # 5 norms, 2 convs
    assert not any(isinstance(layer, fast) for layer in plain.modules())
    images = torch.rand(3, 8, 1, 28, 28).round()
    batch = PairBatch(*images, torch.zeros(8, dtype=torch.long))
    results = []
    for model in (ours, plain):  # both cycles' terms and gradients, the same draws
        torch.manual_seed(1)
        terms = model.loss(batch)
        terms["total"].backward()
        grads = [p.grad for p in model.parameters()]
        results.append((terms, grads, dict(model.named_buffers())))
    (terms, grads, buffers), (plain_terms, plain_grads, plain_buffers) = results
    for key in terms:
        torch.testing.assert_close(terms[key], plain_terms[key], rtol=1e-5, atol=1e-7)
    # float tolerance: rounding differs by the order of the sums, up to 1e-5 of the largest
    # entry (a conv bias before a norm has gradient zero: both sides are rounding noise)
    largest = max(g.abs().max() for g in plain_grads)
    for mine, theirs in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5 * largest)
    for key in buffers:  # the running statistics after three encoder and two decoder passes
        torch.testing.assert_close(buffers[key], plain_buffers[key])


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_cycle_networks_shapes(shape):
    encoder, decoder = CycleEncoder(shape, 8, 5), CycleDecoder(shape, 8, 5)
    mean, logvar, s = encoder(torch.rand(2, *shape))
    assert mean.shape == logvar.shape == (2, 8) and s.shape == (2, 5)
    image = decoder(mean, s)
    assert image.shape == (2, *shape) and 0 <= image.min() and image.max() <= 1


def test_probe_on_sampled_codes_draws_a_fresh_sample_each_epoch():
    labels = torch.arange(2).repeat(200)
    means = labels[:, None].float().expand(400, 2) * 0.1  # the label is in the mean...
    logvar = torch.full_like(means, 4.0)  # ...drowned by the noise of a sample
    args = dict(train_labels=labels, test_codes=means, test_labels=labels, epochs=3)
    assert latent_probe(means, **args)["test_accuracy"] == 1.0
    sampled = latent_probe(means, train_logvar=logvar, test_logvar=logvar, **args)
    assert sampled["test_accuracy"] < 0.65
    with pytest.raises(ValueError, match="train_logvar must have the codes' shape"):
        latent_probe(means, train_logvar=logvar[:, :1], **args)


def bands(n: int, seed: int) -> ImageData:
    """28x28 images whose class (0..3) is which horizontal band of 7 rows is lit and whose style
    is where a vertical bar 6 columns wide stands (0..21): both known by construction."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, (n,), generator=generator)
    columns = torch.randint(0, 22, (n,), generator=generator)
    grid = torch.arange(28)
    rows = (grid // 7 == labels[:, None]).float()
    bars = ((grid >= columns[:, None]) & (grid < columns[:, None] + 6)).float()
    return ImageData(torch.maximum(rows[:, :, None], bars[:, None, :]).unsqueeze(1), labels)


def _pair_batch() -> PairBatch:
    """8 pairs drawn from 64 band images."""
    return PairedData(bands(64, seed=0)).batch(torch.arange(8), torch.Generator().manual_seed(0))


def test_forward_cycle_terms_equal_the_authors_formulas():
    model = CycleVAE()
    batch = _pair_batch()
    torch.manual_seed(3)
    terms = model.forward_cycle(batch.x, batch.partner)
    torch.manual_seed(3)
    mean, logvar, s = model.encoder(torch.cat([batch.x, batch.partner]))
    z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
    (z1, z2), (s1, s2), (mean1, mean2), (logvar1, logvar2) = (
        t.chunk(2) for t in (z, s, mean, logvar)
    )
    # the authors' code: per-pixel mean squared error of each swapped reconstruction, summed;
    # KL summed over z and the batch, divided by batch * pixels, for each image of the pair
    mse = ((model.decoder(z1, s2) - batch.x) ** 2).mean()
    mse = mse + ((model.decoder(z2, s1) - batch.partner) ** 2).mean()
    kl = sum(
        -0.5 * (1 + lv - m.pow(2) - lv.exp()).sum() / (8 * 784)
        for m, lv in ((mean1, logvar1), (mean2, logvar2))
    )
    torch.testing.assert_close(terms["reconstruction"], mse)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["total"], 2 * mse + 3 * kl)


def test_independence_term_is_the_hsic_of_the_z_means_and_a_detached_s():
    model = CycleVAE(CycleVAEConfig(independence_weight=0.5))
    batch = _pair_batch()
    torch.manual_seed(3)
    terms = model.forward_terms(batch)
    torch.manual_seed(3)
    forward = model.forward_cycle(batch.x, batch.partner)
    independence = normalized_hsic(forward["mean"], forward["s"])
    torch.testing.assert_close(terms["independence"], independence)
    torch.testing.assert_close(terms["total"], forward["total"] + 0.5 * independence)
    terms["independence"].backward()  # moves the class out of z, never out of s
    assert model.encoder.unspecified_mean.weight.grad.abs().sum() > 0
    assert model.encoder.specified.weight.grad is None
    assert all(p.grad is None for p in model.decoder.parameters())
    assert "independence" not in CycleVAE().loss(batch)  # the authors' model by default


def test_independence_term_off_the_features_trains_only_the_z_mean_head():
    model = CycleVAE(CycleVAEConfig(independence_weight=0.5, independence_on_features=False))
    batch = _pair_batch()
    torch.manual_seed(3)
    terms = model.forward_terms(batch)
    torch.manual_seed(3)
    forward = model.forward_cycle(batch.x, batch.partner)
    torch.testing.assert_close(
        terms["independence"], normalized_hsic(forward["mean"], forward["s"])
    )
    terms["independence"].backward()
    assert model.encoder.unspecified_mean.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.features.parameters())
    assert model.encoder.specified.weight.grad is None


def test_independence_term_joins_after_independence_start_steps():
    model = CycleVAE(CycleVAEConfig(independence_weight=0.5, independence_start=1))
    optimizers = model.configure_optimizers(TrainConfig(lr=1e-3))
    for step in range(2):
        terms = model.training_step(_pair_batch(), optimizers)
        forward = terms["total"] - model.config.reverse_cycle_weight * terms["reverse_cycle"]
        without = model.config.reconstruction_weight * terms["reconstruction"]
        without = without + model.config.kl_weight * terms["kl"]
        expected = without + (0.5 * terms["independence"] if step == 1 else 0.0)
        torch.testing.assert_close(forward, expected)
    assert model.steps == 2 and "steps" in model.state_dict()  # a resumed run keeps its count


def test_reverse_cycle_step_updates_the_encoder_only():
    model = CycleVAE()
    forward_optimizer, reverse_optimizer = model.configure_optimizers(TrainConfig(lr=1e-3))
    for group in forward_optimizer.param_groups:
        group["lr"] = 0.0  # leave only the reverse cycle's update
    decoder = [p.detach().clone() for p in model.decoder.parameters()]
    encoder = [p.detach().clone() for p in model.encoder.parameters()]
    terms = model.training_step(_pair_batch(), [forward_optimizer, reverse_optimizer])
    assert terms["reverse_cycle"] > 0
    after = list(model.decoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(decoder, after, strict=True))
    after = list(model.encoder.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(encoder, after, strict=True))
    model.zero_grad(set_to_none=True)
    batch = _pair_batch()
    model.reverse_cycle(batch.x, batch.unrelated).backward()
    assert all(p.grad is None for p in model.decoder.parameters())


def test_short_training_puts_the_class_in_s_and_not_in_z():
    train, test = bands(512, seed=0), bands(1000, seed=1)
    torch.manual_seed(0)
    model = CycleVAE()
    config = TrainConfig(epochs=4, batch_size=64, lr=2e-3, device="cpu", progress=False)
    Trainer(model, PairedData(train), config).fit()
    probes = probe_latents(model.encoder, train, test, epochs=5, device=torch.device("cpu"))
    z, s = probes["z_sample"]["test_accuracy"], probes["s"]["test_accuracy"]
    assert s > 0.9 and z < 0.5 and z < s - 0.4, probes  # chance is 0.25


@pytest.mark.parametrize("method", ["mathieu", "szabo"])
def test_adversarial_baselines_train_all_three_networks(method):
    model = PairAdversarial(PairAdversarialConfig(method=method))
    optimizers = model.configure_optimizers(TrainConfig(lr=1e-3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    terms = model.training_step(_pair_batch(), optimizers)
    assert ("kl" in terms) == (method == "mathieu")  # Szabo's z is deterministic
    assert terms["discriminator"] > 0 and terms["adversarial"] > 0
    changed = {
        n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(before[n], p)
    }
    assert changed == {"encoder", "decoder", "discriminator"}
    assert set(model.loss(_pair_batch())) == set(terms)


def test_pair_models_refuse_bad_input_and_settings():
    with pytest.raises(TypeError, match="PairedData"):
        CycleVAE().loss(torch.rand(4, 1, 28, 28))
    batch = _pair_batch()
    with pytest.raises(ValueError, match="shape"):
        CycleVAE(CycleVAEConfig(image_shape=(3, 64, 64))).loss(batch)
    with pytest.raises(ValueError, match="method must be one of"):
        PairAdversarialConfig(method="gan")
    with pytest.raises(ValueError, match="norm_mode"):
        CycleVAEConfig(norm_mode="batch")
    with pytest.raises(ValueError, match="independence_start >= 0"):
        CycleVAEConfig(independence_weight=-1.0)
    with pytest.raises(ValueError, match="independence_start >= 0"):
        CycleVAEConfig(independence_start=-1)


def test_reproduce_writes_three_probes_in_both_norm_modes(tmp_path):
    main(
        [
            "reproduce", "szabo", "--dataset", "mnist", "--dims", "8", "--epochs", "1",
            "--train-size", "256", "--test-size", "200", "--device", "cpu", "--no-progress",
            "--set", "probe_epochs=1", "--set", "seeds=0", "--results-dir", str(tmp_path),
            "--checkpoint-dir", str(tmp_path),
        ]
    )  # fmt: skip
    saved = json.loads((tmp_path / "szabo-mnist-8.json").read_text())
    assert saved["config"]["dims"] == 8 and saved["config"]["model"] == "szabo"
    assert "--dims 8" in saved["command"]
    for mode in NORM_MODES:
        assert set(saved["metrics"][mode]) == {"z_sample", "z_mean", "z_mean_plain", "s"}
        assert 0 <= saved["metrics"][mode]["s"]["test"]["mean"] <= 1
        assert 0 <= saved["val_metrics"][mode]["s"]["val"]["mean"] <= 1
        # Szabo's z is deterministic: its sampled z is its mean
        assert saved["metrics"][mode]["z_sample"] == saved["metrics"][mode]["z_mean"]
    assert saved["runs"][0]["epochs"] == 1 and saved["runs"][0]["train_seconds"] > 0
    assert saved["probe_data"] == {
        "val": {"train": 256, "val": 200},
        "test": {"train": 256, "test": 200},
    }
    model = PairAdversarial(
        PairAdversarialConfig(method="szabo", unspecified_dim=8, specified_dim=8)
    )
    load_checkpoint(tmp_path / "szabo-mnist-8.pt", model)
    with pytest.raises(ValueError, match="--dims 16"):
        CycleVAEExperiment(model="authors", dims=64)
    # a further seed gets its own files beside the committed run's
    assert CycleVAEExperiment(tag="seed1").name == "cyclevae-mnist-16-seed1"


def test_a_resumed_reproduce_run_equals_an_uninterrupted_one(tmp_path):
    def reproduce(folder, epochs, *extra):
        main(
            [
                "reproduce", "cyclevae", "--dataset", "mnist", "--dims", "4", "--epochs",
                str(epochs), "--train-size", "128", "--test-size", "64", "--device", "cpu",
                "--no-progress", "--set", "probe_epochs=1", "--set", "seeds=0",
                "--set", "norm_modes=per-image", "--results-dir", str(folder),
                "--checkpoint-dir", str(folder), *extra,
            ]
        )  # fmt: skip
        return json.loads((folder / "cyclevae-mnist-4.json").read_text())

    whole = reproduce(tmp_path / "whole", 2)
    reproduce(tmp_path / "killed", 1)  # as if killed after its first epoch
    assert (tmp_path / "killed" / "runs" / "cyclevae-mnist-4-seed0.pt").exists()
    resumed = reproduce(tmp_path / "killed", 2, "--resume")
    assert "--resume" in resumed["command"]
    assert resumed["runs"][0]["epochs"] == 2
    terms = [
        {k: v for k, v in r["runs"][0]["final_terms"].items() if k != "seconds"}
        for r in (resumed, whole)
    ]
    assert terms[0] == pytest.approx(terms[1])
    assert resumed["metrics"] == whole["metrics"]


# the Cycle-Consistent VAE's networks at shapes other than the paper's


CYCLE_SHAPES = [(1, 64, 64), (3, 32, 32), (1, 112, 92), (3, 16, 20)]


@pytest.mark.parametrize("shape", CYCLE_SHAPES)
def test_cycle_networks_take_any_image_shape(shape):
    from vaebook.models.cyclevae import PairDiscriminator

    encoder, decoder = CycleEncoder(shape, 8, 5), CycleDecoder(shape, 8, 5)
    x = torch.rand(3, *shape)
    assert encoder.features(x).shape == (3, 256)
    mean, logvar, s = encoder(x)
    assert mean.shape == logvar.shape == (3, 8) and s.shape == (3, 5)
    image = decoder(mean, s)
    assert image.shape == (3, *shape) and 0 <= image.min() and image.max() <= 1
    assert PairDiscriminator(shape)(x, x).shape == (3,)


def _random_pairs(shape, n: int = 16) -> PairedData:
    """n random images in [0, 1], four classes of n / 4 each."""
    generator = torch.Generator().manual_seed(0)
    return PairedData(ImageData(torch.rand(n, *shape, generator=generator), torch.arange(n) % 4))


# one epoch on 16 random images: a collapsed KL term is expected, not a fault
@pytest.mark.filterwarnings("ignore:the KL term averaged")
@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 32, 32), (1, 112, 92)])
def test_pair_models_train_an_epoch_at_any_image_shape(shape):
    data = _random_pairs(shape)
    model = CycleVAE(CycleVAEConfig(image_shape=shape, unspecified_dim=4, specified_dim=4))
    config = TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False)
    history = Trainer(model, data, config).fit()
    assert all(torch.isfinite(torch.tensor(v)).all() for v in history.values())
    style, content = data.data.images[:2], data.data.images[2:5]
    assert model.swap(style, content).shape == (2, 3, *shape)
    adversarial = PairAdversarial(PairAdversarialConfig(image_shape=shape, unspecified_dim=4))
    terms = adversarial.training_step(
        data.batch(torch.arange(8)), adversarial.configure_optimizers(TrainConfig())
    )
    assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.parametrize("name", ["cyclevae-mnist-16", "cyclevae-sprites-16", "mathieu-mnist-16"])
def test_committed_pair_model_checkpoints_still_load(name):
    from vaebook.train import load_state

    path = REPO / "checkpoints" / f"{name}.pt"
    state = load_state(path)
    model, config = {
        "CycleVAE": (CycleVAE, CycleVAEConfig),
        "PairAdversarial": (PairAdversarial, PairAdversarialConfig),
    }[state["model_class"]]
    load_checkpoint(path, model(config(**state["model_config"])))


def test_cycle_networks_refuse_shapes_they_cannot_take_and_name_the_fix():
    with pytest.raises(ValueError, match=r"got 2 in .*x\.mean\(1, keepdim=True\)") as error:
        CycleVAE(CycleVAEConfig(image_shape=(2, 32, 32)))
    assert "mlp" not in str(error.value)  # the pair models have no MLP nets
    with pytest.raises(ValueError, match=r">= 16, got 8x8 .*resize the images") as error:
        CycleDecoder((1, 8, 8))
    assert "mlp" not in str(error.value)
