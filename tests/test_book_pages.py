"""The helpers behind the rendered pages: figure style, displayed equations, plain-text math.

Fast unit tests; what a reader finally sees is measured in a browser by
``tests/test_browser_pages.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
import sympy as sp
import torch

from ddpm_lite.book import symbolic as S
from ddpm_lite.book.display import COLUMN_EM, book_latex, display_latex, latex_width, terms_latex
from ddpm_lite.book.plotting import BOOK_STYLE, COLUMN_WIDTH, new_figure, show_digits, use_book_style

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from plain_titles import tex_to_segments, tex_to_unicode  # noqa: E402


# ---------------------------------------------------------------------------- figures
def test_book_style_fits_the_column_and_keeps_labels_readable():
    with mpl.rc_context():
        use_book_style()
        fig = new_figure(*mpl.rcParams["figure.figsize"])
        # A figure of the default size is the column's width at 1:1 on the page...
        assert round(fig.get_figwidth() * fig.dpi) == 688
        # ...so the smallest text (ticks, legends) is at least 9 px tall there.
        smallest = min(mpl.rcParams[k] for k in ("xtick.labelsize", "ytick.labelsize", "legend.fontsize"))
        assert smallest * fig.dpi / 72 >= 9
    assert BOOK_STYLE["figure.figsize"][0] == COLUMN_WIDTH


def test_show_digits_uses_the_full_gray_range_and_marks_the_gaps():
    images = torch.stack([torch.full((1, 8, 8), -1.0), torch.full((1, 8, 8), 1.0)])
    fig = new_figure(2, 1)
    ax = fig.subplots()
    show_digits(ax, images, ncols=2)
    shown = ax.images[0]
    data = shown.get_array()
    assert data.shape == (8, 17)
    assert shown.get_clim() == (0, 1)
    np.testing.assert_array_equal(data[:, :8], 0.0)  # −1 is black
    np.testing.assert_array_equal(data[:, 9:], 1.0)  # +1 is white
    assert data.mask[:, 8].all() and not data.mask[:, :8].any()  # the gap is not a gray level


# ---------------------------------------------------------------------------- displayed equations
def _rows(latex: str) -> list[str]:
    body = latex.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}")
    return body.split(r" \\ ")


def test_a_short_identity_stays_on_one_line():
    lhs, rhs = S.alpha_t * S.x_0, S.x_t
    assert display_latex(lhs, "=", rhs) == f"{sp.latex(lhs)} = {sp.latex(rhs)}"


@pytest.mark.parametrize("step", [s for s in S.posterior_steps() + S.reverse_steps()
                                  if latex_width(sp.latex(s.lhs) + sp.latex(s.rhs)) > COLUMN_EM],
                         ids=lambda s: s.name)
def test_a_long_identity_is_broken_into_lines_that_fit(step):
    rows = _rows(display_latex(step.lhs, "=", step.rhs))
    assert len(rows) > 1
    too_wide = [round(latex_width(r), 1) for r in rows if latex_width(r) > COLUMN_EM]
    assert not too_wide, f"rows wider than {COLUMN_EM} em: {too_wide}"
    # Nothing is lost: every term of both sides appears, with the relation once.
    text = " ".join(rows)
    for side in (step.lhs, step.rhs):
        for term in sp.Add.make_args(sp.sympify(side)):
            body = book_latex(-term if term.could_extract_minus_sign() else term)
            assert body in text, f"term {body[:40]}… missing"
    assert sum(r.count("&=") for r in rows) == 1


def test_epsilon_prints_as_the_books_epsilon():
    assert book_latex(S.eps - S.eps_theta) == r"\varepsilon - \varepsilon_{\theta}"
    assert r"\epsilon" not in display_latex(S.eps, "=", S.eps_theta)


def test_terms_carry_their_signs():
    a, b, c = sp.symbols("a b c", positive=True)
    terms = terms_latex(a - b + c)
    assert len(terms) == 3 and terms[0][0] not in "+-"
    assert sorted(t[0] for t in terms[1:]) == ["+", "-"]


def test_latex_width_counts_a_fraction_by_its_wider_part():
    assert latex_width(r"\frac{a}{b}") < latex_width("a/b")
    assert latex_width(r"\frac{abcdef}{b}") > latex_width(r"\frac{ab}{b}")
    assert latex_width(r"x_{t-1}") < latex_width("xt-1")


# ---------------------------------------------------------------------------- plain-text math
@pytest.mark.parametrize("tex, plain", [
    (r"L_0", "L₀"),
    (r"L_{t-1}", "Lₜ₋₁"),
    (r"\beta_t", "βₜ"),
    (r"\tilde\mu_t", "μ̃ₜ"),
    (r"\bar\alpha_{t-1}", "ᾱₜ₋₁"),
    (r"\sqrt{\bar\alpha_{t-1}}", "√ᾱₜ₋₁"),
    (r"\sigma_t^2", "σₜ²"),
    (r"[-1, 1]", "[−1, 1]"),
    (r"p_\theta(x_T)", "p_θ(x_T)"),
    (r"L_\text{simple}", "L_simple"),
    (r"\mathcal N(x_{t-1} : \dots)", "N(xₜ₋₁ : …)"),
    (r"|\cdot|", "|·|"),
])
def test_tex_to_unicode(tex, plain):
    assert tex_to_unicode(tex) == plain


def test_scripts_without_unicode_forms_become_sub_elements():
    assert tex_to_segments(r"p_\theta(x_T)") == [("text", "p"), ("sub", "θ"), ("text", "(x"), ("sub", "T"),
                                                 ("text", ")")]
    assert tex_to_segments(r"\begin{aligned} a &= b \\ &= c \end{aligned}") == [("text", "a = b = c")]


@pytest.mark.parametrize("tex", [r"\frac{1}{\sqrt{\alpha_t}}", r"\mathbb{E}_{q(x_{1:T}\mid x_0)}[\log w]",
                                 r"\operatorname{Cov}(x_s, x_t)", r"\left(\frac{a}{b}\right)^{2}", r"\unknown{x}"])
def test_no_backslash_or_brace_survives(tex):
    out = tex_to_unicode(tex)
    assert "\\" not in out and "{" not in out and "}" not in out, out
