"""The core of the exercises: the book's notation, reading an answer, verdicts, derive exercises.

The public face is :mod:`ddpm_lite.book.exercises`, which re-exports these names.

An exercise is data (the banks in :mod:`ddpm_lite.book.exercise_bank`): a prompt, the answer
key derived from the book's own objects, a written solution, equivalent correct forms, and
the common mistakes with their hints.  :meth:`Exercise.check` reads what the reader typed in
the book's notation (``alpha_t``, ``abar_prev``, ``x_t``, ``eps`` …, products with ``*``,
powers with ``^``) and decides with the verdict engine of :mod:`ddpm_lite.book.symbolic`:

* the identity holds → **correct**;
* it is one of the listed mistakes → that mistake's **hint** (and a point where it differs);
* a counterexample → **wrong**, with a point where the two expressions differ;
* sympy can neither prove nor refute it → **undecided**, never "correct".

In Jupyter an exercise shows an ipywidgets answer box; in the built book the same cell's
``text/html`` is a static answer box that ``book/_static/exercises.js`` judges without a
kernel, by evaluating the answer and the solution at random points of each symbol's domain
(:meth:`Exercise.browser_data` is everything it gets).  :meth:`Exercise.verify` runs when a
chapter shows an exercise, so a wrong solution or a mistake that the checker would accept
fails the book build.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, rationalize, standard_transformations

from . import symbolic as S
from .display import book_latex

__all__ = ["BOOK_NAMES", "COUNT", "POSITIVE", "REAL", "UNIT", "AnswerError", "Derive", "Domain", "Exercise",
           "Verdict", "parse_answer", "rich"]


@dataclass(frozen=True)
class Domain:
    """Where a symbol lives: its sympy assumptions (``kind``) and the interval the browser
    samples it from (``low``..``high``; integers for a ``count``)."""

    kind: str
    low: float
    high: float

    def symbol(self, name: str) -> sp.Symbol:
        if self.kind == "unit":
            return S.unit_interval_symbol(name)
        if self.kind == "count":
            return sp.Symbol(name, integer=True, positive=True)
        return sp.Symbol(name, positive=True) if self.kind == "positive" else sp.Symbol(name, real=True)


UNIT, POSITIVE, REAL, COUNT = (Domain("unit", 0.05, 0.95), Domain("positive", 0.1, 3.0),
                               Domain("real", -2.0, 2.0), Domain("count", 1, 12))

#: The book's notation as typed: name → (sympy symbol, domain).  β_t and ᾱ_t are tied to
#: α_t and ᾱ_{t−1} (``symbolic.RELATIONS``); the browser computes them the same way (DERIVED).
BOOK_NAMES: dict[str, tuple[sp.Symbol, Domain]] = {
    "alpha_t": (S.alpha_t, UNIT), "abar_prev": (S.abar_prev, UNIT), "alpha_prev": (S.alpha_prev, UNIT),
    "beta_t": (S.beta_t, UNIT), "abar_t": (S.abar_t, UNIT),
    "x_0": (S.x_0, REAL), "x_t": (S.x_t, REAL), "x_prev": (S.x_prev, REAL),
    "eps": (S.eps, REAL), "eps_theta": (S.eps_theta, REAL), "mu_theta": (S.mu_theta, REAL),
    "sigma2": (S.sigma2, Domain("positive", 0.05, 2.0)),
}
SCHEDULE = ("alpha_t", "beta_t", "abar_t", "abar_prev")
DERIVED = {"beta_t": "1 - alpha_t", "abar_t": "abar_prev * alpha_t"}
_FUNCTIONS = {"sqrt": sp.sqrt, "log": sp.log, "exp": sp.exp, "pi": sp.pi}
_ALLOWED = re.compile(r"[A-Za-z0-9_+\-*/^().,\s]*")
_NAME = re.compile(r"(?<![0-9.A-Za-z_])[A-Za-z_][A-Za-z0-9_]*")
MAX_ANSWER = 400
MAX_EXPONENT = 1000


class AnswerError(ValueError):
    """An answer that cannot be read; the message says what to change."""


def parse_answer(text: str | sp.Expr, names: Mapping[str, sp.Symbol]) -> sp.Expr:
    """Read ``text`` in the book's notation into a sympy expression over ``names``' symbols.

    Products need ``*`` and powers ``^`` (or ``**``); the functions are sqrt, log (natural)
    and exp, the constant pi.  Decimals become exact fractions.  Anything else raises
    :class:`AnswerError` naming the problem (never a parser traceback).
    """
    if isinstance(text, sp.Basic):
        return text
    if not isinstance(text, str):
        raise AnswerError(f"an answer is a string or a sympy expression, not {type(text).__name__}.")
    if not text.strip():
        raise AnswerError("the answer is empty: type an expression.")
    if len(text) > MAX_ANSWER:
        raise AnswerError(f"the answer has {len(text)} characters (at most {MAX_ANSWER}).")
    bad = _ALLOWED.fullmatch(text) is None and next(c for c in text if not _ALLOWED.fullmatch(c))
    if bad:
        raise AnswerError(f"'{bad}' is not part of the notation: use the names listed, numbers, "
                          "+ - * / ^, parentheses, sqrt, log, exp and pi.")
    for name in _NAME.findall(text):
        if name not in names and name not in _FUNCTIONS:
            raise AnswerError(f"unknown name '{name}': this exercise uses {', '.join(sorted(names))} "
                              "and the functions sqrt, log, exp, the constant pi.")
    kwargs = {"local_dict": {**names, **_FUNCTIONS},
              "global_dict": {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol,
                              "Mul": sp.Mul, "Add": sp.Add, "Pow": sp.Pow},
              "transformations": standard_transformations + (rationalize,)}
    try:
        # Read unevaluated first: 9^9^9^9 would otherwise be computed, digit by digit, here.
        raw = parse_expr(text.replace("^", "**"), evaluate=False, **kwargs)
        if any(isinstance(p, sp.Pow) and p.exp.is_number and abs(sp.N(p.exp, 5)) > MAX_EXPONENT
               for p in sp.preorder_traversal(raw)):
            raise AnswerError(f"an exponent above {MAX_EXPONENT} is not an answer here.")
        expr = parse_expr(text.replace("^", "**"), **kwargs)
    except AnswerError:
        raise
    except (SyntaxError, TypeError, TokenError_, ValueError, AttributeError, OverflowError, NameError) as e:
        raise AnswerError("could not read it as an expression: check the parentheses, and write every "
                          "product with * (2*x_t, not 2 x_t) and powers with ^.") from e
    if not isinstance(expr, sp.Expr) or expr.has(sp.zoo, sp.nan):
        raise AnswerError("that is not a single finite expression.")
    return expr


try:  # the tokenizer's error is not a SyntaxError
    from tokenize import TokenError as TokenError_
except ImportError:  # pragma: no cover
    TokenError_ = SyntaxError


def _math(latex: str) -> str:
    return f'<span class="math notranslate nohighlight">\\({html.escape(latex, quote=False)}\\)</span>'


def rich(text: str) -> str:
    """Prompt text with ``$…$`` as inline math in Sphinx's markup (typeset in Jupyter and the book)."""
    return re.sub(r"\$([^$]+)\$", lambda m: _math(m.group(1)), text)


