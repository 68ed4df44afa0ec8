"""The derivation as sympy objects: each step the book displays, with a machine verdict.

A step is an identity ``lhs == rhs``.  :func:`check_identity` decides it symbolically
(``simplify(lhs − rhs) == 0`` after writing every schedule symbol in terms of two free
ones) and, when it is false, finds a concrete point where the two sides differ, so that
every wrong formula of the reference derivation comes with a number a reader can verify
by hand.  The chapters display these objects and assert their verdicts; the tests assert
them again, so a wrong derivation fails both the book build and the test suite.

Free symbols are α_t and ᾱ_{t−1}, both in (0, 1).  β_t and ᾱ_t are display symbols
tied to them by ``RELATIONS`` (β_t = 1 − α_t, ᾱ_t = ᾱ_{t−1} α_t); keeping them lets the
book show formulas in the paper's letters while the checks see one consistent set of
unknowns.  Everything is one-dimensional: every density in the derivation is isotropic,
so a d-dimensional KL or log-density is d copies of the 1-D one.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import sympy as sp

from .display import display_latex

__all__ = [
    # symbols and relations
    "alpha_t", "alpha_prev", "abar_prev", "beta_t", "abar_t", "sigma2", "x_0", "x_t", "x_prev",
    "eps", "eps_theta", "mu_theta", "RELATIONS", "to_free", "unit_interval_symbol",
    # verdicts
    "Step", "check_identity", "find_counterexample",
    # densities and evaluation on a schedule
    "log_normal", "gaussian_kl", "evaluate_on_schedule",
    # chapter 02
    "elbo_log_of_product", "log_concavity",
    # chapter 03
    "telescoping_product", "telescoping_sum_reference", "gaussian_kl_by_integration",
    "kl_reference_first_line", "kl_corrected_first_line", "joint_both_ways",
    # chapter 04
    "beta_tilde", "mu_tilde", "mu_tilde_eps", "x_t_of_eps", "x_0_of_eps", "forward_step_in_x_prev",
    "complete_the_square", "posterior_steps", "precision_P", "linear_B", "P_sym", "B_sym",
    "completing_the_square_lines", "completing_the_square_steps", "true_identity", "reference_appendix_a", "reference_mu_tilde_sqrt",
    # chapter 05
    "mu_theta_eps", "loss_weight", "loss_weight_reference", "kl_constant", "reverse_steps", "reference_loss_weight",
    "mean_difference", "noise_prediction_lines", "noise_prediction_steps", "decoder_gaussian_at_t1",
    # every step, for the tests
    "all_steps",
]

# ----------------------------------------------------------------------------- symbols
alpha_t = sp.Symbol("alpha_t", positive=True)
#: ᾱ_{t−1}; with α_t it fixes every other schedule quantity at step t.
abar_prev = sp.Symbol(r"\bar{\alpha}_{t-1}", positive=True)
#: α_{t−1} (not ᾱ_{t−1}): needed only to show the reference's √α_{t−1} slip.
alpha_prev = sp.Symbol(r"\alpha_{t-1}", positive=True)
beta_t = sp.Symbol("beta_t", positive=True)
abar_t = sp.Symbol(r"\bar{\alpha}_t", positive=True)
#: σ_t², the reverse-process variance.
sigma2 = sp.Symbol("sigma_t^2", positive=True)
x_0, x_t, x_prev = sp.symbols("x_0 x_t x_{t-1}", real=True)
eps = sp.Symbol("epsilon", real=True)
eps_theta = sp.Symbol(r"epsilon_theta", real=True)
mu_theta = sp.Symbol(r"mu_theta", real=True)

#: Display symbol → expression in the free symbols (α_t, ᾱ_{t−1}).
RELATIONS: dict[sp.Symbol, sp.Expr] = {beta_t: 1 - alpha_t, abar_t: abar_prev * alpha_t}

# Symbols whose value must lie in (0, 1): candidate points for counterexamples come from
# this interval, in an order that makes the first point tried β_t = 1/10, ᾱ_{t−1} = 1/2.
_UNIT = {alpha_t: (sp.Rational(9, 10), sp.Rational(1, 2), sp.Rational(99, 100)),
         abar_prev: (sp.Rational(1, 2), sp.Rational(1, 5), sp.Rational(9, 10)),
         alpha_prev: (sp.Rational(9, 10), sp.Rational(1, 2))}
_REAL = (sp.Integer(1), sp.Integer(-2), sp.Rational(1, 2))
_POSITIVE = (sp.Rational(1, 2), sp.Integer(2), sp.Integer(3))


def unit_interval_symbol(name: str) -> sp.Symbol:
    """A positive symbol that the checks treat as lying in (0, 1), like α_t and ᾱ_{t−1}.

    Use it for any other schedule quantity a chapter writes (ᾱ_T, say): a counterexample is
    then looked for inside (0, 1), where the quantity lives, not at 2 or 3.
    """
    sym = sp.Symbol(name, positive=True)
    _UNIT.setdefault(sym, _UNIT[abar_prev])
    return sym


def to_free(expr: sp.Expr) -> sp.Expr:
    """Rewrite β_t and ᾱ_t in terms of α_t and ᾱ_{t−1} (the relations of ``RELATIONS``)."""
    return sp.sympify(expr).subs(RELATIONS)


# ----------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Step:
    """One displayed identity ``lhs = rhs`` and the machine's verdict on it.

    ``counterexample`` is None when the identity holds; otherwise it maps each free
    symbol (and β_t, ᾱ_t, for reading) to an exact value at which the sides differ, and
    ``values`` holds (lhs, rhs) evaluated there.
    """

    name: str
    lhs: sp.Expr
    rhs: sp.Expr
    holds: bool
    counterexample: dict[sp.Symbol, sp.Expr] | None = None
    values: tuple[sp.Expr, sp.Expr] | None = field(default=None)

    def _repr_html_(self) -> str:
        # HTML with the math in Sphinx's own markup: MathJax typesets it in Jupyter and in the
        # built book alike, whereas a markdown output is parsed as CommonMark by the book and
        # its underscores would turn into emphasis.
        def math(latex: str, display: bool) -> str:
            body = html.escape(latex, quote=False)
            return (f'<div class="math notranslate nohighlight">\\[{body}\\]</div>' if display
                    else f'<span class="math notranslate nohighlight">\\({body}\\)</span>')

        relation = "=" if self.holds else r"\neq"
        eq = math(display_latex(self.lhs, relation, self.rhs), True)  # broken to fit the column
        if self.holds:
            return f"<p><strong>{html.escape(self.name)}</strong>: holds (sympy).</p>{eq}"
        point = ", ".join(math(f"{sp.latex(k)} = {sp.latex(v)}", False) for k, v in self.counterexample.items())
        lv, rv = (_number(v) for v in self.values)
        return (f"<p><strong>{html.escape(self.name)}</strong>: FALSE (sympy).</p>{eq}"
                f"<p>Counterexample: {point}: left side {lv}, right side {rv}.</p>")


def _number(value: sp.Expr) -> str:
    """A value for the page, 6 significant digits; complex where a log met a negative number."""
    z = complex(sp.N(value, 30))
    return f"{z.real:.6g}" if z.imag == 0 else f"{z.real:.6g} {'+' if z.imag > 0 else '−'} {abs(z.imag):.6g}i"


def _candidates(sym: sp.Symbol) -> tuple[sp.Expr, ...]:
    if sym in _UNIT:
        return _UNIT[sym]
    return _POSITIVE if sym.is_positive else _REAL


def _differ(a: sp.Expr, b: sp.Expr) -> bool:
    try:
        diff = complex(sp.N(a - b, 40))
        scale = max(1.0, abs(complex(sp.N(a, 40))), abs(complex(sp.N(b, 40))))
    except TypeError:  # an unevaluated function: this point tells us nothing
        return False
    return np.isfinite(abs(diff)) and abs(diff) > 1e-25 * scale


def find_counterexample(
    lhs: sp.Expr, rhs: sp.Expr, points: Iterable[Mapping[sp.Symbol, sp.Expr]] = (), max_tries: int = 300
) -> tuple[dict[sp.Symbol, sp.Expr], tuple[sp.Expr, sp.Expr]] | None:
    """An exact point where ``lhs`` and ``rhs`` differ, or None if none is found.

    ``points`` are tried first (use them to choose a telling example, e.g. p = q for a KL);
    then a small grid of exact rationals: (0, 1) for α_t, ᾱ_{t−1}, α_{t−1}; a few
    positive numbers for other positive symbols; a few reals for the rest.  Values are
    compared at 40 significant digits.
    """
    lhs, rhs = to_free(lhs).doit(), to_free(rhs).doit()
    syms = sorted((lhs - rhs).free_symbols | lhs.free_symbols | rhs.free_symbols, key=sp.default_sort_key)
    grid = (dict(zip(syms, vals)) for vals in itertools.product(*(_candidates(s) for s in syms)))
    for point in itertools.islice(itertools.chain(points, grid), max_tries):
        point = {s: sp.nsimplify(point.get(s, _candidates(s)[0])) for s in syms}
        a, b = lhs.subs(point), rhs.subs(point)
        if a.free_symbols or b.free_symbols or not _differ(a, b):
            continue
        shown = dict(point)
        for disp, rel in RELATIONS.items():
            if rel.free_symbols & set(point):
                shown[disp] = sp.nsimplify(rel.subs(point))
        return shown, (sp.simplify(a), sp.simplify(b))
    return None


def check_identity(
    name: str, lhs: sp.Expr, rhs: sp.Expr, points: Iterable[Mapping[sp.Symbol, sp.Expr]] = ()
) -> Step:
    """Decide ``lhs == rhs`` for all admissible values of the symbols.

    True when sympy simplifies the difference (display symbols replaced by free ones, logs
    expanded as far as the symbols' assumptions allow) to 0.  Expanding with ``force=True``
    proves more, but only for positive log arguments: it would "prove" log(x_t²) = 2 log x_t
    for real x_t.  So an identity that needs ``force`` counts as true only if it also survives
    every exact sample point of :func:`find_counterexample`, negative reals included.
    Otherwise a counterexample is searched; if sympy cannot simplify the difference *and* no
    counterexample turns up, the question is undecided and this raises RuntimeError rather
    than guess, so the build stops instead of printing a wrong verdict.

    Comparing an expression with itself proves nothing, so sides that are structurally
    identical as given (before any simplification) are a ValueError.  Unevaluated
    expressions (``sp.Derivative``, ``evaluate=False``) are evaluated only for the decision.
    """
    free_lhs, free_rhs = to_free(lhs).doit(), to_free(rhs).doit()
    if sp.sympify(lhs) == sp.sympify(rhs):
        raise ValueError(f"step {name!r} compares an expression with itself: derive each side from "
                         "definitions so that the check could fail.")
    if sp.simplify(sp.expand_log(free_lhs - free_rhs)) == 0:
        return Step(name, lhs, rhs, True)
    # force=True assumes every log argument positive: a proof only where that holds.
    forced = sp.simplify(sp.expand_log(free_lhs - free_rhs, force=True)) == 0
    found = find_counterexample(lhs, rhs, points)
    if found is not None:
        return Step(name, lhs, rhs, False, found[0], found[1])
    if forced:  # and no sample point, negative reals included, tells the sides apart
        return Step(name, lhs, rhs, True)
    raise RuntimeError(f"could not decide step {name!r}: sympy did not simplify the difference to 0 "
                       "and no counterexample was found")


# ----------------------------------------------------------------------------- densities
def log_normal(x: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    """log N(x; mean, var) in one dimension."""
    return -sp.log(2 * sp.pi * var) / 2 - (x - mean) ** 2 / (2 * var)


def gaussian_kl(m1: sp.Expr, v1: sp.Expr, m2: sp.Expr, v2: sp.Expr) -> sp.Expr:
    """KL(N(m1, v1) ‖ N(m2, v2)) = ½[log(v2/v1) + (v1 + (m1 − m2)²)/v2 − 1] (eq. ``gaussian-kl``)."""
    return (sp.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1) / 2


def evaluate_on_schedule(expr: sp.Expr, schedule, t: np.ndarray | int, sigma2_values=None) -> np.ndarray:
    """Evaluate a formula in β_t, α_t, ᾱ_t, ᾱ_{t−1} (and σ_t²) on a NoiseSchedule's float64 arrays.

    This is how the book compares its derived formulas with the arrays the model trains
    with.  ``t`` indexes the schedule (1..T).
    """
    t = np.asarray(t)
    values = {alpha_t: schedule.alphas[t], abar_prev: schedule.alpha_bars_prev[t]}
    free = to_free(expr)
    syms = [alpha_t, abar_prev] + ([sigma2] if sigma2 in free.free_symbols else [])
    if sigma2 in syms:
        if sigma2_values is None:
            raise ValueError("the formula contains sigma_t^2: pass sigma2_values (an array indexed like t).")
        values[sigma2] = np.asarray(sigma2_values, dtype=np.float64)
    extra = free.free_symbols - set(syms)
    if extra:
        raise ValueError(f"cannot evaluate on a schedule: the formula also depends on {sorted(map(str, extra))}.")
    return np.asarray(sp.lambdify(syms, free, "numpy")(*(values[s] for s in syms)), dtype=np.float64)


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


# ----------------------------------------------------------------------------- chapter 04: the posterior
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


def all_steps() -> list[Step]:
    """Every Step this module defines, for the tests that hold all of them to the same rules."""
    steps = [elbo_log_of_product(), log_concavity(), telescoping_product(), telescoping_sum_reference(),
             joint_both_ways(), gaussian_kl_by_integration(), kl_reference_first_line(),
             kl_corrected_first_line(), forward_step_in_x_prev(), true_identity(), reference_mu_tilde_sqrt(),
             reference_loss_weight(), decoder_gaussian_at_t1()]
    steps += completing_the_square_steps() + posterior_steps() + noise_prediction_steps() + reverse_steps()
    return steps + list(reference_appendix_a().values())
