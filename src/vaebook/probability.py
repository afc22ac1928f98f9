"""Probability pieces shared by every model: reparameterisation, Gaussian KL, likelihoods, IWAE,
and a kernel measure of dependence (HSIC).

Conventions: a diagonal Gaussian is given by its mean and log-variance, both ``(B, D)``;
every function returns one number per example, ``(B,)``, summed over the event dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def reparameterize(mean: Tensor, logvar: Tensor) -> Tensor:
    """Draw z = mean + sigma * eps with eps ~ N(0, I), differentiable in mean and logvar.

    mean, logvar: (..., D) -> z: (..., D)
    """
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def kl_normal(mean_q: Tensor, logvar_q: Tensor, mean_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL( N(mean_q, diag e^logvar_q) || N(mean_p, diag e^logvar_p) ), summed over the last dim.

    All inputs broadcast to (..., D); returns (...,). The prior may differ per example
    (FA-VAE's prior is a per-row Gaussian, InfoCatVAE's one mode per category).
    """
    var_ratio = torch.exp(logvar_q - logvar_p)
    mean_term = (mean_q - mean_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + mean_term - 1.0 - (logvar_q - logvar_p)).sum(-1)


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mean, diag e^logvar) || N(0, I) ) = kl_normal with mean_p = 0, logvar_p = 0.

    mean, logvar: (..., D) -> (...,)
    """
    return 0.5 * (logvar.exp() + mean.pow(2) - 1.0 - logvar).sum(-1)


def log_normal(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(x; mean, diag e^logvar), summed over the last dim: (..., D) -> (...,)."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(-1)


class _BernoulliNLL(torch.autograd.Function):
    """softplus(l) - x l, the Bernoulli negative log-likelihood per pixel, as max(l, 0) - x l +
    log(1 + exp(-|l|)) with the gradient sigmoid(l) - x: exp and log are vectorised on CPU,
    where log_sigmoid and log1p (what binary_cross_entropy_with_logits runs) take about ten
    times longer, a tenth of a small VAE's step. log(1 + e) for log1p(e) errs by at most 1e-7
    per pixel."""

    @staticmethod
    def forward(ctx, logits: Tensor, x: Tensor) -> Tensor:
        ctx.save_for_backward(logits, x)
        return logits.clamp_min(0) - logits * x + torch.log(1 + torch.exp(-logits.abs()))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        logits, x = ctx.saved_tensors
        grad_logits = grad * (torch.sigmoid(logits) - x) if ctx.needs_input_grad[0] else None
        grad_x = -grad * logits if ctx.needs_input_grad[1] else None
        return grad_logits, grad_x


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed over all but the first dim.

    logits, x: (B, ...) with x in [0, 1] -> (B,). Taking logits, not probabilities, keeps
    log(0) out of the computation.
    """
    if logits.device.type == "cpu" and logits.shape == x.shape:
        nll = _BernoulliNLL.apply(logits, x.to(logits.dtype))
    else:  # one fused kernel on the GPU
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -nll.flatten(1).sum(1)


def gaussian_log_likelihood(mean: Tensor, logvar: Tensor, x: Tensor) -> Tensor:
    """log N(x; mean, e^logvar) per pixel, summed over all but the first dim.

    mean, x: (B, ...); logvar broadcasts to them (a scalar or per-pixel) -> (B,).
    """
    logvar = logvar.expand_as(mean)
    return log_normal(x.flatten(1), mean.flatten(1), logvar.flatten(1))


def iwae_log_likelihood(
    x: Tensor,
    encode: Callable[[Tensor], tuple[Tensor, Tensor]],
    log_likelihood: Callable[[Tensor, Tensor], Tensor],
    k: int,
    chunk: int = 100,
) -> Tensor:
    """Importance-weighted estimate of log p(x) (Burda et al. 2016) with k samples from q(z|x).

    log p(x) ~= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k, z_i ~ q(z|x),
    with p(z) = N(0, I). It is a lower bound that tightens as k grows (k = 1 is the ELBO).

    x: (B, ...); encode(x) -> mean, logvar (B, D); log_likelihood(x, z) -> (B,) with x and z of
    the same batch size. Samples are drawn ``chunk`` at a time to bound memory. Returns (B,).
    """
    if k < 1:
        raise ValueError(f"iwae_log_likelihood needs k >= 1 samples, got k={k}")
    mean, logvar = encode(x)
    batch = x.shape[0]
    log_weights = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        # (n, B, D): n samples for every example, decoded as one batch of n * B
        z = reparameterize(mean.expand(n, *mean.shape), logvar.expand(n, *logvar.shape))
        x_rep = x.expand(n, *x.shape).reshape(n * batch, *x.shape[1:])
        log_px_z = log_likelihood(x_rep, z.reshape(n * batch, -1)).view(n, batch)
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = log_normal(z, mean, logvar)
        log_weights.append(log_px_z + log_pz - log_qz)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)


def _gaussian_kernel(v: Tensor) -> Tensor:
    """Gaussian kernel matrix of the rows of v (N, D) with its diagonal set to 0, bandwidth the
    median squared distance between rows (held fixed in the gradient)."""
    norms = v.pow(2).sum(1)
    # squared distances by expansion: cdist's gradient is undefined at the zero diagonal
    distances = (norms[:, None] + norms[None, :] - 2 * v @ v.T).clamp_min(0)
    off_diagonal = ~torch.eye(len(v), dtype=torch.bool, device=v.device)
    bandwidth = distances.detach()[off_diagonal].median().clamp_min(1e-12)
    return torch.exp(-distances / bandwidth) * off_diagonal


def _unbiased_hsic(k_x: Tensor, k_y: Tensor) -> Tensor:
    """Song et al. (2012)'s unbiased HSIC estimate from two kernel matrices with zero diagonals."""
    n = len(k_x)
    cross = (k_x * k_y).sum()
    sums = k_x.sum() * k_y.sum() / ((n - 1) * (n - 2))
    rows = 2 * (k_x.sum(0) * k_y.sum(0)).sum() / (n - 2)
    return (cross + sums - rows) / (n * (n - 3))


def normalized_hsic(x: Tensor, y: Tensor) -> Tensor:
    """Normalised Hilbert-Schmidt independence criterion of paired samples (Gretton et al. 2005),
    HSIC(x, y) / sqrt(HSIC(x, x) HSIC(y, y)) with Gaussian kernels and the unbiased estimator
    (Song et al. 2012), so that independent samples give 0 on average at any N (the plain
    estimator's bias grows with the dimension); 1 when y is a rescaled, shifted copy of x.

    x: (N, Dx), y: (N, Dy), N >= 4 (the estimate averages over four distinct rows) -> a scalar
    in about [-1, 1], differentiable in both.
    """
    if x.dim() != 2 or y.dim() != 2 or len(x) != len(y) or len(x) < 4:
        raise ValueError(
            f"need paired samples x (N, Dx) and y (N, Dy) with N >= 4, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    k_x, k_y = _gaussian_kernel(x), _gaussian_kernel(y)
    scale = (_unbiased_hsic(k_x, k_x) * _unbiased_hsic(k_y, k_y)).clamp_min(1e-24).sqrt()
    return _unbiased_hsic(k_x, k_y) / scale