@dataclass(repr=False)
class Verdict:
    """The judgement of one answer: ``status`` is correct / mistake / wrong / unparsable / undecided."""

    status: str
    message: str
    mistake: int | None = None
    preview: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def _repr_html_(self) -> str:
        mark = {"correct": "✔ Correct", "mistake": "✘ A common mistake", "wrong": "✘ Not right",
                "unparsable": "Cannot read it", "undecided": "Undecided"}[self.status]
        shown = f"<p>You typed {_math(self.preview)}</p>" if self.preview else ""
        return f'{shown}<p class="ddpm-exercise-{self.status}"><strong>{mark}.</strong> {rich(self.message)}</p>'

    def __repr__(self) -> str:
        return f"Verdict({self.status}: {self.message})"


def _value(v: sp.Expr) -> str:
    return S.format_number(v)


def _point(point: Mapping[sp.Symbol, sp.Expr]) -> str:
    return ", ".join(f"${book_latex(k)} = {book_latex(v)}$" for k, v in point.items())


Target = sp.Expr | Callable[[dict], sp.Expr]


@dataclass(repr=False)
class Exercise:
    """Common to every kind: where it sits, what it asks, how it is solved."""

    key: str
    chapter: int
    title: str
    prompt: str
    explanation: str
    kind: str = field(init=False, default="")
    number: int = field(init=False, default=0)

    def __repr__(self) -> str:
        return f"Exercise {self.chapter}.{self.number} ({self.kind}): {self.title}"

    @property
    def anchor(self) -> str:
        return f"exercise-{self.key}"

    def check(self, answer: Any) -> Verdict:
        raise NotImplementedError

    def verify(self) -> Exercise:
        """Raise AssertionError unless the solution passes and every listed mistake gets its hint."""
        return self

    def browser_data(self) -> dict:
        raise NotImplementedError

    def solution_html(self) -> str:
        raise NotImplementedError


