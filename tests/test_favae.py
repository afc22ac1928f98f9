"""Tests of FA-VAE (`vaebook.models.favae`) on small synthetic multi-view data."""

from contextlib import contextmanager

import pytest
import torch

from vaebook import fa
from vaebook.experiments.common import save_model
from vaebook.models import FAVAE, FAVAEConfig, FAVAEData, FAVAESchedule
from vaebook.train import (
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainConfig,
    fit_rounds,
    load_checkpoint,
)

CLASSES = 4
SMALL = dict(image_shape=(1, 28, 28), arch="mlp", hidden=(64,), latent_dim=4, factors=6)


pytestmark = pytest.mark.usefixtures("one_thread")  # small matrices: threads cost more


def prototypes(seed: int) -> torch.Tensor:
    """One smooth, nearly binary 28x28 image per class: (CLASSES, 1, 28, 28) in [0, 1]."""
    base = torch.rand(CLASSES, 1, 7, 7, generator=torch.Generator().manual_seed(seed))
    smooth = torch.nn.functional.interpolate(base, size=(28, 28), mode="bilinear")
    return torch.sigmoid((smooth - 0.5) * 12)


PROTOTYPES = {"a": prototypes(100), "b": prototypes(200)}  # two views of the same class


def two_views(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rows with a class (n,): view a and view b show that class's prototype, each with its
    own pixel noise. Returns ({view: (n, 1, 28, 28)}, labels (n,))."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(CLASSES, (n,), generator=gen)
    images = {
        view: (proto[labels] + 0.15 * torch.randn(n, 1, 28, 28, generator=gen)).clamp(0, 1)
        for view, proto in PROTOTYPES.items()
    }
    return images, labels


def nearest_prototype(images: torch.Tensor, view: str) -> torch.Tensor:
    """The class whose prototype of `view` is closest to each image: (B, 1, 28, 28) -> (B,)."""
    return torch.cdist(images.flatten(1), PROTOTYPES[view].flatten(1)).argmin(1)


def small_model_with_layer(
    n: int = 64, sweeps: int = 5, prior_from: str = "all"
) -> tuple[FAVAE, FAVAEData]:
    images, labels = two_views(n, seed=0)
    data = FAVAEData({"a": images["a"]}, {"label": fa.Categorical(labels, n_classes=CLASSES)})
    model = FAVAE(FAVAEConfig(image_views=("a",), prior_from=prior_from, **SMALL))
    model.start_fa(data)
    model.fa_sweeps(sweeps)
    return model, data


def test_kl_to_the_fa_prior_is_the_gaussian_kl_by_hand():
    model, data = small_model_with_layer()
    index = torch.arange(10, 30)
    terms = model.loss(data.batch(index))
    layer, q = model.fa, model.fa.q["a"]
    prior_mean = (layer.q_z.mean @ q.W.mean.T + q.b_mean)[index].float()
    prior_var = float(1 / q.tau.mean)
    mean, logvar = model.vaes["a"].encode(data.images["a"][index])
    var = logvar.exp()
    # KL(N(m, s^2) || N(mu, v)) = 1/2 [log(v / s^2) + (s^2 + (m - mu)^2) / v - 1] per dimension
    by_hand = 0.5 * (torch.log(prior_var / var) + (var + (mean - prior_mean) ** 2) / prior_var - 1)
    torch.testing.assert_close(terms["kl"], by_hand.sum(1).mean())
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, var.sqrt()),
        torch.distributions.Normal(prior_mean, prior_var**0.5),
    )
    torch.testing.assert_close(terms["kl"], reference.sum(1).mean())
    assert float(terms["kl"].detach()) > 0


