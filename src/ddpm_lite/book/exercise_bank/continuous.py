"""Exercises of chapter 14 (the bound in continuous time)."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..continuous import prior_loss, x0_hat
from ..exercise_core import POSITIVE, REAL, UNIT, Derive
from ..exercise_kinds import Compute, Predict, SpotError

#: The log-SNR at t = 1 and the data variance of the compute exercise.
LOG_SNR_MIN, DATA_S2 = -5.0, 0.25
SNR_WEIGHT = "(abar_prev/(1 - abar_prev) - abar_t/(1 - abar_t))/2"


def _snr_weight(n: dict) -> sp.Expr:
    # L_{t−1} of the x̂₀-model from chapter 4's posterior and chapter 3's KL, at x₀ − x̂₀ = 1: the weight.
    kl = S.gaussian_kl(S.mu_tilde, S.beta_tilde, S.mu_tilde.subs(S.x_0, x0_hat), S.beta_tilde)
    return sp.simplify(kl.subs(x0_hat, S.x_0 - 1))


def _lt_nats() -> float:
    return prior_loss(math.exp(LOG_SNR_MIN), DATA_S2)


def _limit_weight(n: dict) -> sp.Expr:
    # The limit of eq. ct-limit taken by sympy on the log-linear schedule log SNR(t) = −(g0 + g1 t):
    # T times the drop of SNR over the last step of length 1/T.
    big_t = sp.Symbol("T", positive=True)
    snr = sp.exp(-(n["g0"] + n["g1"] * n["t"]))
    return sp.limit(big_t * (snr.subs(n["t"], n["t"] - 1 / big_t) - snr), big_t, sp.oo)


#: The set-up cell's ends and the end the predict exercise moves (log SNR).
LOG_SNR_ENDS, LOG_SNR_MIN_RAISED = (-10.0, 10.0), -5.0


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
    # ------------------------------------------------------------------ closing set
    SpotError(
        key="14-limit-sign", chapter=14, title="The sign of the slope",
        prompt="Since SNR falls with $t$, a student writes the limit of the finite sum as "
               "$L_\\infty = \\tfrac12\\,\\mathbb E\\int_0^1 \\mathrm{SNR}'(t)\\,\\lVert x - "
               "\\hat x_\\theta\\rVert^2\\,dt$. What is wrong? Then, for the log-linear schedule "
               "$\\log\\mathrm{SNR}(t) = -(g_0 + g_1 t)$ with $g_1 > 0$, write the weight of the limit, "
               "$\\lim_{T\\to\\infty} T\\big(\\mathrm{SNR}(t - \\tfrac1T) - \\mathrm{SNR}(t)\\big)$, in "
               "<code>g0</code>, <code>g1</code> and <code>t</code>.",
        explanation="Each of the $T$ terms pays $\\tfrac12$ times the <em>drop</em> of SNR over its step, "
                    "$\\mathrm{SNR}(t_{i-1}) - \\mathrm{SNR}(t_i) > 0$; $T$ times it tends to $-\\mathrm{SNR}'(t) "
                    "> 0$ (eq. <code>ct-limit</code>). For the log-linear schedule that is "
                    "$g_1 e^{-(g_0 + g_1 t)} = \\gamma'(t)\\,\\mathrm{SNR}(t)$ with $\\gamma = -\\log\\mathrm{SNR}$.",
        choices=(("The weight is $-\\mathrm{SNR}'(t)$: $\\mathrm{SNR}' < 0$, so as written the bound would "
                  "be negative", "right: a sum of KL divergences is never negative; the limit of the drop is "
                  "minus the slope."),
                 ("The weight should be $\\mathrm{SNR}(t)$, not its slope", "no: each step pays for the signal "
                  "it removes, a difference of SNRs; $T$ times a difference over a step $1/T$ is a derivative."),
                 ("The $\\tfrac12$ goes: the limit doubles the weight", "no: the $\\tfrac12$ of every Gaussian "
                  "KL stays in the limit."),
                 ("Nothing: the sign is a convention", "it is not: with $\\mathrm{SNR}' < 0$ and a positive "
                  "error, that integral is negative, and no KL is.")),
        answer_index=0,
        form=Derive(key="14-limit-sign-form", chapter=14, title="", prompt="", explanation="",
                    target=_limit_weight, solution="g1*exp(-g0 - g1*t)",
                    forms=("g1*exp(-g0)*exp(-g1*t)", "g1/exp(g0 + g1*t)"),
                    mistakes=(("-g1*exp(-g0 - g1*t)", "that is $\\mathrm{SNR}'(t)$ itself, negative: the "
                               "weight is the drop, minus the slope."),
                              ("g1", "that is $\\gamma'(t)$, the slope of $-\\log\\mathrm{SNR}$; the slope of "
                               "SNR carries SNR as a factor: $-\\mathrm{SNR}' = \\gamma'\\,\\mathrm{SNR}$.")),
                    near=("g1*exp(-g0 + g1*t)", "exp(-g0 - g1*t)", "g1*exp(-g0 - g1*t)/2"),
                    names=("g0", "g1", "t"), domains={"g0": REAL, "g1": POSITIVE, "t": UNIT})),
    Predict(
        key="14-raise-snr-min", chapter=14, title="A shorter range at the noisy end",
        prompt=f"In the set-up cell raise <code>LOG_SNR_MIN</code> from {LOG_SNR_ENDS[0]:g} to "
               f"{LOG_SNR_MIN_RAISED:g} (keep <code>LOG_SNR_MAX = {LOG_SNR_ENDS[1]:g}</code>): the schedule "
               f"now spans {LOG_SNR_ENDS[1] - LOG_SNR_MIN_RAISED:g} units of log SNR instead of "
               f"{LOG_SNR_ENDS[1] - LOG_SNR_ENDS[0]:g}. The printed $L_\\infty$ …",
        explanation="Eq. <code>ct-change</code> integrates $m(v) \\le s^2$ over $v$, not over $\\log v$: the "
                    f"piece cut off, $v$ from $e^{{{LOG_SNR_ENDS[0]:g}}}$ to $e^{{{LOG_SNR_MIN_RAISED:g}}}$, is at "
                    f"most $\\tfrac12 s^2 e^{{{LOG_SNR_MIN_RAISED:g}}}$, under 0.001 nats at the chapter's "
                    f"$s^2 = {DATA_S2:g}$. What $L_\\infty$ loses, $L_T$ gains: both are about "
                    "$\\tfrac12 s^2\\,\\mathrm{SNR}_\\min$ (eq. <code>ct-ends</code>), so at "
                    "$T = \\infty$ the whole bound hardly moves.",
        choices=(("falls by about a quarter, with the range of log SNR", "no: the integral is over $v = "
                  f"\\mathrm{{SNR}}$, and between $e^{{{LOG_SNR_ENDS[0]:g}}}$ and "
                  f"$e^{{{LOG_SNR_MIN_RAISED:g}}}$ there is almost no $v$."),
                 ("barely moves: by less than 0.001 nats", "right: the part cut off is at most "
                  f"$\\tfrac12 s^2 e^{{{LOG_SNR_MIN_RAISED:g}}}$, and $L_T$ grows by about as much."),
                 ("grows: a shorter range is crossed in larger steps", "no: at $T = \\infty$ there are no "
                  "steps, and the integrand is positive, so a shorter interval can only lower the integral.")),
        answer_index=1, run="Change <code>LOG_SNR_MIN</code>, rerun the set-up cell and the cell that prints "
        "$L_\\infty$; for $L_T$, print <code>ct.prior_loss(ENDS[\"snr_min\"], S2)</code>."),
    SpotError(
        key="14-shape-training", chapter=14, title="Does the shape matter?",
        prompt="“$L_\\infty$ depends on the schedule only through $\\mathrm{SNR}_\\min$ and "
               "$\\mathrm{SNR}_\\max$, so in continuous time the shape of the schedule between them does not "
               "matter for training.” What does this get wrong?",
        explanation="Training descends a one-sample estimate of $L_\\infty$ (eq. <code>ct-variance</code>): its "
                    "mean is the same for every shape, its variance is not. A uniform $t$ draws $v = "
                    "\\mathrm{SNR}(t)$ with density $1/\\lvert\\mathrm{SNR}'\\rvert$, so the shape is an importance "
                    "sampler, and Kingma et al. learn it by descending that variance. (At finite $T$ the shape "
                    "also changes the bound itself.)",
        choices=(("The mean is the same for every shape, the variance of its one-sample estimate is not: "
                  "the shape sets how noisy the training signal is", "right: the shape is the importance "
                  "sampler of the integral over $v$."),
                 ("$L_\\infty$ does depend on the interior", "no: the change of variables holds for any "
                  "decreasing SNR, and the chapter's three shapes give the same integral."),
                 ("The shape enters through $L_T$ and $L_0$", "no: both depend on the ends only "
                  "(eq. <code>ct-ends</code>)."),
                 ("Nothing: it is correct", "it is not: in the chapter's table of variances the linear-β shape "
                  "needs hundreds of times the draws of <code>min-variance</code> for the same precision.")),
        answer_index=0),
]
