"""The closing sets of chapters 7–13 (see :mod:`.closing`): each practises the chapter as a
whole, just before its table of what was checked."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..exercise_core import POSITIVE, REAL, UNIT, Derive, Domain
from ..exercise_kinds import Compute, Predict
from .practice import EXERCISES as _PRACTICE

_SCHEDULE = ("alpha_t", "beta_t", "abar_t", "abar_prev")


def _linear(T: int = 1000):
    from ddpm_lite import NoiseSchedule

    return NoiseSchedule.linear(T)


def zero_model_variance(T: int = 1000) -> float:
    """Variance of Algorithm 2's output from x_T ~ N(0, 1) when ε_θ ≡ 0 and σ_t² = β_t:
    each step maps v to v/α_t + σ_t², with no noise at t = 1."""
    s, v = _linear(T), 1.0
    for t in range(T, 0, -1):
        v = v / s.alphas[t] + (s.betas[t] if t > 1 else 0.0)
    return v


def _kl_beta_tilde_to_beta(t: int, swap: bool = False) -> float:
    s = _linear()
    v = (float(s.posterior_variance[t]), float(s.betas[t]))
    v1, v2 = v[::-1] if swap else v
    return float(S.gaussian_kl(0, sp.Float(v1, 30), 0, sp.Float(v2, 30)))


def _optimal_variance(n: dict) -> sp.Expr:
    # argmin over σ² of KL(N(0, β̃) ‖ N(δ, σ²)): a mean off by δ and a variance to choose.
    s2 = sp.Symbol("s2", positive=True)
    kl = S.gaussian_kl(0, n["beta_tilde"], n["delta"], s2)
    return sp.solve(sp.diff(kl, s2), s2)[0]


def _threshold(abar: float, K: int) -> float:
    key = "13-wrong-threshold"
    ex = next(ex for ex in _PRACTICE if ex.key == key)
    names = ex.symbols()
    return float(ex.target_expr().subs({names["abar_t"]: sp.Rational(abar), names["K"]: K}))


def wrong_level_probability(abar: float = 0.5, K: int = 17, two_sided: bool = True, scale: float = 1) -> float:
    """P(|ε| > threshold): the nearest level to the guess is wrong (chapter 13's threshold,
    times ``scale``)."""
    tail = 0.5 * math.erfc(scale * _threshold(abar, K) / math.sqrt(2))
    return 2 * tail if two_sided else tail


def _scaled_beta_1(T: int) -> float:
    from ddpm_lite.book.experiments import scaled_linear_schedule

    return float(scaled_linear_schedule(T).betas[1])


EXERCISES = [
    # ------------------------------------------------------------------ chapter 7
    Derive(
        key="07-sigma-tilde", chapter=7, title="The noise scale with σₜ² = β̃ₜ",
        prompt="Algorithm 2 adds $\\sigma_t z$. With the other choice of the paper, $\\sigma_t^2 = \\tilde\\beta_t$, "
               "write the scale $\\sigma_t$ in the schedule's names.",
        explanation="$\\sigma_t = \\sqrt{\\tilde\\beta_t} = \\sqrt{\\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\beta_t}$, "
                    "the square root of the posterior variance of chapter 4.",
        target=lambda n: sp.sqrt(S.beta_tilde), solution="sqrt((1 - abar_prev)/(1 - abar_t)*beta_t)",
        forms=("sqrt(beta_t*(1 - abar_prev))/sqrt(1 - abar_t)",
               "sqrt((1 - abar_prev)*(1 - alpha_t)/(1 - abar_prev*alpha_t))"),
        mistakes=(("sqrt(beta_t)", "that is the scale for $\\sigma_t^2 = \\beta_t$, the other choice."),
                  ("(1 - abar_prev)/(1 - abar_t)*beta_t", "that is the variance $\\tilde\\beta_t$; the sampler "
                   "multiplies $z$ by its square root.")),
        near=("sqrt((1 - abar_t)/(1 - abar_prev)*beta_t)", "sqrt((1 - abar_prev)/(1 - abar_t))",
              "-sqrt((1 - abar_prev)/(1 - abar_t)*beta_t)"),
        names=_SCHEDULE),
    Predict(
        key="07-untrained-sampler", chapter=7, title="Sampling with a network that outputs zero",
        prompt="Run Algorithm 2 with $\\varepsilon_\\theta \\equiv 0$ (a network before training, output layer "
               "at zero) and $\\sigma_t^2 = \\beta_t$, from $x_T \\sim \\mathcal N(0, 1)$. The samples …",
        explanation="Each step divides by $\\sqrt{\\alpha_t}$ and adds variance $\\beta_t$: $v \\mapsto v/\\alpha_t "
                    "+ \\beta_t$. The divisions alone multiply the starting variance by $1/\\bar\\alpha_T$, about "
                    "25 000, and the noise added on the way roughly doubles that: the samples spread over "
                    "hundreds, far outside $[-1, 1]$.",
        choices=(("stay standard normal noise", "no: the mean step divides by $\\sqrt{\\alpha_t} < 1$ every time."),
                 ("blow up: their variance reaches tens of thousands", "right: nothing pulls $x_t$ back "
                  "when $\\varepsilon_\\theta$ is 0."),
                 ("collapse to 0: no noise is predicted, so none is removed", "no: removing no noise still "
                  "rescales $x_t$ up at every step.")),
        answer_index=1, run="Run the recursion $v \\mapsto v/\\alpha_t + \\beta_t$ on <code>schedule</code>, or "
        "sample with <code>roll_diffusion.sample(lambda x, t: torch.zeros_like(x), (1000, 2))</code>."),
    # ------------------------------------------------------------------ chapter 8
    Derive(
        key="08-uniform-bits", chapter=8, title="What knowing nothing costs",
        prompt="A model that puts probability $1/K$ on each of $K$ levels, independently per pixel: how many bits "
               "per dimension does it score? (in <code>K</code>)",
        explanation="The negative log-likelihood of any pixel is $\\log K$ nats, $\\log_2 K$ bits: the baseline "
                    "every bound in this chapter must beat (4.09 bits for the 17 grey levels of the digits).",
        target=lambda n: sp.summation(-sp.log(1 / n["K"]) / sp.log(2) / n["K"], (sp.Symbol("k"), 1, n["K"])),
        solution="log(K)/log(2)", forms=("-log(1/K)/log(2)", "log(K^2)/(2*log(2))"),
        mistakes=(("log(K)", "that is in nats: divide by $\\ln 2$ for bits."),
                  ("log(K - 1)/log(2)", "$K$ levels, not the $K-1$ gaps between them.")),
        near=("log(K)/(2*log(2))", "log(K + 1)/log(2)", "-log(K)/log(2)"),
        names=("K",), domains={"K": Domain("count", 2, 64)}),
    Compute(
        key="08-uniform-digits", chapter=8, title="The uniform baseline of the digits",
        prompt="The digits have 17 grey levels. How many bits per dimension does the uniform model score? "
               "(<code>ddpm_lite.data.baselines.uniform_bpd</code>, to 0.1 %)",
        explanation="$\\log_2 17 \\approx 4.09$ bits/dim: a trained diffusion model's bound must land below it "
                    "to have learned anything.",
        value=lambda: _uniform(17), rel_tol=1e-3, solution="log(17)/log(2)",
        mistakes=((lambda: math.log(17), "that is in nats: divide by $\\ln 2$."),
                  (lambda: _uniform(16), "17 levels, not 16."))),
    # ------------------------------------------------------------------ chapter 9
    Derive(
        key="09-beta-gap", chapter=9, title="How far apart the two variances are",
        prompt="The paper's two reverse variances: write $\\beta_t - \\tilde\\beta_t$, simplified, in the "
               "schedule's names.",
        explanation="$\\beta_t - \\tilde\\beta_t = \\beta_t\\frac{(1-\\bar\\alpha_t) - (1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t} "
                    "= \\frac{\\bar\\alpha_{t-1}\\beta_t^2}{1-\\bar\\alpha_t}$ (chapter 1's growth of the noise "
                    "variance): of order $\\beta_t^2$, largest where $\\bar\\alpha_{t-1}$ is near 1.",
        target=lambda n: S.beta_t - S.beta_tilde, solution="abar_prev*beta_t^2/(1 - abar_t)",
        forms=("beta_t - (1 - abar_prev)/(1 - abar_t)*beta_t",
               "abar_prev*(1 - alpha_t)^2/(1 - abar_prev*alpha_t)"),
        mistakes=(("abar_prev*beta_t/(1 - abar_t)", "a factor $\\beta_t$ is missing: $\\tilde\\beta_t$ is "
                   "$\\beta_t$ times a ratio, so the difference carries $\\beta_t$ twice."),
                  ("beta_t^2/(1 - abar_t)", "the numerator uses the reference's false identity "
                   "$1-\\bar\\alpha_t = (1-\\bar\\alpha_{t-1}) + \\beta_t$ (pitfalls page).")),
        near=("abar_t*beta_t^2/(1 - abar_t)", "-abar_prev*beta_t^2/(1 - abar_t)",
              "abar_prev*beta_t^2/(1 - abar_prev)"),
        names=_SCHEDULE),
    Compute(
        key="09-scaled-beta-1", chapter=9, title="β₁ of the short reference runs",
        prompt="The chapter's runs use $T = 250$ with the paper's linear schedule rescaled by $1000/T$ "
               "(<code>scaled_linear_schedule</code>). What is $\\beta_1$? (to 0.1 %)",
        explanation="$10^{-4}\\cdot 1000/250 = 4\\times 10^{-4}$: each step adds four times the noise, so the "
                    "chain still ends near $\\bar\\alpha_T \\approx 4\\times10^{-5}$.",
        value=lambda: _scaled_beta_1(250), rel_tol=1e-3,
        mistakes=((lambda: _linear(250).betas[1], "that is the unscaled $10^{-4}$: a chain of 250 steps would then "
                   "keep signal at $t = T$ (chapter 1)."),
                  (lambda: _scaled_beta_1(250) / 16, "scaled the wrong way: fewer steps need larger $\\beta_t$."))),
    # ------------------------------------------------------------------ chapter 10
    Derive(
        key="10-simple-floor", chapter=10, title="The floor of the simple loss",
        prompt="For $x_0 \\sim \\mathcal N(0, s)$ the best predictor $\\varepsilon^*$ still errs: write the least "
               "possible $\\mathbb E[(\\varepsilon - \\varepsilon^*)^2]$ at step $t$, in <code>abar_t</code> and "
               "<code>s</code>.",
        explanation="The residual of a regression is $\\mathrm{Var}(\\varepsilon) - \\mathrm{Cov}^2/\\mathrm{Var}(x_t) = "
                    "1 - \\frac{1-\\bar\\alpha_t}{\\bar\\alpha_t s + 1-\\bar\\alpha_t} = \\frac{\\bar\\alpha_t s}"
                    "{\\bar\\alpha_t s + 1-\\bar\\alpha_t}$: no network can go below it.",
        target=lambda n: 1 - (1 - n["abar_t"]) / (n["abar_t"] * n["s"] + 1 - n["abar_t"]),
        solution="abar_t*s/(abar_t*s + 1 - abar_t)", forms=("1 - (1 - abar_t)/(abar_t*s + 1 - abar_t)",
                                                           "s/(s + 1/abar_t - 1)"),
        mistakes=(("(1 - abar_t)/(abar_t*s + 1 - abar_t)", "that is the part of the noise's variance that "
                   "$x_t$ explains; the floor is what is left, 1 minus it."),
                  ("1 - sqrt(1 - abar_t)/(abar_t*s + 1 - abar_t)", "the covariance enters squared: "
                   "$(\\sqrt{1-\\bar\\alpha_t})^2 = 1-\\bar\\alpha_t$.")),
        near=("abar_t*s/(abar_t*s + 1)", "abar_prev*s/(abar_prev*s + 1 - abar_prev)",
              "-abar_t*s/(abar_t*s + 1 - abar_t)"),
        names=("abar_t", "s"), domains={"s": POSITIVE}),
    Predict(
        key="10-unit-variance", chapter=10, title="Data that are already noise",
        prompt="Set <code>S2 = 1</code> in the set-up cell, so $x_0 \\sim \\mathcal N(0, 1)$, and keep "
               "$\\sigma_t^2 = \\beta_t$. The gap between the bound and the true negative log-likelihood becomes …",
        explanation="With $s^2 = 1$ every $x_t$ is $\\mathcal N(0,1)$: the chain is stationary, its exact reverse "
                    "step is $\\mathcal N(\\sqrt{\\alpha_t}x_t, \\beta_t)$, which the model with $\\sigma_t^2 = \\beta_t$ "
                    "represents exactly, so the bound is tight.",
        choices=(("zero, to rounding", "right: the model family contains the exact reverse process."),
                 ("larger: the data are harder", "no: $\\mathcal N(0,1)$ data are the easiest case, the chain's own "
                  "stationary distribution."),
                 ("about the same as for $s^2 = 0.25$", "no: for $s^2 \\ne 1$ the reverse variance is not "
                  "$\\beta_t$ and the bound keeps a gap.")),
        answer_index=0, run="Rerun the chapter down to the table of bound, NLL and entropy."),
    # ------------------------------------------------------------------ chapter 11
    Derive(
        key="11-optimal-variance", chapter=11, title="The best variance for an imperfect mean",
        prompt="The true step is $\\mathcal N(0, \\tilde\\beta)$ and the model's mean is off by $\\delta$: "
               "minimise $\\mathrm{KL}(\\mathcal N(0, \\tilde\\beta)\\,\\|\\,\\mathcal N(\\delta, \\sigma^2))$ over "
               "$\\sigma^2$. Write the minimiser in <code>beta_tilde</code> and <code>delta</code>.",
        explanation="$\\partial_{\\sigma^2}$ of $\\tfrac12[\\log\\sigma^2 + (\\tilde\\beta + \\delta^2)/\\sigma^2]$ "
                    "vanishes at $\\sigma^{*2} = \\tilde\\beta + \\delta^2$: a wrong mean calls "
                    "for a wider step, towards $\\beta_t$.",
        target=_optimal_variance, solution="beta_tilde + delta^2", forms=("delta^2 + beta_tilde", "beta_tilde*(1 + delta^2/beta_tilde)"),
        mistakes=(("beta_tilde", "that is right only for a perfect mean, $\\delta = 0$."),
                  ("beta_tilde + delta", "the mean's error enters squared.")),
        near=("beta_tilde - delta^2", "beta_tilde + 2*delta^2", "(beta_tilde + delta^2)/2"),
        names=("beta_tilde", "delta"), domains={"beta_tilde": POSITIVE, "delta": REAL}),
    Compute(
        key="11-floor-t2", chapter=11, title="What σₜ² = βₜ costs with a perfect mean",
        prompt="With a perfect mean, using $\\sigma_t^2 = \\beta_t$ where the true variance is $\\tilde\\beta_t$ costs "
               "$\\mathrm{KL}(\\mathcal N(0, \\tilde\\beta_t)\\,\\|\\,\\mathcal N(0, \\beta_t))$ at step $t$. For the "
               "linear schedule ($T = 1000$), how many nats is that at $t = 2$? (to 1 %)",
        explanation="$\\tfrac12[\\log(\\beta_2/\\tilde\\beta_2) + \\tilde\\beta_2/\\beta_2 - 1]$ with "
                    "$\\beta_2/\\tilde\\beta_2 \\approx 2.2$: about 0.12 nats per dimension in one step, where the "
                    "learned variance can win.",
        value=lambda: _kl_beta_tilde_to_beta(2), rel_tol=1e-2,
        mistakes=((lambda: _kl_beta_tilde_to_beta(2, swap=True), "the KL runs from the true step "
                   "$\\mathcal N(0,\\tilde\\beta_t)$ to the model's; you swapped them."),
                  (lambda: 2 * _kl_beta_tilde_to_beta(2), "the $\\tfrac12$ of the Gaussian KL is missing."))),
    # ------------------------------------------------------------------ chapter 12
    Derive(
        key="12-ddim-step", chapter=12, title="One deterministic step",
        prompt="DDIM jumps from $t$ to an earlier step $s$ by re-noising the guess: with "
               "$\\hat x_0$ (<code>x0hat</code>) and the same $\\varepsilon_\\theta$, write $x_s$ in "
               "<code>abar_s</code> ($\\bar\\alpha_s$), <code>x0hat</code> and <code>eps_theta</code>.",
        explanation="Put the guess and the predicted noise into chapter 1's marginal at step $s$: "
                    "$x_s = \\sqrt{\\bar\\alpha_s}\\,\\hat x_0 + \\sqrt{1-\\bar\\alpha_s}\\,\\varepsilon_\\theta$, "
                    "with no fresh noise.",
        target=lambda n: S.x_t_of_eps.subs({S.abar_t: n["abar_s"], S.x_0: n["x0hat"], S.eps: S.eps_theta}),
        solution="sqrt(abar_s)*x0hat + sqrt(1 - abar_s)*eps_theta",
        forms=("sqrt(1 - abar_s)*(eps_theta + sqrt(abar_s/(1 - abar_s))*x0hat)",
               "sqrt(abar_s)*(x0hat + sqrt(1/abar_s - 1)*eps_theta)"),
        mistakes=(("abar_s*x0hat + (1 - abar_s)*eps_theta", "scales, not variances: "
                   "$\\sqrt{\\bar\\alpha_s}$ and $\\sqrt{1-\\bar\\alpha_s}$."),
                  ("sqrt(abar_s)*x0hat", "the predicted noise stays in: dropping it moves $x_s$ to the "
                   "data's scale too early.")),
        near=("sqrt(abar_s)*x0hat - sqrt(1 - abar_s)*eps_theta", "sqrt(1 - abar_s)*x0hat + sqrt(abar_s)*eps_theta"),
        names=("abar_s", "x0hat", "eps_theta"), domains={"abar_s": UNIT, "x0hat": REAL}),
    Predict(
        key="12-ten-calls", chapter=12, title="Ten network calls",
        prompt="With only 10 network calls on the swiss roll, which sampler lands closer to ancestral sampling "
               "with 1000 calls (in sliced Wasserstein distance)?",
        explanation="DPM-Solver++(2M) follows the guess $\\hat x_0$ along a line between steps, second order in "
                    "the step; DDIM holds it constant, first order. With large steps the order decides.",
        choices=(("DDIM: it is exact for a constant guess", "no: the guess is not constant over a large step."),
                 ("DPM-Solver++(2M)", "right: its error falls as the square of the step size."),
                 ("Both alike: the network is the same", "no: they differ in how they integrate between "
                  "calls; at 10 calls the difference exceeds the seed-to-seed spread.")),
        answer_index=1, run="Read the printout of seeds and the figure below: the chapter asserts that 2M beats "
        "DDIM at 10 calls by more than three times the seed-to-seed spread."),
    # ------------------------------------------------------------------ chapter 13
    Predict(
        key="13-more-levels", chapter=13, title="Eight-bit images instead of 17 levels",
        prompt="Chapter 13's threshold says when the nearest level to the guess is wrong. For 8-bit images "
               "($K = 256$) instead of the digits' $K = 17$, at the same $t$ the nearest level is wrong …",
        explanation="The threshold $\\sqrt{\\bar\\alpha_t}/((K-1)\\sqrt{1-\\bar\\alpha_t})$ falls by $16/255$: "
                    "noise crosses a midpoint much sooner, so the grid helps only at smaller $t$.",
        choices=(("more often", "right: the levels are 15 times closer together."),
                 ("less often", "no: closer levels are easier to miss."),
                 ("equally often: the threshold does not depend on $K$", "no: it is inversely proportional to "
                  "$K - 1$.")),
        answer_index=0, run="Evaluate exercise 13.2's threshold at $K = 17$ and $K = 256$ for the same "
        "$\\bar\\alpha_t$."),
    Compute(
        key="13-wrong-half", chapter=13, title="How often the nearest level is wrong",
        prompt="At the step where $\\bar\\alpha_t = 1/2$, with $K = 17$ levels: what is the probability that "
               "the level nearest to $x_t/\\sqrt{\\bar\\alpha_t}$ is not $x_0$'s, $P(|\\varepsilon| > "
               "\\text{threshold})$? (to 0.1 %)",
        explanation="The threshold is $1/16$: $P(|\\varepsilon| > 1/16) = \\operatorname{erfc}(1/(16\\sqrt2)) "
                    "\\approx 0.95$. Half-way through the chain the grid alone cannot pick the level.",
        value=wrong_level_probability, rel_tol=1e-3,
        mistakes=((lambda: wrong_level_probability(two_sided=False), "that is one tail; $|\\varepsilon|$ can "
                   "exceed the threshold on either side."),
                  (lambda: wrong_level_probability(scale=2), "that threshold is the whole spacing; the pick is "
                   "wrong once the noise crosses the midpoint, half of it."))),
]


def _uniform(levels: int) -> float:
    from ddpm_lite.data.baselines import uniform_bpd

    return uniform_bpd(levels)
