"""The exercises: every solution passes, every listed mistake gets its hint, equivalent forms
are accepted and wrong-but-close ones rejected, bad input is named, undecided is never
"correct", and the browser's checker (book/_static/exercises.js under node, with the
vendored math.js) gives the same verdict as the Python one on every answer tested here."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp
import yaml

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


def _chapters() -> dict[int, Path]:
    """The numbered chapters of the table of contents (a chapter added there is counted too)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]
    return {int(Path(f).name[:2]): ROOT / f"{f}.ipynb" for f in files}


CHAPTERS = _chapters()
ISSUE_CHAPTERS = range(1, 14)  # the chapters issue 21 gave a closing set each (14 has one too)


def _cells(path: Path) -> list[dict]:
    return [{**c, "source": "".join(c["source"])} for c in json.loads(path.read_text())["cells"]]


def _shown(cell: dict) -> list[str]:
    return re.findall(r'exercise\("([^"]+)"\)', cell["source"]) if cell["cell_type"] == "code" else []


def _closing_set(cells: list[dict]) -> list[str] | None:
    """The keys shown between the chapter's "## Exercises" heading and its final table, or
    None without such a heading.  Everything in between must be an exercise: its label cell
    and its answer box."""
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             and re.search(r"^## Exercises\s*$", c["source"], re.MULTILINE)]
    if not heads:
        return None
    assert len(heads) == 1 and heads[0] < len(cells) - 1, "one '## Exercises' section, before the final table"
    keys = []
    for c in cells[heads[0] + 1:-1]:
        if c["cell_type"] == "code":
            assert len(_shown(c)) == 1 and c["metadata"].get("tags") == ["remove-input"], c["source"]
            keys += _shown(c)
        else:
            assert re.fullmatch(r"\(ex-[^)]+\)=\n[^#]*", c["source"]), f"not an exercise label: {c['source']!r}"
    return keys


def test_chapters_are_read_from_the_table_of_contents():
    assert set(ISSUE_CHAPTERS) <= set(CHAPTERS) and all(p.exists() for p in CHAPTERS.values())
    assert {ex.chapter for ex in ALL} <= set(CHAPTERS)


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_chapter_has_its_exercises_and_a_closing_set(chapter):
    cells = _cells(CHAPTERS[chapter])
    mine = [ex.key for ex in ALL if ex.chapter == chapter]
    closing = _closing_set(cells)
    # Every chapter, 14 and any added later included, ends with one (book/exercises.md says so).
    assert closing is not None, f"chapter {chapter} has no '## Exercises' section before its table"
    in_text = [k for k in mine if k not in closing]
    assert len(in_text) >= (3 if chapter <= 6 else 2), (chapter, in_text)
    assert len(closing) >= 2 and set(closing) <= set(mine), (chapter, closing)
    # The chapter still ends with its table, and the table counts the chapter's exercises.
    last = cells[-1]
    assert last["cell_type"] == "markdown" and last["source"].startswith("## What was checked")
    assert re.findall(r"^\| exercises \((\d+)\) \|", last["source"], re.MULTILINE) == [str(len(mine))]


def test_exercise_keys_are_unique_and_the_closing_sets_vary_in_kind():
    assert len({ex.key for ex in ALL}) == len(ALL)
    closing = {k for path in CHAPTERS.values() for k in (_closing_set(_cells(path)) or [])}
    kinds = [ex.kind for ex in ALL if ex.key in closing]
    assert kinds.count("spot the error") >= 3 and kinds.count("predict, then run") >= 3, kinds


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
    page = (ROOT / "book" / "exercises.md").read_text()
    for chapter, path in CHAPTERS.items():
        cells = _cells(path)
        shown = [k for c in cells for k in _shown(c)]
        labels = [k for c in cells if c["cell_type"] == "markdown"
                  for k in re.findall(r"^\(ex-([^)]+)\)=", c["source"], re.MULTILINE)]
        keys = [ex.key for ex in ALL if ex.chapter == chapter]
        assert shown == keys and labels == keys, (path.name, shown, labels, keys)
        # The import comes before the first exercise (the closing set relies on it).
        first = next((i for i, c in enumerate(cells) if _shown(c)), None)
        if first is not None:
            assert "from ddpm_lite.book.exercises import exercise" in "".join(
                c["source"] for c in cells[: first + 1] if c["cell_type"] == "code")
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


def test_the_closing_predictions_are_what_the_library_computes():
    from ddpm_lite import NoiseSchedule
    from ddpm_lite.book.exercise_bank import closing, closing_rest

    answer = {ex.key: ex.choices[ex.answer_index][0] for ex in ALL if ex.kind == "predict, then run"}
    # 1: cosine keeps about half the signal at T/2, linear under a tenth.
    linear, cosine = (NoiseSchedule.from_name(k, 1000).alpha_bars[500] for k in ("linear", "cosine"))
    assert "cosine" in answer["01-cosine-midpoint"] and linear < 0.1 and 0.4 < cosine < 0.6
    # 4: doubling β_T roughly doubles the reference's intermediate error at t = T.
    now, doubled = (abs(closing.reference_variance_error(b)) for b in (0.02, 0.04))
    assert "twice" in answer["04-cancel-grows"] and 1.8 < doubled / now < 2.2
    assert round(100 * now) == 2 and round(100 * doubled) == 4  # "about 2 %", "near 4 %"
    # 7: with ε_θ ≡ 0 the sampler's output variance passes 1/ᾱ_T (tens of thousands).
    v, abar_T = closing_rest.zero_model_variance(), NoiseSchedule.linear(1000).alpha_bars[1000]
    assert "tens of thousands" in answer["07-untrained-sampler"] and 1e4 < 1 / abar_T < v < 1e5
    # 13: more levels, the nearest level is wrong more often, at every ᾱ_t.
    assert answer["13-more-levels"] == "more often"
    for abar in (0.2, 0.5, 0.9, 0.99):
        assert closing_rest.wrong_level_probability(abar, 256) > closing_rest.wrong_level_probability(abar, 17)
    # 14: raising SNR_min from e^-10 to e^-5 cuts a quarter of the log-SNR range but moves L_∞ by
    # under 0.001 nats (at most ½ s² SNR_min), and L_T gains about as much.
    from ddpm_lite.book import continuous as ct
    from ddpm_lite.book.exercise_bank import continuous as bank14

    s2, (lo, hi), raised = bank14.DATA_S2, bank14.LOG_SNR_ENDS, bank14.LOG_SNR_MIN_RAISED
    assert (hi - raised) / (hi - lo) == 0.75  # the range the wrong choice "a quarter" follows

    def ends(low: float) -> ct.ContinuousSchedule:
        return ct.ContinuousSchedule(math.exp(low), math.exp(hi), s2=s2)

    lost = ct.diffusion_loss(ends(lo), s2) - ct.diffusion_loss(ends(raised), s2)
    gained = ct.prior_loss(math.exp(raised), s2) - ct.prior_loss(math.exp(lo), s2)
    assert "less than 0.001" in answer["14-raise-snr-min"]
    assert 0 < lost < 0.5 * s2 * math.exp(raised) < 1e-3 and lost < 1e-3 * ct.diffusion_loss(ends(lo), s2)
    assert abs(gained - lost) < 0.05 * lost  # "L_T grows by about as much"
