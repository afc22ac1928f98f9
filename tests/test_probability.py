import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaebook.probability import (
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    iwae_log_likelihood,
    kl_normal,
    kl_to_standard_normal,
    log_normal,
    normalized_hsic,
    reparameterize,
)


def test_kl_normal_matches_torch_distributions():
    mq, lq, mp, lp = (torch.randn(5, 3) for _ in range(4))
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    torch.testing.assert_close(kl_normal(mq, lq, mp, lp), expected)


def test_kl_to_standard_normal_is_the_general_form_at_zero():
    mean, logvar = torch.randn(4, 6), torch.randn(4, 6)
    zeros = torch.zeros_like(mean)
    torch.testing.assert_close(
        kl_to_standard_normal(mean, logvar), kl_normal(mean, logvar, zeros, zeros)
    )
    assert torch.all(kl_to_standard_normal(zeros, zeros) == 0)


def test_kl_closed_form_matches_monte_carlo():
    mq, lq = torch.tensor([[0.3, -1.0]]), torch.tensor([[-0.5, 0.4]])
    mp, lp = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.2, -0.3]])
    z = reparameterize(mq.expand(200_000, 2), lq.expand(200_000, 2))
    monte_carlo = (log_normal(z, mq, lq) - log_normal(z, mp, lp)).mean()
    assert abs(monte_carlo - kl_normal(mq, lq, mp, lp).item()) < 0.02


def test_reparameterize_moments_and_gradient():
    mean = torch.tensor([2.0, -1.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    z = reparameterize(mean.expand(100_000, 2), logvar.expand(100_000, 2))
    torch.testing.assert_close(z.mean(0), mean.detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.03, rtol=0)
    z.sum().backward()
    assert mean.grad is not None and logvar.grad is not None


def test_bernoulli_log_likelihood_matches_torch():
    logits, x = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4).round()
    expected = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_log_likelihood_has_torchs_value_and_gradients_in_both_arguments(dtype):
    # x soft (in [0, 1], e.g. generated images) and requiring a gradient, logits up to +-40
    logits = (40 * torch.randn(6, 1, 5, 5, dtype=dtype)).requires_grad_()
    x = torch.rand(6, 1, 5, 5, dtype=dtype).requires_grad_()
    weights = torch.rand(6, dtype=dtype)  # a weighted sum, so the gradient is not uniform
    ours = bernoulli_log_likelihood(logits, x)
    torch_ = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    torch_ = torch_.flatten(1).sum(1)
    tolerance = {"atol": 1e-5, "rtol": 1e-6} if dtype == torch.float32 else {}
    torch.testing.assert_close(ours, torch_, **tolerance)
    ours_grads = torch.autograd.grad((weights * ours).sum(), (logits, x))
    torch_grads = torch.autograd.grad((weights * torch_).sum(), (logits, x))
    for a, b in zip(ours_grads, torch_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_bernoulli_log_likelihood_is_finite_for_saturated_logits():
    logits = torch.full((1, 4), 200.0)
    assert torch.isfinite(bernoulli_log_likelihood(logits, torch.zeros(1, 4))).all()


def test_gaussian_log_likelihood_matches_torch():
    mean, x, logvar = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4), torch.tensor(-1.3)
    expected = Normal(mean, (0.5 * logvar).exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood(mean, logvar, x), expected)


def _linear_gaussian(x_dim_scale=1.0):
    """p(z) = N(0, 1), p(x|z) = N(z, 1): so p(x) = N(0, 2) and p(z|x) = N(x / 2, 1 / 2)."""

    def log_likelihood(x, z):
        return log_normal(x, z, torch.zeros_like(z))

    def exact_log_px(x):
        return log_normal(x, torch.zeros_like(x), torch.full_like(x, math.log(2.0)))

    return log_likelihood, exact_log_px


def test_iwae_is_exact_with_the_true_posterior():
    log_likelihood, exact = _linear_gaussian()
    x = torch.tensor([[0.5], [-2.0], [3.0]])

    def posterior(x):
        return x / 2, torch.full_like(x, math.log(0.5))

    estimate = iwae_log_likelihood(x, posterior, log_likelihood, k=7)
    torch.testing.assert_close(estimate, exact(x))


def test_iwae_tightens_with_k_towards_log_px():
    log_likelihood, exact = _linear_gaussian()
    x = torch.tensor([[1.5], [-1.0]])

    def poor_posterior(x):
        return torch.zeros_like(x), torch.zeros_like(x)

    torch.manual_seed(0)
    k1 = torch.stack(
        [iwae_log_likelihood(x, poor_posterior, log_likelihood, k=1) for _ in range(2000)]
    ).mean(0)
    k5000 = iwae_log_likelihood(x, poor_posterior, log_likelihood, k=5000, chunk=1000)
    assert torch.all(k1 < k5000 - 0.05)  # the ELBO is a looser bound
    torch.testing.assert_close(k5000, exact(x), atol=0.05, rtol=0)


def test_iwae_rejects_k_below_one():
    with pytest.raises(ValueError, match="k >= 1"):
        iwae_log_likelihood(torch.zeros(1, 1), lambda x: (x, x), lambda x, z: x.sum(1), k=0)


def test_normalized_hsic_is_zero_for_independent_samples_and_one_for_a_rescaled_copy():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 16, generator=g), torch.randn(256, 16, generator=g)
    assert abs(normalized_hsic(x, y)) < 0.02  # unbiased: no floor that grows with dimension
    torch.testing.assert_close(normalized_hsic(x, 3 * x + 1), torch.tensor(1.0))
    # x and x^2 are uncorrelated but dependent: the kernel measure sees what correlation misses
    u = torch.randn(256, 1, generator=g)
    assert abs(torch.corrcoef(torch.cat([u, u**2], 1).T)[0, 1]) < 0.2
    assert normalized_hsic(u, u**2) > 0.3


def test_normalized_hsic_has_finite_gradients_and_refuses_bad_shapes():
    x = torch.randn(32, 4, requires_grad=True)
    y = torch.cat([x.detach()[:16], x.detach()[:16]])  # repeated rows: zero distances
    normalized_hsic(torch.cat([x[:16], x[:16]]), y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="N >= 4"):
        normalized_hsic(torch.randn(3, 2), torch.randn(3, 2))
    assert torch.isfinite(normalized_hsic(torch.randn(4, 2), torch.randn(4, 2)))
    with pytest.raises(ValueError, match="paired"):
        normalized_hsic(torch.randn(10, 2), torch.randn(9, 2))
