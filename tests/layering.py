"""Draw ddpm_lite's import graph by group and print its counts: modules, arrows, arrows pointing up.

    python tests/layering.py                      # this checkout's src/ddpm_lite
    python tests/layering.py /path/to/src/ddpm_lite --json

Every ``import`` of one ddpm_lite module by another is an arrow (at module level or inside a
function, under ``TYPE_CHECKING`` or not).  Modules sit in groups, drawn bottom up in the order
of ``GROUPS``: an arrow *points up* when a module imports one in a higher group than its own
(for example the derivation importing the training loop).  Modules of older layouts are placed
by ``OLD_NAMES``, so a checkout from before the regroup (issue 20) is measured on the same scale.
``tests/test_layers.py`` asserts the rules between groups on this graph.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from pathlib import Path

#: Groups bottom up; the public surface (``__init__``, ``__main__``) sits above the library.
GROUPS = ("base", "derivation", "nets", "data", "runs", "training", "cli", "surface", "book")
RANK = {"base": 0, "derivation": 1, "nets": 2, "data": 2, "runs": 2, "training": 3, "cli": 4, "surface": 5,
        "book": 6}
DERIVATION = {"schedule", "gaussian", "forward", "reverse", "diffusion", "sampling", "spacing", "solvers", "logsnr",
              "continuous"}
BASE = {"checks", "plumbing"}
#: Flat modules of the layout before issue 20, by the group their idea belongs to.
OLD_NAMES = {"models": "nets", "levels": "nets", "networks": "nets", "data": "data", "metrics": "data",
             "baselines": "data", "rundir": "runs", "checkpoint": "runs", "runs": "training",
             "training": "training", "train_state": "training", "fast_step": "training", "resample": "training",
             "progress": "training", "distributed": "training", "cli": "cli", "cli_args": "cli"}


def module_name(pkg: Path, path: Path) -> str:
    name = ".".join(path.relative_to(pkg).with_suffix("").parts)
    return name.removesuffix(".__init__") if name != "__init__" else "__init__"


PACKAGES: set[str] = set()  #: subpackages of the checkout being measured (their ``__init__`` is "name")


def group_of(name: str) -> str:
    head = name.split(".")[0]
    if name in PACKAGES:
        return head
    if head in BASE:
        return "base"
    if head in DERIVATION:
        return "derivation"
    if head in ("__init__", "__main__"):
        return "surface"
    if "." not in name and head in OLD_NAMES:
        return OLD_NAMES[head]
    return head  # a subpackage: nets, data, runs, training, cli, book


def imports_of(pkg: Path, path: Path, modules: set[str]) -> set[str]:
    """The ddpm_lite modules ``path`` imports (the longest dotted prefix that is a module)."""
    name = module_name(pkg, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if name == "__init__":
        package = ""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {a.name.removeprefix("ddpm_lite").lstrip(".") for a in node.names
                        if a.name.startswith("ddpm_lite")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("ddpm_lite"):
                    continue
                base = node.module.removeprefix("ddpm_lite").lstrip(".")
            else:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            if node.module:  # "from . import x" names the sibling x, not the package
                targets.add(base)
            targets |= {f"{base}.{a.name}".lstrip(".") for a in node.names}
    resolved = set()
    for target in targets:
        parts = target.split(".")
        for k in range(len(parts), 0, -1):
            if ".".join(parts[:k]) in modules:
                resolved.add(".".join(parts[:k]))
                break
        else:
            if target == "" and "__init__" in modules:
                resolved.add("__init__")
    resolved.discard(name)
    return resolved


def graph(pkg: Path) -> dict[str, set[str]]:
    paths = sorted(pkg.rglob("*.py"))
    PACKAGES.clear()
    PACKAGES.update(module_name(pkg, p) for p in paths if p.name == "__init__.py" and p.parent != pkg)
    modules = {module_name(pkg, p) for p in paths}
    return {module_name(pkg, p): imports_of(pkg, p, modules) for p in paths}


def measure(pkg: Path, library_only: bool = True) -> dict:
    g = graph(pkg)
    if library_only:
        g = {m: {t for t in ts if group_of(t) != "book"} for m, ts in g.items() if group_of(m) != "book"}
    arrows = [(m, t) for m, ts in g.items() for t in ts]
    up = [(m, t) for m, t in arrows if RANK[group_of(t)] > RANK[group_of(m)]]
    between = Counter((group_of(m), group_of(t)) for m, t in arrows if group_of(m) != group_of(t))
    return {"modules": len(g), "arrows": len(arrows), "arrows_up": len(up), "group_edges": len(between), "up": sorted(f"{m} -> {t}" for m, t in up),
            "group_arrows": {f"{a} -> {b}": n for (a, b), n in sorted(between.items())},
            "groups": {grp: sorted(m for m in g if group_of(m) == grp) for grp in GROUPS if any(group_of(m) == grp for m in g)}}


def draw(result: dict) -> str:
    lines = [f"modules {result['modules']}, arrows {result['arrows']} ({result['group_edges']} kinds between groups), "
             f"arrows pointing up {result['arrows_up']}", ""]
    for grp in reversed(GROUPS):
        if grp in result["groups"]:
            lines.append(f"[{grp}] " + ", ".join(result["groups"][grp]))
    lines.append("")
    lines += [f"  {edge}: {n}" for edge, n in result["group_arrows"].items()]
    if result["up"]:
        lines += ["", "pointing up:"] + [f"  {e}" for e in result["up"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pkg", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "ddpm_lite")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--with-book", action="store_true", help="count the teaching layer's modules too")
    args = p.parse_args()
    result = measure(args.pkg, library_only=not args.with_book)
    print(json.dumps({k: result[k] for k in ("modules", "arrows", "group_edges", "arrows_up")}) if args.json else draw(result))


if __name__ == "__main__":
    main()
