"""The chapters as the book build executed them pass nbval's checks (``make nbval``).

nbval executed every notebook again right after the book build had executed it.  These tests
read the executions the build stored in ``_build/.jupyter_cache`` instead, found by the
chapter's *current* code (a chapter changed since the build has no record and fails here
until the build executes it), and check what nbval checked:

* every non-empty code cell was executed, in order, and none raised;
* cells tagged ``nbval-check-output`` have the outputs stored with them in the repository
  (nbval compares streams and data other than images; a stored cell without outputs is
  "unrun" and, as in nbval, has nothing to compare);
* the stored notebooks carry no outputs (nbval: "unrun reference cell has outputs").

Without a build (a fresh clone running ``pytest``) they are skipped with that reason;
``make nbval`` builds first and sets ``DDPM_REQUIRE_BUILD=1``, which turns the skip into a
failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "book" / "_ext"))
import execution as ex  # noqa: E402

CHAPTERS = ex.toc_notebooks(REPO)
#: nbval's default: what is never compared (besides images, which it does not compare either).
SKIP_KEYS = {"metadata", "traceback", "text/latex", "prompt_number", "output_type", "name",
             "execution_count", "transient"}


@pytest.fixture(scope="module")
def cache():
    if not ex.cache_dir(REPO).is_dir():
        if os.environ.get("DDPM_REQUIRE_BUILD"):
            pytest.fail("no _build/.jupyter_cache: the book build did not run (make book)")
        pytest.skip("the book is not built here: `make book` first (make nbval does it)")
    return ex.open_cache(REPO)


def _comparable(outputs: list) -> dict[str, list]:
    """nbval's view of a cell's outputs: streams merged per name, data by MIME type."""
    out: dict[str, list] = {}
    streams: dict[str, str] = {}
    for o in outputs:
        if o.get("output_type") == "stream":
            streams[o["name"]] = streams.get(o["name"], "") + "".join(o["text"])
            continue
        for key, value in o.items():
            if key in SKIP_KEYS:
                continue
            if key == "data":
                for mime, v in value.items():
                    if mime not in SKIP_KEYS and not mime.startswith("image/"):
                        out.setdefault(mime, []).append("".join(v) if isinstance(v, list) else v)
            else:
                out.setdefault(key, []).append(value)
    for name, text in streams.items():
        out.setdefault(f"stream:{name}", []).append(text)
    return out


@pytest.mark.parametrize("doc,path", CHAPTERS, ids=[d for d, _ in CHAPTERS])
def test_chapter_executed_cleanly(cache, doc, path):
    record = ex.clean_record(cache, path)
    assert record is not None, (
        f"{doc}: no clean execution of its current code in _build/.jupyter_cache; "
        "run `make book` (it executes changed chapters) and see _build/html/reports/")
    executed = cache.get_cache_bundle(record.pk).nb
    stored = ex.read_notebook(path)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in ran]
    assert None not in counts, f"{doc}: code cell {counts.index(None)} was never executed"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"{doc}: cells ran out of order"
    for i, cell in enumerate(ran):
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert not errors, f"{doc}: code cell {i} raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
    by_id = {c.get("id"): c for c in executed.cells}
    for cell in stored.cells:
        if cell.cell_type != "code":
            continue
        assert not cell.outputs and cell.execution_count is None, (
            f"{doc}: cell {cell.get('id')} is stored with outputs; store notebooks without them")
        if "nbval-check-output" in cell.metadata.get("tags", []) and cell.outputs:
            got = by_id[cell.get("id")]
            assert _comparable(got.outputs) == _comparable(cell.outputs), (
                f"{doc}: cell {cell.get('id')} (nbval-check-output) differs from its stored outputs")


def test_comparison_sees_a_changed_number():
    """The nbval-style comparison used above tells different printed values apart."""
    a = [nbformat.v4.new_output("stream", name="stdout", text="L_T = 4.2e-05\n")]
    b = [nbformat.v4.new_output("stream", name="stdout", text="L_T = 4.3e-05\n")]
    same_split = [nbformat.v4.new_output("stream", name="stdout", text="L_T = "),
                  nbformat.v4.new_output("stream", name="stdout", text="4.2e-05\n")]
    assert _comparable(a) != _comparable(b)
    assert _comparable(a) == _comparable(same_split)