def test_prior_from_the_side_views_is_what_the_labels_alone_predict(tmp_path):
    model, data = small_model_with_layer(prior_from="side")
    label_view = model.fa.views["label"]
    kept = label_view.x_mean.clone()
    labels = data.side_views["label"].data
    expected = model.fa.predict({"label": labels}, "a").float()
    torch.testing.assert_close(model.priors["a"][0], expected)
    torch.testing.assert_close(model.fa.views["label"].x_mean, kept)  # the sweeps' q(X) stays
    joint, _ = small_model_with_layer()
    assert not torch.allclose(joint.priors["a"][0], expected, atol=1e-3)
    with pytest.raises(ValueError, match="side views"):
        FAVAE(FAVAEConfig(image_views=("a",), prior_from="side", **SMALL)).start_fa(
            FAVAEData({"a": data.images["a"]})
        )
    with pytest.raises(ValueError, match="given must name views"):
        model.fa.z_from(["colour"])
    # the book's checkpoint holds a layer without training rows: loading it refreshes the prior
    predicted = model.predict({"a": data.images["a"][:8]}, "label")
    model.fa = model.fa.for_prediction()
    save_model(tmp_path / "side.pt", model, {}, epoch=1)
    loaded = FAVAE(FAVAEConfig(image_views=("a",), prior_from="side", **SMALL))
    load_checkpoint(tmp_path / "side.pt", loaded)
    assert loaded.priors["a"][0].shape == (0, SMALL["latent_dim"])
    torch.testing.assert_close(loaded.predict({"a": data.images["a"][:8]}, "label"), predicted)


def test_frozen_fa_at_zero_gives_the_vanilla_vae_loss():
    model, data = small_model_with_layer()
    layer, q = model.fa, model.fa.q["a"]
    k = layer.k
    layer.q_z = fa.GaussianRows(torch.zeros_like(layer.q_z.mean), layer.q_z.cov)  # Z = 0
    q.W = fa.GaussianRows(torch.zeros_like(q.W.mean), q.W.cov)  # W = 0
    q.b_mean = torch.zeros_like(q.b_mean)  # b = 0
    q.tau = fa.Gamma(q.tau.shape, q.tau.shape.clone())  # <tau> = shape / rate = 1
    assert layer.k == k
    model.refresh_prior()
    x = data.images["a"][:32]
    torch.manual_seed(3)
    favae_terms = model.loss(data.batch(torch.arange(32)))
    torch.manual_seed(3)  # the same reparameterisation noise
    vae_terms = model.vaes["a"].loss(x)
    for name in ("total", "reconstruction", "kl"):
        torch.testing.assert_close(favae_terms[name], vae_terms[name], rtol=0, atol=0)


def test_loss_before_the_first_round_is_the_vanilla_vae_loss():
    images, _ = two_views(16, seed=0)
    model = FAVAE(FAVAEConfig(image_views=("a",), **SMALL))
    torch.manual_seed(1)
    favae_total = model.loss((torch.arange(16), {"a": images["a"]}))["total"]
    torch.manual_seed(1)
    torch.testing.assert_close(favae_total, model.vaes["a"].loss(images["a"])["total"])


@pytest.fixture(scope="module")
def trained():
    """FA-VAE on two image views of a class and the class as a categorical view."""
    torch.manual_seed(0)
    images, labels = two_views(512, seed=0)
    data = FAVAEData(images, {"label": fa.Categorical(labels, n_classes=CLASSES)})
    model = FAVAE(FAVAEConfig(image_views=("a", "b"), **SMALL))
    chance_model = FAVAE(FAVAEConfig(image_views=("a", "b"), **SMALL))  # untrained encoders
    chance_model.start_fa(FAVAEData(images, {"label": fa.Categorical(labels, n_classes=CLASSES)}))
    chance_model.fa_sweeps(30)
    schedule = FAVAESchedule(rounds=8, epochs_per_round=2, warmup_epochs=10, sweeps=5)
    history = fit_rounds(
        model, data, schedule, TrainConfig(batch_size=64, device="cpu", progress=False)
    )
    return model, chance_model, history, two_views(256, seed=1)


