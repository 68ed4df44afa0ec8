"""Chapter 5 (the reverse process and L_{t−1}): the ε-parameterisation, the loss weight, the t = 1 decoder."""

from __future__ import annotations

import sympy as sp

from .posterior import beta_tilde, mu_tilde, mu_tilde_eps, x_0_of_eps, x_t_of_eps
from .verdict import (Step, abar_prev, abar_t, alpha_t, beta_t, check_identity, eps, eps_theta, gaussian_kl, log_normal,
                      mu_theta, sigma2, x_0, x_t)

__all__ = [
    "mu_theta_eps", "loss_weight", "loss_weight_reference", "kl_constant", "reverse_steps", "reference_loss_weight",
    "mean_difference", "noise_prediction_lines", "noise_prediction_steps", "decoder_gaussian_at_t1",
]

# ----------------------------------------------------------------------------- chapter 05: L_{t−1}
#: μ_θ(x_t, t) = (x_t − β_t/√(1 − ᾱ_t) ε_θ)/√α_t (eq. ``eps-param``).
mu_theta_eps = (x_t - beta_t / sp.sqrt(1 - abar_t) * eps_theta) / sp.sqrt(alpha_t)
#: λ_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)), the weight of ‖ε − ε_θ‖² in L_{t−1} (eq. ``eps-weight``).
loss_weight = beta_t**2 / (2 * sigma2 * alpha_t * (1 - abar_t))
#: The reference's weight β_t / (2 σ_t² α_t (1 − ᾱ_{t−1})).
loss_weight_reference = beta_t / (2 * sigma2 * alpha_t * (1 - abar_prev))
#: C = ½(β̃_t/σ_t² − 1 − log(β̃_t/σ_t²)) per dimension: the part of L_{t−1} without μ_θ (eq. ``Lt-constant``).
kl_constant = (beta_tilde / sigma2 - 1 - sp.log(beta_tilde / sigma2)) / 2
#: μ̃_t − μ_θ = β_t/(√α_t √(1 − ᾱ_t)) (ε_θ − ε) (eq. ``mean-difference``).
mean_difference = beta_t / (sp.sqrt(alpha_t) * sp.sqrt(1 - abar_t)) * (eps_theta - eps)


def noise_prediction_lines() -> list[tuple[str, sp.Expr, sp.Expr]]:
    """Chapter 5's lines from the two means to the loss weight, as (name, lhs, rhs).

    The first starts from definitions: the posterior mean in its x_0-form with x_0 written
    through ε (eq. ``x0-from-eps``), minus the model's mean (eq. ``eps-param``).
    """
    difference = mu_tilde.subs(x_0, x_0_of_eps) - mu_theta_eps
    return [
        ("μ̃ₜ − μ_θ is a multiple of ε_θ − ε", difference, mean_difference),
        ("it vanishes when ε_θ = ε", difference.subs(eps_theta, eps), sp.Integer(0)),
        ("squared and divided by 2σₜ²", mean_difference**2 / (2 * sigma2), loss_weight * (eps - eps_theta) ** 2),
    ]


def noise_prediction_steps() -> list[Step]:
    """The verdict on each line of :func:`noise_prediction_lines`."""
    return [check_identity(name, lhs, rhs) for name, lhs, rhs in noise_prediction_lines()]


def decoder_gaussian_at_t1() -> Step:
    """−log N(x_0; μ_θ(x_1, 1), σ_1²) = β_1/(2σ_1² α_1 (1 − ᾱ_1)) (ε − ε_θ)² + ½ log(2πσ_1²).

    At t = 1, ᾱ_1 = α_1 (ᾱ_0 = 1) and x_1 = √α_1 x_0 + √β_1 ε.  The Gaussian behind the
    decoder L_0, in ε-form, is the same weighted noise error as every L_{t−1} (eq.
    ``eps-weight`` at t = 1) plus a constant: why L_simple's t = 1 term stands in for L_0
    (eq. ``l-simple``).
    """
    at_1 = {abar_t: alpha_t}
    x_1 = x_t_of_eps.subs(at_1)
    mu_1 = mu_theta_eps.subs(at_1).subs(x_t, x_1)
    rhs = loss_weight.subs(at_1) * (eps - eps_theta) ** 2 + sp.log(2 * sp.pi * sigma2) / 2
    return check_identity("t = 1: the decoder's Gaussian in ε-form", -log_normal(x_0, mu_1, sigma2), rhs)


def reverse_steps() -> list[Step]:
    """The chapter-05 identities: the KL with a fixed variance, and the ε-weight."""
    kl = gaussian_kl(mu_tilde, beta_tilde, mu_theta, sigma2)
    sq = (mu_tilde_eps - mu_theta_eps) ** 2 / (2 * sigma2)
    # The substitutions stay unevaluated: sympy would cancel them on the spot, and the
    # steps would compare the result with itself.
    with sp.evaluate(False):
        c_at_beta_tilde = kl_constant.subs(sigma2, beta_tilde)  # u − 1 − log u at u = 1
        weight_at_beta_tilde = loss_weight.subs(sigma2, beta_tilde)
    return [
        check_identity("KL with fixed reverse variance", kl, (mu_tilde - mu_theta) ** 2 / (2 * sigma2) + kl_constant),
        check_identity("C vanishes when σₜ² = β̃ₜ", c_at_beta_tilde, sp.Integer(0)),
        check_identity("ε-weight", sq, loss_weight * (eps - eps_theta) ** 2),
        check_identity("with σₜ² = β̃ₜ the weight is βₜ/(2αₜ(1 − ᾱₜ₋₁))",
                       weight_at_beta_tilde, beta_t / (2 * alpha_t * (1 - abar_prev))),
    ]


def reference_loss_weight() -> Step:
    """The reference's weight β_t/(2σ_t² α_t(1 − ᾱ_{t−1})) against eq. ``eps-weight``: false."""
    return check_identity("reference: ε-weight", loss_weight_reference, loss_weight,
                          points=[{alpha_t: sp.Rational(9, 10), abar_prev: sp.Rational(1, 2), sigma2: sp.Rational(1, 10)}])
