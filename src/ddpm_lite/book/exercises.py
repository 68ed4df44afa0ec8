"""Exercises that judge the reader's own answer, in Jupyter and in the rendered book.

An exercise is data (the banks in :mod:`ddpm_lite.book.exercise_bank`): a prompt, the answer
key derived from the book's own objects, a written solution, equivalent correct forms, and
the common mistakes with their hints.  ``check(answer)`` reads what the reader typed in the
book's notation (``alpha_t``, ``abar_prev``, ``x_t``, ``eps`` …, products with ``*``, powers
with ``^``) and decides with the verdict engine of :mod:`ddpm_lite.book.symbolic`:

* the identity holds → **correct**;
* it is one of the listed mistakes → that mistake's **hint** (and a point where it differs);
* a counterexample → **wrong**, with a point where the two expressions differ;
* sympy can neither prove nor refute it → **undecided**, never "correct".

A chapter shows one with ``exercise("04-mu-tilde")``: the solution and each listed mistake
are verified first (a wrong solution fails the book build), then Jupyter shows an ipywidgets
answer box and the built book the same cell's ``text/html``, a static answer box that
``book/_static/exercises.js`` judges without a kernel by evaluating the answer and the
solution at random points of each symbol's domain (``browser_data()`` is all it gets).
"""

from __future__ import annotations

from typing import Any

from .exercise_bank import BANK
from .exercise_core import (BOOK_NAMES, COUNT, POSITIVE, REAL, UNIT, AnswerError, Derive, Domain, Exercise,
                            Verdict, parse_answer)
from .exercise_kinds import Compute, Predict, SpotError
from .exercise_view import static_html, widget

__all__ = ["BOOK_NAMES", "COUNT", "POSITIVE", "REAL", "UNIT", "AnswerError", "Compute", "Derive", "Domain",
           "Exercise", "ExerciseCell", "Predict", "SpotError", "Verdict", "all_exercises", "exercise", "parse_answer"]


def all_exercises() -> list[Exercise]:
    """Every exercise of the book, by chapter, numbered within its chapter."""
    count: dict[int, int] = {}
    for ex in BANK:
        count[ex.chapter] = count.get(ex.chapter, 0) + 1
        ex.number = count[ex.chapter]
    return list(BANK)


class ExerciseCell:
    """An exercise as a chapter shows it: the live answer box in Jupyter, static HTML in the
    book.  Everything else (``check``, ``solution`` …) is the exercise's own."""

    def __init__(self, exercise: Exercise) -> None:
        self.exercise = exercise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.exercise, name)

    def __repr__(self) -> str:
        return repr(self.exercise)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        bundle = dict(widget(self.exercise)._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = static_html(self.exercise)
        return bundle


def exercise(key: str) -> ExerciseCell:
    """The exercise ``key``, its solution and listed mistakes verified, ready to show."""
    found = {ex.key: ex for ex in all_exercises()}
    if key not in found:
        raise KeyError(f"no exercise {key!r}; the bank has {sorted(found)}")
    return ExerciseCell(found[key].verify())
