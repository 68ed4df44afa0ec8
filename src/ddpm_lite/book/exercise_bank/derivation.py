"""Exercises of the derivation, chapters 1–6.  Each answer key is built from the book's own
objects (``symbolic``, the library), never typed twice: the written solution is checked
against it, so a typo in a solution fails the build."""

from __future__ import annotations

import math

import sympy as sp

from .. import symbolic as S
from ..exercise_core import COUNT, POSITIVE, REAL, UNIT, Derive, Domain
from ..exercise_kinds import Compute, Predict, SpotError

_POSTERIOR = ["alpha_t", "beta_t", "abar_t", "abar_prev", "x_t", "x_0"]
MU_TILDE = ("sqrt(abar_prev)*beta_t/(1 - abar_t)*x_0 + sqrt(alpha_t)*(1 - abar_prev)/(1 - abar_t)*x_t")


def _linear(T: int = 1000):
    from ddpm_lite import NoiseSchedule

    return NoiseSchedule.linear(T)


def _gap_target(n: dict) -> sp.Expr:
    a, b = n["a"], n["b"]
    return (-sp.log(a) - sp.log(b)) / 2 - (-sp.log((a + b) / 2))


EXERCISES = [
    # ------------------------------------------------------------------ chapter 1
    Derive(
        key="01-abar-constant-beta", chapter=1, title="ᾱₜ for a constant β",
        prompt="With the same $\\beta$ at every step, write $\\bar\\alpha_t = \\prod_{s=1}^{t} \\alpha_s$ "
               "in closed form, in <code>beta</code> and <code>t</code>.",
        explanation="Every factor is $\\alpha_s = 1 - \\beta$, and there are $t$ of them.",
        target=lambda n: sp.product(1 - n["beta"], (sp.Symbol("s", integer=True), 1, n["t"])),
        solution="(1 - beta)^t", forms=("(1 - beta)^(t - 1)*(1 - beta)", "(1 - beta)^(t + 1)/(1 - beta)"),
        mistakes=(("1 - t*beta", "that is only the first-order approximation $(1-\\beta)^t \\approx 1 - t\\beta$, "
                   "fine while $t\\beta \\ll 1$ and negative beyond."),
                  ("(1 - beta)^(t - 1)", "one factor short: $\\bar\\alpha_t$ multiplies $\\alpha_1, \\dots, \\alpha_t$, "
                   "$t$ factors ($t$ vs $t-1$)."),
                  ("beta^t", "$\\bar\\alpha_t$ multiplies the $\\alpha_s = 1 - \\beta_s$, not the $\\beta_s$.")),
        near=("(1 - beta)^(t + 1)", "-(1 - beta)^t", "2*(1 - beta)^t"),
        names=("beta", "t"), domains={"beta": UNIT, "t": COUNT}),
    Derive(
        key="01-xt-from-x0", chapter=1, title="Jumping to step t",
        prompt="Write a sample of $x_t \\sim q(x_t \\mid x_0)$ in terms of $x_0$ and one standard normal "
               "$\\varepsilon$ (eq. <code>marginal</code>).",
        explanation="$q(x_t\\mid x_0) = \\mathcal N(\\sqrt{\\bar\\alpha_t}\\,x_0, (1-\\bar\\alpha_t) I)$: the mean is "
                    "scaled by $\\sqrt{\\bar\\alpha_t}$ and the noise has standard deviation $\\sqrt{1-\\bar\\alpha_t}$.",
        target=S.x_t_of_eps, solution="sqrt(abar_t)*x_0 + sqrt(1 - abar_t)*eps",
        forms=("sqrt(abar_prev*alpha_t)*x_0 + sqrt(1 - abar_prev*alpha_t)*eps",
               "sqrt(1 - abar_t)*(eps + sqrt(abar_t/(1 - abar_t))*x_0)"),
        mistakes=(("sqrt(abar_t)*x_0 + (1 - abar_t)*eps", "$1-\\bar\\alpha_t$ is the noise's variance; its scale "
                   "is the square root."),
                  ("abar_t*x_0 + sqrt(1 - abar_t)*eps", "the mean is $\\sqrt{\\bar\\alpha_t}\\,x_0$: only then does "
                   "the variance of $x_t$ stay 1 for unit-variance data.")),
        near=("sqrt(abar_prev)*x_0 + sqrt(1 - abar_prev)*eps", "sqrt(abar_t)*x_0 - sqrt(abar_t)*eps"),
        names=("abar_t", "x_0", "eps")),
    Compute(
        key="01-abar-T", chapter=1, title="How much signal is left at t = T",
        prompt="For the linear schedule ($T = 1000$, $\\beta_1 = 10^{-4}$ to $\\beta_T = 0.02$), what is "
               "$\\bar\\alpha_T$? Compute it from <code>NoiseSchedule.linear(1000)</code> (to 1 %).",
        explanation="<code>NoiseSchedule.linear(1000).alpha_bars[1000]</code>: about $4\\times10^{-5}$, so "
                    "$x_T$ keeps $\\sqrt{\\bar\\alpha_T} \\approx 0.006$ of the data.",
        value=lambda: _linear().alpha_bars[-1], rel_tol=1e-2,
        mistakes=((lambda: 1 - _linear().betas[1:].sum(),
                   "$1 - \\sum_t \\beta_t$ is the first-order approximation; with $\\sum\\beta_t \\approx 10$ it is "
                   "far off (and negative)."),
                  (lambda: math.sqrt(_linear().alpha_bars[-1]),
                   "that is $\\sqrt{\\bar\\alpha_T}$, the scale of the signal, not $\\bar\\alpha_T$."))),
    Predict(
        key="01-short-chain", chapter=1, title="A shorter chain",
        prompt="Keep $\\beta_1 = 10^{-4}$ and $\\beta_T = 0.02$ but shorten the chain from $T = 1000$ to $T = 100$. "
               "What happens to the prior term $L_T$?",
        explanation="With ten times fewer steps the $\\beta_t$ sum to a tenth as much, $\\bar\\alpha_T$ is no longer "
                    "near 0, and $x_T$ keeps a visible part of the data: $L_T$ grows by orders of magnitude (the "
                    "short-chain pitfall above).",
        choices=(("It grows by orders of magnitude", "right: $\\bar\\alpha_T = \\prod_t(1-\\beta_t)$ is far from 0 "
                  "with 100 steps."),
                 ("It stays the same: it depends only on $\\beta_T$", "no: it depends on $\\bar\\alpha_T$, the "
                  "product of all $1-\\beta_t$."),
                 ("It shrinks: fewer steps, fewer terms", "no: $L_T$ is one term, and it measures how much data is left "
                  "at $t = T$.")),
        answer_index=0, run="Then drag $T$ in the explorer below from 1000 to 100 and read $L_T$ under the picture."),
    # ------------------------------------------------------------------ chapter 2
    Derive(
        key="02-log-concave", chapter=2, title="Why Jensen applies",
        prompt="Compute $\\frac{d^2}{dw^2} \\log w$ for $w > 0$. (Its sign is why $-\\log \\mathbb E[w] \\le "
               "\\mathbb E[-\\log w]$.)",
        explanation="$\\frac{d}{dw}\\log w = 1/w$, and $\\frac{d}{dw} w^{-1} = -w^{-2} < 0$: log is concave.",
        target=lambda n: sp.diff(sp.log(n["w"]), n["w"], 2), solution="-1/w^2", forms=("-w^(-2)", "-(1/w)^2"),
        mistakes=(("1/w^2", "the sign: log is concave, its second derivative is negative."),
                  ("1/w", "that is the first derivative.")),
        near=("-1/w", "-2/w^2", "-1/w^3"), names=("w",), domains={"w": POSITIVE}),
    Derive(
        key="02-jensen-gap", chapter=2, title="The Jensen gap of two values",
        prompt="The weight $w$ takes the values $a$ and $b$ with probability ½ each. Write the gap "
               "$\\mathbb E[-\\log w] - (-\\log \\mathbb E[w])$.",
        explanation="$\\mathbb E[-\\log w] = -\\tfrac12(\\log a + \\log b)$ and $-\\log \\mathbb E[w] = "
                    "-\\log\\frac{a+b}{2}$; the gap is $\\log\\frac{a+b}{2\\sqrt{ab}} \\ge 0$ (AM–GM), 0 only when $a = b$.",
        target=_gap_target, solution="log((a + b)/2) - log(a*b)/2",
        forms=("log((a + b)/(2*sqrt(a*b)))", "log(a + b) - log(2) - (log(a) + log(b))/2"),
        mistakes=(("log(a*b)/2 - log((a + b)/2)", "the sign: the gap is never negative, since "
                   "$-\\log$ is convex; you computed $-\\log\\mathbb E[w] - \\mathbb E[-\\log w]$."),),
        near=("log((a + b)/2) - log(a*b)", "log(a + b) - log(a*b)/2"),
        names=("a", "b"), domains={"a": POSITIVE, "b": POSITIVE}),
    Compute(
        key="02-jensen-number", chapter=2, title="The gap in nats",
        prompt="For $w \\in \\{1/2, 2\\}$ with probability ½ each, how many nats is the bound loose by, "
               "$\\mathbb E[-\\log w] + \\log \\mathbb E[w]$? (to 0.1 %)",
        explanation="$\\mathbb E[-\\log w] = 0$ and $\\mathbb E[w] = 5/4$: the gap is $\\log(5/4) \\approx 0.223$ nats.",
        value=lambda: math.log(1.25), rel_tol=1e-3, solution="log(5/4)",
        mistakes=((lambda: -math.log(1.25), "the sign: the gap $\\mathbb E[-\\log w] - (-\\log\\mathbb E[w])$ "
                   "is never negative."),
                  (lambda: math.log2(1.25), "that is in bits; the question asks for nats (natural log)."))),
    # ------------------------------------------------------------------ chapter 3
    Derive(
        key="03-telescope", chapter=3, title="The marginals telescope",
        prompt="Simplify $\\frac{q_1}{q_2}\\cdot\\frac{q_2}{q_3}\\cdot\\frac{q_3}{q_4}$, where $q_t$ stands for "
               "$q(x_t \\mid x_0)$ (the product of eq. <code>kl-telescope</code> for $T = 4$).",
        explanation="Each denominator cancels the next numerator; only $q_1/q_4$ is left.",
        target=lambda n: sp.Mul(n["q_1"] / n["q_2"], n["q_2"] / n["q_3"], n["q_3"] / n["q_4"]),
        solution="q_1/q_4", forms=("1/(q_4/q_1)", "q_1*q_4^(-1)"),
        mistakes=(("q_1/q_2 + q_2/q_3 + q_3/q_4", "a sum does not telescope: the reference writes a sum where "
                   "the product belongs (see the pitfalls page)."),
                  ("q_4/q_1", "upside down: $q_1$ is left in the numerator.")),
        near=("q_1/q_3", "q_2/q_4"), names=("q_1", "q_2", "q_3", "q_4"),
        domains={f"q_{i}": POSITIVE for i in range(1, 5)}),
    Derive(
        key="03-gaussian-kl", chapter=3, title="KL between two Gaussians",
        prompt="Write $\\mathrm{KL}(\\mathcal N(m_1, v_1) \\,\\|\\, \\mathcal N(m_2, v_2))$ in one dimension, in "
               "<code>m1, v1, m2, v2</code>.",
        explanation="$-\\int p \\log q = \\tfrac12\\log(2\\pi v_2) + \\frac{v_1 + (m_1-m_2)^2}{2 v_2}$ and "
                    "$\\int p\\log p = -\\tfrac12\\log(2\\pi e v_1)$; their sum is "
                    "$\\tfrac12\\big[\\log\\frac{v_2}{v_1} + \\frac{v_1 + (m_1-m_2)^2}{v_2} - 1\\big]$.",
        target=lambda n: S.gaussian_kl(n["m1"], n["v1"], n["m2"], n["v2"]),
        solution="(log(v2/v1) + (v1 + (m1 - m2)^2)/v2 - 1)/2",
        forms=("log(v2)/2 - log(v1)/2 + (v1 + (m1 - m2)^2)/(2*v2) - 1/2",
               "(log(v2/v1) + v1/v2 + (m2 - m1)^2/v2 - 1)/2"),
        mistakes=(("-log(2*pi*v2)/2 - (v1 + (m1 - m2)^2)/(2*v2) - log(2*pi*v1)/2 - 1/2",
                   "that is $\\int p\\log q + \\int p \\log p$: the reference's first line, with the sign of the "
                   "cross-entropy term flipped (pitfalls page). The KL is $-\\int p\\log q + \\int p\\log p$."),
                  ("(log(v2/v1) + (v1 + (m1 - m2)^2)/v2)/2", "the $-1$ is missing: check that "
                   "$\\mathrm{KL}(p\\|p) = 0$."),
                  ("(log(v1/v2) + (v2 + (m1 - m2)^2)/v1 - 1)/2", "that is $\\mathrm{KL}(q\\|p)$: the roles of the "
                   "two Gaussians are swapped.")),
        near=("(log(v2/v1) + (v1 - (m1 - m2)^2)/v2 - 1)/2", "log(v2/v1) + (v1 + (m1 - m2)^2)/v2 - 1"),
        names=("m1", "v1", "m2", "v2"),
        domains={"m1": REAL, "m2": REAL, "v1": POSITIVE, "v2": POSITIVE}),
    SpotError(
        key="03-kl-first-line", chapter=3, title="The reference's first line of the KL",
        prompt="The reference starts the Gaussian KL with $\\mathrm{KL}(p\\|q) = \\int p \\log q \\,dx - "
               "\\big(-\\int p \\log p\\,dx\\big)$. What is wrong? Then write the KL with $C = \\int p\\log q\\,dx$ "
               "and $E = \\int p \\log p\\,dx$.",
        explanation="$\\mathrm{KL}(p\\|q) = \\int p\\log\\frac pq = E - C$; the reference's line is $C + E$.",
        choices=(("The sign of $\\int p\\log q$", "right: $\\log\\frac pq = \\log p - \\log q$, so "
                  "$\\int p \\log q$ enters with a minus sign."),
                 ("The sign of $\\int p\\log p$", "no: $-(-\\int p\\log p) = +\\int p\\log p$ is right."),
                 ("The integrals should be under $q$", "no: the KL from $p$ averages under $p$."),
                 ("Nothing: it is correct", "it is not: at $p = q$ it gives $2\\int p\\log p \\ne 0$.")),
        answer_index=0,
        form=Derive(key="03-kl-first-line-form", chapter=3, title="", prompt="", explanation="",
                    target=lambda n: n["E"] - n["C"], solution="E - C", forms=("-(C - E)", "-C + E"),
                    mistakes=(("C + E", "that is the reference's line: the sign of $\\int p\\log q$ is flipped."),
                              ("C - E", "that is $-\\mathrm{KL}$: $\\log\\frac pq = \\log p - \\log q$.")),
                    near=("E - 2*C",), names=("C", "E"), domains={"C": REAL, "E": REAL})),
    # ------------------------------------------------------------------ chapter 4
    Derive(
        key="04-mu-tilde", chapter=4, title="The posterior mean μ̃ₜ",
        prompt="Complete the square and write $\\tilde\\mu_t(x_t, x_0)$, the mean of $q(x_{t-1}\\mid x_t, x_0)$, "
               "in $x_t$ and $x_0$.",
        explanation="$\\tilde\\mu_t = B/P$ with $P = \\alpha_t/\\beta_t + 1/(1-\\bar\\alpha_{t-1}) = "
                    "(1-\\bar\\alpha_t)/(\\beta_t(1-\\bar\\alpha_{t-1}))$ and $B = \\sqrt{\\alpha_t}x_t/\\beta_t + "
                    "\\sqrt{\\bar\\alpha_{t-1}}x_0/(1-\\bar\\alpha_{t-1})$.",
        target=lambda n: S.complete_the_square()["mean"], solution=MU_TILDE,
        forms=("(sqrt(abar_prev)*beta_t*x_0 + sqrt(alpha_t)*(1 - abar_prev)*x_t)/(1 - abar_t)",
               "(sqrt(abar_prev)*(1 - alpha_t)*x_0 + sqrt(alpha_t)*(1 - abar_prev)*x_t)/(1 - abar_prev*alpha_t)"),
        mistakes=((MU_TILDE.replace("sqrt(abar_prev)", "sqrt(alpha_prev)"),
                   "$\\sqrt{\\alpha_{t-1}}$ where $\\sqrt{\\bar\\alpha_{t-1}}$ belongs: the reference's slip in its last "
                   "line (pitfalls page)."),
                  (MU_TILDE.replace("sqrt(abar_prev)*beta_t", "sqrt(abar_prev*beta_t)"),
                   "$\\beta_t$ under the square root: the reference's typesetting of $\\tilde\\mu_t$ (pitfalls page)."),
                  ("(sqrt(abar_prev)*beta_t*x_0 + sqrt(alpha_t)*(1 - abar_prev)*x_t)/(1 - abar_prev + beta_t)",
                   "the denominator uses the false identity $1-\\bar\\alpha_t = (1-\\bar\\alpha_{t-1}) + \\beta_t$ "
                   "(the reference's, pitfalls page)."),
                  (MU_TILDE.replace("(1 - abar_t)", "(1 - abar_prev)"),
                   "$t$ vs $t-1$: the denominator is $1 - \\bar\\alpha_t$, the noise variance of $x_t$.")),
        near=(MU_TILDE.replace("+ sqrt(alpha_t)", "- sqrt(alpha_t)"), MU_TILDE.replace("*beta_t/", "/")),
        names=(*_POSTERIOR, "alpha_prev")),
    Derive(
        key="04-beta-tilde", chapter=4, title="The posterior variance β̃ₜ",
        prompt="Write $\\tilde\\beta_t$, the variance of $q(x_{t-1}\\mid x_t, x_0)$ (one over the precision $P$).",
        explanation="$P = \\frac{\\alpha_t}{\\beta_t} + \\frac{1}{1-\\bar\\alpha_{t-1}} = "
                    "\\frac{1-\\bar\\alpha_t}{\\beta_t(1-\\bar\\alpha_{t-1})}$, so "
                    "$\\tilde\\beta_t = \\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\beta_t$.",
        target=lambda n: S.complete_the_square()["variance"], solution="(1 - abar_prev)/(1 - abar_t)*beta_t",
        forms=("beta_t*(1 - abar_prev)/(1 - abar_prev*alpha_t)", "1/(alpha_t/beta_t + 1/(1 - abar_prev))"),
        mistakes=(("1/(1/beta_t + 1/(1 - abar_prev))", "the reference's precision: $1/\\beta_t$ is the precision "
                   "of $q(x_t\\mid x_{t-1})$ in $x_t$; in $x_{t-1}$ it is $\\alpha_t/\\beta_t$ (pitfalls page)."),),
        near=("(1 - abar_t)/(1 - abar_prev)*beta_t", "(1 - abar_prev)/(1 - abar_t)"),
        names=("alpha_t", "beta_t", "abar_t", "abar_prev")),
    Derive(
        key="04-mu-tilde-eps", chapter=4, title="The posterior mean in terms of the noise",
        prompt="Substitute $x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon)/\\sqrt{\\bar\\alpha_t}$ into "
               "$\\tilde\\mu_t$ and write it in $x_t$ and $\\varepsilon$.",
        explanation="The $x_t$ coefficients add up to $1/\\sqrt{\\alpha_t}$ and the $\\varepsilon$ coefficient is "
                    "$-\\beta_t/(\\sqrt{\\alpha_t}\\sqrt{1-\\bar\\alpha_t})$.",
        target=lambda n: S.mu_tilde.subs(S.x_0, S.x_0_of_eps), solution="(x_t - beta_t/sqrt(1 - abar_t)*eps)/sqrt(alpha_t)",
        forms=("x_t/sqrt(alpha_t) - (1 - alpha_t)/sqrt(alpha_t*(1 - abar_t))*eps",
               "(x_t - (1 - alpha_t)*eps/sqrt(1 - abar_t))/sqrt(alpha_t)"),
        mistakes=(("(x_t - beta_t/(1 - abar_t)*eps)/sqrt(alpha_t)", "a square root is missing: the noise in "
                   "$x_t$ has scale $\\sqrt{1-\\bar\\alpha_t}$."),
                  ("(x_t - beta_t/sqrt(1 - abar_t)*eps)/sqrt(abar_t)", "one step back divides by "
                   "$\\sqrt{\\alpha_t}$, not $\\sqrt{\\bar\\alpha_t}$.")),
        near=("(x_t + beta_t/sqrt(1 - abar_t)*eps)/sqrt(alpha_t)", "(x_t - beta_t/sqrt(1 - abar_prev)*eps)/sqrt(alpha_t)"),
        names=("alpha_t", "beta_t", "abar_t", "x_t", "eps")),
    SpotError(
        key="04-reference-precision", chapter=4, title="The reference's posterior precision",
        prompt="The reference's Appendix A collects the $x_{t-1}^2$ terms into the precision "
               "$\\frac{1}{\\beta_t} + \\frac{1}{1-\\bar\\alpha_{t-1}}$. What is wrong? Then write the right precision.",
        explanation="As a function of $x_{t-1}$, $q(x_t\\mid x_{t-1}) \\propto \\exp(-\\alpha_t (x_{t-1} - x_t/\\sqrt{\\alpha_t})^2"
                    "/(2\\beta_t))$: its precision in $x_{t-1}$ is $\\alpha_t/\\beta_t$. The reference's later false identity "
                    "for $1-\\bar\\alpha_t$ cancels this error (pitfalls page).",
        choices=(("$1/\\beta_t$ is the precision in $x_t$; in $x_{t-1}$ it is $\\alpha_t/\\beta_t$",
                  "right: the forward step scales $x_{t-1}$ by $\\sqrt{\\alpha_t}$."),
                 ("The second term should be $1/\\bar\\alpha_{t-1}$", "no: $q(x_{t-1}\\mid x_0)$ has variance "
                  "$1-\\bar\\alpha_{t-1}$, so that term is right."),
                 ("Precisions of two Gaussian factors do not add", "they do: the exponents add, and so do the "
                  "coefficients of $x_{t-1}^2$."),
                 ("Nothing: it is correct", "it is not: at $\\alpha_t = 0.9$, $\\bar\\alpha_{t-1} = 0.5$ it gives 12, "
                  "the density 11.")),
        answer_index=0,
        form=Derive(key="04-reference-precision-form", chapter=4, title="", prompt="", explanation="",
                    target=lambda n: S.complete_the_square()["precision"],
                    solution="alpha_t/beta_t + 1/(1 - abar_prev)",
                    forms=("(1 - abar_t)/(beta_t*(1 - abar_prev))",
                           "(alpha_t*(1 - abar_prev) + beta_t)/(beta_t*(1 - abar_prev))"),
                    mistakes=(("1/beta_t + 1/(1 - abar_prev)", "that is the reference's line: $1/\\beta_t$ is the "
                               "precision in $x_t$, not in $x_{t-1}$."),),
                    near=("alpha_t/beta_t - 1/(1 - abar_prev)", "alpha_t/beta_t + 1/(1 - abar_t)"),
                    names=("alpha_t", "beta_t", "abar_t", "abar_prev"))),
]
