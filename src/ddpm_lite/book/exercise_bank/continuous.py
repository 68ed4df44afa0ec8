"""Exercises of chapter 14 (the bound in continuous time)."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..continuous import prior_loss, x0_hat
from ..exercise_core import Derive
from ..exercise_kinds import Compute

#: The log-SNR at t = 1 and the data variance of the compute exercise.
LOG_SNR_MIN, DATA_S2 = -5.0, 0.25
SNR_WEIGHT = "(abar_prev/(1 - abar_prev) - abar_t/(1 - abar_t))/2"


def _snr_weight(n: dict) -> sp.Expr:
    # L_{t−1} of the x̂₀-model from chapter 4's posterior and chapter 3's KL, at x₀ − x̂₀ = 1: the weight.
    kl = S.gaussian_kl(S.mu_tilde, S.beta_tilde, S.mu_tilde.subs(S.x_0, x0_hat), S.beta_tilde)
    return sp.simplify(kl.subs(x0_hat, S.x_0 - 1))


def _lt_nats() -> float:
    return prior_loss(math.exp(LOG_SNR_MIN), DATA_S2)


EXERCISES = [
    Derive(
        key="14-snr-weight", chapter=14, title="The weight of Lₜ₋₁ is a difference of SNRs",
        prompt="With $\\sigma_t^2 = \\tilde\\beta_t$ and $\\mu_\\theta = \\tilde\\mu_t(x_t, \\hat x_0)$, "
               "$L_{t-1} = w\\,(x_0 - \\hat x_0)^2$ per dimension. Write $w$ in <code>abar_t</code> and "
               "<code>abar_prev</code>.",
        explanation="The means differ by $\\frac{\\sqrt{\\bar\\alpha_{t-1}}\\beta_t}{1-\\bar\\alpha_t}(x_0 - \\hat x_0)$; "
                    "squared and divided by $2\\tilde\\beta_t$ that is "
                    "$\\tfrac12\\big(\\mathrm{SNR}(t-1) - \\mathrm{SNR}(t)\\big)$.",
        target=_snr_weight, solution=SNR_WEIGHT,
        forms=("(abar_prev - abar_t)/(2*(1 - abar_prev)*(1 - abar_t))",
               "abar_prev*beta_t/(2*(1 - abar_prev)*(1 - abar_t))"),
        mistakes=((SNR_WEIGHT.removesuffix("/2")[1:-1], "a Gaussian KL carries a factor ½."),
                  ("(abar_t/(1 - abar_t) - abar_prev/(1 - abar_prev))/2", ("upside down: SNR falls as $t$ "
                   "grows, so $\\mathrm{SNR}(t-1) > \\mathrm{SNR}(t)$ and the weight is positive."))),
        near=("(abar_prev - abar_t)/2", "(abar_prev/(1 - abar_prev) - abar_t/(1 - abar_t))/(2*beta_t)"),
        names=("abar_t", "abar_prev")),
    Compute(
        key="14-LT-ends", chapter=14, title="The prior term from the schedule's end",
        prompt=f"Data with variance $s^2 = {DATA_S2}$ per dimension; the schedule ends at "
               f"$\\log\\mathrm{{SNR}}_\\min = {LOG_SNR_MIN:g}$. How many nats per dimension is $L_T$? (to 1 %)",
        explanation="$L_T = \\tfrac12\\big(\\frac{v(s^2-1)}{1+v} + \\log(1+v)\\big)$ with $v = \\mathrm{SNR}_\\min$ "
                    f"(eq. <code>ct-ends</code>): <code>prior_loss(exp({LOG_SNR_MIN:g}), {DATA_S2})</code>.",
        value=_lt_nats, rel_tol=1e-2,
        mistakes=((lambda: _lt_nats() / math.log(2), "that is in bits: the question asks for nats."),
                  (lambda: 0.5 * math.log1p(math.exp(LOG_SNR_MIN)), ("that leaves out the data's "
                   "term $\\bar\\alpha_T(s^2 - 1)$, which is negative for $s^2 < 1$.")))),
]
