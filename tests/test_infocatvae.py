import json
import shutil

import pytest
import torch
from conftest import REPO, synthetic_images

from vaebook.cli import main
from vaebook.data import ImageData, deskew, load_images, random_affine, slant
from vaebook.experiments.infocatvae import InfoCatExperiment
from vaebook.experiments.infocatvae import run as run_experiment
from vaebook.metrics import clustering_accuracy
from vaebook.models.infocatvae import (
    GumbelCatVAE,
    GumbelCatVAEConfig,
    InfoCatVAE,
    InfoCatVAEConfig,
    prior_means,
)
from vaebook.probability import bernoulli_log_likelihood, kl_normal
from vaebook.train import TrainConfig, Trainer


def test_prior_means_are_orthogonal_and_equidistant():
    means = prior_means(categories=5, delta=3, scale=2.0)
    gram = means @ means.T
    torch.testing.assert_close(gram, 12.0 * torch.eye(5))  # |mu_c|^2 = delta * lambda^2
    distances = torch.cdist(means, means)[~torch.eye(5, dtype=torch.bool)]
    torch.testing.assert_close(distances, torch.full_like(distances, 24.0**0.5))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"categories": 10, "delta": 2, "latent_dim": 21}, "categories \\* delta"),
        ({"categories": 1}, "categories >= 2"),
        ({"delta": 0}, "delta >= 1"),
        ({"mode_scale": 0.0}, "lambda"),
    ],
)
def test_bad_category_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InfoCatVAEConfig(**kwargs)


def _small(**kwargs):
    return InfoCatVAE(InfoCatVAEConfig(categories=3, delta=2, hidden=(16,), **kwargs))


def test_batched_heads_equal_the_per_category_loop():
    model = _small()
    x = synthetic_images(4)
    _, mean, logvar = model.encode(x)
    h = model.encoder(x)
    # the authors' form: one linear layer on [h, onehot(c)], applied once per category
    weight = torch.cat([model.shared_head.weight, model.category_bias.T], dim=1)
    for c in range(3):
        onehot = torch.nn.functional.one_hot(torch.full((4,), c), 3).float()
        out = torch.cat([h, onehot], 1) @ weight.T + model.shared_head.bias
        loop_mean, loop_logvar = out.chunk(2, dim=-1)
        torch.testing.assert_close(mean[:, c], loop_mean)
        torch.testing.assert_close(logvar[:, c], loop_logvar)
    # the mixed head: the same layer fed with q(c|x) instead of a one-hot
    q = torch.rand(4, 3).softmax(-1)
    mixed = (torch.cat([h, q], 1) @ weight.T + model.shared_head.bias).chunk(2, dim=-1)
    torch.testing.assert_close(model.head(model.shared_head(h), q), mixed)


def test_loss_terms_equal_a_hand_computation():
    model = _small(info_weight=0.0).eval()
    x = synthetic_images(2)
    torch.manual_seed(3)
    terms = model.loss(x)
    torch.manual_seed(3)
    logits, mean, logvar = model.encode(x)
    q = logits.softmax(-1)
    kl, neg_entropy, mixed_mean, mixed_logvar = 0.0, 0.0, 0.0, 0.0
    for c in range(3):
        prior = model.means[c].expand_as(mean[:, c])
        kl = kl + q[:, c] * kl_normal(mean[:, c], logvar[:, c], prior, torch.zeros_like(prior))
        neg_entropy = neg_entropy + q[:, c] * q[:, c].log()
        mixed_mean = mixed_mean + q[:, c : c + 1] * mean[:, c]
        mixed_logvar = mixed_logvar + q[:, c : c + 1] * logvar[:, c]
    z = mixed_mean + (0.5 * mixed_logvar).exp() * torch.randn_like(mixed_mean)
    reconstruction = -bernoulli_log_likelihood(model.decoder(z), x)
    torch.testing.assert_close(terms["kl"], kl.mean())
    torch.testing.assert_close(terms["neg_entropy"], neg_entropy.mean())
    torch.testing.assert_close(terms["reconstruction"], reconstruction.mean())
    torch.testing.assert_close(
        terms["total"], reconstruction.mean() + kl.mean() + neg_entropy.mean()
    )


