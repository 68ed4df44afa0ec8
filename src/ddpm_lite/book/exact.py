"""Diffusions where everything the bound talks about is exact: linear-Gaussian chains.

The forward process is the DDPM chain q of a :class:`NoiseSchedule`; the reverse model is
linear-Gaussian, p_θ(x_{t−1}|x_t) = N(a_t x_t + b_t, s_t²) with p(x_T) = N(0, 1).  Every
joint, marginal and conditional of both chains is then Gaussian, so log p_θ(x_0), the
bound L, its terms and its gap KL(q(x_{1:T}|x_0) ‖ p_θ(x_{1:T}|x_0)) have closed forms.

Two uses in the book:

* chapters 2 and 3 take a short chain and one data point x_0 and compare the closed forms
  with each other and with Monte-Carlo (:class:`LinearGaussianChain`);
* chapter 10 takes data x_0 ~ N(0, s²) per dimension.  Then q is Gaussian at every step,
  the best ε-predictor is linear in x_t (:func:`optimal_eps_coef`), and the reverse chain
  it defines is a :class:`LinearGaussianChain` (:meth:`LinearGaussianChain.from_eps_coef`)
  whose NLL and bound are exact (:func:`exact_gaussian_nll`, :func:`exact_gaussian_bound`).

All arithmetic is float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import checks
from ..diffusion import GaussianDiffusion
from ..gaussian import LOG_2PI
from ..schedule import NoiseSchedule

__all__ = ["LinearGaussianChain", "log_normal_pdf", "gaussian_kl_1d", "optimal_eps_coef", "optimal_simple_loss",
           "LinearEps", "exact_gaussian_nll", "exact_gaussian_bound", "posterior_importance_sample",
           "effective_sample_size"]


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

    def marginal_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Means and variances (each length T + 1) of the marginals p_θ(x_t), from p(x_T) = N(0, 1) down.

        x_{t−1} = a_t x_t + b_t + s_t z: mean_{t−1} = a_t mean_t + b_t, var_{t−1} = a_t² var_t + s_t².
        O(T), so it serves chains of any length; index 0 is the model's p_θ(x_0).
        """
        T = self.T
        mean, var = np.zeros(T + 1), np.zeros(T + 1)
        var[T] = 1.0
        for t in range(T, 0, -1):
            mean[t - 1] = self.a[t] * mean[t] + self.b[t]
            var[t - 1] = self.a[t] ** 2 * var[t] + self.s2[t]
        return mean, var

    def p_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (T + 1,) and covariance (T + 1, T + 1) of p_θ(x_{0:T}) (builds a matrix: keep T small).

        The diagonal is :meth:`marginal_moments`; below it, x_{t−1} depends on later states only
        through a_t x_t, so Cov(x_{t−1}, x_u) = a_t Cov(x_t, x_u) for u ≥ t.
        """
        mean, var = self.marginal_moments()
        cov = np.diag(var)
        for t in range(self.T, 0, -1):
            cov[t - 1, t:] = cov[t:, t - 1] = self.a[t] * cov[t, t:]
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

    def expected_terms(self, x0_mean: float, x0_second_moment: float) -> dict[str, np.ndarray | float]:
        """E_q of the split's terms (eq. ``kl-split``) when x_0 has the given first two moments.

        Every term is an expected quadratic in (x_0, ε) with x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, so two
        moments of x_0 suffice: a fixed point x_0 has moments (x_0, x_0²); data N(0, s²) has (0, s²).

        * L_T = KL(q(x_T|x_0) ‖ N(0, 1)) averaged: ½(ᾱ_T E[x_0²] + 1 − ᾱ_T − 1 − log(1 − ᾱ_T));
        * L_{t−1}, t ≥ 2: ½[log(s_t²/β̃_t) + β̃_t/s_t² − 1 + E(μ̃_t − a_t x_t − b_t)²/s_t²], where
          μ̃_t − a_t x_t − b_t = A x_0 + B ε − b_t with A = c0_t + (ct_t − a_t)√ᾱ_t, B = (ct_t − a_t)√(1 − ᾱ_t);
        * L_0 = ½ log(2π s_1²) + E(x_0 − a_1 x_1 − b_1)²/(2 s_1²) (continuous decoder).

        Returns ``L_T`` (float), ``L_{t-1}`` (array, t = 2..T) and ``L_0`` (float), in nats.
        """
        s, T = self.schedule, self.T
        m1, m2 = float(x0_mean), float(x0_second_moment)

        def mean_square(A, B, b):  # E(A x_0 + B ε − b)², ε independent of x_0
            return A**2 * m2 + B**2 - 2.0 * A * b * m1 + b**2

        t = np.arange(1, T + 1)
        slope = s.posterior_mean_coef_xt[t] - self.a[t]
        sq = mean_square(s.posterior_mean_coef_x0[t] + slope * s.sqrt_alpha_bars[t],
                         slope * s.sqrt_one_minus_alpha_bars[t], self.b[t])[1:]
        v1, v2 = s.posterior_variance[t[1:]], self.s2[t[1:]]
        l_mid = 0.5 * (np.log(v2 / v1) + (v1 + sq) / v2 - 1.0)
        aT = s.alpha_bars[T]
        l_T = 0.5 * (aT * m2 + s.one_minus_alpha_bars[T] - 1.0 - math.log(s.one_minus_alpha_bars[T]))
        err = mean_square(1.0 - self.a[1] * s.sqrt_alpha_bars[1], self.a[1] * s.sqrt_one_minus_alpha_bars[1], self.b[1])
        l_0 = 0.5 * (LOG_2PI + math.log(self.s2[1])) + err / (2.0 * self.s2[1])
        return {"L_T": float(l_T), "L_{t-1}": l_mid, "L_0": float(l_0)}

    def split_expected(self, x0: float) -> dict[str, np.ndarray | float]:
        """E_q of the split's terms for one data point x_0 (:meth:`expected_terms` with moments x_0, x_0²)."""
        return self.expected_terms(x0, x0 * x0)

    @classmethod
    def from_eps_coef(cls, diffusion: GaussianDiffusion, coef: np.ndarray) -> "LinearGaussianChain":
        """The reverse chain of a linear ε-model ε(x_t, t) = k_t x_t under ``diffusion``.

        Each step is x_{t−1} = a_t x_t + σ_t z with a_t = (1 − β_t k_t/√(1 − ᾱ_t))/√α_t (the
        ε-form of μ_θ, eq. ``eps-param``), b_t = 0 and σ_t² the diffusion's ``model_variance``.
        """
        s = diffusion.schedule
        k = np.asarray(coef, dtype=np.float64)
        if k.shape != (s.T + 1,):
            raise ValueError(f"coef must have length T + 1 = {s.T + 1} (index = timestep), got shape {k.shape}.")
        denom = s.sqrt_one_minus_alpha_bars.copy()
        denom[0] = 1.0
        a = (1.0 - s.betas * k / denom) / s.sqrt_alphas
        a[0] = 1.0
        return cls(s, a=a, b=np.zeros(s.T + 1), s2=np.array(diffusion.model_variance, dtype=np.float64))


