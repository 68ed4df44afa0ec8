"""Chapter 14's exercises (bank ``exercise_bank/continuous.py``): each solution passes, each listed
mistake gets its hint, other correct forms are accepted and near misses rejected with a point where they
differ; the chapter shows each one once, in bank order, and the exercises page lists them."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from ddpm_lite.book import exercises as E
from ddpm_lite.book.continuous import prior_loss

ROOT = Path(__file__).resolve().parents[1]
CH14 = [ex for ex in E.all_exercises() if ex.chapter == 14]


def test_chapter_14_has_its_exercises():
    assert [ex.kind for ex in CH14] == ["derive", "compute"]


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
