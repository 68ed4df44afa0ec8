"""Chapters 2 and 3 (the bound and its split): the sympy steps they display, with verdicts."""

from __future__ import annotations

import sympy as sp

from .posterior import beta_tilde, mu_tilde
from .verdict import Step, abar_prev, abar_t, alpha_t, beta_t, check_identity, gaussian_kl, log_normal, x_0, x_prev, x_t

__all__ = [
    "elbo_log_of_product", "log_concavity",
    "telescoping_product", "telescoping_sum_reference", "gaussian_kl_by_integration",
    "kl_reference_first_line", "kl_corrected_first_line", "joint_both_ways",
]

# ----------------------------------------------------------------------------- chapter 02: the bound
def elbo_log_of_product(T: int = 3) -> Step:
    """−log[p(x_T) ∏_t r_t] = −log p(x_T) − Σ_t log r_t: the bound's second step is an equality.

    ``r_t`` stands for the ratio p_θ(x_{t−1}|x_t)/q(x_t|x_{t−1}), positive like any ratio of
    densities; the step is the log of a product, so it holds for every sample, not only on
    average.
    """
    p_T = sp.Symbol("p(x_{T})", positive=True)  # braces: "x_T)" would subscript the ")"
    r = sp.symbols(f"r_1:{T + 1}", positive=True)
    lhs = -sp.log(p_T * sp.Mul(*r))
    return check_identity("log of a product is a sum of logs", lhs, -sp.log(p_T) - sum(sp.log(ri) for ri in r))


def log_concavity() -> Step:
    """d²/dw² log w = −1/w² < 0, which is why Jensen's inequality bounds −log E[w] by E[−log w]."""
    w = sp.Symbol("w", positive=True)
    # Unevaluated, so the step shows (and sympy checks) the derivative, not its value twice.
    return check_identity("second derivative of log w", sp.Derivative(sp.log(w), (w, 2)), -1 / w**2)


# ----------------------------------------------------------------------------- chapter 03: the split
def _marginals(T: int) -> tuple[sp.Symbol, ...]:
    """q_t stands for the value q(x_t | x_0) > 0 of the marginal density at the sampled x_t."""
    return sp.symbols(f"q_1:{T + 1}", positive=True)


def telescoping_product(T: int = 4) -> Step:
    """∏_{t=2}^T q(x_{t−1}|x_0)/q(x_t|x_0) · 1/q(x_1|x_0) = 1/q(x_T|x_0) (eq. ``kl-telescope``).

    The product is kept unevaluated: sympy would otherwise cancel it while building it,
    and the step would compare 1/q_T with itself.
    """
    q = _marginals(T)
    lhs = sp.Mul(*(q[t - 2] / q[t - 1] for t in range(2, T + 1)), 1 / q[0], evaluate=False)
    return check_identity(f"telescoping product, T={T}", lhs, 1 / q[-1])


def telescoping_sum_reference(T: int = 4) -> Step:
    """The reference's Σ_{t>1} q(x_{t−1}|x_0)/q(x_t|x_0) · 1/q(x_1|x_0) = 1/q(x_T|x_0): false."""
    q = _marginals(T)
    lhs = sum(q[t - 2] / q[t - 1] for t in range(2, T + 1)) / q[0]
    point = dict(zip(q, (sp.Rational(1, 2), sp.Rational(1, 4), sp.Rational(1, 8), sp.Rational(1, 16))))
    return check_identity(f"reference: telescoping sum, T={T}", lhs, 1 / q[-1], points=[point])


def joint_both_ways() -> Step:
    """q(x_t|x_{t−1}) q(x_{t−1}|x_0) = q(x_t|x_0) q(x_{t−1}|x_t, x_0), as log-densities.

    The joint of (x_{t−1}, x_t) given x_0, factored the way the chain draws it (left) and the
    other way round (right), with the posterior of eqs. ``posterior-variance`` and
    ``posterior-mean``.  This is what lets the tower rule average x_{t−1} given x_t (eq.
    ``kl-tower``).
    """
    chain_order = (log_normal(x_t, sp.sqrt(alpha_t) * x_prev, beta_t)
                   + log_normal(x_prev, sp.sqrt(abar_prev) * x_0, 1 - abar_prev))
    reversed_order = log_normal(x_t, sp.sqrt(abar_t) * x_0, 1 - abar_t) + log_normal(x_prev, mu_tilde, beta_tilde)
    return check_identity("the joint of xₜ₋₁ and xₜ, factored both ways", chain_order, reversed_order)


_m1, _m2 = sp.symbols("mu_1 mu_2", real=True)
_v1, _v2 = sp.symbols("sigma_1^2 sigma_2^2", positive=True)
_KL_POINT = {_m1: 0, _m2: 0, _v1: 1, _v2: 1}  # p = q: every divergence must vanish here


def _expect_under_p(f_of_x) -> sp.Expr:
    """E_{x∼N(μ_1, σ_1²)}[f(x)] by integrating over z with x = μ_1 + σ_1 z."""
    z = sp.Symbol("z", real=True)
    integrand = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi) * sp.expand(f_of_x(_m1 + sp.sqrt(_v1) * z))
    return sp.simplify(sp.integrate(sp.expand(integrand), (z, -sp.oo, sp.oo)))


def gaussian_kl_by_integration() -> Step:
    """∫ p log(p/q) for p = N(μ_1, σ_1²), q = N(μ_2, σ_2²), integrated by sympy, against eq. ``gaussian-kl``."""
    integral = _expect_under_p(lambda x: sp.expand_log(log_normal(x, _m1, _v1) - log_normal(x, _m2, _v2), force=True))
    return check_identity("Gaussian KL: integral = closed form", integral, gaussian_kl(_m1, _v1, _m2, _v2))


def kl_reference_first_line() -> Step:
    """The reference's ∫p log q − (−∫p log p) against the KL: false (sign of the first term)."""
    integral = _expect_under_p(lambda x: sp.expand_log(log_normal(x, _m2, _v2) + log_normal(x, _m1, _v1), force=True))
    return check_identity("reference: KL first line", integral, gaussian_kl(_m1, _v1, _m2, _v2), points=[_KL_POINT])


def kl_corrected_first_line() -> Step:
    """−∫p log q + ∫p log p, the corrected first line, equals the KL."""
    integral = _expect_under_p(lambda x: sp.expand_log(-log_normal(x, _m2, _v2) + log_normal(x, _m1, _v1), force=True))
    return check_identity("KL first line, corrected", integral, gaussian_kl(_m1, _v1, _m2, _v2))
