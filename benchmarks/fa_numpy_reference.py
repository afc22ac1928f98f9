"""A straightforward numpy transcription of SSHIBA's mean-field updates: the speed reference.

Real views and binary (Jaakkola-Jordan) views, no missing data, no pruning, no rotation: the
same sweep as `vaebook.fa.SSHIBA.step` with `FAConfig(prune=False, rotate=False)`, written the
obvious way (explicit residual matrices, `np.linalg.inv`), so that the two can be timed against
each other and their lower bounds compared.
"""

import numpy as np
from scipy.special import digamma, gammaln, log_expit

LOG_2PI = np.log(2 * np.pi)


def gamma_kl(a, b, a0, b0):
    """KL(Gamma(a, b) || Gamma(a0, b0)), rate parametrisation, summed."""
    kl = (a - a0) * digamma(a) - gammaln(a) + gammaln(a0) + a0 * (np.log(b) - np.log(b0))
    return np.sum(kl + a * (b0 - b) / b)


def jj_lambda(xi):
    return np.tanh(xi / 2) / (4 * xi)


class ReferenceSSHIBA:
    """views: list of (kind, data) with kind "real" or "binary"; z0: initial <Z> (N, K)."""

    def __init__(self, views, z0, a0=1e-14, b0=1e-14):
        self.a0, self.b0 = a0, b0
        n, k = z0.shape
        self.z, self.z_cov = z0.copy(), np.eye(k)
        self.views = []
        for kind, data in views:
            v = {"kind": kind, "t": data, "D": data.shape[1]}
            if kind == "real":
                v["x"], v["x_var"] = data, np.zeros_like(data)
            else:
                v["xi"] = np.ones_like(data)
                self.update_binary(v, np.zeros_like(data), 1.0)
            d = v["D"]
            v["w"], v["w_cov"] = np.zeros((d, k)), np.eye(k)
            v["b"], v["b_var"] = v["x"].mean(0), 1.0
            v["alpha_a"] = np.full(k, a0 + d / 2)
            v["alpha_b"] = v["alpha_a"] / 1.0
            v["tau_a"] = a0 + n * d / 2
            v["tau_b"] = v["tau_a"] * v["x"].var(0, ddof=1).mean()
            self.views.append(v)

    def update_binary(self, v, mean, tau):
        lam = jj_lambda(v["xi"])
        v["x_var"] = 1 / (tau + 2 * lam)
        v["x"] = v["x_var"] * (tau * mean + v["t"] - 0.5)
        v["xi"] = np.sqrt(v["x"] ** 2 + v["x_var"])

    def expected_sse(self, v):
        """E[sum (x - W z - b)^2] as residual plus the variance of every factor."""
        n, d = v["x"].shape
        residual = v["x"] - self.z @ v["w"].T - v["b"]
        ww = v["w"].T @ v["w"] + d * v["w_cov"]
        return (
            np.sum(residual**2)
            + np.sum(v["x_var"])
            + n * np.trace(ww @ self.z_cov)
            + d * np.trace(v["w_cov"] @ (self.z.T @ self.z))
            + n * d * v["b_var"]
        )

    def step(self):
        n, k = self.z.shape
        zz = self.z.T @ self.z + n * self.z_cov
        for v in self.views:
            d = v["D"]
            tau = v["tau_a"] / v["tau_b"]
            alpha = v["alpha_a"] / v["alpha_b"]
            v["w_cov"] = np.linalg.inv(np.diag(alpha) + tau * zz)
            v["w"] = tau * (v["x"] - v["b"]).T @ self.z @ v["w_cov"]
            v["b_var"] = 1 / (1 + n * tau)
            v["b"] = v["b_var"] * tau * np.sum(v["x"] - self.z @ v["w"].T, axis=0)
            ww = v["w"].T @ v["w"] + d * v["w_cov"]
            v["alpha_a"] = np.full(k, self.a0 + d / 2)
            v["alpha_b"] = self.b0 + np.diag(ww) / 2
            v["tau_b"] = self.b0 + self.expected_sse(v) / 2
            if v["kind"] == "binary":
                self.update_binary(v, self.z @ v["w"].T + v["b"], v["tau_a"] / v["tau_b"])
        precision = np.eye(k)
        rhs = np.zeros((n, k))
        for v in self.views:
            tau = v["tau_a"] / v["tau_b"]
            precision += tau * (v["w"].T @ v["w"] + v["D"] * v["w_cov"])
            rhs += tau * (v["x"] - v["b"]) @ v["w"]
        self.z_cov = np.linalg.inv(precision)
        self.z = rhs @ self.z_cov

    def bound(self):
        n, k = self.z.shape
        total = -0.5 * np.trace(self.z.T @ self.z + n * self.z_cov) - 0.5 * n * k * LOG_2PI
        total += 0.5 * n * (k * (1 + LOG_2PI) + np.linalg.slogdet(self.z_cov)[1])
        for v in self.views:
            d = v["D"]
            ww = v["w"].T @ v["w"] + d * v["w_cov"]
            alpha = v["alpha_a"] / v["alpha_b"]
            log_alpha = digamma(v["alpha_a"]) - np.log(v["alpha_b"])
            total += 0.5 * d * np.sum(log_alpha) - 0.5 * np.sum(alpha * np.diag(ww))
            total += -0.5 * d * k * LOG_2PI
            total += 0.5 * d * (k * (1 + LOG_2PI) + np.linalg.slogdet(v["w_cov"])[1])
            total += -0.5 * (v["b"] @ v["b"] + d * v["b_var"]) + 0.5 * d * (1 + np.log(v["b_var"]))
            total -= gamma_kl(v["alpha_a"], v["alpha_b"], self.a0, self.b0)
            tau = v["tau_a"] / v["tau_b"]
            log_tau = digamma(v["tau_a"]) - np.log(v["tau_b"])
            total += 0.5 * n * d * (log_tau - LOG_2PI) - 0.5 * tau * self.expected_sse(v)
            total -= gamma_kl(v["tau_a"], v["tau_b"], self.a0, self.b0)
            if v["kind"] == "binary":  # JJ bound at xi^2 = E[x^2], plus the entropy of q(x)
                xi = v["xi"]
                total += np.sum(log_expit(xi) - xi / 2 + (v["t"] - 0.5) * v["x"])
                total += 0.5 * np.sum(1 + LOG_2PI + np.log(v["x_var"]))
        return total
