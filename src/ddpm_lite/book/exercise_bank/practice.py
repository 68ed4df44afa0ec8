"""Exercises of chapters 7–13 (the theory at work)."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..exercise_core import COUNT, POSITIVE, REAL, UNIT, Derive, Domain
from ..exercise_kinds import Compute, Predict

MU_THETA = "(x_t - beta_t/sqrt(1 - abar_t)*eps_theta)/sqrt(alpha_t)"


def _schedule():
    from ddpm_lite import NoiseSchedule

    return NoiseSchedule.linear(1000)


def _prior_bits(mean_square: float) -> float:
    return float(_schedule().prior_kl_per_dim(mean_square)) / math.log(2)


def _beta_over_beta_tilde(t: int) -> float:
    s = _schedule()
    return float(s.betas[t] / s.posterior_variance[t])


def _lt_bits(n: dict) -> sp.Expr:
    # KL(N(√ᾱ x_0, 1 − ᾱ) ‖ N(0, 1)) is linear in x_0²: average by putting E[x_0²] = m for x_0².
    x = sp.Symbol("x", real=True)
    kl = sp.expand(S.gaussian_kl(sp.sqrt(n["abar_T"]) * x, 1 - n["abar_T"], 0, 1))
    return kl.subs(x**2, n["m"]) / sp.log(2)


EXERCISES = [
    # ------------------------------------------------------------------ chapter 7
    Derive(
        key="07-mu-theta", chapter=7, title="Algorithm 2's mean",
        prompt="Algorithm 2 draws $x_{t-1} = \\mu_\\theta(x_t, t) + \\sigma_t z$. Write $\\mu_\\theta$ in $x_t$ and the "
               "network's output $\\varepsilon_\\theta$ (<code>eps_theta</code>).",
        explanation="It is $\\tilde\\mu_t$ in its $\\varepsilon$-form with $\\varepsilon_\\theta$ for the unknown $\\varepsilon$.",
        target=S.mu_theta_eps, solution=MU_THETA,
        forms=("x_t/sqrt(alpha_t) - (1 - alpha_t)*eps_theta/sqrt(alpha_t*(1 - abar_t))",
               "(x_t - (1 - alpha_t)/sqrt(1 - abar_prev*alpha_t)*eps_theta)/sqrt(alpha_t)"),
        mistakes=((MU_THETA.replace("sqrt(alpha_t)", "sqrt(abar_t)"), "one step back divides by "
                   "$\\sqrt{\\alpha_t}$; $\\sqrt{\\bar\\alpha_t}$ would jump to $x_0$."),
                  ("(x_t - sqrt(1 - abar_t)*eps_theta)/sqrt(abar_t)", "that is the guess $\\hat x_0$ of the data, "
                   "not the mean one step back.")),
        near=(MU_THETA.replace("x_t -", "x_t +"), MU_THETA.replace("beta_t/", "1/")),
        names=("alpha_t", "beta_t", "abar_t", "x_t", "eps_theta")),
    Predict(
        key="07-last-step", chapter=7, title="The last step of sampling",
        prompt="Algorithm 2 adds fresh noise $\\sigma_t z$ at every step. What happens at $t = 1$?",
        explanation="Noise added at the last step would only blur the output; Algorithm 2 sets $z = 0$ at $t = 1$.",
        choices=(("Noise is added as at every other step", "no: at $t = 1$ the sampler returns the mean."),
                 ("No noise: $z = 0$, the output is $\\mu_\\theta(x_1, 1)$", "right: the last step returns the mean."),
                 ("Noise is added only with $\\sigma_t^2 = \\beta_t$", "no: the choice of $\\sigma_t^2$ does not "
                  "change that $z = 0$ at $t = 1$.")),
        answer_index=1, run="Check it in <code>ddpm_lite.sampling</code>, or in the reverse chain viewer below: "
        "the last frame is the mean of the step before."),
    # ------------------------------------------------------------------ chapter 8
    Derive(
        key="08-LT-bits", chapter=8, title="The prior term in bits per dimension",
        prompt="Data with $\\mathbb E[x_0^2] = m$ per dimension; the prior is $\\mathcal N(0, I)$. Write "
               "$L_T$ per dimension in bits, in <code>abar_T</code> ($\\bar\\alpha_T$) and <code>m</code>.",
        explanation="$\\mathrm{KL}(\\mathcal N(\\sqrt{\\bar\\alpha_T}x_0, 1-\\bar\\alpha_T)\\|\\mathcal N(0,1)) = "
                    "\\tfrac12(\\bar\\alpha_T x_0^2 - \\bar\\alpha_T - \\log(1-\\bar\\alpha_T))$, linear in $x_0^2$; "
                    "average and divide by $\\ln 2$.",
        target=_lt_bits, solution="(abar_T*m - abar_T - log(1 - abar_T))/(2*log(2))",
        forms=("(abar_T*(m - 1) - log(1 - abar_T))/log(4)",
               "((1 - abar_T) + abar_T*m - 1 - log(1 - abar_T))/(2*log(2))"),
        mistakes=(("(abar_T*m - abar_T - log(1 - abar_T))/2", "that is in nats: divide by $\\ln 2$ for bits."),
                  ("(abar_T*m - abar_T + log(1 - abar_T))/(2*log(2))", "the sign of the log: "
                   "$\\log\\frac{v_2}{v_1} = \\log\\frac{1}{1-\\bar\\alpha_T}$.")),
        near=("(abar_T*m - log(1 - abar_T))/(2*log(2))", "(abar_T*m - abar_T - log(1 - abar_T))/log(2)"),
        names=("abar_T", "m"), domains={"abar_T": UNIT, "m": POSITIVE}),
    Compute(
        key="08-LT-linear", chapter=8, title="The prior term of the linear schedule",
        prompt="For the linear schedule with $T = 1000$ and data with $\\mathbb E[x_0^2] = 0.25$, how many bits "
               "per dimension is $L_T$? (<code>NoiseSchedule.prior_kl_per_dim</code> gives nats; to 1 %)",
        explanation="<code>NoiseSchedule.linear(1000).prior_kl_per_dim(0.25) / log(2)</code>: a few $10^{-5}$ "
                    "bits, negligible next to the rest of the bound.",
        value=lambda: _prior_bits(0.25), rel_tol=1e-2,
        mistakes=((lambda: _prior_bits(0.25) * math.log(2), "that is in nats: divide by $\\ln 2$."),)),
    # ------------------------------------------------------------------ chapter 9
    Compute(
        key="09-beta-ratio", chapter=9, title="β against β̃ at t = 2",
        prompt="Claim 1 compares $\\sigma_t^2 = \\beta_t$ with $\\sigma_t^2 = \\tilde\\beta_t$. For the linear "
               "schedule ($T = 1000$), what is $\\beta_2/\\tilde\\beta_2$? (to 1 %)",
        explanation="$\\beta_t/\\tilde\\beta_t = (1-\\bar\\alpha_t)/(1-\\bar\\alpha_{t-1})$: at $t=2$ about "
                    "$(\\beta_1+\\beta_2)/\\beta_1 \\approx 2.4$, so the two choices differ most in the first steps.",
        value=lambda: _beta_over_beta_tilde(2), rel_tol=1e-2,
        mistakes=((lambda: 1 / _beta_over_beta_tilde(2), "upside down: $\\beta_t \\ge \\tilde\\beta_t$."),)),
    Predict(
        key="09-beta-ratio-T", chapter=9, title="β against β̃ at t = T",
        prompt="And at $t = T = 1000$, $\\beta_T/\\tilde\\beta_T$ is …",
        explanation="$(1-\\bar\\alpha_T)/(1-\\bar\\alpha_{T-1})$ with both $\\bar\\alpha$ near 0: the two "
                    "variances agree to a few parts in $10^5$ late in the chain.",
        choices=(("about 1", "right: $1-\\bar\\alpha_t$ barely changes late in the chain."),
                 ("about 2.4, as at $t = 2$", "no: the ratio is $(1-\\bar\\alpha_t)/(1-\\bar\\alpha_{t-1})$, "
                  "which tends to 1 as $\\bar\\alpha_t \\to 0$."),
                 ("much larger than 1", "no: $\\beta_T = 0.02$ and $\\tilde\\beta_T$ is almost the same.")),
        answer_index=0, run="Run <code>NoiseSchedule.linear(1000)</code> and compare <code>betas[1000]</code> "
        "with <code>posterior_variance[1000]</code>."),
    # ------------------------------------------------------------------ chapter 10
    Derive(
        key="10-var-xt", chapter=10, title="Gaussian data stay Gaussian",
        prompt="With $x_0 \\sim \\mathcal N(0, s)$ (variance <code>s</code>), write the variance of $x_t$.",
        explanation="$x_t = \\sqrt{\\bar\\alpha_t}x_0 + \\sqrt{1-\\bar\\alpha_t}\\varepsilon$ with independent terms: "
                    "$\\bar\\alpha_t s + 1 - \\bar\\alpha_t$.",
        target=lambda n: n["abar_t"] * n["s"] + (1 - n["abar_t"]),
        solution="abar_t*s + 1 - abar_t", forms=("1 - abar_t*(1 - s)", "1 + abar_t*(s - 1)"),
        mistakes=(("sqrt(abar_t)*s + 1 - abar_t", "variances scale by the square of the factor: $\\bar\\alpha_t$, "
                   "not $\\sqrt{\\bar\\alpha_t}$."),
                  ("abar_t*s + sqrt(1 - abar_t)", "the noise's variance is $1-\\bar\\alpha_t$, not its square root.")),
        near=("abar_t*s - 1 + abar_t", "abar_prev*s + 1 - abar_prev"), names=("abar_t", "s"),
        domains={"s": POSITIVE}),
    Derive(
        key="10-eps-star", chapter=10, title="The best noise predictor",
        prompt="For the same Gaussian data, $\\varepsilon^*(x_t) = \\mathbb E[\\varepsilon\\mid x_t]$ is linear in $x_t$. "
               "Write it (regression of $\\varepsilon$ on $x_t$: covariance over variance).",
        explanation="$\\mathrm{Cov}(\\varepsilon, x_t) = \\sqrt{1-\\bar\\alpha_t}$ and $\\mathrm{Var}(x_t) = "
                    "\\bar\\alpha_t s + 1 - \\bar\\alpha_t$.",
        target=lambda n: sp.sqrt(1 - n["abar_t"]) / (n["abar_t"] * n["s"] + 1 - n["abar_t"]) * n["x_t"],
        solution="sqrt(1 - abar_t)*x_t/(abar_t*s + 1 - abar_t)",
        forms=("x_t*sqrt(1 - abar_t)/(1 - abar_t*(1 - s))", "sqrt(1 - abar_t)/(1 + abar_t*(s - 1))*x_t"),
        mistakes=(("x_t/sqrt(1 - abar_t)", "that is $\\varepsilon$ when $x_0 = 0$: it ignores the signal's variance."),
                  ("(1 - abar_t)*x_t/(abar_t*s + 1 - abar_t)", "the covariance of $\\varepsilon$ and $x_t$ is "
                   "$\\sqrt{1-\\bar\\alpha_t}$, not $1-\\bar\\alpha_t$.")),
        near=("-sqrt(1 - abar_t)*x_t/(abar_t*s + 1 - abar_t)", "sqrt(1 - abar_t)*x_t/(abar_t*s + 1)"),
        names=("abar_t", "s", "x_t"), domains={"s": POSITIVE}),
    # ------------------------------------------------------------------ chapter 11
    Derive(
        key="11-sigma-v", chapter=11, title="The learned variance",
        prompt="Simplify $\\Sigma(v) = \\exp\\big(v\\log\\beta_t + (1-v)\\log\\tilde\\beta_t\\big)$, in "
               "<code>v</code>, <code>beta_t</code> and <code>beta_tilde</code>.",
        explanation="$\\exp(v\\log\\beta) = \\beta^v$: a geometric interpolation $\\beta_t^v\\tilde\\beta_t^{1-v}$.",
        target=lambda n: sp.exp(n["v"] * sp.log(n["beta_t"]) + (1 - n["v"]) * sp.log(n["beta_tilde"])),
        solution="beta_t^v*beta_tilde^(1 - v)", forms=("beta_tilde*(beta_t/beta_tilde)^v", "beta_t*(beta_tilde/beta_t)^(1 - v)"),
        mistakes=(("v*beta_t + (1 - v)*beta_tilde", "that interpolates the variances; the model interpolates their "
                   "logarithms, a geometric mean."),),
        near=("beta_t^(1 - v)*beta_tilde^v", "beta_t^v*beta_tilde^v"),
        names=("v", "beta_t", "beta_tilde"), domains={"v": REAL, "beta_tilde": POSITIVE}),
    Derive(
        key="11-importance-weight", chapter=11, title="The importance weight",
        prompt="With $p_t = \\sqrt{m_t}/S$ ($S = \\sum_s \\sqrt{m_s}$), the term at $t$ is weighted by "
               "$1/(T p_t)$. Write that weight in <code>m</code> ($m_t$), <code>S</code> and <code>T</code>.",
        explanation="$1/(T p_t) = S/(T\\sqrt{m_t})$: rare timesteps get large weights.",
        target=lambda n: 1 / (n["T"] * sp.sqrt(n["m"]) / n["S"]), solution="S/(T*sqrt(m))",
        forms=("S*m^(-1/2)/T", "(S/T)/sqrt(m)"),
        mistakes=(("S*sqrt(m)/T", "upside down: a likely timestep must count less, not more."),
                  ("1/(T*sqrt(m))", "the normalisation $S$ of $p_t$ is missing.")),
        near=("S/(T*m)", "S/sqrt(m)"), names=("m", "S", "T"),
        domains={"m": POSITIVE, "S": POSITIVE, "T": COUNT}),
    # ------------------------------------------------------------------ chapter 12
    Derive(
        key="12-x0-hat", chapter=12, title="The guess of the data",
        prompt="Invert $x_t = \\sqrt{\\bar\\alpha_t}x_0 + \\sqrt{1-\\bar\\alpha_t}\\varepsilon$ with the network's "
               "$\\varepsilon_\\theta$ for $\\varepsilon$: write $\\hat x_0$.",
        explanation="$\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon_\\theta)/\\sqrt{\\bar\\alpha_t}$.",
        target=lambda n: sp.solve(S.x_t_of_eps.subs(S.eps, S.eps_theta) - S.x_t, S.x_0)[0],
        solution="(x_t - sqrt(1 - abar_t)*eps_theta)/sqrt(abar_t)",
        forms=("x_t/sqrt(abar_t) - sqrt(1/abar_t - 1)*eps_theta", "(x_t - sqrt(1 - abar_t)*eps_theta)/sqrt(alpha_t*abar_prev)"),
        mistakes=(("(x_t - sqrt(1 - abar_t)*eps_theta)/abar_t", "divide by $\\sqrt{\\bar\\alpha_t}$, the scale of $x_0$."),
                  ("(x_t - (1 - abar_t)*eps_theta)/sqrt(abar_t)", "the noise's scale is $\\sqrt{1-\\bar\\alpha_t}$.")),
        near=("(x_t + sqrt(1 - abar_t)*eps_theta)/sqrt(abar_t)", "(x_t - sqrt(1 - abar_prev)*eps_theta)/sqrt(abar_prev)"),
        names=("abar_t", "x_t", "eps_theta")),
    Derive(
        key="12-lambda", chapter=12, title="Half the log signal-to-noise ratio",
        prompt="With $a_t = \\sqrt{\\bar\\alpha_t}$ and $b_t = \\sqrt{1-\\bar\\alpha_t}$, write "
               "$\\lambda_t = \\log(a_t/b_t)$ in <code>abar_t</code>.",
        explanation="$\\lambda_t = \\tfrac12\\log\\frac{\\bar\\alpha_t}{1-\\bar\\alpha_t}$, half the log SNR.",
        target=lambda n: sp.log(sp.sqrt(n["abar_t"]) / sp.sqrt(1 - n["abar_t"])),
        solution="log(abar_t/(1 - abar_t))/2", forms=("(log(abar_t) - log(1 - abar_t))/2", "log(sqrt(abar_t/(1 - abar_t)))"),
        mistakes=(("log(abar_t/(1 - abar_t))", "that is the whole log SNR; $\\lambda_t$ is half of it."),),
        near=("log((1 - abar_t)/abar_t)/2", "log(abar_t/(1 - abar_prev))/2"), names=("abar_t",)),
    # ------------------------------------------------------------------ chapter 13
    Derive(
        key="13-eps-implied", chapter=13, title="The ε a guess implies",
        prompt="A denoiser that outputs a guess $\\hat x_0$ (<code>x0hat</code>) implies a noise prediction. "
               "Write it in $x_t$ and $\\hat x_0$.",
        explanation="Solve $x_t = \\sqrt{\\bar\\alpha_t}\\hat x_0 + \\sqrt{1-\\bar\\alpha_t}\\varepsilon$ for $\\varepsilon$.",
        target=lambda n: sp.solve(S.x_t_of_eps.subs(S.x_0, n["x0hat"]) - S.x_t, S.eps)[0],
        solution="(x_t - sqrt(abar_t)*x0hat)/sqrt(1 - abar_t)",
        forms=("x_t/sqrt(1 - abar_t) - sqrt(abar_t/(1 - abar_t))*x0hat", "(x_t - sqrt(alpha_t*abar_prev)*x0hat)/sqrt(1 - abar_t)"),
        mistakes=(("(x_t - abar_t*x0hat)/sqrt(1 - abar_t)", "the signal in $x_t$ is $\\sqrt{\\bar\\alpha_t}\\,x_0$."),
                  ("(x_t - sqrt(abar_t)*x0hat)/(1 - abar_t)", "divide by the noise's scale, $\\sqrt{1-\\bar\\alpha_t}$.")),
        near=("(sqrt(abar_t)*x0hat - x_t)/sqrt(1 - abar_t)",), names=("abar_t", "x_t", "x0hat"),
        domains={"x0hat": REAL}),
    Derive(
        key="13-wrong-threshold", chapter=13, title="When the nearest level is wrong",
        prompt="Levels $h = 2/(K-1)$ apart; the pick of eq. <code>gl-wrong</code> is wrong once "
               "$|\\varepsilon|$ exceeds a threshold. Write it, in <code>abar_t</code> and <code>K</code>.",
        explanation="The noise $\\sqrt{1-\\bar\\alpha_t}\\varepsilon$ must cross half the scaled spacing "
                    "$\\sqrt{\\bar\\alpha_t}h/2$: $|\\varepsilon| > \\frac{\\sqrt{\\bar\\alpha_t}}{(K-1)\\sqrt{1-\\bar\\alpha_t}}$.",
        target=lambda n: sp.sqrt(n["abar_t"]) * (2 / (n["K"] - 1)) / 2 / sp.sqrt(1 - n["abar_t"]),
        solution="sqrt(abar_t)/((K - 1)*sqrt(1 - abar_t))",
        forms=("sqrt(abar_t/(1 - abar_t))/(K - 1)", "1/((K - 1)*sqrt(1/abar_t - 1))"),
        mistakes=(("sqrt(abar_t)/(K*sqrt(1 - abar_t))", "$K$ levels have $K-1$ gaps."),
                  ("2*sqrt(abar_t)/((K - 1)*sqrt(1 - abar_t))", "half the spacing: the nearest level is wrong once the "
                   "noise crosses the midpoint.")),
        near=("sqrt(abar_t)/((K + 1)*sqrt(1 - abar_t))", "sqrt(1 - abar_t)/((K - 1)*sqrt(abar_t))"),
        names=("abar_t", "K"), domains={"K": Domain("count", 2, 256)}),
]
