"""The exercise kinds that are not a derivation: compute a number, spot the error, predict.

Re-exported by :mod:`ddpm_lite.book.exercises`; see there for how answers are judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp

from .exercise_core import AnswerError, Derive, Exercise, Verdict, parse_answer, rich

__all__ = ["Compute", "Predict", "SpotError"]


@dataclass(repr=False)
class Compute(Exercise):
    """Enter a number (or a numeric expression such as ``log(2)/2``); ``value`` computes the
    answer from the library, ``rel_tol`` is the stated tolerance; ``mistakes`` pair a
    function giving a wrong value with its hint."""

    value: Callable[[], float] = None
    rel_tol: float = 1e-3
    mistakes: Sequence[tuple[Callable[[], float], str]] = ()
    solution: str = ""

    def __post_init__(self) -> None:
        self.kind = "compute"
        self._cache: float | None = None

    def answer(self) -> float:
        if self._cache is None:
            self._cache = float(self.value())
        return self._cache

    def _close(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.rel_tol * max(abs(b), 1e-300)

    def check(self, answer: str | float | sp.Expr) -> Verdict:
        """Judge a number; within ``rel_tol`` (relative) of the answer is correct."""
        try:
            expr = sp.sympify(answer) if isinstance(answer, (int, float)) else parse_answer(answer, {})
            got = complex(sp.N(expr, 30))
        except AnswerError as e:
            return Verdict("unparsable", str(e))
        except (TypeError, ValueError):
            return Verdict("unparsable", "that is not a number.")
        if got.imag != 0 or got.real != got.real or abs(got.real) == float("inf"):
            return Verdict("unparsable", "that is not a finite real number.")
        x, want = got.real, self.answer()
        if self._close(x, want):
            return Verdict("correct", f"within {self.rel_tol:.3g} (relative) of {want:.6g}.")
        for i, (wrong, hint) in enumerate(self.mistakes):
            if self._close(x, float(wrong())):
                return Verdict("mistake", hint, mistake=i)
        side = "large" if x > want else "small"
        return Verdict("wrong", f"{x:.6g} is too {side} (the tolerance is {self.rel_tol:.3g}, relative).")

    def verify(self) -> Compute:
        for text in filter(None, (self.solution,)):
            assert self.check(text).correct, f"exercise {self.key}: its solution {text!r} fails"
        for i, (wrong, _) in enumerate(self.mistakes):
            v = self.check(repr(float(wrong())))
            assert v.status == "mistake" and v.mistake == i, f"exercise {self.key}: mistake {i} gives {v}"
        return self

    def browser_data(self) -> dict:
        return {"key": self.key, "kind": "compute", "value": self.answer(), "rel_tol": self.rel_tol,
                "mistakes": [{"value": float(w()), "hint": rich(h)} for w, h in self.mistakes]}

    def solution_html(self) -> str:
        return f"<p>{self.answer():.6g}.</p><p>{rich(self.explanation)}</p>"


@dataclass(repr=False)
class SpotError(Exercise):
    """A displayed line with an error: pick what is wrong (``choices``: text, and why it is or
    is not the error), then optionally type the corrected form (``form``, a Derive)."""

    choices: Sequence[tuple[str, str]] = ()
    answer_index: int = 0
    form: Derive | None = None

    def __post_init__(self) -> None:
        self.kind = "spot the error"

    def check(self, choice: int | str | None = None, form: str | sp.Expr | None = None) -> Verdict:
        """Judge the choice (index or letter a, b, …) and, if given, the corrected form."""
        if isinstance(choice, str) and len(choice.strip()) == 1 and choice.strip().isalpha():
            choice = ord(choice.strip().lower()) - ord("a")
        if choice is None and form is not None and self.form is not None:
            return self.form.check(form)
        if not isinstance(choice, int) or not 0 <= choice < len(self.choices):
            return Verdict("unparsable", f"choose one of a–{chr(ord('a') + len(self.choices) - 1)}.")
        why = self.choices[choice][1]
        if choice != self.answer_index:
            return Verdict("wrong", why)
        if form is None or self.form is None:
            return Verdict("correct", why)
        v = self.form.check(form)
        return Verdict(v.status, f"{why} Your corrected form: {v.message}", v.mistake, v.preview)

    def verify(self) -> SpotError:
        assert self.check(self.answer_index).correct
        assert not any(self.check(i).correct for i in range(len(self.choices)) if i != self.answer_index)
        if self.form is not None:
            self.form.verify()
        return self

    def browser_data(self) -> dict:
        return {"key": self.key, "kind": "choice", "answer": self.answer_index,
                "why": [rich(w) for _, w in self.choices],
                "form": self.form.browser_data() if self.form is not None else None}

    def solution_html(self) -> str:
        letter = chr(ord("a") + self.answer_index)
        form = self.form.solution_html() if self.form is not None else ""
        return f"<p>({letter}) {rich(self.choices[self.answer_index][1])}</p>{form}<p>{rich(self.explanation)}</p>"


@dataclass(repr=False)
class Predict(Exercise):
    """Predict what a slider or a parameter change will do, then run it: ``choices`` are
    (prediction, why) pairs, ``run`` says where to check it."""

    choices: Sequence[tuple[str, str]] = ()
    answer_index: int = 0
    run: str = ""

    def __post_init__(self) -> None:
        self.kind = "predict, then run"

    check = SpotError.check
    verify = SpotError.verify

    @property
    def form(self) -> None:
        return None

    def browser_data(self) -> dict:
        return {"key": self.key, "kind": "choice", "answer": self.answer_index,
                "why": [rich(w) for _, w in self.choices], "form": None}

    def solution_html(self) -> str:
        letter = chr(ord("a") + self.answer_index)
        return f"<p>({letter}) {rich(self.choices[self.answer_index][1])}</p><p>{rich(self.explanation)}</p>"
