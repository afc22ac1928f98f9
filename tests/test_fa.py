"""Tests of the SSHIBA engine (`vaebook.fa`) on synthetic data with known truth."""

import math

import pytest
import torch

from vaebook import fa

pytestmark = pytest.mark.usefixtures("one_thread")  # small matrices: threads cost more


def factor_data(n=400, dims=(30, 20), shared=3, private=(1, 1), noise=0.1, seed=0):
    """Views x^(m) = Z W_m^T + b_m + noise with `shared` factors in all views and
    `private[m]` factors only in view m. Returns (Z (n, K), [W_m (D_m, K)], [X_m (n, D_m)])."""
    gen = torch.Generator().manual_seed(seed)
    k = shared + sum(private)
    z = torch.randn(n, k, generator=gen, dtype=torch.float64)
    loadings, views = [], []
    for m, d in enumerate(dims):
        active = torch.zeros(k, dtype=torch.bool)
        active[:shared] = True
        first = shared + sum(private[:m])
        active[first : first + private[m]] = True
        w = torch.randn(d, k, generator=gen, dtype=torch.float64) * active
        b = torch.randn(d, generator=gen, dtype=torch.float64)
        x = z @ w.T + b + noise * torch.randn(n, d, generator=gen, dtype=torch.float64)
        loadings.append(w)
        views.append(x)
    return z, loadings, views


def assert_monotone(history, rtol=1e-8, skip=()):
    h = torch.tensor(history, dtype=torch.float64)
    drops = [
        (i, float(h[i] - h[i - 1]))
        for i in range(1, len(h))
        if i not in skip and h[i] < h[i - 1] - rtol * abs(h[i])
    ]
    assert not drops, f"lower bound decreased at (iteration, change): {drops[:5]}"


def second_view(kind, z, gen):
    """A view of type `kind` driven by the first two latent factors."""
    n = z.shape[0]
    logits = z[:, :2] @ torch.randn(2, 4, generator=gen, dtype=torch.float64) * 2
    labels = (logits > 0).double()
    if kind == "binary":
        return fa.Binary(labels[:, 0])
    if kind == "multilabel":
        mask = torch.rand(n, 4, generator=gen) > 0.2  # missing entries
        return fa.Multilabel(torch.where(mask, labels, float("nan")), mask=mask)
    if kind == "latent":
        var = 0.05 * torch.rand(n, 4, generator=gen, dtype=torch.float64)
        return fa.Latent(logits + var.sqrt() * torch.randn_like(logits), var)
    if kind == "real_missing":
        mask = torch.rand(n, 4, generator=gen) > 0.2
        mask[: n // 4] = False  # whole missing rows too
        return fa.Real(torch.where(mask, logits, float("nan")), mask=mask)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["real", "binary", "multilabel", "latent", "real_missing"])
def test_bound_never_decreases(kind):
    # pruning changes the model (K shrinks), so it is off here; see the ARD test for the rest
    z, _, (x, _) = factor_data(n=300, dims=(15, 10), noise=0.3)
    gen = torch.Generator().manual_seed(1)
    views = {"x": fa.Real(x)}
    if kind != "real":
        views["y"] = second_view(kind, z, gen)
    model = fa.SSHIBA(views, k=8, config=fa.FAConfig(prune=False)).fit(n_iter=200, tol=0)
    assert len(model.history) == 200
    assert_monotone(model.history)
    assert model.history[-1] > model.history[0] + 1.0  # it did move


def test_categorical_bound_rises_over_windows():
    z, _, (x, _) = factor_data(n=300, dims=(15, 10), noise=0.3)
    labels = (
        z[:, :2]
        @ torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ).argmax(1)
    views = {"x": fa.Real(x), "y": fa.Categorical(labels)}
    model = fa.SSHIBA(views, k=8, config=fa.FAConfig(prune=False)).fit(n_iter=200, tol=0)
    window_means = torch.tensor(model.history, dtype=torch.float64).view(10, 20).mean(1)
    rises = window_means[1:] - window_means[:-1]
    assert (rises >= -1e-8 * window_means[1:].abs()).all(), window_means
    assert window_means[-1] > window_means[0]


