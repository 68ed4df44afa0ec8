"""Chapter 4 (the forward-process posterior): β̃_t and μ̃_t by completing the square, each line
checked, and the reference's Appendix A refuted line by line."""

from __future__ import annotations

import sympy as sp

from .verdict import Step, abar_prev, abar_t, alpha_prev, alpha_t, beta_t, check_identity, eps, log_normal, to_free, \
    x_0, x_prev, x_t

__all__ = [
    "beta_tilde", "mu_tilde", "mu_tilde_eps", "x_t_of_eps", "x_0_of_eps", "forward_step_in_x_prev",
    "complete_the_square", "posterior_steps", "precision_P", "linear_B", "P_sym", "B_sym",
    "completing_the_square_lines", "completing_the_square_steps", "true_identity", "reference_appendix_a",
    "reference_mu_tilde_sqrt",
]

#: β̃_t = (1 − ᾱ_{t−1}) β_t / (1 − ᾱ_t) (eq. ``posterior-variance``).
beta_tilde = (1 - abar_prev) * beta_t / (1 - abar_t)
#: μ̃_t(x_t, x_0), x_0-form (eq. ``posterior-mean``).
mu_tilde = sp.sqrt(abar_prev) * beta_t / (1 - abar_t) * x_0 + sp.sqrt(alpha_t) * (1 - abar_prev) / (1 - abar_t) * x_t
#: μ̃_t in ε-form: (x_t − β_t/√(1 − ᾱ_t) ε)/√α_t (eq. ``posterior-mean-eps``).
mu_tilde_eps = (x_t - beta_t / sp.sqrt(1 - abar_t) * eps) / sp.sqrt(alpha_t)
#: x_t(x_0, ε) = √ᾱ_t x_0 + √(1 − ᾱ_t) ε and its inverse x_0(x_t, ε).
x_t_of_eps = sp.sqrt(abar_t) * x_0 + sp.sqrt(1 - abar_t) * eps
x_0_of_eps = (x_t - sp.sqrt(1 - abar_t) * eps) / sp.sqrt(abar_t)
#: P, the precision of the posterior in x_{t−1}, as the exponent's x_{t−1}² coefficient
#: gives it (eq. ``posterior-exponent``), and B, the x_{t−1} coefficient.
precision_P = alpha_t / beta_t + 1 / (1 - abar_prev)
linear_B = sp.sqrt(alpha_t) * x_t / beta_t + sp.sqrt(abar_prev) * x_0 / (1 - abar_prev)
#: The pieces of the exponent that do not involve x_{t−1}.
_EXPONENT_REST = (-sp.log(2 * sp.pi * beta_t) / 2 - sp.log(2 * sp.pi * (1 - abar_prev)) / 2
                  - x_t**2 / (2 * beta_t) - abar_prev * x_0**2 / (2 * (1 - abar_prev)))
#: Generic P > 0 and B for the completing-the-square step, so that it reads as on paper.
P_sym, B_sym = sp.Symbol("P", positive=True), sp.Symbol("B", real=True)


def forward_step_in_x_prev() -> Step:
    """N(x_t; √α_t x_{t−1}, β_t) = (1/√α_t) N(x_{t−1}; x_t/√α_t, β_t/α_t), as log-densities.

    Read as a function of x_{t−1}, the forward step is a Gaussian with mean x_t/√α_t and
    variance β_t/α_t, times the constant 1/√α_t (so it is not itself a density in x_{t−1}).
    """
    lhs = log_normal(x_t, sp.sqrt(alpha_t) * x_prev, beta_t)
    rhs = log_normal(x_prev, x_t / sp.sqrt(alpha_t), beta_t / alpha_t) - sp.log(alpha_t) / 2
    return check_identity("forward step as a function of xₜ₋₁", lhs, rhs)


