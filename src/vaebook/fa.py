"""Bayesian multi-view factor analysis: SSHIBA (Sevilla-Salcedo et al., 2021).

The model ties M views of the same N rows to one latent matrix Z (N, K):

    z_n ~ N(0, I_K)
    x_n^(m) = W_m z_n + b_m + noise,   noise ~ N(0, tau_m^-1 I)
    W_m[d, k] ~ N(0, alpha_mk^-1),  b_m ~ N(0, I),  alpha_mk, tau_m ~ Gamma(a0, b0)

Every view type turns its data into Gaussian *pseudo-data* X_m with a variational q(X_m), so
the linear-Gaussian core is the same for all of them:

    Real / Gaussian   X is the data (missing entries are imputed by q(X_miss))
    Latent            X arrives as Gaussian moments per row (mean, variance): a VAE encoder
    Binary/Multilabel t = 1[X > 0] softly, through the Jaakkola-Jordan bound with variational xi
    Categorical       t = argmax_c X_c (multinomial probit), q(X) a truncated Gaussian

Inference is mean-field coordinate ascent on q(Z) q(X) prod_m q(W_m) q(b_m) q(alpha_m) q(tau_m);
each update is closed form, a rotation of the latent space (Klami et al., 2013) speeds up the
separation of shared and private factors, the lower bound is computed every iteration, and
factors whose loadings vanish in every view are pruned. Read `SSHIBA.step` for one sweep.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


@dataclass
class FAConfig:
    """Hyper-parameters of `SSHIBA`."""

    prior_a: float = 1e-14  # Gamma shape of the priors on alpha and tau (broad)
    prior_b: float = 1e-14  # Gamma rate of the priors on alpha and tau
    prune: bool = True  # drop factors inactive in every view
    prune_threshold: float = 1e-4  # a factor is inactive below this share of its view's strongest
    rotate: bool = True  # re-rotate Z and W after every sweep (Klami et al., 2013)
    rotate_iter: int = 20  # L-BFGS iterations per rotation
    update_alpha: bool = True  # False holds q(alpha) at alpha_init (and turns off `rotate`)
    update_tau: bool = True  # False holds q(tau) at tau_init
    alpha_init: float = 1.0
    tau_init: float | None = None  # None: 1 / (mean column variance of the view's data)
    predict_iter: int = 50  # sweeps of q(Z_new) <-> q(X_new) for non-Gaussian inputs to `predict`
    predict_tol: float = 1e-6  # ... ending early once no <Z_new> entry moves by more than this
    seed: int = 0  # for the random columns of the initial <Z> beyond the data's rank
    device: str | torch.device | None = None  # None: where the first view's data live
    dtype: torch.dtype | None = None  # None: float64 on CPU, float32 elsewhere


# ---------------------------------------------------------------------------------------------
# Variational factors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianRows:
    """q over the R rows of a (R, K) matrix: row r ~ N(mean[r], cov), one shared covariance."""

    mean: Tensor  # (R, K)
    cov: Tensor  # (K, K)

    @cached_property
    def second_moment(self) -> Tensor:
        """E[M^T M] = <M>^T <M> + R cov, shape (K, K); computed once (an N K^2 product for Z)."""
        return self.mean.T @ self.mean + self.mean.shape[0] * self.cov

    def entropy(self) -> Tensor:
        """Entropy of all R rows together."""
        rows, k = self.mean.shape
        logdet = 2 * torch.log(torch.diagonal(torch.linalg.cholesky(self.cov))).sum()
        return 0.5 * rows * (k * (1 + LOG_2PI) + logdet)


@dataclass
class Gamma:
    """q(x) = Gamma(shape, rate), elementwise."""

    shape: Tensor
    rate: Tensor

    @property
    def mean(self) -> Tensor:
        """E[x] = shape / rate."""
        return self.shape / self.rate

    @property
    def log_mean(self) -> Tensor:
        """E[log x] = digamma(shape) - log(rate)."""
        return torch.special.digamma(self.shape) - torch.log(self.rate)

    def kl(self, prior_a: float, prior_b: float) -> Tensor:
        """KL(q || Gamma(prior_a, prior_b)), summed over elements."""
        a, b = self.shape, self.rate
        kl = (
            (a - prior_a) * torch.special.digamma(a)
            - torch.lgamma(a)
            + math.lgamma(prior_a)
            + prior_a * (torch.log(b) - math.log(prior_b))
            + a * (prior_b - b) / b
        )
        return kl.sum()


@dataclass
class ViewPosterior:
    """The view-specific factors q(W_m) q(b_m) q(alpha_m) q(tau_m)."""

    W: GaussianRows  # rows w_d, (D, K)
    b_mean: Tensor  # (D,)
    b_var: Tensor  # scalar: every b_d has the same posterior variance
    alpha: Gamma  # (K,) ARD precisions
    tau: Gamma | None  # noise precision; None: fixed at 1 (probit scale of a categorical view)

    @property
    def tau_mean(self) -> Tensor | float:
        """<tau_m>, a scalar."""
        return 1.0 if self.tau is None else self.tau.mean

    def mean_of(self, z: Tensor) -> Tensor:
        """<Z><W>^T + <b>, shape (N, D)."""
        return z @ self.W.mean.T + self.b_mean


def inverse_spd(precision: Tensor) -> Tensor:
    """Inverse of a symmetric positive-definite (K, K) matrix through its Cholesky factor."""
    return torch.cholesky_inverse(torch.linalg.cholesky(precision))


# ---------------------------------------------------------------------------------------------
# Views: each turns its data into Gaussian pseudo-data with moments x_mean and x_sq_sum
# ---------------------------------------------------------------------------------------------


class View:
    """Interface of a view.

    After `bind`, a view holds `x_mean` = <X> (N, D) and `x_sq_sum` = E[sum_nd x_nd^2] of its
    pseudo-data; `update(mean, tau)` refits q(X) given <Z><W>^T + <b> (N, D) and <tau>, and
    `log_terms()` is the view's own part of the lower bound, E[log p(data | X)] + H[q(X)].
    A view holds its q(X), so give every model its own view objects.
    """

    learn_tau = True  # False: noise precision fixed at 1
    static = True  # True: q(X) never changes, `update` is not needed
    x_mean: Tensor
    x_sq_sum: Tensor

    def bind(self, dtype: torch.dtype, device: torch.device) -> None:
        """Check the data, move them to `device`/`dtype` and set the first q(X)."""
        raise NotImplementedError

    def update(self, mean: Tensor, tau: Tensor | float) -> None:
        """Refit q(X) given <Z><W>^T + <b> (N, D) and <tau> (scalar)."""
        raise NotImplementedError

    def log_terms(self) -> Tensor:
        """E[log p(data | X)] + H[q(X)] (scalar), the parts the core bound does not cover."""
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int]:
        """(N, D) of the pseudo-data."""
        return tuple(self.x_mean.shape)

    def empty(self) -> View:
        """A view of the same kind and columns with no rows (unbound): a template for predict."""
        return type(self)(self.data[:0].clone())  # a clone: a view of [:0] would keep all rows


def _observed_mask(
    mask: Tensor | None, shape: tuple[int, ...], device: torch.device
) -> Tensor | None:
    """A (N,) row mask or (N, D) entry mask, True = observed, broadcast to `shape`."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask, dtype=torch.bool).to(device)
    if mask.dim() == 1 and len(shape) == 2:
        mask = mask[:, None]
    try:
        return mask.expand(shape)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not fit data of shape {shape}; "
            "give one flag per row (N,) or per entry (N, D), True = observed"
        ) from None