def test_combine_with_every_factor_is_predict_and_takes_each_part_on_its_factors(trained):
    model, _, _, (test_images, _) = trained
    a, b = {"a": test_images["a"][:16]}, {"a": test_images["a"][16:32]}
    every = torch.ones(model.fa.k, dtype=torch.bool)
    torch.testing.assert_close(model.combine([(a, every)], "b"), model.predict(a, "b"))
    first = torch.arange(model.fa.k) < model.fa.k // 2
    z_a, z_b = (model.fa.posterior_z({"a": model.encode("a", x["a"])}).mean for x in (a, b))
    z = torch.where(first.to(model.fa.device), z_a, z_b)
    by_hand = model.vaes["b"].decode(model.fa.q["b"].mean_of(z).float())
    torch.testing.assert_close(model.combine([(a, first), (b, ~first)], "b"), by_hand)
    with pytest.raises(ValueError, match="overlap"):
        model.combine([(a, every), (b, first)], "b")


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probabilities.argmax(1) == labels).float().mean())


def test_short_run_predicts_labels_from_an_image_view_above_chance(trained):
    model, chance_model, history, (test_images, test_labels) = trained
    before = accuracy(chance_model.predict({"a": test_images["a"]}, "label"), test_labels)
    after = accuracy(model.predict({"a": test_images["a"]}, "label"), test_labels)
    assert after >= 0.9 > before + 0.3, (before, after)
    assert history["reconstruction"][-1] < history["reconstruction"][0]
    assert len(history["total"]) == 10 + 8 * 2  # warm-up, then two epochs per round
    assert len(history["fa_seconds"]) == 8 + 1  # every round, and the final refit


def test_images_from_labels_and_translation_between_views(trained):
    model, _, _, (test_images, test_labels) = trained
    from_labels = model.predict({"label": test_labels}, "b")
    assert from_labels.shape == (256, 1, 28, 28)
    assert float((nearest_prototype(from_labels, "b") == test_labels).float().mean()) >= 0.9
    shared = model.shared_factors(["a", "b"])
    assert shared.any()
    translated = model.predict({"a": test_images["a"]}, "b", factors=shared)
    assert float((nearest_prototype(translated, "b") == test_labels).float().mean()) >= 0.9
    # no factor at all: every row decodes the same image, the decoded bias of view b
    blank = model.predict({"a": test_images["a"][:5]}, "b", factors=torch.zeros_like(shared))
    torch.testing.assert_close(blank, blank[:1].expand_as(blank))
    assert not (model.private_factors("a") & shared).any()


def test_offset_scale_moves_the_code_from_the_views_bias_before_decoding(trained):
    model, _, _, (_, test_labels) = trained
    labels = {"label": test_labels[:8]}
    code, bias = model.fa.predict(labels, "b"), model.fa.q["b"].b_mean
    torch.testing.assert_close(
        model.predict(labels, "b", offset_scale=1.0), model.predict(labels, "b")
    )
    by_hand = model.vaes["b"].decode((bias + 2.5 * (code - bias)).float())
    torch.testing.assert_close(model.predict(labels, "b", offset_scale=2.5), by_hand)
    at_bias = model.predict(labels, "b", offset_scale=0.0)  # every row decodes the mean code
    torch.testing.assert_close(at_bias, at_bias[:1].expand_as(at_bias))
    with pytest.raises(ValueError, match="not an image view"):
        model.predict({"a": torch.rand(2, 1, 28, 28)}, "label", offset_scale=2.0)


def test_offset_scale_is_the_least_squares_slope_of_codes_on_predicted_codes(trained, monkeypatch):
    model, _, _, (test_images, test_labels) = trained
    labels, images = {"label": test_labels}, test_images["b"]
    # labels alone move the code part of the way toward the image's own code
    assert model.offset_scale(labels, images, "b") > 1.2
    code, bias = model.fa.predict(labels, "b"), model.fa.q["b"].b_mean
    codes = bias + 1.7 * (code - bias)
    monkeypatch.setattr(model, "encode", lambda view, images: fa.Latent(codes.float()))
    assert model.offset_scale(labels, images, "b") == pytest.approx(1.7, rel=1e-4)
    monkeypatch.setattr(model, "encode", lambda view, images: fa.Latent(bias.expand_as(codes)))
    assert model.offset_scale(labels, images, "b") == 0.0  # the codes do not move at all


