"""How an exercise looks: an ipywidgets answer box in Jupyter, static HTML in the built book.

Both show the same prompt, answer box, verdict and folded solution.  The static form carries
:meth:`~ddpm_lite.book.exercises.Exercise.browser_data` as JSON; ``book/_static/exercises.js``
(with the vendored math.js parser) judges answers from it in the browser.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .display import book_latex
from .exercise_core import Exercise, rich

__all__ = ["names_html", "static_html", "widget"]


def _head(ex: Exercise) -> str:
    return (f'<p class="ddpm-exercise-head"><strong>Exercise {ex.chapter}.{ex.number}</strong> '
            f'<span class="ddpm-exercise-kind">({html.escape(ex.kind)})</span> · {html.escape(ex.title)}</p>'
            f'<div class="ddpm-exercise-prompt">{rich(ex.prompt)}</div>')


def names_html(ex: Exercise) -> str:
    """The names an answer may use, each with the symbol it stands for."""
    derive = getattr(ex, "form", None) if ex.kind != "derive" else ex
    if ex.kind == "compute":
        return "<p class=\"ddpm-exercise-names\">Type a number or a numeric expression (sqrt, log, exp, pi).</p>"
    if derive is None:
        return ""
    syms = derive.symbols()
    names = ", ".join(f"<code>{n}</code> = {rich('$' + book_latex(s) + '$')}" for n, s in syms.items())
    return (f'<p class="ddpm-exercise-names">Names: {names}; products with <code>*</code>, powers with '
            f"<code>^</code>, and sqrt, log, exp, pi.</p>")


def _choices(ex: Exercise) -> str:
    rows = "".join(f'<label class="ddpm-exercise-choice"><input type="radio" name="{ex.anchor}-choice" '
                   f'value="{i}"> ({chr(97 + i)}) {rich(text)}</label>' for i, (text, _) in enumerate(ex.choices))
    return f'<fieldset class="ddpm-exercise-choices"><legend>Your choice</legend>{rows}</fieldset>'


def static_html(ex: Exercise) -> str:
    """The exercise for a page without a kernel (judged by ``exercises.js``)."""
    data = json.dumps(ex.browser_data(), ensure_ascii=False).replace("</", "<\\/")
    choice = _choices(ex) if ex.kind in ("spot the error", "predict, then run") else ""
    has_box = ex.kind in ("derive", "compute") or getattr(ex, "form", None) is not None
    label = "Corrected form" if ex.kind == "spot the error" else "Your answer"
    box = (f'<label class="ddpm-exercise-label">{label} <input type="text" class="ddpm-exercise-input" '
           f'autocomplete="off" autocapitalize="off" spellcheck="false" aria-label="{label}"></label>'
           if has_box else "")
    run = f'<p class="ddpm-exercise-run">{rich(ex.run)}</p>' if getattr(ex, "run", "") else ""
    return (f'<div class="ddpm-exercise" id="{ex.anchor}" data-kind="{html.escape(ex.kind)}">{_head(ex)}'
            f"{choice}{box}{names_html(ex) if has_box else ''}"
            f'<p><button type="button" class="ddpm-exercise-check">Check</button></p>'
            f'<div class="ddpm-exercise-preview" aria-live="polite"></div>'
            f'<div class="ddpm-exercise-verdict" aria-live="polite"></div>{run}'
            f'<details class="ddpm-exercise-solution"><summary>Solution</summary>{ex.solution_html()}'
            f"<p class=\"ddpm-exercise-checked\">Checked when the book was built: the solution passes the "
            f"same checker, and each listed mistake gets its hint.</p></details>"
            f'<noscript><p>The answer box needs JavaScript; the solution above works without it.</p></noscript>'
            f'<script type="application/json" class="ddpm-exercise-data">{data}</script></div>')


def widget(ex: Exercise) -> Any:
    """The live answer box: a text field (and choices), Check, the verdict, Show solution."""
    import ipywidgets as W

    parts: list[Any] = [W.HTMLMath(_head(ex))]
    radio = text = None
    if ex.kind in ("spot the error", "predict, then run"):
        radio = W.RadioButtons(options=[(f"({chr(97 + i)}) {t}", i) for i, (t, _) in enumerate(ex.choices)],
                               value=None, layout=W.Layout(width="auto"))
        parts.append(radio)
    if ex.kind in ("derive", "compute") or getattr(ex, "form", None) is not None:
        text = W.Text(placeholder="type your answer, then Enter or Check", continuous_update=False,
                      layout=W.Layout(width="100%"))
        parts += [text, W.HTMLMath(names_html(ex))]
    check, show = W.Button(description="Check"), W.Button(description="Show solution")
    verdict, solution = W.HTMLMath(), W.HTMLMath()

    def judge(_: Any = None) -> None:
        if radio is not None:
            v = ex.check(radio.value, (text.value or None) if text is not None else None)
        else:
            v = ex.check(text.value)
        verdict.value = v._repr_html_()

    def reveal(_: Any = None) -> None:
        solution.value = ex.solution_html()

    check.on_click(judge)
    show.on_click(reveal)
    if text is not None:
        text.observe(judge, names="value")
    parts += [W.HBox([check, show]), verdict, solution]
    return W.VBox(parts)
