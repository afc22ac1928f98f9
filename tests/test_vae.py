import pytest
import torch
from conftest import synthetic_images

from vaebook.models import VAE, VAEConfig
from vaebook.probability import bernoulli_log_likelihood, kl_to_standard_normal


def test_loss_terms_match_a_hand_computation():
    model = VAE(VAEConfig(latent_dim=3, hidden=(16,)))
    x = synthetic_images(4)
    torch.manual_seed(1)
    terms = model.loss(x)
    torch.manual_seed(1)
    mean, logvar = model.encode(x)
    z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
    logits = model.decoder(z)
    reconstruction = -(
        x * torch.log(torch.sigmoid(logits)) + (1 - x) * torch.log(1 - torch.sigmoid(logits))
    )
    reconstruction = reconstruction.flatten(1).sum(1).mean()
    kl = (0.5 * (logvar.exp() + mean**2 - 1 - logvar)).sum(1).mean()
    torch.testing.assert_close(terms["reconstruction"], reconstruction, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + terms["kl"])


def test_beta_weights_the_kl_term():
    model = VAE(VAEConfig(latent_dim=3, hidden=(16,), beta=4.0))
    terms = model.loss(synthetic_images(4))
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + 4.0 * terms["kl"])


def test_loss_accepts_image_label_pairs():
    model = VAE(VAEConfig(latent_dim=2, hidden=(8,)))
    assert "total" in model.loss((synthetic_images(3), torch.zeros(3, dtype=torch.long)))


def test_gaussian_decoder_learns_its_variance_and_accepts_any_range():
    model = VAE(VAEConfig(latent_dim=2, hidden=(8,), likelihood="gaussian"))
    terms = model.loss(synthetic_images(3) * 4 - 2)
    terms["total"].backward()
    assert model.decoder_logvar.grad is not None


@pytest.mark.parametrize(
    "arch,shape", [("mlp", (1, 28, 28)), ("conv", (1, 28, 28)), ("conv", (3, 64, 64))]
)
def test_reconstruct_sample_iwae_shapes(arch, shape):
    model = VAE(VAEConfig(image_shape=shape, latent_dim=4, hidden=(32,), arch=arch))
    x = synthetic_images(3, shape)
    assert model.reconstruct(x).shape == (3, *shape)
    samples = model.sample(5)
    assert samples.shape == (5, *shape) and samples.min() >= 0 and samples.max() <= 1
    assert model.iwae(x, k=10).shape == (3,)


def test_iwae_k1_averages_to_the_elbo():
    model = VAE(VAEConfig(latent_dim=2, hidden=(8,)))
    x = synthetic_images(2).round()
    mean, logvar = model.encode(x)
    torch.manual_seed(0)
    # 3000 one-sample IWAE estimates per image, as one batch of 3000 copies
    iwae = model.iwae(x.repeat(3000, 1, 1, 1), k=1).view(3000, 2).mean(0)
    z = (mean + (0.5 * logvar).exp() * torch.randn(3000, *mean.shape)).reshape(-1, 2)
    x_rep = x.repeat(3000, 1, 1, 1)
    with torch.no_grad():
        elbo = bernoulli_log_likelihood(model.decoder(z), x_rep).view(3000, 2).mean(0)
        elbo = elbo - kl_to_standard_normal(mean, logvar)
    torch.testing.assert_close(iwae, elbo, atol=1.0, rtol=0)


def test_wrong_shape_is_refused_with_the_fix():
    model = VAE()
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        model.loss(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match="reshape"):
        model.loss(torch.rand(4, 784))


def test_values_outside_unit_range_are_refused_for_bernoulli():
    with pytest.raises(ValueError, match=r"x / 255"):
        VAE().loss(torch.rand(2, 1, 28, 28) * 255)


def test_nan_input_is_refused():
    x = torch.rand(2, 1, 28, 28)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        VAE().loss(x)


def test_integer_images_are_refused():
    with pytest.raises(ValueError, match="float"):
        VAE().loss(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="likelihood"):
        VAEConfig(likelihood="poisson")
    with pytest.raises(ValueError, match="latent_dim"):
        VAEConfig(latent_dim=0)
