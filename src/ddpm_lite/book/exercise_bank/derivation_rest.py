"""Exercises of chapters 5–6 (the reverse process and L_{t−1}; data scaling and the decoder)."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..exercise_core import Derive, Domain
from ..exercise_kinds import Compute

WEIGHT = "beta_t^2/(2*sigma2*alpha_t*(1 - abar_t))"


def _weight_target(n: dict) -> sp.Expr:
    # The coefficient of (ε − ε_θ)² in (μ̃_t − μ_θ)²/(2σ_t²), both means in ε-form.
    return sp.simplify((S.mu_tilde_eps - S.mu_theta_eps) ** 2 / (2 * S.sigma2) / (S.eps - S.eps_theta) ** 2)


EXERCISES = [
    Derive(
        key="05-eps-weight", chapter=5, title="The weight of the noise error in Lₜ₋₁",
        prompt="With $\\mu_\\theta = (x_t - \\frac{\\beta_t}{\\sqrt{1-\\bar\\alpha_t}}\\varepsilon_\\theta)/\\sqrt{\\alpha_t}$, "
               "$\\frac{1}{2\\sigma_t^2}\\|\\tilde\\mu_t - \\mu_\\theta\\|^2 = \\lambda_t\\,\\|\\varepsilon - \\varepsilon_\\theta\\|^2$. "
               "Write $\\lambda_t$.",
        explanation="$\\tilde\\mu_t - \\mu_\\theta = \\frac{\\beta_t}{\\sqrt{\\alpha_t}\\sqrt{1-\\bar\\alpha_t}}"
                    "(\\varepsilon_\\theta - \\varepsilon)$; square it and divide by $2\\sigma_t^2$.",
        target=_weight_target, solution=WEIGHT,
        forms=("(1 - alpha_t)^2/(2*sigma2*alpha_t*(1 - abar_prev*alpha_t))", "beta_t^2/(2*sigma2*alpha_t)/(1 - abar_t)"),
        mistakes=(("beta_t/(2*sigma2*alpha_t*(1 - abar_prev))", "the reference's weight: $\\beta_t$ for "
                   "$\\beta_t^2$ and $1-\\bar\\alpha_{t-1}$ for $1-\\bar\\alpha_t$ (pitfalls page)."),
                  (WEIGHT.replace("abar_t", "abar_prev"), "$t$ vs $t-1$: the noise in $x_t$ has variance "
                   "$1-\\bar\\alpha_t$."),
                  ("beta_t^2/(sigma2*alpha_t*(1 - abar_t))", "the $\\tfrac12$ of the Gaussian's exponent is missing.")),
        near=("beta_t/(2*sigma2*alpha_t*(1 - abar_t))", "beta_t^2/(2*sigma2*(1 - abar_t))",
              "-" + WEIGHT),
        names=("alpha_t", "beta_t", "abar_t", "abar_prev", "sigma2")),
    Derive(
        key="05-weight-at-beta-tilde", chapter=5, title="The weight with σₜ² = β̃ₜ",
        prompt="Put $\\sigma_t^2 = \\tilde\\beta_t = \\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\beta_t$ into "
               "$\\lambda_t = \\frac{\\beta_t^2}{2\\sigma_t^2\\alpha_t(1-\\bar\\alpha_t)}$ and simplify.",
        explanation="$1-\\bar\\alpha_t$ cancels and one $\\beta_t$ with it: "
                    "$\\lambda_t = \\frac{\\beta_t}{2\\alpha_t(1-\\bar\\alpha_{t-1})}$.",
        target=lambda n: S.loss_weight.subs(S.sigma2, S.beta_tilde),
        solution="beta_t/(2*alpha_t*(1 - abar_prev))",
        forms=("(1 - alpha_t)/(2*alpha_t*(1 - abar_prev))",
               "beta_t^2/(2*alpha_t*(1 - abar_t))/((1 - abar_prev)*beta_t/(1 - abar_t))"),
        mistakes=(("beta_t/(2*alpha_t*(1 - abar_t))", "$t$ vs $t-1$: $\\tilde\\beta_t$ brings "
                   "$(1-\\bar\\alpha_t)/(1-\\bar\\alpha_{t-1})$, which cancels $1-\\bar\\alpha_t$."),),
        near=("beta_t/(alpha_t*(1 - abar_prev))", "beta_t^2/(2*alpha_t*(1 - abar_prev))"),
        names=("alpha_t", "beta_t", "abar_t", "abar_prev")),
    Compute(
        key="05-weight-ratio", chapter=5, title="How unequal the weights are",
        prompt="With $\\sigma_t^2 = \\beta_t$ the weight is $\\lambda_t = \\frac{\\beta_t}{2\\alpha_t(1-\\bar\\alpha_t)}$. "
               "For the linear schedule with $T = 1000$, what is $\\lambda_1/\\lambda_{1000}$? (to 1 %; "
               "<code>L_simple</code> sets them all to 1.)",
        explanation="$\\lambda_1 = 1/(2\\alpha_1) \\approx 0.5$ and $\\lambda_{1000} \\approx 0.01$: "
                    "the true bound weighs the first step about 50 times more than the last.",
        value=lambda: _ratio(lambda b, a, ab: b / (2 * a * (1 - ab))), rel_tol=1e-2,
        mistakes=((lambda: _ratio(lambda b, a, ab: b**2 / (2 * a * (1 - ab))),
                   "that uses $\\beta_t^2$ with $\\sigma_t^2 = 1$; the question sets $\\sigma_t^2 = \\beta_t$."),
                  (lambda: 1 / _ratio(lambda b, a, ab: b / (2 * a * (1 - ab))),
                   "upside down: that is $\\lambda_{1000}/\\lambda_1$."))),
    Derive(
        key="06-scaling", chapter=6, title="Integers to [−1, 1]",
        prompt="Pixel values are integers $k = 0, \\dots, 255$. Write the scaled value in $[-1, 1]$ (0 ↦ −1, 255 ↦ 1), "
               "linear in <code>k</code>.",
        explanation="The line through $(0, -1)$ and $(255, 1)$: $2k/255 - 1$.",
        target=lambda n: sp.interpolate([(0, -1), (255, 1)], n["k"]),
        solution="2*k/255 - 1", forms=("(2*k - 255)/255", "(k - 127.5)/127.5"),
        mistakes=(("2*k/256 - 1", "256 levels but the top integer is 255: then 255 ↦ 255/128 − 1 < 1."),
                  ("k/255", "that maps to $[0, 1]$, not $[-1, 1]$.")),
        near=("2*k/255 + 1", "2*k/254 - 1"), names=("k",), domains={"k": Domain("count", 0, 255)}),
    Compute(
        key="06-bin-width", chapter=6, title="How wide a bin is",
        prompt="After scaling 256 levels to $[-1, 1]$, the decoder integrates the Gaussian over a bin around each "
               "level. How wide is a bin? (to 0.1 %)",
        explanation="Neighbouring levels are $2/255$ apart, so each bin (edges half-way between levels) is "
                    "$2/255 \\approx 0.00784$ wide; the decoder integrates $\\pm 1/255$ around each level.",
        value=lambda: 2 / 255, rel_tol=1e-3, solution="2/255",
        mistakes=((lambda: 1 / 255, "that is the half-width: the integral runs from $x - 1/255$ to $x + 1/255$."),
                  (lambda: 2 / 256, "the 256 levels span 255 gaps: the spacing is $2/255$."))),
    Compute(
        key="06-bits-per-dim", chapter=6, title="Nats to bits per dimension",
        prompt="A model gives an image of $32\\times32\\times3$ values a negative log-likelihood of 6000 nats. "
               "How many bits per dimension is that? (to 0.1 %)",
        explanation="Divide by the number of dimensions and by $\\ln 2$: $6000/(3072 \\ln 2) \\approx 2.82$.",
        value=lambda: 6000 / (3072 * math.log(2)), rel_tol=1e-3, solution="6000/(3072*log(2))",
        mistakes=((lambda: 6000 / 3072, "that is nats per dimension: divide by $\\ln 2$ as well."),
                  (lambda: 6000 * math.log(2) / 3072, "multiply by $1/\\ln 2$, not by $\\ln 2$."),
                  (lambda: 6000 / (1024 * math.log(2)), "each of the 3 colour channels is a dimension: 3072, not 1024."))),
]


def _ratio(weight) -> float:
    from ddpm_lite import NoiseSchedule

    s = NoiseSchedule.linear(1000)
    lam = [weight(s.betas[t], s.alphas[t], s.alpha_bars[t]) for t in (1, 1000)]
    return float(lam[0] / lam[1])
