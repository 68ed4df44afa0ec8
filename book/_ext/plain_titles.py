"""Headings with math, readable where MathJax does not run.

A heading such as ``## $p_\\theta(x_T)$ for the prior`` ends up in places MathJax never
sees: the browser tab, the sidebar of pages without math (References, Search, Index),
search results, and the text of every ``{ref}`` link to it.  There the TeX source showed
as is ("\\(p_\\theta(x_T)\\)").  This extension rewrites the math inside section titles
as Unicode text before Sphinx reads the titles, so every one of those places shows the
same thing: Greek letters, accents and sub/superscripts as Unicode characters where
Unicode has them (L₀, Lₜ₋₁, ᾱₜ, μ̃ₜ), and as ``<sub>``/``<sup>`` elements where it does not
(x<sub>T</sub>, p<sub>θ</sub>).  ``{ref}`` link texts, which Sphinx builds from the
title's plain text, get the same rich form back after resolution.

It also rewrites math in search-result excerpts (see ``plain_search.js``): every inline
or display math element in the HTML carries its Unicode rendering in ``data-plain``.
"""

from __future__ import annotations

import html
import re
import unicodedata

from docutils import nodes
from sphinx.transforms import SphinxTransform

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "θ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
SYMBOLS = {
    "cdot": "·", "dots": "…", "ldots": "…", "cdots": "⋯", "le": "≤", "leq": "≤", "ge": "≥",
    "geq": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "∼", "mid": "|", "|": "‖",
    "Vert": "‖", "lVert": "‖", "rVert": "‖", "vert": "|", "lvert": "|", "rvert": "|",
    "infty": "∞", "to": "→", "rightarrow": "→", "leftarrow": "←", "times": "×", "pm": "±",
    "sum": "Σ", "prod": "∏", "int": "∫", "partial": "∂", "nabla": "∇", "propto": "∝",
    "log": "log", "exp": "exp", "min": "min", "max": "max", "ln": "ln", "in": "∈",
    "{": "{", "}": "}", "%": "%", "_": "_", "&": "&", "#": "#", "\\": " ",
    ",": "\u2009", ";": " ", ":": " ", "!": "", "quad": " ", "qquad": "  ", " ": " ",
}
#: Sizing and spacing commands that print nothing.
SILENT = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
          "displaystyle", "textstyle", "limits", "nolimits"}
ACCENTS = {"bar": "\u0304", "overline": "\u0304", "tilde": "\u0303", "widetilde": "\u0303",
           "hat": "\u0302", "widehat": "\u0302", "dot": "\u0307", "ddot": "\u0308",
           "vec": "\u20d7"}
FONTS = {"mathcal", "mathrm", "text", "textrm", "textit", "mathit", "mathbf", "boldsymbol",
         "bm", "operatorname", "mathsf", "mathbb", "textbf", "mathscr"}
DOUBLE_STRUCK = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ"}
SUB = dict(zip("0123456789+-−=()aehijklmnoprstuvxβγρφχ",
               "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓᵦᵧᵨᵩᵪ"))
