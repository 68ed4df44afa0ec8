"""One classification of the reference's mistakes, used on every page (issue 22, item 9).

book/pitfalls.md files each entry under one class (mathematical error, wrong reasoning with a
right result, typesetting slip, caveat).  A chapter that names a class for an entry it links
must name that entry's class: an integrand that is false as printed may not be called a
"typesetting slip" in chapter 6, and a "Where the reference goes wrong" list may not file a
false formula under "Slips".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PITFALLS = ROOT / "book" / "pitfalls.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SECTIONS = {"Mathematical errors": "error", "Wrong reasoning, right result": "reasoning",
            "Typesetting slips": "slip", "A caveat, not an error": "caveat"}
CLASS_WORDS = {
    "error": re.compile(r"mathematical error|false as printed|\bfalse\b", re.I),
    "reasoning": re.compile(r"wrong reasoning", re.I),
    "slip": re.compile(r"\bslips?\b|typesetting", re.I),
    "caveat": re.compile(r"\bcaveat\b", re.I),
}
REF = re.compile(r"\{ref\}`(?:[^`<]*<)?(pitfall-[a-z0-9-]+)>?`")


def page_classes() -> dict[str, set[str]]:
    """label → the classes an entry may be called by: its section's, plus "slip" for an
    error entry that lists typesetting slips of the same display."""
    classes, current = {}, None
    text = PITFALLS.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2]):
        current = SECTIONS.get(title.strip())
        entries = re.split(r"^\((pitfall-[a-z0-9-]+)\)=$", body, flags=re.M)
        for label, entry in zip(entries[1::2], entries[2::2]):
            assert current is not None, f"{label} sits under an unknown heading {title!r}"
            allowed = {current}
            if current == "error" and CLASS_WORDS["slip"].search(entry):
                allowed.add("slip")
            classes[label] = allowed
    return classes


def passages(markdown: str) -> list[str]:
    """Paragraphs and list items: the unit a class word and a link belong to."""
    out = []
    for para in re.split(r"\n\s*\n", markdown):
        out += [p for p in re.split(r"\n(?=\s*(?:\d+\.|[-*])\s)", para) if p.strip()]
    return out


def _markdown_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def misclassified(markdown_cells: list[str], classes: dict[str, set[str]]) -> list[str]:
    """Passages whose class words disagree with the pitfalls page."""
    problems = []
    for cell in markdown_cells:
        in_errata = "goes wrong" in cell
        for p in passages(cell):
            labels = REF.findall(p)
            claimed = {k for k, rx in CLASS_WORDS.items() if rx.search(p)}
            unknown = [lab for lab in labels if lab not in classes]
            if unknown:
                problems.append(f"links a pitfall that does not exist {unknown}: {p[:80]!r}")
                continue
            if not labels:
                if in_errata and claimed:
                    problems.append(f"names a class ({sorted(claimed)}) without linking its entry: {p[:80]!r}")
                continue
            allowed = set().union(*(classes[lab] for lab in labels))
            if claimed - allowed:
                problems.append(f"calls {labels} {sorted(claimed - allowed)}; the page says {sorted(allowed)}: {p[:80]!r}")
            errors = [lab for lab in labels if classes[lab] >= {"error"}]
            if errors and "slip" in claimed and "error" not in claimed:
                problems.append(f"calls the mathematical error {errors} only a slip: {p[:80]!r}")
    return problems


def test_page_has_every_class_heading():
    classes = page_classes()
    assert {c for v in classes.values() for c in v} >= {"error", "reasoning", "slip", "caveat"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapters_use_the_pages_classification(path):
    problems = misclassified(_markdown_cells(path), page_classes())
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_comparison_can_fail():
    """The two slips of the old pages (issue 22): each must be caught."""
    classes = page_classes()
    ch6_old = ("```{admonition} Where the reference goes wrong\nThe reference prints this decoder "
               "with two typesetting slips: the integrand as N(x_0; ...). Evidence: "
               "{ref}`pitfall-decoder-integrand`.\n```")
    ch4_old = "## Where the reference's Appendix A goes wrong\n\n5. **Slips.** It writes √α for √ᾱ."
    assert misclassified([ch6_old], classes)
    assert misclassified([ch4_old], classes)
    ok = "5. **Typesetting slip.** It writes α̃ for ᾱ ({ref}`pitfall-alpha-tilde`)."
    assert not misclassified([f"Where it goes wrong\n\n{ok}"], classes)