def _check_nan(data: Tensor, observed: Tensor | None) -> None:
    nan = torch.isnan(data) if observed is None else torch.isnan(data) & observed
    if nan.any():
        raise ValueError(
            f"{int(nan.sum())} NaN entries are not marked missing; pass "
            "mask=~torch.isnan(data) (True = observed) to declare them missing"
        )


class Real(View):
    """Real-valued view: x_n = W z_n + b + Gaussian noise. `mask` (N,) or (N, D), True = observed.

    Missing entries are latent: q(x_nd) = N(<w_d^T z_n + b_d>, 1/<tau>), which keeps one
    shared q(W) covariance and fills the gaps with the model's prediction.
    """

    def __init__(self, data: Tensor, mask: Tensor | None = None):
        self.data = torch.as_tensor(data)
        if self.data.dim() != 2:
            raise ValueError(f"data must be (N, D), got shape {tuple(self.data.shape)}")
        self.mask = mask
        self.var = None  # data are exact: no variance of their own

    def bind(self, dtype: torch.dtype, device: torch.device) -> None:
        data = self.data.to(device, dtype)
        observed = _observed_mask(self.mask, data.shape, device)
        _check_nan(data, observed)
        var = torch.zeros((), dtype=dtype, device=device) if self.var is None else self.var
        var = torch.as_tensor(var).to(device, dtype).expand(data.shape)
        self.static = observed is None
        if self.static:
            self.x_mean = data
            self.x_sq_sum = (data**2 + var).sum()
            return
        self.observed = observed
        self.x_obs = torch.where(self.observed, data, 0.0)
        self._obs_sq_sum = torch.where(self.observed, self.x_obs**2 + var, 0.0).sum()
        column_mean = self.x_obs.sum(0) / self.observed.sum(0).clamp(min=1)
        self.update(column_mean.expand(data.shape), 1.0)

    def update(self, mean: Tensor, tau: Tensor | float) -> None:
        missing = ~self.observed
        n_missing = missing.sum()
        self.x_mean = torch.where(self.observed, self.x_obs, mean)
        self.x_sq_sum = (
            self._obs_sq_sum + torch.where(missing, mean**2, 0.0).sum() + n_missing / tau
        )
        tau = torch.as_tensor(tau, dtype=mean.dtype, device=mean.device)
        self._entropy = 0.5 * n_missing * (1 + LOG_2PI - torch.log(tau))

    def log_terms(self) -> Tensor:
        if self.static:
            return torch.zeros((), dtype=self.x_mean.dtype, device=self.x_mean.device)
        return self._entropy


class Latent(Real):
    """View given as Gaussian moments per row, e.g. a VAE encoder's q(x_n) = N(mean_n, var_n).

    <X> = mean and E[x_nd^2] = mean_nd^2 + var_nd; the entropy of q(x) belongs to whoever
    produced it (the encoder), so it is not part of this model's bound.
    """

    def __init__(self, mean: Tensor, var: Tensor | None = None, mask: Tensor | None = None):
        super().__init__(mean, mask)
        self.var = None if var is None else torch.as_tensor(var)
        if self.var is not None and (self.var < 0).any():
            raise ValueError("var must be non-negative")


def jj_lambda(xi: Tensor) -> Tensor:
    """lambda(xi) = tanh(xi/2) / (4 xi) of the Jaakkola-Jordan bound (1/8 at xi = 0)."""
    xi = xi.abs().clamp(min=1e-12)
    return torch.tanh(xi / 2) / (4 * xi)