def test_prior_of_held_out_rows_from_the_other_views(trained):
    model, _, _, (test_images, test_labels) = trained
    mean, logvar = model.prior_from({"label": test_labels, "a": test_images["a"]}, "b")
    assert mean.shape == (256, 4) and mean.dtype == torch.float32 and logvar.dim() == 0
    latent_a = model.encode("a", test_images["a"])
    expected = model.fa.predict({"label": test_labels, "a": latent_a}, "b")
    torch.testing.assert_close(mean, expected.float())
    torch.testing.assert_close(logvar, -torch.log(model.fa.q["b"].tau.mean).float())
    with pytest.raises(ValueError, match="both input and output"):
        model.prior_from({"b": test_images["b"]}, "b")


def test_uint8_images_are_batched_and_encoded_as_floats(trained):
    model, _, _, (test_images, _) = trained
    pixels = (test_images["a"][:6] * 255).round().to(torch.uint8)
    data = FAVAEData({"a": pixels})
    index, batch = data.batch(torch.tensor([4, 1]))
    torch.testing.assert_close(batch["a"], pixels[[4, 1]].float() / 255)
    torch.testing.assert_close(model.encode("a", pixels).data, model.encode("a", pixels / 255).data)


def test_checkpoint_carries_the_factor_analysis_layer(trained, tmp_path):
    model, _, history, (test_images, _) = trained
    save_model(tmp_path / "favae.pt", model, history, epoch=26)
    loaded = FAVAE(FAVAEConfig(image_views=("a", "b"), **SMALL))
    load_checkpoint(tmp_path / "favae.pt", loaded)
    torch.testing.assert_close(
        loaded.predict({"a": test_images["a"][:8]}, "label"),
        model.predict({"a": test_images["a"][:8]}, "label"),
    )