def test_the_authors_weighting_is_an_information_weight_of_100_over_the_batch_size():
    # the authors sum the ELBO over the batch and add 100 times the batch-mean cross-entropy of
    # the information term; divided by B that is vaebook's per-example objective with
    # info_weight = 100 / B (Adam does not see the overall scale)
    batch = 16
    model = _small(info_weight=100.0 / batch)
    x = synthetic_images(batch)
    parameters = list(model.parameters())
    torch.manual_seed(5)
    ours = torch.autograd.grad(model.loss(x)["total"], parameters)
    torch.manual_seed(5)  # the same draws, in the same order: z, then the generated codes
    logits, shared = model.features(x)
    probs = logits.softmax(-1)
    mean, logvar = model.head(shared)
    z = model.head(shared, probs)
    z = z[0] + (0.5 * z[1]).exp() * torch.randn_like(z[0])
    categories, generated = model.information_samples(model.config.info_samples)
    reconstruction = -bernoulli_log_likelihood(model.decoder(z), x).sum()
    prior = model.means.expand_as(mean)
    kl = (probs * kl_normal(mean, logvar, prior, torch.zeros_like(prior))).sum()
    neg_entropy = (probs * logits.log_softmax(-1)).sum()
    read = model.category_logits(model.decode(generated))
    info = torch.nn.functional.cross_entropy(read, categories)
    authors = reconstruction + kl + neg_entropy + 100.0 * info
    for mine, theirs in zip(ours, torch.autograd.grad(authors, parameters), strict=True):
        torch.testing.assert_close(mine, theirs / batch, rtol=1e-4, atol=1e-6)


def test_decoder_dropout_is_the_authors_and_only_in_training():
    model = _small(decoder_dropout=0.25)
    assert any(isinstance(m, torch.nn.Dropout) for m in model.decoder.modules())
    z = torch.randn(8, model.config.latent_dim)
    assert not torch.equal(model.train().decode(z), model.decode(z))  # a fresh mask each call
    assert torch.equal(model.eval().decode(z), model.decode(z))
    with pytest.raises(ValueError, match="decoder_dropout needs arch='mlp'"):
        InfoCatVAEConfig(arch="conv", decoder_dropout=0.25)


def test_information_term_reaches_encoder_and_decoder():
    model = _small(info_weight=100.0)
    info = model.information_term(per_category=4)
    info.backward()
    decoder_grad = sum(p.grad.abs().sum() for p in model.decoder.parameters())
    encoder_grad = sum(p.grad.abs().sum() for p in model.encoder.parameters())
    assert decoder_grad > 0 and encoder_grad > 0 and model.category_head.weight.grad.abs().sum() > 0
    assert "info" in model.loss(synthetic_images(2))


def test_sampling_api_shapes_and_errors():
    model = _small().eval()
    assert model.sample(category=2, n=5).shape == (5, 1, 28, 28)
    assert model.interpolate(0, 1, steps=6).shape == (6, 1, 28, 28)
    assert model.traverse(1).shape == (8, 1, 28, 28)
    assert model.classify(synthetic_images(3)).shape == (3,)
    with pytest.raises(ValueError, match="category must be in"):
        model.sample(category=3, n=1)


def test_dropout_is_off_at_test_time():
    model = _small(dropout=0.5).eval()
    x = synthetic_images(3)
    assert torch.equal(model.encode(x)[0], model.encode(x)[0])


def test_short_training_on_mnist_clusters_above_chance():
    train = load_images("mnist", "train", download=False).subset(
        6000, torch.Generator().manual_seed(0)
    )
    test = load_images("mnist", "test", download=False).subset(
        2000, torch.Generator().manual_seed(1)
    )
    torch.manual_seed(0)
    model = InfoCatVAE(InfoCatVAEConfig(info_weight=100.0, balance_weight=100.0, mode_scale=5.0))
    config = TrainConfig(epochs=3, batch_size=128, device="cpu", progress=False)
    Trainer(model, ImageData(train.images, train.labels), config).fit()
    accuracy, _ = clustering_accuracy(model.classify(test.images), test.labels)
    assert accuracy > 0.3, f"clustering accuracy {accuracy:.2f} is near chance (0.1)"