def principal_angle_deg(a, b):
    """Largest principal angle between the column spaces of a and b, in degrees."""
    qa, qb = torch.linalg.qr(a)[0], torch.linalg.qr(b)[0]
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(max=1.0)
    return math.degrees(math.acos(float(cosines.min())))


@pytest.fixture(scope="module")
def ard_fit():
    """K = 50 on two views made from 5 factors: 3 shared, one private to each view."""
    z, loadings, views = factor_data(n=500, dims=(30, 20), shared=3, private=(1, 1), noise=0.1)
    model = fa.SSHIBA({"a": fa.Real(views[0]), "b": fa.Real(views[1])}, k=50)
    return model.fit(n_iter=1000), loadings


def test_ard_prunes_to_true_number_of_factors(ard_fit):
    model, loadings = ard_fit
    assert model.k == 5
    learned = torch.cat([model.q["a"].W.mean, model.q["b"].W.mean])
    assert principal_angle_deg(learned, torch.cat(loadings)) < 10.0
    # outside the pruning events the bound still never decreases
    assert_monotone(model.history, skip={i for i, _ in model.pruned})


def test_private_and_shared_factors(ard_fit):
    model, loadings = ard_fit
    active = model.activity() > 0.05  # (views, K)
    shared = active.all(0)
    only_a, only_b = active[0] & ~active[1], active[1] & ~active[0]
    assert (int(shared.sum()), int(only_a.sum()), int(only_b.sum())) == (3, 1, 1)
    # an inactive loading is really off, not just smaller
    assert model.activity()[~active].max() < 1e-2
    # the factor private to view a spans the true private loading of view a
    private_a = model.q["a"].W.mean[:, only_a]
    assert principal_angle_deg(private_a, loadings[0][:, 3:4]) < 10.0