def complete_the_square() -> dict[str, sp.Expr]:
    """Collect log q(x_t|x_{t−1}) + log q(x_{t−1}|x_0) as a quadratic in x_{t−1}, by machine.

    Returns the precision (−2 × the x_{t−1}² coefficient), the variance 1/precision and
    the mean (x_{t−1} coefficient / precision), each simplified, in the free symbols: the
    chapter's hand-written lines are checked against these.
    """
    log_joint = to_free(log_normal(x_t, sp.sqrt(alpha_t) * x_prev, beta_t)
                        + log_normal(x_prev, sp.sqrt(abar_prev) * x_0, 1 - abar_prev))
    poly = sp.Poly(sp.expand(log_joint), x_prev)
    precision = sp.factor(-2 * poly.coeff_monomial(x_prev**2))
    return {"precision": precision, "variance": sp.factor(1 / precision),
            "mean": sp.simplify(poly.coeff_monomial(x_prev) / precision)}


def completing_the_square_lines() -> list[tuple[str, sp.Expr, sp.Expr]]:
    """Chapter 4's pencil-and-paper lines from the exponent to β̃_t and μ̃_t, as (name, lhs, rhs).

    Each line's left side is the previous line's right side (or a definition), so a reader
    who checks each line has checked the chain (eqs. ``posterior-exponent`` to
    ``posterior-mean-lines``).  :func:`completing_the_square_steps` gives the verdicts; the
    tests mutate these lines to show that each check can fail.
    """
    x = x_prev
    common = (alpha_t * (1 - abar_prev) + beta_t) / (beta_t * (1 - abar_prev))
    numerator = sp.sqrt(alpha_t) * (1 - abar_prev) * x_t + sp.sqrt(abar_prev) * beta_t * x_0
    return [
        ("the exponent is a quadratic in xₜ₋₁",
         log_normal(x_t, sp.sqrt(alpha_t) * x, beta_t) + log_normal(x, sp.sqrt(abar_prev) * x_0, 1 - abar_prev),
         -precision_P / 2 * x**2 + linear_B * x + _EXPONENT_REST),
        ("completing the square",
         -P_sym / 2 * x**2 + B_sym * x, -P_sym / 2 * (x - B_sym / P_sym) ** 2 + B_sym**2 / (2 * P_sym)),
        ("P over a common denominator", precision_P, common),
        ("P by the identity for 1 − ᾱₜ", common, (1 - abar_t) / (beta_t * (1 - abar_prev))),
        ("β̃ = 1/P", 1 / precision_P, beta_tilde),
        ("μ̃ = B/P = B β̃", linear_B / precision_P, sp.Mul(linear_B, beta_tilde, evaluate=False)),
        ("multiply B through by βₜ(1 − ᾱₜ₋₁)", sp.Mul(linear_B, beta_tilde, evaluate=False), numerator / (1 - abar_t)),
        ("split into the coefficients of x₀ and xₜ", numerator / (1 - abar_t), mu_tilde),
    ]


def completing_the_square_steps() -> list[Step]:
    """The verdict on each line of :func:`completing_the_square_lines`."""
    return [check_identity(name, lhs, rhs) for name, lhs, rhs in completing_the_square_lines()]


def posterior_steps() -> list[Step]:
    """The machine's completed square against eqs. ``posterior-variance``, ``posterior-mean``,
    ``posterior-mean-eps``, and the whole density q(x_t|x_{t−1}) q(x_{t−1}|x_0) / q(x_t|x_0) =
    N(x_{t−1}; μ̃_t, β̃_t)."""
    square = complete_the_square()
    density_lhs = (log_normal(x_t, sp.sqrt(alpha_t) * x_prev, beta_t)
                   + log_normal(x_prev, sp.sqrt(abar_prev) * x_0, 1 - abar_prev)
                   - log_normal(x_t, sp.sqrt(abar_t) * x_0, 1 - abar_t))
    with sp.evaluate(False):  # the substitution written out, not already cancelled
        x_t_back = x_t_of_eps.subs(x_0, x_0_of_eps)
    return [
        check_identity("posterior precision", square["precision"], precision_P),
        check_identity("posterior variance", square["variance"], beta_tilde),
        check_identity("posterior mean, x₀-form", square["mean"], mu_tilde),
        check_identity("x₀ in terms of xₜ and ε", x_t_back, x_t),
        check_identity("posterior mean, ε-form", mu_tilde.subs(x_0, x_0_of_eps), mu_tilde_eps),
        check_identity("log-density identity", density_lhs, log_normal(x_prev, mu_tilde, beta_tilde)),
    ]