class Binary(View):
    """Binary or multilabel view, t_nd in {0, 1}, p(t = 1 | x) = sigmoid(x).

    The Jaakkola-Jordan bound log sigmoid(s x) >= log sigmoid(xi) + (s x - xi)/2
    - lambda(xi)(x^2 - xi^2), s = 2t - 1, makes q(x_nd) Gaussian; xi_nd^2 = E[x_nd^2] is its
    optimum. `mask` (N,) or (N, D), True = observed; missing labels are predicted by q(x).
    """

    static = False

    def __init__(self, data: Tensor, mask: Tensor | None = None):
        self.data = torch.as_tensor(data)
        if self.data.dim() == 1:
            self.data = self.data[:, None]
        if self.data.dim() != 2:
            raise ValueError(f"data must be (N,) or (N, D), got shape {tuple(self.data.shape)}")
        self.mask = mask

    def bind(self, dtype: torch.dtype, device: torch.device) -> None:
        data = self.data.to(device, dtype)
        observed = _observed_mask(self.mask, data.shape, device)
        _check_nan(data, observed)
        self.observed = torch.ones_like(data, dtype=torch.bool) if observed is None else observed
        if ((data[self.observed] != 0) & (data[self.observed] != 1)).any():
            raise ValueError("binary data must be 0 or 1 at observed entries")
        self.half_sign = torch.where(self.observed, data - 0.5, 0.0)  # t - 1/2, 0 if missing
        self.xi = torch.ones_like(data)
        self.update(torch.zeros_like(data), 1.0)

    def update(self, mean: Tensor, tau: Tensor | float) -> None:
        # q(x) ∝ N(x; mean, 1/tau) exp((t - 1/2) x - lambda(xi) x^2): a Gaussian
        lam = torch.where(self.observed, jj_lambda(self.xi), 0.0)
        var = 1 / (tau + 2 * lam)
        self.x_mean = var * (tau * mean + self.half_sign)
        second = self.x_mean**2 + var
        self.xi = second.sqrt()  # optimal xi: xi^2 = E[x^2], so the lambda term below vanishes
        self.x_sq_sum = second.sum()
        jj = torch.nn.functional.logsigmoid(self.xi) - self.xi / 2 + self.half_sign * self.x_mean
        self._log_terms = (
            torch.where(self.observed, jj, 0.0).sum() + 0.5 * (1 + LOG_2PI + torch.log(var)).sum()
        )

    def log_terms(self) -> Tensor:
        return self._log_terms


Multilabel = Binary
Gaussian = Real

# Trapezoid grid for the one-dimensional Gaussian integrals of the multinomial probit: the
# integrands are smooth bumps, and a step of 0.4 on [-7, 7] gets them to ~2e-9 of a grid 40 times
# finer, deterministically, unlike Monte Carlo. Each row's grid is centred on its bump. These
# integrals are most of a sweep's time with categorical views: 36 nodes cost half of 65.
_PROBIT_NODES = torch.linspace(-7.0, 7.0, 36, dtype=torch.float64)
_PROBIT_STEP = 0.4


def _log_normal_pdf(x: Tensor) -> Tensor:
    return -0.5 * (x**2 + LOG_2PI)