def auc(scores, labels):
    """Area under the ROC curve: P(score of a positive > score of a negative)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float((pos[:, None] > neg[None, :]).double().mean())


def test_binary_view_predicted_from_real_view():
    z, _, (x, _) = factor_data(n=800, dims=(20, 5), shared=3, private=(0, 0), noise=0.3)
    direction = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    labels = (z @ direction > 0).double()
    train, test = slice(0, 400), slice(400, 800)
    views = {"x": fa.Real(x[train]), "t": fa.Binary(labels[train])}
    model = fa.SSHIBA(views, k=10).fit(n_iter=100)
    prob = model.predict(inputs={"x": x[test]}, output="t")
    assert prob.shape == (400, 1)
    assert auc(prob[:, 0], labels[test]) >= 0.95


def test_semi_supervised_labels_of_missing_rows():
    z, _, (x, _) = factor_data(n=600, dims=(20, 5), shared=3, private=(0, 0), noise=0.3)
    labels = (z @ torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64) > 0).double()
    observed = torch.arange(600) < 300
    views = {"x": fa.Real(x), "t": fa.Binary(labels, mask=observed)}
    model = fa.SSHIBA(views, k=10).fit(n_iter=100)
    mean, _ = model.prior_moments("t")  # <x> of the missing labels' pseudo-data
    assert auc(mean[~observed, 0], labels[~observed]) >= 0.95


def test_q_z_is_exact_fa_posterior_with_alpha_tau_fixed():
    _, _, (x, _) = factor_data(n=300, dims=(12, 4), shared=3, private=(0, 0), noise=0.5)
    tau = 4.0
    config = fa.FAConfig(update_alpha=False, update_tau=False, tau_init=tau, prune=False)
    model = fa.SSHIBA({"x": fa.Real(x)}, k=3, config=config).fit(n_iter=20)
    q = model.q["x"]
    # certain loadings: ordinary FA with W = <W>, b = <b>
    q.W = fa.GaussianRows(q.W.mean, torch.zeros_like(q.W.cov))
    q.b_var = torch.zeros_like(q.b_var)
    q_z = model.posterior_z({"x": x})
    # ordinary FA: [z; x] jointly Gaussian, condition on x
    w, b = q.W.mean, q.b_mean
    gain = w.T @ torch.linalg.inv(w @ w.T + torch.eye(12, dtype=torch.float64) / tau)
    torch.testing.assert_close(q_z.mean, (x - b) @ gain.T, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(q_z.cov, torch.eye(3, dtype=torch.float64) - gain @ w)


def test_prior_moments_and_predict_shapes():
    z, _, (x, y) = factor_data(n=200, dims=(10, 6), noise=0.3)
    mu, var = y, torch.full_like(y, 0.01)
    model = fa.SSHIBA({"x": fa.Real(x), "h": fa.Latent(mu, var)}, k=6).fit(n_iter=100)
    mean, tau = model.prior_moments("h")
    assert mean.shape == (200, 6) and mean.dtype == torch.float64 and tau.dim() == 0
    assert ((mean - y) ** 2).mean() < 0.2 * y.var()
    assert model.predict({"h": fa.Latent(mu[:7], var[:7])}, output="x").shape == (7, 10)


def test_error_views_with_different_numbers_of_rows():
    with pytest.raises(ValueError, match="different numbers of rows"):
        fa.SSHIBA({"x": fa.Real(torch.randn(10, 3)), "y": fa.Real(torch.randn(9, 3))}, k=2)


def test_error_nan_outside_declared_mask():
    x = torch.randn(10, 3)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"view 'x'.*not marked missing.*mask="):
        fa.SSHIBA({"x": fa.Real(x)}, k=2)
    mask = ~torch.isnan(x)
    fa.SSHIBA({"x": fa.Real(x, mask=mask)}, k=2)  # declared: fine
    mask[5, 0] = False
    x[6, 0] = float("nan")
    with pytest.raises(ValueError, match="not marked missing"):
        fa.SSHIBA({"x": fa.Real(x, mask=mask)}, k=2)


def test_error_unknown_view_type():
    with pytest.raises(ValueError, match="unknown type Tensor.*Real, Latent, Binary"):
        fa.SSHIBA({"x": torch.randn(10, 3)}, k=2)


def test_rotation_changes_the_bound_by_its_objective():
    z, _, (x, y) = factor_data(n=200, dims=(10, 6), noise=0.3)
    config = fa.FAConfig(prune=False)
    model = fa.SSHIBA({"x": fa.Real(x), "y": fa.Real(y)}, k=6, config=config).fit(n_iter=10)
    gen = torch.Generator().manual_seed(5)
    r = torch.eye(6, dtype=torch.float64) + 0.2 * torch.randn(
        6, 6, generator=gen, dtype=torch.float64
    )
    predicted = (
        model._rotation_objective(r)[0]
        - model._rotation_objective(torch.eye(6, dtype=torch.float64))[0]
    )
    before = model.bound()
    model._apply_rotation(r)
    assert model.bound() - before == pytest.approx(float(predicted), rel=1e-8)


def test_bound_matches_monte_carlo():
    """The closed-form bound against E_q[log p(data, params) - log q(params)] by sampling q,
    with a missing-entries real view and a latent view (whose own q(x) is sampled, not scored)."""
    d = torch.distributions
    z_true, _, (x, h) = factor_data(n=40, dims=(5, 3), shared=2, private=(0, 0), noise=0.5)
    gen = torch.Generator().manual_seed(4)
    observed = torch.rand(40, 5, generator=gen) > 0.2
    h_var = 0.1 * torch.rand(40, 3, generator=gen, dtype=torch.float64)
    views = {
        "x": fa.Real(torch.where(observed, x, float("nan")), mask=observed),
        "h": fa.Latent(h, h_var),
    }
    model = fa.SSHIBA(views, k=2, config=fa.FAConfig(prune=False)).fit(n_iter=30)
    torch.manual_seed(0)
    s, a0, b0 = 40_000, model.config.prior_a, model.config.prior_b

    def gaussian_rows(q):  # samples (s, R, K) and log q summed over rows
        dist = d.MultivariateNormal(q.mean, covariance_matrix=q.cov)
        sample = dist.sample((s,))
        return sample, dist.log_prob(sample).sum(-1)

    z, log_q = gaussian_rows(model.q_z)
    log_p = d.Normal(0.0, 1.0).log_prob(z).sum((-1, -2))
    for name, view in model.views.items():
        q = model.q[name]
        w, log_q_w = gaussian_rows(q.W)
        q_b = d.Normal(q.b_mean, q.b_var.sqrt())
        q_alpha, q_tau = d.Gamma(q.alpha.shape, q.alpha.rate), d.Gamma(q.tau.shape, q.tau.rate)
        b, alpha, tau = q_b.sample((s,)), q_alpha.sample((s,)), q_tau.sample((s,))
        log_q = log_q + log_q_w + q_b.log_prob(b).sum(-1) + q_alpha.log_prob(alpha).sum(-1)
        log_q = log_q + q_tau.log_prob(tau)
        prior = d.Gamma(
            torch.tensor(a0, dtype=torch.float64), torch.tensor(b0, dtype=torch.float64)
        )
        log_p = log_p + prior.log_prob(alpha).sum(-1) + prior.log_prob(tau)
        log_p = log_p + d.Normal(0.0, 1.0).log_prob(b).sum(-1)
        log_p = log_p + d.Normal(0.0, alpha[:, None, :].rsqrt()).log_prob(w).sum((-1, -2))
        if name == "x":  # missing entries are latent with q = N(<x>, 1/<tau>)
            q_miss = d.Normal(view.x_mean, 1 / q.tau.mean.sqrt())
            data = torch.where(observed, view.x_mean, q_miss.sample((s,)))
            log_q = log_q + torch.where(~observed, q_miss.log_prob(data), 0.0).sum((-1, -2))
        else:  # the latent view's q(x) belongs to its encoder: sampled, not scored
            data = h + h_var.sqrt() * torch.randn(s, 40, 3, dtype=torch.float64)
        mean = z @ w.transpose(1, 2) + b[:, None, :]
        log_p = log_p + d.Normal(mean, tau[:, None, None].rsqrt()).log_prob(data).sum((-1, -2))
    estimate = log_p - log_q
    standard_error = float(estimate.std() / s**0.5)
    assert abs(float(estimate.mean()) - model.bound()) < 4 * standard_error + 1e-6
    assert standard_error < 0.5  # the check has teeth


def test_replace_view_keeps_posteriors_and_refits_to_new_data():
    z, _, (x, h) = factor_data(n=200, dims=(10, 6), noise=0.3)
    var = torch.full_like(h, 0.01)
    model = fa.SSHIBA({"x": fa.Real(x), "h": fa.Latent(h, var)}, k=6).fit(n_iter=50)
    before, bound = model.prior_moments("h")[0].clone(), model.bound()
    model.replace_view("h", fa.Latent(h.clone(), var))  # the same data: nothing moves
    assert model.bound() == pytest.approx(bound, rel=1e-12)
    shifted = h + 3.0  # new encoder means: the prior of the view follows them
    model.replace_view("h", fa.Latent(shifted, var))
    model.fit(n_iter=20)
    after = model.prior_moments("h")[0]
    assert ((after - shifted) ** 2).mean() < 0.2 * ((before - shifted) ** 2).mean()
    with pytest.raises(ValueError, match="fitted as Latent, got Real"):
        model.replace_view("h", fa.Real(h))
    with pytest.raises(ValueError, match="shape.*same rows"):
        model.replace_view("h", fa.Latent(h[:10], var[:10]))
    with pytest.raises(ValueError, match="unknown view 'y'"):
        model.replace_view("y", fa.Latent(h, var))


def test_predict_with_a_subset_of_factors():
    _, _, (x, y) = factor_data(n=200, dims=(10, 6), noise=0.3)
    config = fa.FAConfig(prune=False)
    model = fa.SSHIBA({"x": fa.Real(x), "y": fa.Real(y)}, k=5, config=config).fit(n_iter=30)
    everything = torch.ones(model.k, dtype=torch.bool)
    torch.testing.assert_close(
        model.predict({"x": x[:9]}, "y", factors=everything), model.predict({"x": x[:9]}, "y")
    )
    none = model.predict({"x": x[:9]}, "y", factors=~everything)
    torch.testing.assert_close(none, model.q["y"].b_mean.expand(9, -1))
    some = torch.arange(model.k) < 2
    z_new = model.posterior_z({"x": x[:9]}).mean
    w, b = model.q["y"].W.mean, model.q["y"].b_mean
    torch.testing.assert_close(
        model.predict({"x": x[:9]}, "y", factors=some), z_new[:, :2] @ w[:, :2].T + b
    )
    with pytest.raises(ValueError, match=r"\(K,\) = \(5,\) bool mask"):
        model.predict({"x": x[:9]}, "y", factors=torch.ones(3, dtype=torch.bool))


def test_predict_from_a_real_and_a_binary_view_together():
    # the binary input's q(X) is refitted in a loop; the real input, given in full, is not
    z, _, (x, _) = factor_data(n=600, dims=(20, 5), shared=3, private=(0, 0), noise=0.3)
    labels = (z @ torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64) > 0).double()
    train, test = slice(0, 400), slice(400, 600)
    views = {
        "x": fa.Real(x[train, :10]),
        "t": fa.Binary(labels[train]),
        "y": fa.Real(x[train, 10:]),
    }
    model = fa.SSHIBA(views, k=10).fit(n_iter=100)
    both = model.predict({"x": x[test, :10], "t": labels[test]}, output="y")
    alone = model.predict({"x": x[test, :10]}, output="y")
    error_both = ((both - x[test, 10:]) ** 2).mean()
    assert error_both <= ((alone - x[test, 10:]) ** 2).mean() * 1.01
    # the loop ends once <Z_new> stops moving: all predict_iter sweeps give the same prediction
    model.config.predict_tol = 0.0
    every_sweep = model.predict({"x": x[test, :10], "t": labels[test]}, output="y")
    torch.testing.assert_close(both, every_sweep, rtol=0, atol=1e-5)


def test_grow_gives_a_pruned_layer_the_factors_its_new_data_need():
    # two latent views that first share one factor (encoders early in training), later three
    z, loadings, (x, y) = factor_data(n=300, dims=(10, 8), shared=3, private=(0, 0), noise=0.3)
    early = [v - z[:, 1:] @ w[:, 1:].T for v, w in zip((x, y), loadings, strict=True)]
    var = torch.full_like(x[:, :1], 0.05)
    model = fa.SSHIBA(
        {"x": fa.Latent(early[0], var.expand_as(x)), "y": fa.Latent(early[1], var.expand_as(y))},
        k=8,
    ).fit(n_iter=200)
    assert model.k == 1
    model.replace_view("x", fa.Latent(x, var.expand_as(x)))
    model.replace_view("y", fa.Latent(y, var.expand_as(y)))
    model.fit(n_iter=100)
    assert model.k == 1  # a pruned factor never returns by itself
    assert model.grow(model.k) == 0
    assert model.grow(8) == 7 and model.k == 8
    model.fit(n_iter=200)
    shared = (model.activity() > 0.05).all(0)
    assert model.k == int(shared.sum()) == 3
    learned = torch.cat([model.q["x"].W.mean, model.q["y"].W.mean])
    assert principal_angle_deg(learned, torch.cat(loadings)) < 10.0
    with pytest.raises(ValueError, match="positive number of factors"):
        model.grow(0)


def test_for_prediction_predicts_as_the_full_layer_without_its_training_rows():
    gen = torch.Generator().manual_seed(3)
    z, _, (x, _) = factor_data(n=300, dims=(10, 8))
    labels = (z[:, 0] > 0).long() + (z[:, 1] > 0).long()  # 3 classes
    views = {"x": fa.Real(x), "t": fa.Categorical(labels), "b": second_view("multilabel", z, gen)}
    model = fa.SSHIBA(views, k=6).fit(n_iter=100)
    small = model.for_prediction()
    new = x[:7] + 0.01
    for output in ("t", "b"):
        torch.testing.assert_close(
            small.predict({"x": new}, output), model.predict({"x": new}, output)
        )
    torch.testing.assert_close(small.activity(), model.activity())
    assert small.k == model.k and small.q_z.mean.shape == (0, model.k)
    rows = [
        t.untyped_storage().nbytes()
        for v in small.views.values()
        for t in vars(v).values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    ]
    assert max(rows) == 0  # no storage of the training rows rides along into a checkpoint
    with pytest.raises(RuntimeError, match="no training rows"):
        small.fit(n_iter=1)
    with pytest.raises(RuntimeError, match="no training rows"):
        small.grow(model.k + 1)
    model.step()  # the full layer trains on, and the copy's posteriors do not move with it
    assert not torch.equal(small.q["x"].W.mean, model.q["x"].W.mean)
