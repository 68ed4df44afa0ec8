"""Displayed equations that fit the book's text column.

MathJax 3 does not break long formulas, so a sympy expression printed on one line can be
far wider than the page (one of the posterior steps was 1696 px in a 688 px column).
:func:`display_latex` lays an identity out over several lines instead: the top-level
terms of each side are packed into lines no wider than a budget, inside an ``aligned``
environment, continuation lines indented.  The width of a piece of LaTeX is estimated by
:func:`latex_width` in em of the display font; the browser test
``tests/test_browser_pages.py`` measures what MathJax really draws.
"""

from __future__ import annotations

import re

import sympy as sp

__all__ = ["latex_width", "book_latex", "terms_latex", "display_latex", "COLUMN_EM"]

#: Width budget of one display line, in em: the 688 px column holds ~34 em of displayed
#: math (about 20 px per em); a few em stay free for the margins.
COLUMN_EM = 30.0

_CMD = re.compile(r"\\([A-Za-z]+|.)")
_EPSILON = re.compile(r"\\epsilon(?![A-Za-z])")
_ZERO = {"left", "right", "mathcal", "displaystyle", "limits", "begin", "end"}
_WORDS = {"log": 1.5, "exp": 1.6, "quad": 1.0, "qquad": 2.0, "cdot": 0.5, "mid": 0.8}
_SPACES = {",": 0.17, ";": 0.28, ":": 0.22, "!": -0.17, " ": 0.25}
_WRAPPERS = ("bar", "tilde", "hat", "overline", "mathbb", "boldsymbol", "mathbf", "mathit")
_TEXT = ("text", "operatorname", "mathrm")


def _group(s: str, i: int) -> tuple[str, int]:
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return s[i + 1:j], j + 1
    return s[i + 1:], len(s)


def _argument(s: str, i: int) -> tuple[str, int]:
    while i < len(s) and s[i] == " ":
        i += 1
    if i < len(s) and s[i] == "{":
        return _group(s, i)
    m = _CMD.match(s, i)
    return (m.group(0), m.end()) if m else (s[i:i + 1], i + 1)


def latex_width(latex: str) -> float:
    """Approximate width of a LaTeX math string, in em of the display font.

    Fractions count as their wider part, sub/superscripts at 0.7, commands as one glyph;
    calibrated on MathJax's CHTML output in the built book (to ~10 %).
    """
    w, i = 0.0, 0
    while i < len(latex):
        c = latex[i]
        if c == "\\":
            m = _CMD.match(latex, i)
            name, i = m.group(1), m.end()
            if name in ("frac", "dfrac", "tfrac"):
                a, i = _argument(latex, i)
                b, i = _argument(latex, i)
                w += 0.85 * max(latex_width(a), latex_width(b)) + 0.4
            elif name == "sqrt":
                a, i = _argument(latex, i)
                w += latex_width(a) + 0.9
            elif name in _WRAPPERS:
                a, i = _argument(latex, i)
                w += latex_width(a)
            elif name in _TEXT:
                a, i = _argument(latex, i)
                w += 0.55 * len(a)
            elif name in _ZERO:
                pass
            else:
                w += _WORDS.get(name, _SPACES.get(name, 0.6))
        elif c in "_^":
            a, i = _argument(latex, i + 1)
            w += 0.72 * latex_width(a)
        else:
            w += 0.0 if c in "{} &" else 1.3 if c in "+-=<>" else 0.4 if c in "()[]|," else 0.55
            i += 1
    return w


def book_latex(expr: sp.Expr) -> str:
    """``sp.latex`` in the book's notation: ε is ``\\varepsilon`` (sympy prints ``\\epsilon``, ϵ)."""
    return _EPSILON.sub(r"\\varepsilon", sp.latex(expr))


def terms_latex(expr: sp.Expr) -> list[str]:
    """LaTeX of ``expr`` cut into its top-level terms, each carrying its sign (but the first)."""
    expr = sp.sympify(expr)
    if not isinstance(expr, sp.Add):
        return [book_latex(expr)]
    out = []
    for k, term in enumerate(expr.as_ordered_terms()):
        negative = term.could_extract_minus_sign()
        body = book_latex(-term if negative else term)
        out.append(("- " if negative else "" if k == 0 else "+ ") + body)
    return out


def _pack(pieces: list[str], budget: float) -> list[str]:
    lines: list[str] = []
    for piece in pieces:
        if lines and latex_width(lines[-1] + piece) <= budget:
            lines[-1] = f"{lines[-1]} {piece}"
        else:
            lines.append(piece)
    return lines


def display_latex(lhs: sp.Expr, relation: str, rhs: sp.Expr, budget: float = COLUMN_EM) -> str:
    """``lhs relation rhs`` as display LaTeX no wider than ``budget`` em where it can be.

    One line when it fits; otherwise an ``aligned`` block: a short left side stays in
    front of the relation and the right side's terms continue on indented lines; a long
    left side gets lines of its own first.  A single term wider than the budget (a big
    fraction) cannot be broken here and keeps its width.
    """
    left, right = book_latex(lhs), book_latex(rhs)
    if latex_width(f"{left} {relation} {right}") <= budget:
        return f"{left} {relation} {right}"
    indent = r"\quad "
    if latex_width(left) <= 0.4 * budget:
        rhs_lines = _pack(terms_latex(rhs), budget - latex_width(left) - 1.5)
        rows = [f"{left} &{relation} {rhs_lines[0]}"] + [f"&{indent}{line}" for line in rhs_lines[1:]]
    else:
        lhs_lines = _pack(terms_latex(lhs), budget)
        rhs_lines = _pack(terms_latex(rhs), budget - 2.5)
        rows = [f"&{lhs_lines[0]}"] + [f"&{indent}{line}" for line in lhs_lines[1:]]
        rows += [f"&{relation} {rhs_lines[0]}"] + [f"&{indent}{line}" for line in rhs_lines[1:]]
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"
