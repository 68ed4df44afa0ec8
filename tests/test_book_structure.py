"""The book's house rules, checked on the sources (fast; no execution)."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LABEL = re.compile(r"\$\$\s*\(([^)\s]+)\)")


def _markdown(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def _all_labels() -> list[str]:
    labels = []
    for p in NOTEBOOKS:
        labels += LABEL.findall(_markdown(p))
    for p in (ROOT / "book").glob("*.md"):
        labels += LABEL.findall(p.read_text())
    return labels


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_uses_python3(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [], f"{path.name}: store notebooks without outputs"
            assert cell.get("execution_count") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opens_and_closes_by_the_pattern(path):
    text = _markdown(path)
    assert "What this chapter shows" in text[:3000], "a chapter opens with what it will show"
    assert "What was checked" in text, "a chapter closes with the table of checks"


def test_equation_labels_are_unique():
    labels = _all_labels()
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    assert not dupes, f"equation labels defined twice: {dupes}"


def test_docstrings_cite_labels_that_exist():
    labels = set(_all_labels())
    cited = {}
    for p in (ROOT / "src" / "ddpm_lite").glob("*.py"):
        for m in re.findall(r"eqs?\.? ``([^`]+)``", p.read_text()):
            cited.setdefault(m, p.name)
    missing = {k: v for k, v in cited.items() if k not in labels}
    assert not missing, f"docstrings cite equation labels no chapter defines: {missing}"


def test_every_notebook_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {ch["file"] for part in toc["parts"] for ch in part["chapters"]}
    for p in NOTEBOOKS:
        assert f"notebooks/{p.stem}" in files, f"{p.name} is not in _toc.yml"


# ---------------------------------------------------------------------------- the rendered page
MAX_CODE_LINE = 88  # the book's code column at 1280 px; ruff formats notebooks to it too
CALLOUTS = re.compile(r"[`:]{3,}\s*\{(admonition|note|warning|important|tip|caution|attention|danger|hint)\}"
                      r"([^\n]*)\n(?::class:\s*([^\n]*))?")


def _code_cells(nb_path: Path) -> list[dict]:
    return [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_fit_the_column(path):
    long = [(i, len(line), line[:50]) for i, c in enumerate(_code_cells(path))
            for line in "".join(c["source"]).splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"code lines over {MAX_CODE_LINE} characters (cell, length, start): {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_internal_markers_in_code(path):
    """nbval's markers go in cell tags (``nbval-check-output``), not in code a reader sees;
    equation labels are cited in docstrings of the package, not as ``eq. (label)`` comments."""
    for i, cell in enumerate(_code_cells(path)):
        src = "".join(cell["source"])
        assert "NBVAL_" not in src, f"cell {i}: use the cell tag nbval-check-output instead of a comment"
        assert not re.search(r"#.*\beqs?\. \(", src), f"cell {i}: an 'eq. (label)' comment shows on the page"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_folded(path):
    first = _code_cells(path)[0]
    tags = first.get("metadata", {}).get("tags", [])
    assert {"hide-input", "hide-cell"} & set(tags), "fold the set-up cell (tag hide-input or hide-cell)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opening_has_one_form(path):
    """Every chapter opens the same way: its title, then a paragraph led by the phrase."""
    first = json.loads(path.read_text())["cells"][0]
    lines = "".join(first["source"]).splitlines()
    assert first["cell_type"] == "markdown" and lines[0].startswith("# "), "a chapter starts with its title"
    body = [line for line in lines[1:] if line.strip()]
    assert body and body[0].startswith("**What this chapter shows.**"), (
        "open with a paragraph starting '**What this chapter shows.**' (not a heading)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_callout_style(path):
    """Errata callouts are all one kind: an admonition with the 'warning' class."""
    for kind, title, cls in CALLOUTS.findall(_markdown(path)):
        assert kind == "admonition" and "warning" in cls.split(), (
            f"use ```{{admonition}} {title.strip() or 'Where the reference goes wrong'}\\n:class: warning```, "
            f"not {{{kind}}}")


def test_one_epsilon():
    """ε (\\varepsilon) everywhere: never ϵ, which is what \\epsilon typesets."""
    book_code = [p for p in (ROOT / "src" / "ddpm_lite" / "book").rglob("*.py")
                 if p.name != "display.py"]  # display.py rewrites sympy's \epsilon, so it names it
    sources = [*NOTEBOOKS, *(ROOT / "book").glob("*.md"), *book_code]
    bad = [p.name for p in sources if "ϵ" in p.read_text() or re.search(r"\\\\?epsilon(?![A-Za-z_])", p.read_text())]
    assert not bad, f"ϵ or \\epsilon in {bad}"
