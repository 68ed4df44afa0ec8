"""The exercises: every solution passes, every listed mistake gets its hint, equivalent forms
are accepted and wrong-but-close ones rejected, bad input is named, undecided is never
"correct", and the browser's checker (book/_static/exercises.js under node, with the
vendored math.js) gives the same verdict as the Python one on every answer tested here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp

from ddpm_lite.book import exercise_core as C
from ddpm_lite.book import exercises as E
from ddpm_lite.book.exercise_view import static_html

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "book" / "_static" / "exercises.js"
MATHJS = ROOT / "book" / "_static" / "vendor" / "mathjs" / "math.js"
ALL = E.all_exercises()
DERIVES = [ex for ex in ALL if ex.kind == "derive"] + [ex.form for ex in ALL if getattr(ex, "form", None)]
COMPUTES = [ex for ex in ALL if ex.kind == "compute"]
UNREADABLE = ["2 x_t", "x_t +", "alpha", "sqrt(x_t", "x_t (1 - beta_t)", "√x_t", "__import__('os')", "",
              "a" * 500, "9^9^9^9"]


def test_every_chapter_has_its_exercises():
    count = {c: sum(ex.chapter == c for ex in ALL) for c in range(1, 14)}
    assert all(count[c] >= 3 for c in range(1, 7)), count
    assert all(count[c] >= 2 for c in range(7, 14)), count
    assert len({ex.key for ex in ALL}) == len(ALL)


@pytest.mark.parametrize("ex", DERIVES, ids=lambda ex: ex.key)
def test_derive_solution_forms_mistakes_and_near_misses(ex):
    assert len({ex.solution, *ex.forms}) >= 3 and ex.mistakes and ex.near
    ex.verify(forms=True)  # solution and ≥ 2 other correct forms pass; mistake i → hint i
    for text in ex.near:  # a sign, a missing factor, t vs t−1: wrong, with a point
        v = ex.check(text)
        assert v.status == "wrong" and " At " in v.message, (text, v)
    # The answer key is a sympy expression too: the checker accepts one.
    assert ex.check(ex.parse(ex.forms[0])).correct


@pytest.mark.parametrize("ex", COMPUTES, ids=lambda ex: ex.key)
def test_compute_answer_tolerance_and_mistakes(ex):
    ex.verify()
    want = ex.answer()
    assert ex.check(repr(want * (1 + ex.rel_tol / 2))).correct
    assert ex.check(repr(want * (1 + 3 * ex.rel_tol))).status == "wrong"
    assert ex.mistakes and all(ex.check(repr(float(w()))).status == "mistake" for w, _ in ex.mistakes)


@pytest.mark.parametrize("ex", [ex for ex in ALL if ex.kind in ("spot the error", "predict, then run")],
                         ids=lambda ex: ex.key)
def test_choice_exercises(ex):
    ex.verify()
    assert ex.check(chr(ord("a") + ex.answer_index)).correct
    assert ex.check(None).status == "unparsable"
    if ex.form is not None:
        assert ex.check(ex.answer_index, ex.form.mistakes[0][0]).status == "mistake"


def test_unreadable_answers_are_named_not_raised():
    ex = next(ex for ex in DERIVES if ex.key == "04-mu-tilde")
    for text in UNREADABLE:
        v = ex.check(text)
        assert v.status == "unparsable" and v.message, (text, v)
    assert "unknown name 'alpha'" in ex.check("alpha").message
    assert "2*x_t" in ex.check("2 x_t").message


def test_undecided_is_never_correct(monkeypatch):
    ex = next(ex for ex in DERIVES if ex.key == "04-beta-tilde")
    answer = ex.forms[0]

    def cannot_decide(*args, **kwargs):
        raise RuntimeError("undecided")

    monkeypatch.setattr(C.S, "check_identity", cannot_decide)
    monkeypatch.setattr(C.S, "find_counterexample", lambda *a, **k: None)
    monkeypatch.setattr(C.sp, "simplify", lambda e, *a, **k: e)  # nor the reparametrised retry
    v = ex.check(answer)
    assert v.status == "undecided" and not v.correct


def test_a_wrong_solution_fails_verification():
    ex = next(ex for ex in DERIVES if ex.key == "03-gaussian-kl")
    broken = E.Derive(**{**{f: getattr(ex, f) for f in ("key", "chapter", "title", "prompt", "explanation",
                                                        "target", "forms", "mistakes", "near", "names", "domains")},
                         "solution": ex.near[0]})
    with pytest.raises(AssertionError):
        broken.verify()


def test_static_html_carries_the_data_and_the_folded_solution():
    for ex in ALL:
        page = static_html(ex)
        assert f'id="{ex.anchor}"' in page and "<details" in page
        data = re.search(r'<script type="application/json" class="ddpm-exercise-data">(.*?)</script>', page, re.DOTALL)
        assert data and json.loads(data.group(1).replace("<\\/", "</"))["key"] == ex.key


def test_checker_is_small():
    assert CHECKER.stat().st_size + (MATHJS.stat().st_size if MATHJS.exists() else 0) < 1_000_000


# --------------------------------------------------------------------------- Python vs browser
NODE_JUDGE = """
const judge = require(process.argv[1])(require(process.argv[2]));
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map(c => {
  const v = judge.judge(c.data, c.answer, c.index);
  return [v.status, v.mistake === undefined ? null : v.mistake];
})));
"""


def _cases() -> list[tuple[str, dict, str, object]]:
    out = []
    for ex in DERIVES:
        data = ex.browser_data()
        for text in (ex.solution, *ex.forms, *(m for m, _ in ex.mistakes), *ex.near, *UNREADABLE):
            out.append((ex, data, text, None))
    for ex in COMPUTES:
        data = ex.browser_data()
        wrong = repr(ex.answer() * 1.5 + 1)
        for text in (ex.solution or repr(ex.answer()), *(repr(float(w())) for w, _ in ex.mistakes), wrong, "x", "2^2000"):
            out.append((ex, data, text, None))
    for ex in ALL:
        if ex.kind in ("spot the error", "predict, then run"):
            for i in range(len(ex.choices)):
                out.append((ex, ex.browser_data(), "", i))
    return out


def test_python_and_browser_checkers_agree():
    node = shutil.which("node")
    if node is None or not MATHJS.exists():
        reason = "node or the vendored math.js is missing (run `make vendor`)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    cases = _cases()
    payload = json.dumps([{"data": d, "answer": a, "index": i} for _, d, a, i in cases])
    run = subprocess.run([node, "-e", NODE_JUDGE, str(CHECKER), str(MATHJS)], input=payload,
                         capture_output=True, text=True, timeout=120, check=True)
    browser = json.loads(run.stdout)
    disagree = []
    for (ex, _, text, index), (status, mistake) in zip(cases, browser):
        v = ex.check(index, None) if index is not None else ex.check(text)
        if (v.status, v.mistake) != (status, mistake):
            disagree.append((ex.key, text, index, (v.status, v.mistake), (status, mistake)))
    assert not disagree, disagree
    assert len(browser) == len(cases) > 200


def test_each_exercise_is_shown_once_in_its_chapter_in_bank_order_and_listed():
    import json as _json

    page = (ROOT / "book" / "exercises.md").read_text()
    for chapter in range(1, 14):
        (path,) = (ROOT / "notebooks").glob(f"{chapter:02d}_*.ipynb")
        cells = _json.loads(path.read_text())["cells"]
        shown = [k for c in cells if c["cell_type"] == "code"
                 for k in re.findall(r'exercise\("([^"]+)"\)', "".join(c["source"]))]
        labels = [k for c in cells if c["cell_type"] == "markdown"
                  for k in re.findall(r"^\(ex-([^)]+)\)=", "".join(c["source"]), re.MULTILINE)]
        keys = [ex.key for ex in ALL if ex.chapter == chapter]
        assert shown == keys and labels == keys, (path.name, shown, labels, keys)
    listed = re.findall(r"\{ref\}`Exercise (\d+)\.(\d+) <ex-([^>]+)>`", page)
    assert [(int(c), int(n), k) for c, n, k in listed] == [(ex.chapter, ex.number, ex.key) for ex in ALL]


def test_jupyter_answer_box_judges_what_is_typed():
    import ipywidgets as W

    from ddpm_lite.book.exercise_view import widget

    ex = next(ex for ex in DERIVES if ex.key == "02-log-concave")
    box = widget(ex)
    text = next(w for w in box.children if isinstance(w, W.Text))
    verdict, solution = box.children[-2], box.children[-1]
    text.value = ex.forms[0]
    assert "Correct" in verdict.value
    text.value = ex.mistakes[0][0]
    assert "common mistake" in verdict.value and "concave" in verdict.value
    text.value = "1/"
    assert "Cannot read it" in verdict.value
    show = box.children[-3].children[1]
    show.click()
    assert "w^{2}" in solution.value
    bundle = E.exercise(ex.key)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and 'class="ddpm-exercise"' in bundle["text/html"]


def test_numbers_in_the_precision_hint_are_the_engines():
    ex = E.exercise("04-reference-precision").exercise
    at = {C.S.alpha_t: sp.Rational(9, 10), C.S.abar_prev: sp.Rational(1, 2)}
    reference = C.S.to_free(1 / C.S.beta_t + 1 / (1 - C.S.abar_prev)).subs(at)
    density = C.S.complete_the_square()["precision"].subs(at)
    assert f"gives {reference}, the density {density}." in ex.choices[3][1]


def test_the_short_chain_prediction_is_what_the_library_computes():
    from ddpm_lite import NoiseSchedule

    ex = E.exercise("01-short-chain").exercise
    assert ex.answer_index == 0 and "orders of magnitude" in ex.choices[0][0]
    long, short = (float(NoiseSchedule.linear(T).prior_kl_per_dim(0.25)) for T in (1000, 100))
    assert short > 100 * long
