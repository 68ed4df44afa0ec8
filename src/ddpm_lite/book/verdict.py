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
from typing import Iterable, Iterator, Mapping

import numpy as np
import sympy as sp

from .display import display_latex

__all__ = [
    "alpha_t", "alpha_prev", "abar_prev", "beta_t", "abar_t", "sigma2", "x_0", "x_t", "x_prev",
    "eps", "eps_theta", "mu_theta", "RELATIONS", "to_free", "unit_interval_symbol",
    "Step", "check_identity", "find_counterexample", "provably_positive", "log_expansion_is_sound",
    "log_normal", "gaussian_kl", "evaluate_on_schedule", "format_number",
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
        lv, rv = (format_number(v) for v in self.values)
        return (f"<p><strong>{html.escape(self.name)}</strong>: FALSE (sympy).</p>{eq}"
                f"<p>Counterexample: {point}: left side {lv}, right side {rv}.</p>")


def format_number(value: sp.Expr) -> str:
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
    positive numbers for other positive symbols; a few reals for the rest (the first
    ``max_tries`` points, ordered so that no symbol stays at its first value when the grid
    is larger than that); last, for every log argument whose sign the assumptions do not fix,
    a point inside each interval between its real roots (log(A²) ≠ 2 log A only where A < 0,
    which a fixed grid can miss).  Values are compared at 40 significant digits.
    """
    lhs, rhs = to_free(lhs).doit(), to_free(rhs).doit()
    syms = sorted((lhs - rhs).free_symbols | lhs.free_symbols | rhs.free_symbols, key=sp.default_sort_key)
    values = [_candidates(s) for s in syms]
    if np.prod([len(v) for v in values]) <= max_tries:  # the whole grid is tried: its order is free
        indices = itertools.product(*(range(len(v)) for v in values))
    else:  # fewest symbols off their first value first, so that every symbol moves early
        indices = _graded(tuple(len(v) for v in values))
    grid = (dict(zip(syms, (v[i] for v, i in zip(values, idx)))) for idx in indices)
    tries = itertools.chain(itertools.islice(itertools.chain(points, grid), max_tries),
                            _sign_change_points(lhs - rhs, syms))
    for point in tries:
        point = {s: sp.nsimplify(point.get(s, _candidates(s)[0])) for s in syms}
        a, b = lhs.subs(point), rhs.subs(point)
        if a.free_symbols or b.free_symbols or not _differ(a, b):
            continue
        shown = dict(point)
        for disp, rel in RELATIONS.items():
            if rel.free_symbols <= set(point):  # a relation shown only where it has a value
                shown[disp] = sp.nsimplify(rel.subs(point))
        return shown, (sp.simplify(a), sp.simplify(b))
    return None


def check_identity(
    name: str, lhs: sp.Expr, rhs: sp.Expr, points: Iterable[Mapping[sp.Symbol, sp.Expr]] = ()
) -> Step:
    """Decide ``lhs == rhs`` for all admissible values of the symbols; "holds" means proved.

    The identity holds when sympy simplifies the difference (display symbols replaced by
    free ones, logs expanded as far as the symbols' assumptions allow) to 0.  Expanding logs
    with ``force=True`` proves more, but it silently assumes every factor and power base
    inside a log positive, and would "prove" log(x_t²) = 2 log x_t for real x_t.  So the
    forced expansion is used only when :func:`log_expansion_is_sound` has proved each of
    those bases positive from the symbols' assumptions (α_t, ᾱ_{t−1}, α_{t−1} and any
    :func:`unit_interval_symbol` in (0, 1)).  Otherwise a counterexample is searched; if
    there is neither a proof nor a counterexample the question is undecided and this raises
    RuntimeError rather than guess, so the build stops instead of printing a wrong verdict.

    Comparing an expression with itself proves nothing, so sides that are structurally
    identical as given (before any simplification) are a ValueError.  Unevaluated
    expressions (``sp.Derivative``, ``evaluate=False``) are evaluated only for the decision.
    """
    free_lhs, free_rhs = to_free(lhs).doit(), to_free(rhs).doit()
    if sp.sympify(lhs) == sp.sympify(rhs):
        raise ValueError(f"step {name!r} compares an expression with itself: derive each side from "
                         "definitions so that the check could fail.")
    difference = free_lhs - free_rhs
    if sp.simplify(sp.expand_log(difference)) == 0:
        return Step(name, lhs, rhs, True)
    if log_expansion_is_sound(difference) and sp.simplify(sp.expand_log(difference, force=True)) == 0:
        return Step(name, lhs, rhs, True)
    found = find_counterexample(lhs, rhs, points)
    if found is not None:
        return Step(name, lhs, rhs, False, found[0], found[1])
    raise RuntimeError(f"could not decide step {name!r} (undecided): sympy did not simplify the difference to 0 "
                       "with every log expansion proved valid, and no counterexample was found")


# ----------------------------------------------------------------------------- signs of log arguments
def _in_unit_interval_form(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each (0, 1) symbol u written as p/(1 + p), p > 0: sympy's assumptions know only
    "positive", and this turns u < 1 into something they can use (1 − u = 1/(1 + p))."""
    subs = {}
    for s in expr.free_symbols:
        if s in _UNIT:
            p = sp.Dummy(f"{s.name}_odds", positive=True)
            subs[s] = p / (1 + p)
    return expr.subs(subs) if subs else expr


def provably_positive(expr: sp.Expr) -> bool:
    """True only if ``expr > 0`` follows from the symbols' assumptions (unit-interval symbols in (0, 1)).

    False means "not proved", not "negative".
    """
    expr = sp.sympify(expr)
    if expr.is_positive:
        return True
    unit = _in_unit_interval_form(expr)
    return any(form.is_positive for form in (unit, sp.factor(sp.together(unit))))


def _log_bases(arg: sp.Expr) -> Iterator[tuple[sp.Expr, bool]]:
    """Each (base, exponent is real) that ``expand_log(log(arg), force=True)`` splits off, recursively:
    the factors of a product, the base of a power, exp's argument (as the power e^z)."""
    if arg.is_Mul:
        for factor in arg.args:
            yield factor, True
            yield from _log_bases(factor)
    elif arg.is_Pow or isinstance(arg, sp.exp):
        yield arg.base, bool(arg.exp.is_extended_real)
        yield from _log_bases(arg.base)


def log_expansion_is_sound(expr: sp.Expr) -> bool:
    """Whether ``expand_log(expr, force=True)`` equals ``expr`` for every admissible value of the symbols.

    Forcing writes log(∏ a_i) as Σ log a_i and log(b^e) as e log b; both are identities when
    every a_i and b is positive and e real, so each of them must be proved positive
    (:func:`provably_positive`).  A log of something else is left alone by the expansion.
    """
    return all(real and provably_positive(base)
               for log in sp.sympify(expr).atoms(sp.log) for base, real in _log_bases(log.args[0]))


def _graded(sizes: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Index tuples of the product grid by how many steps they are from the all-first corner."""
    def spread(total: int, k: int) -> Iterator[tuple[int, ...]]:
        if k == len(sizes):
            if total == 0:
                yield ()
            return
        for i in range(min(total, sizes[k] - 1) + 1):
            yield from ((i, *rest) for rest in spread(total - i, k + 1))
    for total in range(sum(sizes) - len(sizes) + 1):
        yield from spread(total, 0)


def _sign_change_points(difference: sp.Expr, syms: list[sp.Symbol]) -> Iterator[dict[sp.Symbol, sp.Expr]]:
    """Points that put a log argument of unproved sign on each side of each of its real roots.

    One symbol moves at a time, the others stay at their first candidate value.  Only
    arguments polynomial (after clearing denominators) in that symbol are searched.
    """
    base_point = {s: _candidates(s)[0] for s in syms}
    suspects = []
    for log in difference.atoms(sp.log):
        arg = log.args[0]
        suspects += [arg] + [b for b, _ in _log_bases(arg)]
    for expr in dict.fromkeys(e for e in suspects if not provably_positive(e)):
        for s in sorted(expr.free_symbols & set(syms), key=sp.default_sort_key):
            if not s.is_extended_real:
                continue
            others = {o: v for o, v in base_point.items() if o != s}
            for part in sp.together(expr.subs(others)).as_numer_denom():
                if not part.is_polynomial(s) or sp.degree(part, s) > 8:
                    continue
                for value in _between_roots(sp.Poly(part, s), s):
                    yield {**base_point, s: value}


def _between_roots(poly: sp.Poly, s: sp.Symbol) -> list[sp.Rational]:
    """A rational inside each interval that the real roots of ``poly`` cut the domain of ``s`` into."""
    low, high = (0.0, 1.0) if s in _UNIT else (0.0, None) if s.is_positive else (None, None)
    roots = sorted({float(r) for r in poly.real_roots()} if poly.degree() > 0 else set())
    roots = [r for r in roots if (low is None or r > low) and (high is None or r < high)]
    if not roots:
        return []
    edges = [low if low is not None else roots[0] - 2.0, *roots, high if high is not None else roots[-1] + 2.0]
    out = []
    for a, b in zip(edges, edges[1:]):
        value = sp.Rational((a + b) / 2).limit_denominator(10**4)
        if a < value < b:
            out.append(value)
    return out


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
