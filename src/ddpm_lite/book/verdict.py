"""The verdict engine: the symbols of the derivation and :func:`check_identity`.

A step is an identity ``lhs == rhs``.  :func:`check_identity` decides it symbolically
(``simplify(lhs − rhs) == 0`` after writing every schedule symbol in terms of two free
ones) and, when it is false, finds a concrete point where the two sides differ, so that
every wrong formula of the reference derivation comes with a number a reader can verify
by hand.  The per-chapter steps live beside this module (:mod:`.elbo`, :mod:`.posterior`,
:mod:`.noise_weight`, :mod:`.bound`, :mod:`.grid`); :mod:`.symbolic` re-exports them.

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
    "alpha_t", "alpha_prev", "abar_prev", "beta_t", "abar_t", "sigma2", "x_0", "x_t", "x_prev",
    "eps", "eps_theta", "mu_theta", "RELATIONS", "to_free", "unit_interval_symbol",
    "Step", "check_identity", "find_counterexample",
    "log_normal", "gaussian_kl", "evaluate_on_schedule",
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