# ---------------------------------------------------------------------------- data x_0 ~ N(0, s²)
def _check_s2(s2: float) -> float:
    return checks.number("s2", s2, 0.0, lo_open=True, hint="(s2 is the variance of the data x_0.)")


def optimal_eps_coef(schedule: NoiseSchedule, s2: float) -> np.ndarray:
    """k_t with ε*(x_t, t) = k_t x_t, the MMSE ε-predictor for data x_0 ~ N(0, s²) (float64, length T + 1).

    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε is jointly Gaussian with ε, so
    E[ε | x_t] = Cov(ε, x_t)/Var(x_t) · x_t = √(1 − ᾱ_t)/(ᾱ_t s² + 1 − ᾱ_t) · x_t.
    Index 0 (clean data) is 0.
    """
    s2 = _check_s2(s2)
    a, one_minus = schedule.alpha_bars, schedule.one_minus_alpha_bars
    return np.sqrt(one_minus) / (a * s2 + one_minus)


def optimal_simple_loss(schedule: NoiseSchedule, s2: float) -> np.ndarray:
    """E‖ε − ε*(x_t, t)‖² per dimension for x_0 ~ N(0, s²): the floor of L_simple at each t.

    The residual variance of regressing ε on x_t: 1 − (1 − ᾱ_t)/(ᾱ_t s² + 1 − ᾱ_t)
    = ᾱ_t s²/(ᾱ_t s² + 1 − ᾱ_t).  Float64, length T + 1; index 0 is 1 (x_0 carries no
    information about ε).
    """
    s2 = _check_s2(s2)
    a, one_minus = schedule.alpha_bars, schedule.one_minus_alpha_bars
    return a * s2 / (a * s2 + one_minus)


