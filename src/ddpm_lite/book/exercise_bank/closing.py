"""The closing sets of chapters 1–6: exercises on the chapter as a whole, shown in its
"Exercises" section just before the table of what was checked.  Several are the reference
derivation's own mistakes (book/pitfalls.md) to spot; several ask for a prediction that the
reader then checks by changing the set-up cell or an explorer."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..exercise_core import POSITIVE, REAL, Derive
from ..exercise_kinds import Compute, Predict, SpotError

_SCHEDULE = ("alpha_t", "beta_t", "abar_t", "abar_prev")


def _schedule(kind: str = "linear", T: int = 1000, **kwargs: float):
    from ddpm_lite import NoiseSchedule

    return NoiseSchedule.from_name(kind, T, **kwargs)


def reference_variance_error(beta_T: float, T: int = 1000) -> float:
    """Relative error at t = T of the reference's intermediate β̃ₜ (its wrong precision)."""
    s = _schedule(T=T, beta_T=beta_T)
    one_minus_prev, beta = 1 - s.alpha_bars_prev[T], s.betas[T]
    return float(beta * one_minus_prev / (one_minus_prev + beta) / s.posterior_variance[T] - 1)


def _reference_weight_factor(t: int) -> float:
    # The reference's weight over the true one, both with the same σ_t² (it cancels).
    ref, true = S.to_free(S.loss_weight_reference), S.to_free(S.loss_weight)
    s = _schedule()
    at = {S.alpha_t: s.alphas[t], S.abar_prev: s.alpha_bars_prev[t], S.sigma2: s.betas[t]}
    return float((ref / true).subs(at))


def bin_probability(half_bin_only: bool = False) -> float:
    """P(bin) of an interior 8-bit level under the decoder with μ at the level, σ₁ = √β₁;
    with ``half_bin_only`` the upper limit is the level itself (one reading of the reference)."""
    import torch

    from ddpm_lite.gaussian import discretized_gaussian_log_likelihood

    x = torch.tensor([2 * 128 / 255 - 1], dtype=torch.float64)
    log_sigma = 0.5 * math.log(_schedule().betas[1])
    p = discretized_gaussian_log_likelihood(x, x, log_sigma, num_levels=256).exp().item()
    return p / 2 if half_bin_only else p


def _literal_integrand() -> float:
    # Density at the mean times the bin width 2/255: the display read literally.
    sigma = math.sqrt(_schedule().betas[1])
    return 2 / 255 / (sigma * math.sqrt(2 * math.pi))


def _kl_self_value() -> float:
    # The reference's line ∫p log q + ∫p log p at p = q = N(0, 1): twice E_p[log p], and
    # log p is −x²/2 − log(2π)/2, so averaging puts E[x²] = 1 for x².
    x = sp.Symbol("x", real=True)
    return float(sp.expand(2 * S.log_normal(x, 0, 1)).subs(x**2, 1))


def _centre(n: dict) -> sp.Expr:
    # Where the forward step's log-density, read as a function of x_{t−1}, peaks.
    exponent = S.log_normal(S.x_t, sp.sqrt(S.alpha_t) * S.x_prev, S.beta_t)
    return sp.solve(sp.diff(exponent, S.x_prev), S.x_prev)[0]