def true_identity() -> Step:
    """1 − ᾱ_t = (1 − ᾱ_{t−1}) + ᾱ_{t−1} β_t (eq. ``one-minus-abar``)."""
    return check_identity("1 − ᾱₜ, correct", 1 - abar_t, (1 - abar_prev) + abar_prev * beta_t)


def reference_appendix_a() -> dict[str, Step]:
    """The reference's route to β̃_t and μ̃_t: two errors that cancel, and its notation slips.

    * ``precision``: it adds 1/β_t (the precision of q(x_t|x_{t−1}) in x_t) instead of α_t/β_t
      (its precision in x_{t−1}).
    * ``identity``: it uses 1 − ᾱ_t = (1 − ᾱ_{t−1}) + β_t.
    * ``variance_before``: its variance before the identity, β_t(1 − ᾱ_{t−1})/(1 − ᾱ_{t−1} + β_t), is wrong…
    * ``variance_after``: …and its final line, after the false identity, is the variance the
      density itself gives (:func:`complete_the_square`, derived independently).
    * ``excess`` / ``identity_excess``: why: its denominator exceeds the true one,
      α_t(1 − ᾱ_{t−1}) + β_t, by β_t(1 − ᾱ_{t−1}), and its identity overstates 1 − ᾱ_t by
      exactly the same amount.
    * ``mean_before`` / ``mean_after``: the same for the mean (with x_{t−1} already swapped for x_t).
    * ``mean_sqrt_alpha_prev``: its last line writes √α_{t−1} where √ᾱ_{t−1} belongs.
    """
    wrong_denominator = (1 - abar_prev) + beta_t
    true_denominator = alpha_t * (1 - abar_prev) + beta_t
    wrong_variance = beta_t * (1 - abar_prev) / wrong_denominator
    wrong_mean = (sp.sqrt(alpha_t) * x_t * (1 - abar_prev) + sp.sqrt(abar_prev) * x_0 * beta_t) / wrong_denominator
    # Its lines after the false identity, as printed (with ᾱ read for its α̃).
    final_variance = (1 - abar_prev) / (1 - abar_t) * beta_t
    final_mean = (sp.sqrt(abar_prev) * beta_t / (1 - abar_t) * x_0
                  + sp.sqrt(alpha_t) * (1 - abar_prev) / (1 - abar_t) * x_t)
    # The reference's final mean line, with α_{t−1} where ᾱ_{t−1} belongs.
    final_mean_as_printed = (sp.sqrt(alpha_prev) * beta_t / (1 - abar_t) * x_0
                             + sp.sqrt(alpha_t) * (1 - abar_prev) / (1 - abar_t) * x_t)
    square = complete_the_square()
    return {
        "precision": check_identity("reference: posterior precision", 1 / beta_t + 1 / (1 - abar_prev), precision_P),
        "identity": check_identity("reference: 1 − ᾱₜ", 1 - abar_t, wrong_denominator),
        "variance_before": check_identity("reference: variance before its identity", wrong_variance, beta_tilde),
        "variance_after": check_identity("reference: variance after its identity", final_variance,
                                         square["variance"]),
        "excess": check_identity("its denominator exceeds the true one by βₜ(1 − ᾱₜ₋₁)",
                                 wrong_denominator - true_denominator, beta_t * (1 - abar_prev)),
        "identity_excess": check_identity("its identity overstates 1 − ᾱₜ by βₜ(1 − ᾱₜ₋₁)",
                                          wrong_denominator - (1 - abar_t), beta_t * (1 - abar_prev)),
        "mean_before": check_identity("reference: mean before its identity", wrong_mean, mu_tilde),
        "mean_after": check_identity("reference: mean after its identity", final_mean, square["mean"]),
        "mean_sqrt_alpha_prev": check_identity("reference: √αₜ₋₁ in the mean", final_mean_as_printed, mu_tilde),
    }


def reference_mu_tilde_sqrt() -> Step:
    """The reference's μ̃_t with √(ᾱ_{t−1} β_t) (β_t under the root) against eq. ``posterior-mean``."""
    printed = sp.sqrt(abar_prev * beta_t) / (1 - abar_t) * x_0 + sp.sqrt(alpha_t) * (1 - abar_prev) / (1 - abar_t) * x_t
    return check_identity("reference: √(ᾱₜ₋₁βₜ) in μ̃", printed, mu_tilde)
