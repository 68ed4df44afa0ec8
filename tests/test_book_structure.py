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