SUP = dict(zip("0123456789+-−=()inT", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ⁱⁿᵀ"))
#: Longer scripts read better as <sub>/<sup> than as a row of small Unicode letters.
MAX_UNICODE_SCRIPT = 3

_TOKEN = re.compile(r"\\([A-Za-z]+|.)|([{}_^])|(\s+)|(.)", re.S)


def _tokens(tex: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(tex):
        cmd, special, space, char = m.groups()
        if cmd is not None:
            out.append(("cmd", cmd))
        elif special is not None:
            out.append((special, special))
        elif space is not None:
            out.append(("space", " "))
        else:
            out.append(("char", char))
    return out


class _Parser:
    """A recursive-descent reader of the small TeX subset that headings and excerpts use.

    Produces segments ``(kind, text)`` with kind ``"text"``, ``"sub"`` or ``"sup"``.
    """

    def __init__(self, tex: str) -> None:
        self.toks = _tokens(tex)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def group(self) -> list[tuple[str, str]]:
        """One argument: a braced group or a single token."""
        kind, _ = self.peek()
        if kind == "space":
            self.take()
            kind, _ = self.peek()
        if kind == "{":
            self.take()
            segs = self.sequence(until="}")
            self.take()
            return segs
        return self.atom()

    def sequence(self, until: str | None = None) -> list[tuple[str, str]]:
        segs: list[tuple[str, str]] = []
        while True:
            kind, _ = self.peek()
            if kind is None or kind == until:
                return segs
            if kind in ("_", "^"):
                self.take()
                segs += _script("sub" if kind == "_" else "sup", self.group())
            else:
                segs += self.atom()

    def atom(self) -> list[tuple[str, str]]:
        kind, val = self.take()
        if kind is None:
            return []
        if kind == "{":
            segs = self.sequence(until="}")
            self.take()
            return segs
        if kind in ("}",):
            return []
        if kind == "space":
            return [("text", " ")]  # collapsed below; kept so "a, b" stays readable
        if kind == "char" and val == "&":
            return []  # an alignment point
        if kind == "char":
            return [("text", {"-": "−", "*": "∗", "'": "′"}.get(val, val))]
        # a command
        if val in GREEK:
            return [("text", GREEK[val])]
        if val in SYMBOLS:
            return [("text", SYMBOLS[val])]
        if val in SILENT:
            return []
        if val in ("begin", "end"):
            self.group()  # the environment's name
            return []
        if val in ACCENTS:
            arg = self.group()
            return _accent(arg, ACCENTS[val])
        if val in FONTS:
            arg = self.group()
            if val == "mathbb":
                return [(k, "".join(DOUBLE_STRUCK.get(c, c) for c in t)) for k, t in arg]
            return arg
        if val == "sqrt":
            arg = self.group()
            return [("text", "√")] + (_parenthesize(arg) if _visible_len(arg) > 1 else arg)
        if val in ("frac", "tfrac", "dfrac"):
            num, den = self.group(), self.group()
            return (_parenthesize(num) if _visible_len(num) > 1 else num) + [("text", "/")] \
                + (_parenthesize(den) if _visible_len(den) > 1 else den)
        return [("text", val)]  # unknown command: its name, never a backslash


_SCRIPT_CHARS = set(SUB.values()) | set(SUP.values())


def _visible_len(segs) -> int:
    """How many base characters a reader sees (scripts, accents and √ do not count)."""
    text = "".join(t for k, t in segs if k == "text").strip()
    return sum(1 for c in text if not unicodedata.combining(c) and c not in _SCRIPT_CHARS
               and c != "√")


def _parenthesize(segs):
    return [("text", "(")] + list(segs) + [("text", ")")]


def _accent(segs, mark: str):
    if not segs:
        return []
    kind, text = segs[0]
    return [(kind, unicodedata.normalize("NFC", text[:1] + mark + text[1:]))] + list(segs[1:])


def _script(kind: str, segs) -> list[tuple[str, str]]:
    text = "".join(t for _, t in segs)
    table = SUB if kind == "sub" else SUP
    if all(k == "text" for k, _ in segs) and len(text) <= MAX_UNICODE_SCRIPT \
            and text and all(c in table for c in text):
        return [("text", "".join(table[c] for c in text))]
    return [(kind, text)]


def tex_to_segments(tex: str) -> list[tuple[str, str]]:
    """``(kind, text)`` runs for a TeX math string; kind is "text", "sub" or "sup"."""
    segs = _Parser(tex).sequence()
    merged: list[tuple[str, str]] = []
    for kind, text in segs:
        if merged and merged[-1][0] == kind == "text":
            merged[-1] = ("text", merged[-1][1] + text)
        elif text:
            merged.append((kind, text))
    merged = [(k, re.sub(r"\s+", " ", t)) for k, t in merged]
    if merged and merged[0][0] == "text":
        merged[0] = ("text", merged[0][1].lstrip())
    if merged and merged[-1][0] == "text":
        merged[-1] = ("text", merged[-1][1].rstrip())
    return [(k, t) for k, t in merged if t]


def tex_to_unicode(tex: str) -> str:
    """Plain text for places without HTML markup (search excerpts).

    A sub/superscript without a Unicode form is written after ``_`` or ``^`` (x_T, L_simple),
    as plain-text mathematics usually is.
    """
    marks = {"text": "", "sub": "_", "sup": "^"}
    return "".join(marks[kind] + text for kind, text in tex_to_segments(tex))


def segments_to_nodes(segs) -> list[nodes.Node]:
    out: list[nodes.Node] = []
    for kind, text in segs:
        if kind == "text":
            out.append(nodes.Text(text))
        else:
            node = nodes.subscript if kind == "sub" else nodes.superscript
            out.append(node(text, text))
    return out


class PlainTitleMath(SphinxTransform):
    """Replace math inside section titles by its Unicode rendering (before titles are read)."""

    default_priority = 400

    def apply(self, **kwargs) -> None:
        rich = getattr(self.env, "ddpm_rich_titles", None)
        if rich is None:
            rich = self.env.ddpm_rich_titles = {}
        for title in self.document.findall(nodes.title):
            maths = [m for m in title.findall(nodes.math)]
            if not maths:
                continue
            for m in maths:
                span = nodes.inline("", "", *segments_to_nodes(tex_to_segments(m.astext())),
                                    classes=["plain-math"])
                m.replace_self(span)
            # How {ref} links will spell this title, and the rich form to put back.
            rich[title.astext()] = [(type(c).__name__, c.astext()) for c in _flatten(title)]


def _flatten(node: nodes.Node) -> list[nodes.Node]:
    """Text, subscript and superscript leaves of a title, in order."""
    out = []
    for child in node.children:
        if isinstance(child, (nodes.Text, nodes.subscript, nodes.superscript)):
            out.append(child)
        else:
            out += _flatten(child)
    return out


def _rich_link_texts(app, doctree, docname) -> None:
    rich = getattr(app.env, "ddpm_rich_titles", {})
    if not rich:
        return
    for ref in doctree.findall(nodes.reference):
        text = ref.astext()
        if text not in rich or ref.findall(nodes.subscript):
            continue
        kids = []
        for name, value in rich[text]:
            node = {"subscript": nodes.subscript, "superscript": nodes.superscript}.get(name)
            kids.append(node(value, value) if node else nodes.Text(value))
        target = ref[0] if len(ref.children) == 1 and isinstance(ref[0], nodes.inline) else ref
        target.children = []
        target += kids


def _merge_env(app, env, docnames, other) -> None:
    env.ddpm_rich_titles = {**getattr(env, "ddpm_rich_titles", {}),
                            **getattr(other, "ddpm_rich_titles", {})}


def _with_plain(visit):
    """Wrap a MathJax HTML visitor so the element it opens carries ``data-plain``."""

    def visit_with_plain(self, node):
        start = len(self.body)
        try:
            visit(self, node)
        finally:
            if len(self.body) > start:
                plain = html.escape(tex_to_unicode(node.astext()), quote=True)
                self.body[start] = self.body[start].replace(
                    ' class="math', f' data-plain="{plain}" class="math', 1)

    return visit_with_plain


def _wrap_math_renderers(app) -> None:
    registry = app.registry
    for table in (registry.html_inline_math_renderers, registry.html_block_math_renderers):
        if "mathjax" in table:
            visit, depart = table["mathjax"]
            table["mathjax"] = (_with_plain(visit), depart)


def setup(app):
    app.add_transform(PlainTitleMath)
    app.connect("doctree-resolved", _rich_link_texts)
    app.connect("env-merge-info", _merge_env)
    app.connect("builder-inited", _wrap_math_renderers)
    app.add_js_file("plain_search.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