def test_kl_ramp_of_the_schedule():
    schedule = FAVAESchedule(beta_ramp_epochs=4)
    assert [schedule.kl_ramp(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert FAVAESchedule().kl_ramp(0) == 1.0
    with pytest.raises(ValueError, match="rounds"):
        FAVAESchedule(rounds=0)


def test_regrow_gives_the_layer_back_factors_once_the_encoders_have_learnt(monkeypatch):
    # no warm-up: the first round sees untrained encoders, and ARD keeps few factors
    images, labels = two_views(128, seed=0)
    grown = []
    grow = fa.SSHIBA.grow
    monkeypatch.setattr(fa.SSHIBA, "grow", lambda self, k: grown.append(k) or grow(self, k))

    def factors(regrow: bool) -> list[int]:
        data = FAVAEData(images, {"label": fa.Categorical(labels, n_classes=CLASSES)})
        torch.manual_seed(0)
        model = FAVAE(FAVAEConfig(image_views=("a", "b"), **SMALL))
        schedule = FAVAESchedule(
            rounds=4, warmup_epochs=0, first_sweeps=20, sweeps=3, regrow=regrow
        )
        config = TrainConfig(batch_size=32, device="cpu", progress=False)
        return fit_rounds(model, data, schedule, config)["factors"]

    fixed = factors(regrow=False)
    assert not grown and max(fixed) == fixed[0] < SMALL["factors"]
    regrown = factors(regrow=True)
    # rounds 1..3 grow back to FAVAEConfig.factors; the first round and the final refit do not
    assert grown == [SMALL["factors"]] * 3
    assert regrown[0] == fixed[0] and max(regrown[1:]) > regrown[0]


def test_errors_name_the_fix():
    images, labels = two_views(8, seed=0)
    with pytest.raises(ValueError, match="same N rows"):
        FAVAEData({"a": images["a"]}, {"label": fa.Categorical(labels[:5], n_classes=CLASSES)})
    with pytest.raises(ValueError, match="fa.Categorical"):
        FAVAEData({"a": images["a"]}, {"label": labels})
    model = FAVAE(FAVAEConfig(image_views=("a",), **SMALL))
    with pytest.raises(RuntimeError, match="fit_rounds"):
        model.predict({"a": images["a"]}, "label")
    with pytest.raises(ValueError, match="image_views"):
        model.start_fa(FAVAEData({"b": images["b"]}))
    with pytest.raises(ValueError, match="identifiers"):
        FAVAEConfig(image_views=("left.view",))
    with pytest.raises(ValueError, match="prior_from"):
        FAVAEConfig(prior_from="labels")


class Killed(Exception):
    """Stands for a kill: raised inside a round, after the previous round's checkpoint."""


@contextmanager
def killed_in_round(round_: int):
    """Within the block FA-VAE's sweeps of round `round_` (0: the first) raise Killed, as a
    kill after round `round_ - 1` and its checkpoint would; the block must be killed."""
    sweeps, calls = FAVAE.fa_sweeps, []

    def killed(self, n):
        calls.append(n)
        if len(calls) == round_ + 1:
            raise Killed
        sweeps(self, n)

    FAVAE.fa_sweeps = killed
    try:
        with pytest.raises(Killed):
            yield
    finally:
        FAVAE.fa_sweeps = sweeps


def test_a_run_killed_after_a_round_resumes_to_the_uninterrupted_result(tmp_path):
    images, labels = two_views(96, seed=2)
    schedule = FAVAESchedule(rounds=3, warmup_epochs=2, first_sweeps=5, sweeps=2)

    def run(path, resume=False):
        data = FAVAEData({"a": images["a"]}, {"label": fa.Categorical(labels, n_classes=CLASSES)})
        torch.manual_seed(0)
        model = FAVAE(FAVAEConfig(image_views=("a",), **SMALL))
        config = TrainConfig(batch_size=32, device="cpu", progress=False, checkpoint_path=path)
        return model, fit_rounds(model, data, schedule, config, resume=resume)

    model, history = run(str(tmp_path / "whole.pt"))
    path = str(tmp_path / "killed.pt")
    with killed_in_round(2):
        run(path)
    saved = torch.load(path, weights_only=True)
    # warm-up, then rounds 0 and 1 (factor-analysis sweeps and one VAE epoch each)
    assert saved["epoch"] == 2 + 2 and len(saved["history"]["fa_bound"]) == 2
    resumed_model, resumed = run(path, resume=True)
    for term in ("total", "reconstruction", "kl", "fa_bound", "factors"):
        assert resumed[term] == history[term], term
    test_images, _ = two_views(8, seed=3)
    torch.testing.assert_close(
        resumed_model.predict({"a": test_images["a"]}, "label"),
        model.predict({"a": test_images["a"]}, "label"),
        rtol=0,
        atol=0,
    )
    again_model, again = run(path, resume=True)  # a finished run trains no further
    assert again["total"] == history["total"]
    with pytest.raises(ValueError, match="checkpoint_path"):
        fit_rounds(
            FAVAE(FAVAEConfig(image_views=("a",), **SMALL)),
            FAVAEData({"a": images["a"]}),
            schedule,
            TrainConfig(progress=False),
            resume=True,
        )


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path):
    images, _ = two_views(32, seed=2)
    data = FAVAEData({"a": images["a"]})
    config = TrainConfig(device="cpu", progress=False, checkpoint_path=str(tmp_path / "run.pt"))
    model = FAVAE(FAVAEConfig(image_views=("a",), **SMALL))
    fit_rounds(model, data, FAVAESchedule(rounds=1, warmup_epochs=1, first_sweeps=2), config)
    with pytest.raises(CheckpointMismatchError, match="schedule"):
        fit_rounds(
            model, data, FAVAESchedule(rounds=2, warmup_epochs=1, first_sweeps=2), config, True
        )


def test_training_never_goes_on_with_non_finite_values():
    model, data = small_model_with_layer()
    model.fa.views["a"].x_sq_sum = torch.tensor(float("inf"), dtype=torch.float64)
    with pytest.raises(NonFiniteLossError, match="bound"):
        model.fa_sweeps(1)
    model, data = small_model_with_layer()
    model.fa.q["a"].b_mean[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="prior of view 'a' is not finite"):
        model.refresh_prior()
    with torch.no_grad():
        next(model.vaes["a"].encoder.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="encoder of view 'a'"):
        model.refresh_latent_views(data)