EXERCISES = [
    # ------------------------------------------------------------------ chapter 1
    SpotError(
        key="01-noise-growth", chapter=1, title="How the noise variance grows",
        prompt="The reference writes $1-\\bar\\alpha_t = (1-\\bar\\alpha_{t-1}) + \\beta_t$ (and uses it twice). "
               "What is wrong? Then write the true growth $(1-\\bar\\alpha_t) - (1-\\bar\\alpha_{t-1})$ of the noise "
               "variance in one step, in <code>abar_prev</code> and <code>beta_t</code>.",
        explanation="$\\bar\\alpha_t = \\bar\\alpha_{t-1}\\alpha_t = \\bar\\alpha_{t-1} - \\bar\\alpha_{t-1}\\beta_t$, so "
                    "the noise variance grows by $\\bar\\alpha_{t-1}\\beta_t$: the step's fresh noise $\\beta_t$ "
                    "is added to a signal that has already shrunk to $\\bar\\alpha_{t-1}$ (pitfalls page).",
        choices=(("Only the signal left, $\\bar\\alpha_{t-1}$, is replaced by noise: the step adds "
                  "$\\bar\\alpha_{t-1}\\beta_t$, not $\\beta_t$", "right: $1-\\bar\\alpha_t = (1-\\bar\\alpha_{t-1}) + "
                  "\\bar\\alpha_{t-1}\\beta_t$."),
                 ("It should be $\\beta_{t-1}$", "no: step $t$ uses $\\beta_t$; the missing factor is "
                  "$\\bar\\alpha_{t-1}$."),
                 ("Variances multiply, they do not add", "no: independent noise variances add; the "
                  "scaled signal is what shrinks."),
                 ("Nothing: it is correct", "it is not: at $\\beta_t = 1/10$, $\\bar\\alpha_{t-1} = 1/2$ the left "
                  "side is 0.55, the right side 0.6.")),
        answer_index=0,
        form=Derive(key="01-noise-growth-form", chapter=1, title="", prompt="", explanation="",
                    target=lambda n: S.to_free((1 - S.abar_t) - (1 - S.abar_prev)),
                    solution="abar_prev*beta_t", forms=("abar_prev*(1 - alpha_t)", "abar_prev - abar_t"),
                    mistakes=(("beta_t", "that is the reference's identity: the step's noise only replaces the "
                               "signal that is left, $\\bar\\alpha_{t-1}$."),),
                    near=("abar_t*beta_t", "-abar_prev*beta_t", "abar_prev*beta_t^2"), names=_SCHEDULE)),
    Predict(
        key="01-cosine-midpoint", chapter=1, title="Linear against cosine half-way",
        prompt="In the schedule explorer, switch the schedule from <code>linear</code> to <code>cosine</code> "
               "(same $T = 1000$) and look at $t = T/2$. Before you do: how does $\\bar\\alpha_{T/2}$ change?",
        explanation="The linear schedule has removed most of the signal by half-way ($\\bar\\alpha_{500} "
                    "\\approx 0.08$); the cosine schedule keeps about half ($\\cos^2$ of roughly $\\pi/4$), so its "
                    "later steps still have work to do.",
        choices=(("About the same: both end near 0 at $t = T$", "no: they agree at the ends, not in the middle."),
                 ("Far larger with cosine: about ½ instead of under a tenth", "right: the cosine schedule removes the "
                  "signal evenly in $\\log$ SNR."),
                 ("Far smaller with cosine", "no: the linear schedule is the one that destroys the signal early.")),
        answer_index=1, run="Switch the explorer above to <code>cosine</code>, set $t = 500$, and read "
        "$\\bar\\alpha_t$ (or print <code>NoiseSchedule.cosine(1000).alpha_bars[500]</code>)."),
    # ------------------------------------------------------------------ chapter 2
    SpotError(
        key="02-two-inequalities", chapter=2, title="Two “≤” in a row",
        prompt="After Jensen's step the reference writes $-\\log\\big(p(x_T)\\prod_t r_t\\big) \\le -\\log p(x_T) "
               "- \\sum_t \\log r_t$, again with “$\\le$”. What is wrong? Then write $-\\log(P R_1 R_2)$ "
               "as a sum (<code>P, R1, R2</code> positive).",
        explanation="The log of a product is the sum of the logs, on every path: that line is an equality. "
                    "Only Jensen's step loses anything (pitfalls page).",
        choices=(("It is an equality: nothing is lost there", "right: $\\log\\prod = \\sum\\log$ for every path."),
                 ("It should be “$\\ge$”", "no: both sides are equal, so neither strict direction holds."),
                 ("Jensen's step should be an equality too", "no: it is strict unless the weight $w$ is "
                  "constant over paths; its gap is the KL of this chapter."),
                 ("Nothing: “$\\le$” is the clearest sign", "“$\\le$” is not false, but it suggests a second "
                  "approximation that does not exist.")),
        answer_index=0,
        form=Derive(key="02-two-inequalities-form", chapter=2, title="", prompt="", explanation="",
                    target=lambda n: sp.expand_log(-sp.log(n["P"] * n["R1"] * n["R2"]), force=True),
                    solution="-log(P) - log(R1) - log(R2)",
                    forms=("-(log(P) + log(R1) + log(R2))", "-log(P*R1) - log(R2)"),
                    mistakes=(("-log(P) - log(R1 + R2)", "the log of a product is the sum of the logs, not the "
                               "log of a sum."),),
                    near=("log(P) + log(R1) + log(R2)", "-log(P) - log(R1)", "-log(P) - 2*log(R1) - log(R2)"),
                    names=("P", "R1", "R2"), domains={"P": POSITIVE, "R1": POSITIVE, "R2": POSITIVE})),
    Predict(
        key="02-true-reverse", chapter=2, title="A model that is the true reverse",
        prompt="The set-up cell builds a reverse model that is deliberately <em>not</em> the reverse of the "
               "chain. If it were (prior included), what would the gap $L - (-\\log p_\\theta(x_0))$ be?",
        explanation="The gap is $\\mathrm{KL}\\big(q(x_{1:T}\\mid x_0)\\,\\|\\,p_\\theta(x_{1:T}\\mid x_0)\\big)$; when "
                    "the model is the chain's reverse its posterior is $q$'s, and a KL of a distribution from "
                    "itself is 0.",
        choices=(("Exactly zero", "right: the bound is tight when the model's posterior is $q(x_{1:T}\\mid x_0)$."),
                 ("Small but positive: Jensen always loses something", "no: Jensen is an equality when the weight "
                  "$w$ is the same on every path, which the true reverse makes it."),
                 ("Negative", "no: the gap is a KL divergence, never negative.")),
        answer_index=0, run="The chapter's three exact routes check the gap, and it is zero at the true "
        "reverse (the table below); rebuild the set-up cell's θ from the chain's reverse to see it."),
    # ------------------------------------------------------------------ chapter 3
    Derive(
        key="03-kl-equal-variance", chapter=3, title="KL with equal variances",
        prompt="Two Gaussians with the same variance: write $\\mathrm{KL}(\\mathcal N(m_1, v)\\,\\|\\,\\mathcal N(m_2, v))$ "
               "in <code>m1, m2, v</code>. (This is why $L_{t-1}$ becomes a squared error in chapter 5.)",
        explanation="In the Gaussian KL the log-ratio of variances is 0 and $v_1/v_2 - 1 = 0$: only the "
                    "squared difference of the means is left, over $2v$.",
        target=lambda n: S.gaussian_kl(n["m1"], n["v"], n["m2"], n["v"]),
        solution="(m1 - m2)^2/(2*v)", forms=("(m2 - m1)^2/(2*v)", "(m1^2 - 2*m1*m2 + m2^2)/v/2"),
        mistakes=(("(m1 - m2)^2/v", "the $\\tfrac12$ is missing."),
                  ("(m1 - m2)^2/(2*v^2)", "divide by the variance $v$, not its square.")),
        near=("(m1 + m2)^2/(2*v)", "(m1 - m2)/(2*v)", "-(m1 - m2)^2/(2*v)"),
        names=("m1", "m2", "v"), domains={"m1": REAL, "m2": REAL, "v": POSITIVE}),
    Compute(
        key="03-kl-self", chapter=3, title="The reference's KL of a Gaussian from itself",
        prompt="Evaluate the reference's first line, $\\int p\\log q\\,dx - \\big(-\\int p\\log p\\,dx\\big)$, at "
               "$p = q = \\mathcal N(0, 1)$. (to 0.1 %)",
        explanation="Both integrals are $-\\tfrac12\\log(2\\pi e)$, so the line gives $-\\log(2\\pi e) \\approx "
                    "-2.838$; a divergence of a distribution from itself is 0.",
        value=lambda: _kl_self_value(), rel_tol=1e-3, solution="-log(2*pi) - 1",
        mistakes=((lambda: 0.0, "0 is the true KL; the question asks for the reference's line, which is not 0 — "
                   "that is how the sign error shows."),
                  (lambda: -_kl_self_value() / 2, "that is the entropy of $\\mathcal N(0,1)$ alone; the line adds "
                   "two integrals of the same sign."))),
    # ------------------------------------------------------------------ chapter 4
    SpotError(
        key="04-mean-x-prev", chapter=4, title="A mean that contains its own variable",
        prompt="Appendix A of the reference multiplies Gaussians in $x_{t-1}$ and uses $m_1 = \\sqrt{\\alpha_t}\\,"
               "x_{t-1}$, variance $\\beta_t$, for the factor $q(x_t\\mid x_{t-1})$. What is wrong? Then write the "
               "factor's true centre in $x_{t-1}$.",
        explanation="As a function of $x_{t-1}$, $-(x_t - \\sqrt{\\alpha_t}x_{t-1})^2/(2\\beta_t)$ peaks at "
                    "$x_{t-1} = x_t/\\sqrt{\\alpha_t}$ with variance $\\beta_t/\\alpha_t$ "
                    "(as the chapter shows); with those, the product rule gives $\\tilde\\mu_t$ directly.",
        choices=(("A mean of a density in $x_{t-1}$ cannot contain $x_{t-1}$: the centre is $x_t/\\sqrt{\\alpha_t}$",
                  "right: and its variance is $\\beta_t/\\alpha_t$, not $\\beta_t$."),
                 ("It should be $\\sqrt{\\bar\\alpha_t}\\,x_{t-1}$", "no: one forward step scales by "
                  "$\\sqrt{\\alpha_t}$; the problem is which variable the density is in."),
                 ("The product of two Gaussians is not Gaussian", "it is, up to a constant: the exponents add."),
                 ("Nothing: the reference replaces $x_{t-1}$ by $x_t$ later", "that swap is unexplained, and the "
                  "result still needs the false identity to come out right (pitfalls page).")),
        answer_index=0,
        form=Derive(key="04-mean-x-prev-form", chapter=4, title="", prompt="", explanation="",
                    target=_centre,
                    solution="x_t/sqrt(alpha_t)", forms=("sqrt(alpha_t)*x_t/alpha_t", "x_t*alpha_t^(-1/2)"),
                    mistakes=(("sqrt(alpha_t)*x_t", "that is the reference's $m_1$ after its swap of $x_{t-1}$ "
                               "for $x_t$: invert the scaling, do not apply it."),),
                    near=("x_t/alpha_t", "-x_t/sqrt(alpha_t)", "x_t/sqrt(abar_t)"),
                    names=("alpha_t", "x_t"))),
    Predict(
        key="04-cancel-grows", chapter=4, title="When the cancelling errors show",
        prompt="The chapter prints how far the reference's intermediate $\\tilde\\beta_t$ is off, about 2 % at "
               "$t = T$. Change the set-up cell to <code>NoiseSchedule.linear(T=T, beta_T=0.04)</code>. "
               "At $t = T$ the error becomes …",
        explanation="The relative error is $-\\beta_t(1-\\bar\\alpha_{t-1})/(1-\\bar\\alpha_{t-1}+\\beta_t)$ over "
                    "$\\tilde\\beta_t$'s true value, close to $-\\beta_T$ once $\\bar\\alpha_{T-1}\\approx 0$: it "
                    "roughly doubles with $\\beta_T$.",
        choices=(("about twice as large (near 4 %)", "right: at $t = T$ it is close to $\\beta_T/(1+\\beta_T)$."),
                 ("unchanged: it depends only on $T$", "no: it is of the size of $\\beta_t$."),
                 ("zero: the false identity cancels it", "the identity cancels it in the <em>final</em> "
                  "$\\tilde\\beta_t$, not in the intermediate line.")),
        answer_index=0, run="Rerun the set-up cell and the cell that prints the reference's intermediate variance."),
    # ------------------------------------------------------------------ chapter 5
    SpotError(
        key="05-reference-weight", chapter=5, title="Where the reference's weight comes from",
        prompt="The reference's weight of $\\|\\varepsilon - \\varepsilon_\\theta\\|^2$ is "
               "$\\frac{\\beta_t}{2\\sigma_t^2\\alpha_t(1-\\bar\\alpha_{t-1})}$. Which mistake produces it?",
        explanation="Substituting $\\sigma_t^2 = \\tilde\\beta_t$ in $\\frac{\\beta_t^2}{2\\sigma_t^2\\alpha_t(1-\\bar\\alpha_t)}$ "
                    "gives $\\frac{\\beta_t}{2\\alpha_t(1-\\bar\\alpha_{t-1})}$; the reference then left $\\sigma_t^2$ in "
                    "the denominator as well, so $\\tilde\\beta_t$ is divided out twice (pitfalls page).",
        choices=(("$\\sigma_t^2 = \\tilde\\beta_t$ was substituted, and $\\sigma_t^2$ kept in the denominator too",
                  "right: the substitution cancels $1-\\bar\\alpha_t$ and one $\\beta_t$; keeping $\\sigma_t^2$ "
                  "divides by $\\tilde\\beta_t$ a second time."),
                 ("A square root was dropped from $\\beta_t$", "no: $\\beta_t^2$ becomes $\\beta_t$ through "
                  "the cancellation with $\\tilde\\beta_t$, not by a lost root."),
                 ("$t$ and $t-1$ were swapped by a typo", "no: $1-\\bar\\alpha_{t-1}$ comes from $\\tilde\\beta_t$ "
                  "itself."),
                 ("Nothing: it is the weight for $\\sigma_t^2 = \\beta_t$", "no: with $\\sigma_t^2 = \\beta_t$ the "
                  "weight is $\\frac{\\beta_t}{2\\alpha_t(1-\\bar\\alpha_t)}$.")),
        answer_index=0),
    Compute(
        key="05-reference-weight-factor", chapter=5, title="How wrong the reference's weight is at t = T",
        prompt="With $\\sigma_t^2 = \\beta_t$ on the linear schedule ($T = 1000$), by what factor is the reference's "
               "weight larger than the true $\\lambda_t$ at $t = 1000$? (to 1 %)",
        explanation="The ratio is $\\frac{1-\\bar\\alpha_t}{\\beta_t(1-\\bar\\alpha_{t-1})}$: at $t = T$ both "
                    "$1-\\bar\\alpha$ are almost 1, so it is about $1/\\beta_T = 50$ (and about 18 000 at $t = 2$).",
        value=lambda: _reference_weight_factor(1000), rel_tol=1e-2,
        mistakes=((lambda: 1 / _reference_weight_factor(1000), "upside down: the reference's weight is the larger."),
                  (lambda: _reference_weight_factor(2), "that is the factor at $t = 2$; the question asks at "
                   "$t = 1000$."))),
    # ------------------------------------------------------------------ chapter 6
    SpotError(
        key="06-decoder-integrand", chapter=6, title="The reference's decoder display",
        prompt="The reference writes one pixel's factor of $p_\\theta(x_0\\mid x_1)$ as "
               "$\\int \\mathcal N\\big(x_0;\\ \\mu_\\theta^i(x_1, 1),\\ \\sigma_1^2\\big)\\,dx$ over the level's bin. "
               "What makes the display false as printed?",
        explanation="The integrand must be a density in the integration variable, $\\mathcal N(x;\\ \\mu_\\theta^i, "
                    "\\sigma_1^2)$; $x_0^i$ enters only through the limits $\\delta_\\pm(x_0^i)$ (pitfalls page).",
        choices=(("The integrand is in $x_0$ while the integral runs over $x$", "right: read literally it is "
                  "density × bin width, and infinite for the two open end bins."),
                 ("The bins should be $2/255$ wide on each side", "no: half the spacing $2/255$ either side, "
                  "$\\pm 1/255$, is right."),
                 ("The scale should be $\\sigma_1^2 = \\tilde\\beta_1$", "no: $\\tilde\\beta_1 = 0$; the display's "
                  "choice of scale is not the error."),
                 ("Nothing: it is correct", "no: it gives 0.3129 where the bin holds 0.3051 (next exercise).")),
        answer_index=0),
    Compute(
        key="06-bin-probability", chapter=6, title="The probability of the right bin",
        prompt="An interior level of 8-bit data, the decoder's mean exactly at the level and $\\sigma_1 = "
               "\\sqrt{\\beta_1} = 0.01$: what probability does $p_\\theta$ give the level? "
               "(<code>discretized_gaussian_log_likelihood</code>, to 0.1 %)",
        explanation="The bin is $\\pm 1/255$ around the mean, $0.39\\sigma_1$ each side: $2\\Phi(0.392) - 1 "
                    "\\approx 0.305$. Even a perfect mean loses $-\\log_2 0.305 \\approx 1.7$ bits on this pixel.",
        value=bin_probability, rel_tol=1e-3,
        mistakes=((_literal_integrand, "that is density × bin width: the reference's display read literally."),
                  (lambda: bin_probability(half_bin_only=True), "that is half the bin: the upper limit is "
                   "$\\delta_+(x_0) = x_0 + 1/255$, not $x_0$."))),
]