class LinearEps(nn.Module):
    """The ε-model ε(x_t, t) = k_t x_t for a table k (length T + 1), e.g. :func:`optimal_eps_coef`."""

    def __init__(self, coef: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("coef", torch.as_tensor(np.asarray(coef, dtype=np.float64)))

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        k = self.coef.to(xt.dtype)[t.to(self.coef.device)].to(xt.device)
        return k.view(-1, *([1] * (xt.dim() - 1))) * xt


def exact_gaussian_nll(diffusion: GaussianDiffusion, coef: np.ndarray, s2: float) -> float:
    """E_{x_0 ~ N(0, s²)}[−log p_θ(x_0)] in nats per dimension, exactly.

    p_θ(x_0) = N(0, v_0) (the x_0-marginal of :meth:`LinearGaussianChain.from_eps_coef`), so the
    expectation is ½ log(2π v_0) + s²/(2 v_0).  It is ≥ the data entropy ½ log(2π e s²), with
    equality iff v_0 = s².
    """
    s2 = _check_s2(s2)
    v0 = LinearGaussianChain.from_eps_coef(diffusion, coef).marginal_moments()[1][0]
    return 0.5 * (LOG_2PI + math.log(v0)) + s2 / (2.0 * v0)


def exact_gaussian_bound(diffusion: GaussianDiffusion, coef: np.ndarray, s2: float) -> dict:
    """The bound L_T + Σ_{t≥2} L_{t−1} + L_0 for x_0 ~ N(0, s²), in nats per dimension, exactly.

    :meth:`LinearGaussianChain.expected_terms` of the chain of ε(x_t, t) = k_t x_t with data
    moments (0, s²).  Returns ``prior`` (L_T), ``terms`` (array of length T, L_{t−1} at index
    t − 1, so ``terms[0]`` is L_0) and ``total``.
    """
    s2 = _check_s2(s2)
    e = LinearGaussianChain.from_eps_coef(diffusion, coef).expected_terms(0.0, s2)
    terms = np.concatenate([[e["L_0"]], e["L_{t-1}"]])
    return {"prior": e["L_T"], "terms": terms, "total": float(e["L_T"] + terms.sum())}


# ---------------------------------------------------------------------------- the posterior by simulation
def posterior_importance_sample(
    schedule: NoiseSchedule, x0: float, xt: float, t: int, n: int = 20000, seed: int = 0,
    noise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples of x_{t−1} from q(x_{t−1} | x_0) with weights ∝ q(x_t | x_{t−1}) at the given x_t.

    By Bayes, q(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0) (the forward chain is
    Markov), so the weighted samples represent the posterior at exactly this x_t — no window
    around x_t is needed.  Returns (x_prev, weights) with weights summing to 1.  ``noise``
    (standard normal, length n) may be passed to reuse the same draws across calls.
    At t = 1, x_0 is known, so every sample is x_0 with weight 1/n.
    """
    s = schedule
    s.check_t(np.array([t]))
    if noise is None:
        noise = np.random.default_rng(seed).standard_normal(checks.integer("n", n, 1))
    x_prev = math.sqrt(s.alpha_bars[t - 1]) * x0 + math.sqrt(s.one_minus_alpha_bars[t - 1]) * noise
    log_w = -((xt - math.sqrt(s.alphas[t]) * x_prev) ** 2) / (2.0 * s.betas[t])
    w = np.exp(log_w - log_w.max())  # shift before exp: the largest weight is 1, none overflows
    return x_prev, w / w.sum()


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size 1/Σw² for normalized weights."""
    return float(1.0 / np.sum(w * w))