@dataclass(repr=False)
class Derive(Exercise):
    """Enter an expression; judged against ``target`` (built from the book's own objects).

    ``solution`` is the written answer (checked against ``target``), ``forms`` other correct
    forms, ``mistakes`` (expression, hint) pairs, ``near`` wrong-but-close forms the tests
    hold the checker to rejecting, ``names`` the symbols it uses (book names or new ones with
    a :class:`Domain`).
    """

    target: Target = None
    solution: str = ""
    forms: Sequence[str] = ()
    mistakes: Sequence[tuple[str, str]] = ()
    near: Sequence[str] = ()
    names: Sequence[str] = ()
    domains: Mapping[str, Domain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = "derive"

    def all_names(self) -> list[str]:
        """The declared names, plus all four schedule names when one is used (β_t = 1 − α_t …)."""
        names = list(self.names)
        if set(names) & set(SCHEDULE):
            names += [n for n in SCHEDULE if n not in names]
        return names

    def symbols(self) -> dict[str, sp.Symbol]:
        out = {}
        for name in self.all_names():
            if name in self.domains:
                out[name] = self.domains[name].symbol(name)
            elif name in BOOK_NAMES:
                out[name] = BOOK_NAMES[name][0]
            else:
                raise ValueError(f"exercise {self.key}: name {name!r} needs a Domain in `domains`.")
        return out

    def target_expr(self) -> sp.Expr:
        if getattr(self, "_target", None) is None:
            self._target = sp.sympify(self.target(self.symbols()) if callable(self.target) else self.target)
        return self._target

    def parse(self, answer: str | sp.Expr) -> sp.Expr:
        return parse_answer(answer, self.symbols())

    def _unit_symbols(self) -> list[sp.Symbol]:
        doms = {n: self.domains.get(n) or BOOK_NAMES[n][1] for n in self.all_names()}
        return [sym for n, sym in self.symbols().items() if doms[n].kind == "unit" and n not in DERIVED]

    def _same(self, a: sp.Expr, b: sp.Expr) -> tuple[bool | None, Any]:
        """(holds, (point, values)): True, False with a point where they differ, or None (undecided)."""
        if a == b:
            return True, None
        # A few exact points first: most wrong answers differ at the first one, and an exact
        # difference is a proof; sympy's simplify is the slow part of the engine.
        quick = S.find_counterexample(a, b, max_tries=4)
        if quick is not None:
            return False, quick
        try:
            step = S.check_identity("reader's answer", a, b)
            return step.holds, (None if step.holds else (step.counterexample, step.values))
        except RuntimeError:
            pass
        # Undecided, often because sympy cannot tell that 1 − ᾱ_t > 0 under a square root.
        # Writing each (0, 1) symbol as u = 1/(1 + w) with w > 0 covers the same values and
        # makes every 1 − u visibly positive; a difference that then simplifies to 0 is zero.
        subs = {u: 1 / (1 + sp.Symbol(f"w_{u.name}", positive=True)) for u in self._unit_symbols()}
        if subs and sp.simplify((S.to_free(a) - S.to_free(b)).doit().subs(subs)) == 0:
            return True, None
        return None, None

    def check(self, answer: str | sp.Expr) -> Verdict:
        """Judge ``answer`` (a string in the book's notation or a sympy expression)."""
        try:
            expr = self.parse(answer)
        except AnswerError as e:
            return Verdict("unparsable", str(e))
        preview = book_latex(expr)
        holds, step = self._same(expr, self.target_expr())
        if holds:
            return Verdict("correct", "it equals the solution for every admissible value (sympy).", preview=preview)
        where = ""
        if step is not None:
            a, b = (_value(v) for v in step[1])
            where = f" At {_point(step[0])} yours is {a}, the solution {b}."
        for i, (mistake, hint) in enumerate(self.mistakes):
            if self._same(expr, self.parse(mistake))[0]:
                return Verdict("mistake", hint + where, mistake=i, preview=preview)
        if holds is None:
            return Verdict("undecided", "sympy could neither prove nor refute that it equals the solution, "
                           "so it is not marked correct; try a simpler form.", preview=preview)
        return Verdict("wrong", "it differs from the solution." + where, preview=preview)

    def verify(self, forms: bool = False) -> Derive:
        """The solution (and, with ``forms``, every equivalent form) passes; each mistake gets its hint."""
        for text in (self.solution, *(self.forms if forms else ())):
            v = self.check(text)
            assert v.correct, f"exercise {self.key}: the correct form {text!r} is judged {v}"
        for i, (mistake, _) in enumerate(self.mistakes):
            v = self.check(mistake)
            assert v.status == "mistake" and v.mistake == i, f"exercise {self.key}: mistake {mistake!r} gives {v}"
        return self

    def browser_data(self) -> dict:
        syms = self.symbols()
        variables, derived = {}, {}
        for name in self.all_names():
            dom = self.domains.get(name) or BOOK_NAMES[name][1]
            if name in DERIVED and name not in self.domains:
                derived[name] = DERIVED[name]
                for dep in _NAME.findall(DERIVED[name]):
                    variables.setdefault(dep, [BOOK_NAMES[dep][1].low, BOOK_NAMES[dep][1].high, False])
            else:
                variables[name] = [dom.low, dom.high, dom.kind == "count"]
        return {"key": self.key, "kind": "derive", "names": self.all_names(), "vars": variables,
                "derived": derived, "solution": self.solution, "tex": {n: book_latex(s) for n, s in syms.items()},
                "mistakes": [{"expr": m, "hint": rich(h)} for m, h in self.mistakes]}

    def solution_html(self) -> str:
        shown = book_latex(self.parse(self.solution))
        return (f"<p>{_math(shown)} &nbsp; (typed: <code>{html.escape(self.solution)}</code>)</p>"
                f"<p>{rich(self.explanation)}</p>")
