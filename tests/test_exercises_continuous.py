"""Chapter 14's exercises (bank ``exercise_bank/continuous.py``): each solution passes, each listed
mistake gets its hint, other correct forms are accepted and near misses rejected with a point where they
differ; the chapter shows each one once, in bank order, and the exercises page lists them."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import sympy as sp

from ddpm_lite.book import continuous as ct
from ddpm_lite.book import exercises as E
from ddpm_lite.book.continuous import prior_loss
from ddpm_lite.book.exercise_bank import continuous as bank

ROOT = Path(__file__).resolve().parents[1]
CH14 = [ex for ex in E.all_exercises() if ex.chapter == 14]
NOTEBOOK = ROOT / "notebooks" / "14_continuous_time.ipynb"


def _setup() -> dict[str, float]:
    """The set-up cell's numeric parameters (the closing set's prompts quote them)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    src = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    return {k: float(v) for k, v in re.findall(r"^([A-Z0-9_]+) = (-?[0-9.]+)\b", src, re.MULTILINE)}


def test_chapter_14_has_its_exercises():
    assert [ex.kind for ex in CH14] == ["derive", "compute", "spot the error", "predict, then run",
                                        "spot the error"]


def test_snr_weight_derivation():
    ex = E.exercise("14-snr-weight").exercise
    assert len({ex.solution, *ex.forms}) >= 3
    ex.verify(forms=True)
    for text in ex.near:
        v = ex.check(text)
        assert v.status == "wrong" and " At " in v.message, (text, v)
    assert ex.check(ex.mistakes[0][0]).status == "mistake" and "½" in ex.check(ex.mistakes[0][0]).message
    assert ex.check("alpha").status == "unparsable"


def test_prior_term_compute():
    ex = E.exercise("14-LT-ends").exercise
    want = ex.answer()
    assert want == pytest.approx(prior_loss(math.exp(-5.0), 0.25), rel=1e-12) and want > 0
    assert ex.check(repr(want * (1 + ex.rel_tol / 2))).correct
    assert ex.check(repr(want * (1 + 3 * ex.rel_tol))).status == "wrong"
    statuses = [ex.check(repr(float(w()))) for w, _ in ex.mistakes]
    assert [(v.status, v.mistake) for v in statuses] == [("mistake", i) for i in range(len(ex.mistakes))]


def test_chapter_shows_each_once_in_bank_order_and_the_page_lists_them():
    cells = json.loads((ROOT / "notebooks" / "14_continuous_time.ipynb").read_text())["cells"]
    shown = [k for c in cells if c["cell_type"] == "code"
             for k in re.findall(r'exercise\("([^"]+)"\)', "".join(c["source"]))]
    labels = [k for c in cells if c["cell_type"] == "markdown"
              for k in re.findall(r"^\(ex-([^)]+)\)=", "".join(c["source"]), re.MULTILINE)]
    keys = [ex.key for ex in CH14]
    assert shown == keys and labels == keys
    page = (ROOT / "book" / "exercises.md").read_text()
    listed = re.findall(r"\{ref\}`Exercise 14\.(\d+) <ex-([^>]+)>`", page)
    assert [(int(n), k) for n, k in listed] == [(ex.number, ex.key) for ex in CH14]


def test_limit_sign_form_is_minus_the_slope():
    ex = E.exercise("14-limit-sign").exercise
    form = ex.form
    n = form.symbols()
    # Independently of the bank's limit: −d/dt of SNR(t) = exp(−(g0 + g1 t)).
    slope = sp.diff(sp.exp(-(n["g0"] + n["g1"] * n["t"])), n["t"])
    assert sp.simplify(form.target_expr() + slope) == 0
    assert ex.check("a", form.solution).correct
    for i, (text, hint) in enumerate(form.mistakes):
        v = ex.check("a", text)
        assert (v.status, v.mistake) == ("mistake", i) and hint in v.message
    assert [ex.check(i).status for i in range(len(ex.choices))] == ["correct", "wrong", "wrong", "wrong"]


def test_the_closing_prompts_quote_the_set_up_cell():
    p = _setup()
    assert (p["LOG_SNR_MIN"], p["LOG_SNR_MAX"]) == bank.LOG_SNR_ENDS and p["S2"] == bank.DATA_S2
    assert p["LOG_SNR_MIN"] < bank.LOG_SNR_MIN_RAISED < p["LOG_SNR_MAX"]
    assert f"from {p['LOG_SNR_MIN']:g} to {bank.LOG_SNR_MIN_RAISED:g}" in E.exercise("14-raise-snr-min").exercise.prompt


def test_the_shape_claim_is_what_the_chapter_measures():
    # "Nothing: it is correct" is refuted by "hundreds of times the draws" (linear-β against
    # min-variance, the chapter's variance table at its own ends, data variance and dimension).
    p = _setup()
    ends = {"snr_min": math.exp(p["LOG_SNR_MIN"]), "snr_max": math.exp(p["LOG_SNR_MAX"]), "s2": p["S2"]}
    var = {s: ct.estimator_variance(ct.ContinuousSchedule(**ends, shape=s), p["S2"], int(p["DIM"]))
           for s in ("linear-beta", "min-variance")}
    ex = E.exercise("14-shape-training").exercise
    assert "hundreds of times" in ex.choices[-1][1] and 100 < var["linear-beta"] / var["min-variance"] < 1000
    assert ex.check(ex.answer_index).correct and "variance" in ex.choices[ex.answer_index][0]