def argmax_probit(mean: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
    """Moments of y ~ N(mean, I) truncated to {y_t >= y_c for all c}, t the one-hot class.

    With u ~ N(0, 1) and gap_c = mean_t - mean_c (Girolami & Rogers, 2006):
        P(t)   = E_u[prod_{c != t} Phi(u + gap_c)]
        <y_c>  = mean_c - E_u[phi(u + gap_c) prod_{j != t, c} Phi(u + gap_j)] / P(t),  c != t
        <y_t>  = mean_t + sum_{c != t} (mean_c - <y_c>)

    Args: mean (N, C), onehot (N, C) bool. Returns (<y> (N, C), log P(t) (N,)).
    """
    gap = (mean * onehot).sum(1, keepdim=True) - mean  # (N, C)
    # centre: a lagging true class (gap << 0) moves the mass of the integrand to u ~ -gap / 2
    centre = (-gap.masked_fill(onehot, math.inf).amin(1, keepdim=True) / 2).clamp(min=0)
    u = centre + _PROBIT_NODES.to(mean.device, mean.dtype)  # (N, Q)
    log_w = (math.log(_PROBIT_STEP) + _log_normal_pdf(u))[:, :, None]  # (N, Q, 1)
    arg = u[:, :, None] + gap[:, None, :]  # (N, Q, C)
    log_cdf = torch.special.log_ndtr(arg).masked_fill(onehot[:, None, :], 0.0)
    log_prod = log_cdf.sum(-1, keepdim=True)  # (N, Q, 1)
    log_prob = torch.logsumexp(log_w + log_prod, dim=1)  # (N, 1)
    log_num = torch.logsumexp(log_w + _log_normal_pdf(arg) + log_prod - log_cdf, dim=1)  # (N, C)
    shift = torch.exp(log_num - log_prob).masked_fill(onehot, 0.0)
    y = mean - shift + onehot * shift.sum(1, keepdim=True)
    return y, log_prob[:, 0]


class Categorical(View):
    """Multiclass view through the multinomial probit: t_n = argmax_c y_nc, y_n ~ N(W z_n + b, I).

    `labels`: (N,) integer classes or (N, C) one-hot; `mask` (N,), True = observed. The noise
    precision is fixed at 1 (the probit's scale is not identifiable). q(y_n) is N(m_n, I)
    truncated to the observed class's cone (unconstrained for a missing label).

    E[||y_n||^2] enters the likelihood with -1/2 and the entropy of q(y) with +1/2, so both leave
    it out: x_sq_sum = 0 and `log_terms` = H[q(y)] - E[||y||^2]/2.
    """

    static = False
    learn_tau = False

    def __init__(self, labels: Tensor, n_classes: int | None = None, mask: Tensor | None = None):
        labels = torch.as_tensor(labels)
        if labels.dim() == 2:
            observed = ~torch.isnan(labels).any(1) if labels.is_floating_point() else None
            if observed is not None and mask is None and not observed.all():
                raise ValueError(
                    f"{int((~observed).sum())} rows with NaN are not marked missing; pass "
                    "mask (N,) (True = observed) to declare them missing"
                )
            n_classes = labels.shape[1] if n_classes is None else n_classes
            labels = torch.nan_to_num(labels).argmax(1)
        elif labels.dim() != 1 or labels.is_floating_point():
            raise ValueError("labels must be (N,) integer classes or (N, C) one-hot")
        self.data = labels
        self.mask = mask
        self.n_classes = int(labels.max()) + 1 if n_classes is None else n_classes

    def empty(self) -> Categorical:
        return Categorical(self.data[:0].clone(), n_classes=self.n_classes)

    def bind(self, dtype: torch.dtype, device: torch.device) -> None:
        n = self.data.shape[0]
        observed = _observed_mask(self.mask, (n,), device)
        self.observed = (
            torch.ones(n, dtype=torch.bool, device=device) if observed is None else observed
        )
        labels = self.data.to(device)
        bad = self.observed & ((labels < 0) | (labels >= self.n_classes))
        if bad.any():
            raise ValueError(f"labels must lie in 0..{self.n_classes - 1} at observed rows")
        labels = labels.clamp(0, self.n_classes - 1)
        self.onehot = torch.nn.functional.one_hot(labels, self.n_classes).bool()
        self.onehot &= self.observed[:, None]  # no truncation for a missing label
        self.x_sq_sum = torch.zeros((), dtype=dtype, device=device)
        self.update(torch.zeros(n, self.n_classes, dtype=dtype, device=device), 1.0)

    def update(self, mean: Tensor, tau: Tensor | float) -> None:
        y, log_prob = argmax_probit(mean, self.onehot)
        self.x_mean = torch.where(self.observed[:, None], y, mean)
        log_prob = torch.where(self.observed, log_prob, 0.0)
        self._log_terms = (
            0.5 * mean.numel() * LOG_2PI
            + (0.5 * mean**2 - self.x_mean * mean).sum()
            + log_prob.sum()
        )

    def log_terms(self) -> Tensor:
        return self._log_terms


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class SSHIBA:
    """Sparse semi-supervised heterogeneous interbattery Bayesian analysis.

    Args:
        views: name -> view (`Real`, `Latent`, `Binary`/`Multilabel`, `Categorical`), all with
            the same N rows.
        k: initial number of factors K; ARD pruning shrinks it.
        config: hyper-parameters, `FAConfig()` by default.

    Attributes after `fit`: `q_z` (q(Z), mean (N, K)), `q[name]` (`ViewPosterior`), `history`
    (lower bound after every iteration), `pruned` ((iteration, factors removed) events).
    """

    def __init__(self, views: dict[str, View], k: int, config: FAConfig | None = None):
        self.config = config or FAConfig()
        if not isinstance(views, dict) or not views:
            raise ValueError("views must be a non-empty dict name -> view")
        for name, view in views.items():
            if not isinstance(view, View):
                raise ValueError(
                    f"view {name!r} has unknown type {type(view).__name__}; wrap its data in one "
                    "of vaebook.fa.Real, Latent, Binary (Multilabel) or Categorical"
                )
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be a positive number of factors, got {k}")
        cfg = self.config
        first = next(iter(views.values()))
        self.device = torch.device(cfg.device) if cfg.device is not None else first.data.device
        self.dtype = cfg.dtype or (torch.float64 if self.device.type == "cpu" else torch.float32)
        self.views = views
        self._bind_all(views)

        self.q_z = GaussianRows(self._initial_z(k), self._eye(k))
        self.q = {name: self._initial_posterior(view, k) for name, view in views.items()}
        self._xtz = {name: view.x_mean.T @ self.q_z.mean for name, view in views.items()}
        self.history: list[float] = []
        self.pruned: list[tuple[int, int]] = []

    def _bind_all(self, views: dict[str, View]) -> None:
        for name, view in views.items():
            try:
                view.bind(self.dtype, self.device)
            except ValueError as err:
                raise ValueError(f"view {name!r}: {err}") from err
        rows = {name: view.shape[0] for name, view in views.items()}
        if len(set(rows.values())) > 1:
            raise ValueError(
                f"views have different numbers of rows {rows}; every view must describe the "
                "same N rows, in the same order (mark a view's absent rows with mask=)"
            )

    def _eye(self, k: int) -> Tensor:
        return torch.eye(k, dtype=self.dtype, device=self.device)

    def _full(self, shape: tuple[int, ...], value: float) -> Tensor:
        return torch.full(shape, value, dtype=self.dtype, device=self.device)

    def _initial_z(self, k: int) -> Tensor:
        """Principal components of all views together, unit variance per column: PCA puts the
        signal in the first columns, so ARD can switch the rest off quickly instead of
        untangling a rotation."""
        return self._principal_columns([view.x_mean for view in self.views.values()], k)

    def _principal_columns(self, blocks: list[Tensor], k: int) -> Tensor:
        """k columns (N, k) of unit variance: the principal components of the (N, D_m) blocks
        side by side, each block centred and scaled to unit total variance; random columns
        (seeded by `config.seed`) beyond their rank."""
        tiny = torch.finfo(self.dtype).tiny
        scaled = []
        for block in blocks:
            centred = block - block.mean(0)
            scaled.append(centred / centred.norm().clamp(min=tiny))
        u, _, _ = torch.linalg.svd(torch.cat(scaled, 1), full_matrices=False)
        n = u.shape[0]
        generator = torch.Generator().manual_seed(self.config.seed)
        z = torch.randn(n, k, generator=generator, dtype=torch.float64).to(self.device, self.dtype)
        n_pc = min(k, u.shape[1])
        z[:, :n_pc] = u[:, :n_pc] * math.sqrt(n)
        return z

    def _initial_alpha(self, d: int, k: int) -> Gamma:
        """q(alpha) of k new factors of a view with D = d columns: concentrated at alpha_init,
        what an update would give, and a fixed value when update_alpha is off."""
        shape = self.config.prior_a + d / 2
        return Gamma(self._full((k,), shape), self._full((k,), shape / self.config.alpha_init))

    def _initial_posterior(self, view: View, k: int) -> ViewPosterior:
        cfg = self.config
        n, d = view.shape
        tau = None
        if view.learn_tau:  # concentrated at tau_init, like q(alpha) at alpha_init
            tau_init = cfg.tau_init or 1 / float(view.x_mean.var(0).mean().clamp(min=1e-6))
            tau_shape = cfg.prior_a + n * d / 2
            tau = Gamma(self._full((), tau_shape), self._full((), tau_shape / tau_init))
        return ViewPosterior(
            W=GaussianRows(self._full((d, k), 0.0), self._eye(k)),
            b_mean=view.x_mean.mean(0),
            b_var=self._full((), 1.0),
            alpha=self._initial_alpha(d, k),
            tau=tau,
        )

    @property
    def k(self) -> int:
        """Current number of factors."""
        return self.q_z.mean.shape[1]

    # -- one sweep of coordinate ascent ------------------------------------------------------

    def fit(self, n_iter: int = 1000, tol: float = 1e-8) -> SSHIBA:
        """Run up to `n_iter` sweeps; stop when the bound changes by less than tol * |bound|.

        Appends the bound after every sweep to `history` and (iteration, factors removed) to
        `pruned`; the bound of a pruned model is that of a smaller model, so it may jump there.
        """
        for _ in range(n_iter):
            removed = self.step()
            self.history.append(self.bound())
            if removed:
                self.pruned.append((len(self.history) - 1, removed))
            elif len(self.history) > 1:
                change = abs(self.history[-1] - self.history[-2])
                if change <= tol * abs(self.history[-1]):
                    break
        return self

    def step(self) -> int:
        """One sweep: every view's q(W), q(b), q(alpha), q(tau), q(X); q(Z); rotation; pruning.

        Returns the number of factors pruned.
        """
        self._require_training_rows()
        for name, view in self.views.items():
            self._update_view(view, self.q[name], self._xtz[name])
        self.q_z = self._posterior_z(self.views, self.q)
        self._xtz = {name: view.x_mean.T @ self.q_z.mean for name, view in self.views.items()}
        if self.config.rotate and self.config.update_alpha:
            self._rotate()
        return self._prune() if self.config.prune else 0

    def _update_view(self, view: View, q: ViewPosterior, xtz: Tensor) -> None:
        cfg = self.config
        z, zz = self.q_z.mean, self.q_z.second_moment
        n, d = view.shape
        z_sum = z.sum(0)
        tau = q.tau_mean
        # q(W): Sigma_W = (diag<alpha> + <tau><Z^T Z>)^-1, <W> = <tau>(<X> - 1<b>^T)^T <Z> Sigma_W
        cov = inverse_spd(torch.diag(q.alpha.mean) + tau * zz)
        q.W = GaussianRows(tau * (xtz - q.b_mean[:, None] * z_sum) @ cov, cov)
        # q(b): precision 1 + N<tau>, mean <tau> sum_n (<x_n> - <W><z_n>) / precision
        q.b_var = 1 / (1 + n * tau) * torch.ones((), dtype=self.dtype, device=self.device)
        q.b_mean = q.b_var * tau * (view.x_mean.sum(0) - q.W.mean @ z_sum)
        if cfg.update_alpha:
            q.alpha = self._alpha_posterior(q, d)
        if q.tau is not None and cfg.update_tau:  # q(tau) = Gamma(a0 + ND/2, b0 + E[SSE]/2)
            sse = self._expected_sq_error(view, q, xtz)
            q.tau = Gamma(q.tau.shape, cfg.prior_b + sse.clamp(min=0) / 2)  # round-off guard
        if not view.static:
            view.update(q.mean_of(z), q.tau_mean)

    def _alpha_posterior(self, q: ViewPosterior, d: int) -> Gamma:
        """q(alpha_k) = Gamma(a0 + D/2, b0 + <W^T W>_kk / 2)."""
        cfg = self.config
        shape = self._full((self.k,), cfg.prior_a + d / 2)
        return Gamma(shape, cfg.prior_b + torch.diagonal(q.W.second_moment) / 2)

    def _expected_sq_error(self, view: View, q: ViewPosterior, xtz: Tensor) -> Tensor:
        """E[sum_nd (x_nd - w_d^T z_n - b_d)^2] from moments; `xtz` = <X>^T <Z> (D, K)."""
        n, d = view.shape
        z_sum = self.q_z.mean.sum(0)
        cross = (xtz * q.W.mean).sum() + view.x_mean.sum(0) @ q.b_mean  # <X> . (<Z><W>^T + 1<b>^T)
        fit_sq = (
            (q.W.second_moment * self.q_z.second_moment).sum()  # tr(<W^T W><Z^T Z>)
            + 2 * (q.W.mean @ z_sum) @ q.b_mean
            + n * (q.b_mean @ q.b_mean + d * q.b_var)
        )
        return view.x_sq_sum - 2 * cross + fit_sq

    def _posterior_z(self, views: dict[str, View], q: dict[str, ViewPosterior]) -> GaussianRows:
        """q(Z) from the given views: Sigma_Z = (I + sum_m <tau_m><W_m^T W_m>)^-1,
        <Z> = sum_m <tau_m>(<X_m> - 1<b_m>^T)<W_m> Sigma_Z."""
        precision = self._eye(self.k)
        rhs = 0.0
        for name, view in views.items():
            post = q[name]
            precision = precision + post.tau_mean * post.W.second_moment
            rhs = rhs + post.tau_mean * (view.x_mean @ post.W.mean - post.b_mean @ post.W.mean)
        cov = inverse_spd(precision)
        return GaussianRows(rhs @ cov, cov)

    # -- rotation ------------------------------------------------------------------------------

    def _rotation_objective(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """The bound as a function of a rotation Z -> Z R^-T, W_m -> W_m R, up to a constant,
        and its gradient in R (Klami et al., 2013).

        The likelihood only sees W_m z_n and tr(<W^T W><Z^T Z>), which R leaves alone; what
        changes is the prior on Z, the entropies (log|det R|) and, with q(alpha) at its optimum,
        -(a0 + D/2) log(b0 + <W^T W>_kk / 2) per view and factor.
        """
        cfg = self.config
        n_rows = self.q_z.mean.shape[0]
        logdet_weight = sum(q.W.mean.shape[0] for q in self.q.values()) - n_rows  # D - N
        r_inv = torch.linalg.inv(r)
        zz_rotated = r_inv @ self.q_z.second_moment @ r_inv.T  # R^-1 <Z^T Z> R^-T
        value = -0.5 * torch.trace(zz_rotated) + logdet_weight * torch.linalg.slogdet(r)[1]
        grad = r_inv.T @ zz_rotated + logdet_weight * r_inv.T
        for q in self.q.values():
            d = q.W.mean.shape[0]
            ww_r = q.W.second_moment @ r
            rate = cfg.prior_b + (r * ww_r).sum(0) / 2  # b0 + diag(R^T <W^T W> R) / 2
            value = value - (cfg.prior_a + d / 2) * torch.log(rate).sum()
            grad = grad - (cfg.prior_a + d / 2) * ww_r / rate
        return value, grad

    def _rotate(self) -> None:
        """Move along the directions in which mean-field updates crawl: the rotations of the
        latent space. Maximise the bound over R with L-BFGS from R = I; keep R if it rises."""
        eye = self._eye(self.k)
        r = eye.clone()
        optimizer = torch.optim.LBFGS(
            [r], max_iter=self.config.rotate_iter, line_search_fn="strong_wolfe"
        )

        def closure():
            value, grad = self._rotation_objective(r)
            r.grad = -grad
            return -value

        optimizer.step(closure)
        gain = self._rotation_objective(r)[0] - self._rotation_objective(eye)[0]
        if torch.isfinite(gain) and gain > 0:
            self._apply_rotation(r)

    def _apply_rotation(self, r: Tensor) -> None:
        """Z -> Z R^-T, W_m -> W_m R (moments included), then q(alpha) at its new optimum."""
        r_inv = torch.linalg.inv(r)
        self.q_z = GaussianRows(self.q_z.mean @ r_inv.T, r_inv @ self.q_z.cov @ r_inv.T)
        for name, q in self.q.items():
            q.W = GaussianRows(q.W.mean @ r, r.T @ q.W.cov @ r)
            q.alpha = self._alpha_posterior(q, self.views[name].shape[1])
            self._xtz[name] = self._xtz[name] @ r_inv.T

    # -- pruning -------------------------------------------------------------------------------

    def activity(self) -> Tensor:
        """Mean |<W_m>| per factor, divided by its view's largest: shape (n_views, K)."""
        act = torch.stack([q.W.mean.abs().mean(0) for q in self.q.values()])
        return act / act.amax(1, keepdim=True).clamp(min=torch.finfo(act.dtype).tiny)

    def _prune(self) -> int:
        """Drop factors below `prune_threshold` activity in every view; returns how many."""
        keep = (self.activity() >= self.config.prune_threshold).any(0)
        removed = int((~keep).sum())
        if removed == 0:
            return 0
        self.q_z = GaussianRows(self.q_z.mean[:, keep], self.q_z.cov[keep][:, keep])
        for name, q in self.q.items():
            q.W = GaussianRows(q.W.mean[:, keep], q.W.cov[keep][:, keep])
            q.alpha = Gamma(q.alpha.shape[keep], q.alpha.rate[keep])
            self._xtz[name] = self._xtz[name][:, keep]
        return removed

    def grow(self, k: int) -> int:
        """Add factors until there are k, for directions the current ones leave unexplained.

        ARD prunes for good, so a layer fitted to data that carried little (e.g. the codes of
        VAE encoders early in training) keeps few factors after those data gain structure
        (`replace_view`); `grow` gives the next sweeps new factors to try, started as at
        construction: their <Z> columns the principal components of the views' residuals
        <X_m> - <Z><W_m>^T - <b_m>, their loadings 0 and q(alpha) at alpha_init. Sweeps prune
        the ones the data do not support. Returns the number of factors added.
        """
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be a positive number of factors, got {k}")
        self._require_training_rows()
        added = k - self.k
        if added <= 0:
            return 0
        residuals = [
            view.x_mean - self.q[name].mean_of(self.q_z.mean) for name, view in self.views.items()
        ]
        z_added = self._principal_columns(residuals, added)
        self.q_z = GaussianRows(
            torch.cat([self.q_z.mean, z_added], 1), torch.block_diag(self.q_z.cov, self._eye(added))
        )
        for name, q in self.q.items():
            d = self.views[name].shape[1]
            alpha = self._initial_alpha(d, added)
            q.W = GaussianRows(
                torch.cat([q.W.mean, self._full((d, added), 0.0)], 1),
                torch.block_diag(q.W.cov, self._eye(added)),
            )
            q.alpha = Gamma(
                torch.cat([q.alpha.shape, alpha.shape]), torch.cat([q.alpha.rate, alpha.rate])
            )
            self._xtz[name] = self.views[name].x_mean.T @ self.q_z.mean
        return added

    # -- lower bound ---------------------------------------------------------------------------

    def bound(self) -> float:
        """The variational lower bound on log p(data) at the current q (see the chapter)."""
        cfg = self.config
        k = self.k
        # E[log p(Z)] + H[q(Z)], the log(2 pi) terms cancel
        n_rows = self.q_z.mean.shape[0]
        total = -0.5 * torch.trace(self.q_z.second_moment) - 0.5 * n_rows * k * LOG_2PI
        total = total + self.q_z.entropy()
        for name, view in self.views.items():
            q = self.q[name]
            n, d = view.shape
            ww = q.W.second_moment
            # E[log p(W | alpha)] + H[q(W)]
            total = (
                total + 0.5 * d * q.alpha.log_mean.sum() - 0.5 * (q.alpha.mean * ww.diag()).sum()
            )
            total = total - 0.5 * d * k * LOG_2PI + q.W.entropy()
            # E[log p(b)] + H[q(b)]
            total = (
                total
                - 0.5 * (q.b_mean @ q.b_mean + d * q.b_var)
                + 0.5 * d * (1 + torch.log(q.b_var))
            )
            total = total - q.alpha.kl(cfg.prior_a, cfg.prior_b)
            # E[log p(X | Z, W, b, tau)]
            sse = self._expected_sq_error(view, q, self._xtz[name])
            if q.tau is None:
                total = total - 0.5 * n * d * LOG_2PI - 0.5 * sse
            else:
                total = total + 0.5 * n * d * (q.tau.log_mean - LOG_2PI) - 0.5 * q.tau.mean * sse
                total = total - q.tau.kl(cfg.prior_a, cfg.prior_b)
            total = total + view.log_terms()
        return float(total)

    # -- using the fitted model ------------------------------------------------------------------

    def replace_view(self, name: str, view: View) -> None:
        """Give view `name` new data for the same N rows, keeping every posterior as the start
        of the next sweeps: FA-VAE refreshes its latent views from the encoders this way.

        The new view must have the old one's type and shape (N, D).
        """
        old = self.views.get(name)
        if old is None:
            raise ValueError(f"unknown view {name!r}; the model has {list(self.views)}")
        if type(view) is not type(old):
            raise ValueError(
                f"view {name!r} was fitted as {type(old).__name__}, got {type(view).__name__}; "
                "replace a view by one of the same type"
            )
        self._bind_all({name: view})
        if view.shape != old.shape:
            raise ValueError(
                f"view {name!r} has shape {old.shape}, the new data {view.shape}; give the same "
                "rows in the same order and the same number of columns"
            )
        self.views = {**self.views, name: view}
        self._xtz[name] = view.x_mean.T @ self.q_z.mean

    def for_prediction(self) -> SSHIBA:
        """A copy without the training rows: q(W), q(b), q(alpha), q(tau) and the view types,
        which `predict`, `posterior_z` and `activity` use, and q(Z) for 0 rows. What a
        checkpoint for predictions needs, at a fraction of the size; `step` and `fit` refuse it.
        """
        layer = copy.copy(self)
        layer.views = {name: view.empty() for name, view in self.views.items()}
        layer._bind_all(layer.views)
        layer.q = copy.deepcopy(self.q)
        layer.q_z = GaussianRows(self.q_z.mean[:0].clone(), self.q_z.cov)
        layer._xtz = {}  # <X>^T <Z> serves the sweeps only
        layer.history, layer.pruned = list(self.history), list(self.pruned)
        return layer

    def _require_training_rows(self) -> None:
        if self.q_z.mean.shape[0] == 0:
            raise RuntimeError(
                "this layer holds no training rows (made by `for_prediction` for a small "
                "checkpoint), so it cannot be fitted further; fit a new layer on the data or "
                "resume from the run's full checkpoint (checkpoints/runs/)"
            )

    def prior_moments(self, view: str, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The prior that the rest of the model puts on a view's data, for FA-VAE.

        z: (N, K) <Z> of the training rows, e.g. `z_from` the label views alone, so that the
        prior is what the labels predict; None: <Z> of q(Z), inferred from every view.
        Returns (<Z><W_m>^T + <b_m> of shape (N, D), <tau_m> a scalar tensor).
        """
        q = self._posterior(view)
        tau = torch.as_tensor(q.tau_mean, dtype=self.dtype, device=self.device)
        return q.mean_of(self.q_z.mean if z is None else z), tau

    def z_from(self, given: list[str]) -> Tensor:
        """<Z> (N, K) of the training rows inferred from the training data of the `given` views
        alone, the loadings fixed at q(W)."""
        if not given or set(given) - set(self.views):
            raise ValueError(f"given must name views of the model {list(self.views)}, got {given}")
        # copies: inferring Z refits a label view's q(X), which the sweeps must keep as it is
        return self.posterior_z({name: copy.copy(self.views[name]) for name in given}).mean

    def posterior_z(self, inputs: dict[str, View | Tensor]) -> GaussianRows:
        """q(Z_new) for new rows observed in the `inputs` views, the loadings fixed at q(W).

        Args: inputs as in `predict`. Returns q(Z_new): mean (N_new, K), one covariance (K, K).
        """
        if not inputs:
            raise ValueError("give at least one input view")
        views = {name: self._as_view(name, data) for name, data in inputs.items()}
        self._bind_all(views)
        q_z = self._posterior_z(views, self.q)
        if not all(view.static for view in views.values()):
            for _ in range(self.config.predict_iter):  # q(Z_new) and q(X_new) depend on each other
                for name, view in views.items():
                    if not view.static:  # data given in full have no q(X) to refit
                        view.update(self.q[name].mean_of(q_z.mean), self.q[name].tau_mean)
                previous, q_z = q_z.mean, self._posterior_z(views, self.q)
                if not ((q_z.mean - previous).abs() > self.config.predict_tol).any():
                    break  # also for 0 rows (a layer made by `for_prediction`)
        return q_z

    def predict(
        self, inputs: dict[str, View | Tensor], output: str, factors: Tensor | None = None
    ) -> Tensor:
        """Posterior predictive of view `output` for new rows observed in the `inputs` views.

        Args:
            inputs: view name -> data of the new rows (a tensor, wrapped in the view's type, or
                a view object, e.g. `Latent(mean, var)`); every input has the same N_new rows.
            output: name of the view to predict.
            factors: (K,) bool, the factors the prediction uses, e.g. those shared by two views
                (see `activity`); the others are held at 0, their prior mean. None: all.

        Returns (N_new, D_out): the mean for `Real`/`Latent`, P(t = 1) for `Binary`, class
        probabilities for `Categorical`.
        """
        out = self._posterior(output)
        q_z = self.posterior_z(inputs)
        if factors is not None:
            q_z = self._only_factors(q_z, factors)
        mean = out.mean_of(q_z.mean)
        # variance of w_d^T z_n + b_d under q(W) q(Z_new) q(b), plus the noise 1/tau
        var = (
            ((out.W.mean @ q_z.cov) * out.W.mean).sum(1)
            + ((q_z.mean @ out.W.cov) * q_z.mean).sum(1, keepdim=True)
            + (out.W.cov * q_z.cov).sum()
            + out.b_var
            + 1 / out.tau_mean
        )
        template = self.views[output]
        if isinstance(template, Binary):  # E[sigmoid(x)] ~ sigmoid(mean / sqrt(1 + pi var / 8))
            return torch.sigmoid(mean / torch.sqrt(1 + math.pi * var / 8))
        if isinstance(template, Categorical):  # P(argmax = c), y ~ N(mean, var I), var per row
            scaled = mean / var.mean(1, keepdim=True).sqrt()
            eye = torch.eye(template.n_classes, dtype=torch.bool, device=self.device)
            log_p = [argmax_probit(scaled, eye[c].expand_as(scaled))[1] for c in range(len(eye))]
            return torch.softmax(torch.stack(log_p, 1), 1)  # renormalise the quadrature
        return mean

    def _only_factors(self, q_z: GaussianRows, factors: Tensor) -> GaussianRows:
        """q(Z) with the factors outside `factors` (K,) bool set to exactly 0."""
        factors = torch.as_tensor(factors, device=self.device)
        if factors.dtype != torch.bool or factors.shape != (self.k,):
            raise ValueError(
                f"factors must be a (K,) = ({self.k},) bool mask, got {factors.dtype} of shape "
                f"{tuple(factors.shape)}; e.g. model.activity().min(0).values > 0.05"
            )
        keep = factors.to(self.dtype)
        return GaussianRows(q_z.mean * keep, q_z.cov * keep[:, None] * keep[None, :])

    def _posterior(self, view: str) -> ViewPosterior:
        if view not in self.q:
            raise ValueError(f"unknown view {view!r}; the model has {list(self.q)}")
        return self.q[view]

    def _as_view(self, name: str, data: View | Tensor) -> View:
        template = self.views.get(name)
        if template is None:
            raise ValueError(f"unknown view {name!r}; the model has {list(self.views)}")
        if isinstance(data, View):
            if type(data) is not type(template):
                raise ValueError(
                    f"view {name!r} was fitted as {type(template).__name__}, "
                    f"got {type(data).__name__}"
                )
            return data
        if isinstance(template, Categorical):
            return Categorical(data, n_classes=template.n_classes)
        return type(template)(data)


# FA-VAE's checkpoints hold the layer itself: let torch.load(weights_only=True) rebuild these
# types (their state is tensors, numbers and configs; nothing of them runs on load)
torch.serialization.add_safe_globals(
    [FAConfig, GaussianRows, Gamma, ViewPosterior, Real, Latent, Binary, Categorical, SSHIBA]
)