def test_gumbel_baseline_terms_and_gradients():
    model = GumbelCatVAE(GumbelCatVAEConfig(categories=3, delta=2, hidden=(16,), temperature=0.5))
    terms = model.loss(synthetic_images(4))
    assert {"total", "reconstruction", "kl", "kl_category"} <= set(terms)
    assert terms["kl_category"] >= 0  # a KL to the uniform distribution
    terms["total"].backward()
    assert model.category_head.weight.grad.abs().sum() > 0  # gradients flow through the relaxation
    with pytest.raises(ValueError, match="temperature"):
        GumbelCatVAEConfig(temperature=0.0)
    with pytest.raises(ValueError, match="no information, balance or consistency term"):
        GumbelCatVAEConfig(balance_weight=100.0)


def test_random_affine_moves_each_image_by_at_most_the_given_pixels():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0
    torch.manual_seed(0)
    shifted = random_affine(x, 2.0)
    rows = torch.arange(28.0).view(1, 1, 28, 1)
    centre = (shifted * rows).sum((1, 2, 3)) / shifted.sum((1, 2, 3))
    assert (centre - 13.5).abs().max() <= 2.0 + 1e-4  # the square's centre row moved <= 2 px
    assert (centre - 13.5).abs().max() > 1.0  # and it does move
    torch.testing.assert_close(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing cut off
    torch.testing.assert_close(random_affine(x, 0.0), x)


def test_random_affine_rotates_and_scales_about_the_centre():
    x = torch.zeros(256, 1, 28, 28)
    x[:, :, 13:15, 4:24] = 1.0  # a horizontal bar through the centre, 20 px long
    torch.manual_seed(0)
    moved = random_affine(x, 0.0, degrees=30.0, zoom=0.2)
    rows, cols = torch.arange(28.0).view(1, 1, 28, 1), torch.arange(28.0).view(1, 1, 1, 28)
    mass = moved.sum((1, 2, 3))
    centre_row = (moved * rows).sum((1, 2, 3)) / mass
    centre_col = (moved * cols).sum((1, 2, 3)) / mass
    torch.testing.assert_close(centre_row, torch.full_like(mass, 13.5), atol=0.05, rtol=0)
    torch.testing.assert_close(centre_col, torch.full_like(mass, 13.5), atol=0.05, rtol=0)
    # length and width change by the zoom factor, the area by its square: 40 px * [0.64, 1.44]
    assert mass.min() > 0.8**2 * 40 * 0.95 and mass.max() < 1.2**2 * 40 * 1.05
    assert mass.std() > 1.0  # the scale does vary
    # rotation: the bar's vertical spread grows with the angle, up to sin(30 deg) of its length
    spread = ((moved * (rows - centre_row.view(-1, 1, 1, 1)) ** 2).sum((1, 2, 3)) / mass).sqrt()
    assert spread.max() > 3.0 and spread.min() < 1.0
    with pytest.raises(ValueError, match="0 <= zoom < 1"):
        random_affine(x, 0.0, zoom=1.0)


def test_random_affine_shear_slants_a_vertical_bar_about_the_centre():
    x = torch.zeros(256, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1.0  # a vertical bar through the centre, 20 px long
    torch.manual_seed(0)
    moved = random_affine(x, 0.0, shear=0.4)
    cols = torch.arange(28.0).view(1, 1, 1, 28)
    mass = moved.sum((1, 2, 3))
    torch.testing.assert_close(mass, x.sum((1, 2, 3)), atol=1.0, rtol=0)  # a shear keeps area
    col = (moved * cols).sum((1, 2, 3)) / mass
    torch.testing.assert_close(col, torch.full_like(mass, 13.5), atol=0.05, rtol=0)
    # the drawn shear k is minus the bar's slant: within [-0.4, 0.4], both signs
    slants = slant(moved)
    assert slants.abs().max() <= 0.4 + 0.02 and slants.min() < -0.3 and slants.max() > 0.3
    torch.testing.assert_close(random_affine(x, 0.0, shear=0.0), x)
    with pytest.raises(ValueError, match="shear >= 0"):
        random_affine(x, 0.0, shear=-0.1)


def _bar_with_foot(n: int) -> torch.Tensor:
    """n copies of a vertical bar left of the centre with a foot, so that the ink's centre is
    off the image's centre: (n, 1, 28, 28)."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 4:24, 12:14] = 1.0
    x[:, :, 18:22, 12:20] = 1.0
    return x


def test_deskew_removes_the_slant_and_undoes_a_shear():
    x = _bar_with_foot(32)
    torch.manual_seed(0)
    slanted = random_affine(x, 0.0, shear=0.4)
    assert slant(slanted).abs().min() < 0.3 < slant(slanted).abs().max()
    straight = deskew(slanted)
    torch.testing.assert_close(slant(straight), torch.zeros(32), atol=1e-3, rtol=0)
    # the same image whatever its slant, up to bilinear blur, and no ink lost
    assert (straight - deskew(x)).abs().mean() < 0.03
    torch.testing.assert_close(straight.sum((1, 2, 3)), x.sum((1, 2, 3)), atol=1.0, rtol=0)
    torch.testing.assert_close(deskew(torch.zeros(2, 1, 28, 28)), torch.zeros(2, 1, 28, 28))
    diagonal = torch.eye(28).view(1, 1, 28, 28)  # going down, the ink moves right one per row
    torch.testing.assert_close(slant(diagonal), torch.ones(1))


def test_a_deskewing_encoder_gives_a_slanted_image_the_category_of_the_straight_one():
    torch.manual_seed(0)
    model = _small(deskew=True).eval()
    reads_raw = _small().eval()  # the same weights, without deskewing
    reads_raw.load_state_dict(model.state_dict())
    x = _bar_with_foot(8)
    slanted = random_affine(x, 0.0, shear=0.4)
    with torch.no_grad():
        plain = model.category_logits(x).softmax(-1)
        torch.testing.assert_close(
            model.category_logits(slanted).softmax(-1), plain, atol=0.02, rtol=0
        )
        raw_plain = reads_raw.category_logits(x).softmax(-1)
        assert (reads_raw.category_logits(slanted).softmax(-1) - raw_plain).abs().max() > 0.02
    # negative pixels (an adversarial perturbation's) weigh nothing in the moments
    off_ink = torch.randn_like(slanted).abs() * (slanted == 0)
    torch.testing.assert_close(slant(slanted - off_ink), slant(slanted))
    terms = model.train().loss(slanted)
    assert torch.isfinite(terms["total"])


def test_consistency_term_is_the_cross_entropy_to_the_unshifted_posterior():
    model = _small(consistency_weight=1.0, consistency_shift=0.0).eval()
    x = synthetic_images(4)
    terms = model.loss(x)
    q = model.encode(x)[0].softmax(-1)
    # with no shift the copy is the image: the term is the entropy of q(c|x)
    torch.testing.assert_close(terms["consistency"], -(q * q.log()).sum(1).mean())
    terms["consistency"].backward()
    assert model.category_head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.decoder.parameters())  # the encoder only


def _experiment_dir(tmp_path):
    """A checkpoint folder holding the committed MNIST classifier (training it takes minutes)."""
    shutil.copy(REPO / "checkpoints" / "classifier-mnist.pt", tmp_path / "classifier-mnist.pt")
    return tmp_path


def test_experiment_writes_per_seed_metrics(tmp_path):
    folder = _experiment_dir(tmp_path)
    config = InfoCatExperiment(
        epochs=1,
        seeds=(0, 1),
        train_size=1000,
        samples_per_category=10,
        device="cpu",
        progress=False,
        results_dir=str(folder / "results"),
        checkpoint_dir=str(folder),
    )
    results = run_experiment(config)
    saved = json.loads((folder / "results" / "infocatvae-mnist.json").read_text())
    assert saved["metrics"] == json.loads(json.dumps(results["metrics"]))
    for key in ("clustering_accuracy", "conditional_generation_accuracy"):
        assert len(saved["metrics"][key]["per_seed"]) == 2
        assert 0 <= saved["metrics"][key]["mean"] <= 1
    assert saved["metrics"]["classifier_test_accuracy"] >= 0.99
    assert (folder / "infocatvae-mnist.pt").exists()


def test_cli_sets_any_config_field(tmp_path):
    folder = _experiment_dir(tmp_path)
    main(
        [
            "reproduce", "catvae", "--epochs", "1", "--device", "cpu", "--seed", "3",
            "--set", "train_size=500", "--set", "samples_per_category=5", "--set", "hidden=64",
            "--set", "tag=small", "--set", "save_checkpoint=false",
            "--results-dir", str(folder), "--checkpoint-dir", str(folder), "--no-progress",
        ]
    )  # fmt: skip
    saved = json.loads((folder / "catvae-mnist-small.json").read_text())
    assert not (folder / "catvae-mnist-small.pt").exists()  # a variant run kept no checkpoint
    assert saved["config"]["seeds"] == [3] and saved["config"]["hidden"] == [64]
    assert saved["config"]["model"] == "catvae"
    assert "--set hidden=64" in saved["command"] and "--set seeds=3" in saved["command"]
    with pytest.raises(SystemExit):
        main(["reproduce", "catvae", "--set", "no_such_field=1"])


def test_adversarial_perturbation_has_the_norm_and_beats_a_random_direction():
    torch.manual_seed(0)
    model = _small(consistency_weight=1.0, consistency_adversarial=2.0).eval()
    x = synthetic_images(32)
    target = model.category_logits(x).softmax(-1).detach()
    r = model.adversarial_perturbation(x, target, 2.0)
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.full((32,), 2.0))
    assert all(p.grad is None for p in model.parameters())  # a direction, not an update

    def divergence(perturbation):
        log_q = model.category_logits(x + perturbation).log_softmax(-1)
        return (target * (target.log() - log_q)).sum(1)

    random = torch.randn_like(x)
    random = 2.0 * random / random.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert divergence(r).mean() > 3 * divergence(random).mean()
    terms = model.train().loss(x)
    terms["total"].backward()
    assert terms["consistency"] > 0 and model.category_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="consistency_adversarial must be >= 0"):
        InfoCatVAEConfig(consistency_adversarial=-1.0)
    with pytest.raises(ValueError, match="consistency_shear and"):
        InfoCatVAEConfig(consistency_shear=-0.1)


def test_restarts_keep_the_lowest_validation_objective_and_restart_zero_is_the_plain_run(
    tmp_path,
):
    folder = _experiment_dir(tmp_path)
    common = dict(
        epochs=1,
        seeds=(0,),
        train_size=500,
        samples_per_category=5,
        device="cpu",
        progress=False,
        results_dir=str(folder / "results"),
        checkpoint_dir=str(folder),
        save_checkpoint=False,
    )
    plain = run_experiment(InfoCatExperiment(**common))["runs"][0]
    (run,) = run_experiment(InfoCatExperiment(restarts=3, tag="restarts", **common))["runs"]
    objectives = [r["val_objective"] for r in run["restarts"]]
    assert [r["seed"] for r in run["restarts"]] == [0, 1000, 2000]
    assert len(set(objectives)) == 3  # three different starts
    assert run["restart"] == objectives.index(min(objectives))
    kept = run["restarts"][run["restart"]]
    for split in ("val", "test"):
        assert run[split]["clustering_accuracy"] == kept[split]["clustering_accuracy"]
    assert run["final_terms"]["total"] == kept["final_objective"]
    # restart 0 trains from the seed itself: the run without restarts, number for number
    assert run["restarts"][0]["final_objective"] == plain["final_terms"]["total"]
    assert run["restarts"][0]["test"] == plain["test"]
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        InfoCatExperiment(restarts=0)
