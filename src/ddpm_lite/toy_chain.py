"""A one-dimensional diffusion where everything the bound talks about is exact.

The forward process is the DDPM chain q of a :class:`NoiseSchedule`; the reverse model is
linear-Gaussian, p_θ(x_{t−1}|x_t) = N(a_t x_t + b_t, s_t²) with p(x_T) = N(0, 1).  Every
joint, marginal and conditional of both chains is then Gaussian, so log p_θ(x_0), the
bound L and its gap KL(q(x_{1:T}|x_0) ‖ p_θ(x_{1:T}|x_0)) have closed forms that chapters
02 and 03 compare with each other and with Monte-Carlo.  All arithmetic is float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np

from .schedule import NoiseSchedule

__all__ = ["LinearGaussianChain", "log_normal_pdf", "gaussian_kl_1d"]

LOG_2PI = math.log(2.0 * math.pi)


def log_normal_pdf(x: np.ndarray, mean: np.ndarray | float, var: np.ndarray | float) -> np.ndarray:
    """log N(x; mean, var), elementwise."""
    return -0.5 * (LOG_2PI + np.log(var) + (x - mean) ** 2 / var)


def gaussian_kl_1d(m1, v1, m2, v2) -> np.ndarray:
    """KL(N(m1, v1) ‖ N(m2, v2)) in nats (eq. ``gaussian-kl``), elementwise."""
    return 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def _mvn_kl(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    """KL(N(m1, c1) ‖ N(m2, c2)) for full covariances (the d-dimensional eq. ``gaussian-kl``)."""
    c2_inv = np.linalg.inv(c2)
    d = m1 - m2
    logdet = np.linalg.slogdet(c2)[1] - np.linalg.slogdet(c1)[1]
    return 0.5 * float(np.trace(c2_inv @ c1) + d @ c2_inv @ d - m1.size + logdet)


class LinearGaussianChain:
    """The forward chain of ``schedule`` and a linear-Gaussian reverse model, in 1-D.

    Parameters
    ----------
    schedule:
        The forward process; keep T small (the exact routes build T × T matrices).
    a, b, s2:
        Reverse-model parameters θ, arrays of length T + 1 indexed by t (index 0 unused):
        p_θ(x_{t−1}|x_t) = N(a_t x_t + b_t, s2_t).  The defaults a_t = √α_t, b_t = 0,
        s2_t = β_t are the exact reverse of the chain when x_0 ∼ N(0, 1), for which the
        bound is tight; any other choice leaves a gap.
    """

    def __init__(self, schedule: NoiseSchedule, a=None, b=None, s2=None) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}.")
        self.schedule, self.T = schedule, schedule.T
        defaults = {"a": schedule.sqrt_alphas, "b": np.zeros(self.T + 1), "s2": schedule.betas}
        for name, value in (("a", a), ("b", b), ("s2", s2)):
            arr = np.array(defaults[name] if value is None else value, dtype=np.float64)
            if arr.shape != (self.T + 1,):
                raise ValueError(f"{name} must have length T + 1 = {self.T + 1} (index t = timestep), got shape {arr.shape}.")
            setattr(self, name, arr)
        if not np.all(self.s2[1:] > 0):
            raise ValueError(f"every reverse variance s2_t (t ≥ 1) must be positive, got {self.s2[1:]}.")

    # ------------------------------------------------------------------ samples and per-sample terms
    def sample_q(self, x0: float, n: int, rng: np.random.Generator) -> np.ndarray:
        """n paths x_{0:T} of the forward chain started at x_0; shape (n, T + 1), column t = x_t."""
        s = self.schedule
        path = np.empty((n, self.T + 1))
        path[:, 0] = x0
        for t in range(1, self.T + 1):
            path[:, t] = s.sqrt_alphas[t] * path[:, t - 1] + s.sqrt_betas[t] * rng.standard_normal(n)
        return path

    def log_q(self, path: np.ndarray) -> np.ndarray:
        """log q(x_{1:T}|x_0) = Σ_t log q(x_t|x_{t−1}) per path (eq. ``elbo-forward``)."""
        s, t = self.schedule, np.arange(1, self.T + 1)
        return log_normal_pdf(path[:, 1:], s.sqrt_alphas[t] * path[:, :-1], s.betas[t]).sum(1)

    def log_p_joint(self, path: np.ndarray) -> np.ndarray:
        """log p_θ(x_{0:T}) = log p(x_T) + Σ_t log p_θ(x_{t−1}|x_t) per path (eq. ``elbo-joint``)."""
        t = np.arange(1, self.T + 1)
        reverse = log_normal_pdf(path[:, :-1], self.a[t] * path[:, 1:] + self.b[t], self.s2[t]).sum(1)
        return log_normal_pdf(path[:, -1], 0.0, 1.0) + reverse

    def split_terms(self, path: np.ndarray) -> dict[str, np.ndarray]:
        """The per-path terms of the split (eq. ``kl-split``) before taking expectations.

        ``L_T`` = −log p(x_T)/q(x_T|x_0); ``L_{t-1}`` (shape (n, T − 1), columns t = 2..T)
        = −log p_θ(x_{t−1}|x_t)/q(x_{t−1}|x_t, x_0), with the posterior taken from the
        schedule's arrays; ``L_0`` = −log p_θ(x_0|x_1).
        """
        s, T, x0 = self.schedule, self.T, path[:, :1]
        t = np.arange(2, T + 1)
        post_mean = s.posterior_mean_coef_x0[t] * x0 + s.posterior_mean_coef_xt[t] * path[:, 2:]
        log_post = log_normal_pdf(path[:, 1:-1], post_mean, s.posterior_variance[t])
        log_rev = log_normal_pdf(path[:, 1:-1], self.a[t] * path[:, 2:] + self.b[t], self.s2[t])
        log_qT = log_normal_pdf(path[:, -1], s.sqrt_alpha_bars[T] * path[:, 0], s.one_minus_alpha_bars[T])
        return {
            "L_T": -(log_normal_pdf(path[:, -1], 0.0, 1.0) - log_qT),
            "L_{t-1}": -(log_rev - log_post),
            "L_0": -log_normal_pdf(path[:, 0], self.a[1] * path[:, 1] + self.b[1], self.s2[1]),
        }

    # ------------------------------------------------------------------ exact quantities
    def q_moments(self, x0: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean (T,) and covariance (T, T) of q(x_{1:T}|x_0): Cov(x_s, x_t) = √(ᾱ_t/ᾱ_s)(1 − ᾱ_s), s ≤ t."""
        s, t = self.schedule, np.arange(1, self.T + 1)
        lo, hi = np.minimum.outer(t, t), np.maximum.outer(t, t)
        cov = np.sqrt(s.alpha_bars[hi] / s.alpha_bars[lo]) * s.one_minus_alpha_bars[lo]
        return s.sqrt_alpha_bars[t] * x0, cov

    def p_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (T + 1,) and covariance of p_θ(x_{0:T}), by running the linear recursion down from x_T."""
        T = self.T
        mean, cov = np.zeros(T + 1), np.zeros((T + 1, T + 1))
        cov[T, T] = 1.0
        for t in range(T, 0, -1):  # x_{t−1} = a_t x_t + b_t + noise, independent of what came before
            mean[t - 1] = self.a[t] * mean[t] + self.b[t]
            cov[t - 1, t:] = cov[t:, t - 1] = self.a[t] * cov[t, t:]
            cov[t - 1, t - 1] = self.a[t] ** 2 * cov[t, t] + self.s2[t]
        return mean, cov

    def log_p_x0(self, x0: float) -> float:
        """log p_θ(x_0), exact: the x_0-marginal of the reverse chain is N(mean_0, cov_00)."""
        mean, cov = self.p_moments()
        return float(log_normal_pdf(x0, mean[0], cov[0, 0]))

    def bound(self, x0: float) -> float:
        """L = E_q[−log p_θ(x_{0:T}) + log q(x_{1:T}|x_0)], exact, from the Gaussian moments (eq. ``elbo-bound``)."""
        mq, cq = self.q_moments(x0)
        mp, cp = self.p_moments()
        m_bar = np.concatenate([[x0], mq])
        c_bar = np.zeros((self.T + 1, self.T + 1))
        c_bar[1:, 1:] = cq
        prec = np.linalg.inv(cp)
        d = m_bar - mp
        e_log_p = -0.5 * (np.linalg.slogdet(2 * math.pi * cp)[1] + np.trace(prec @ c_bar) + d @ prec @ d)
        e_log_q = -0.5 * np.linalg.slogdet(2 * math.pi * math.e * cq)[1]
        return float(-e_log_p + e_log_q)

    def gap(self, x0: float) -> float:
        """KL(q(x_{1:T}|x_0) ‖ p_θ(x_{1:T}|x_0)), exact, by conditioning the joint Gaussian on x_0 (eq. ``elbo-gap``)."""
        mq, cq = self.q_moments(x0)
        mp, cp = self.p_moments()
        gain = cp[1:, 0] / cp[0, 0]
        cond_mean = mp[1:] + gain * (x0 - mp[0])
        cond_cov = cp[1:, 1:] - np.outer(gain, cp[0, 1:])
        return _mvn_kl(mq, cq, cond_mean, cond_cov)

    def split_expected(self, x0: float) -> dict[str, np.ndarray | float]:
        """E_q of the split's terms in closed form: L_T and L_{t−1} as Gaussian KLs, L_0 as an expected log-density.

        For t ≥ 2 the mean gap μ̃_t − (a_t x_t + b_t) is linear in x_t ∼ q(x_t|x_0), so its
        expected square is (slope² Var + (slope·E + offset)²).
        """
        s, T = self.schedule, self.T
        t = np.arange(2, T + 1)
        slope = s.posterior_mean_coef_xt[t] - self.a[t]
        offset = s.posterior_mean_coef_x0[t] * x0 - self.b[t]
        mean_t, var_t = s.sqrt_alpha_bars[t] * x0, s.one_minus_alpha_bars[t]
        sq = slope**2 * var_t + (slope * mean_t + offset) ** 2
        v1, v2 = s.posterior_variance[t], self.s2[t]
        l_mid = 0.5 * (np.log(v2 / v1) + (v1 + sq) / v2 - 1.0)
        l_T = gaussian_kl_1d(s.sqrt_alpha_bars[T] * x0, s.one_minus_alpha_bars[T], 0.0, 1.0)
        m1, v_1 = s.sqrt_alpha_bars[1] * x0, s.one_minus_alpha_bars[1]
        # x_0 − a_1 x_1 − b_1 with x_1 ∼ q(x_1|x_0): mean x_0 − a_1 m_1 − b_1, variance a_1² v_1.
        l_0 = 0.5 * (LOG_2PI + math.log(self.s2[1]) + (self.a[1] ** 2 * v_1 + (x0 - self.a[1] * m1 - self.b[1]) ** 2) / self.s2[1])
        return {"L_T": float(l_T), "L_{t-1}": l_mid, "L_0": float(l_0)}
