"""The package's shape: groups with rules between them, arrows only downward, files and functions a reader can hold.

The import graph is drawn from the source by ``tests/layering.py`` (every ``import``, at module
level or inside a function, under ``TYPE_CHECKING`` or not), so a lazy import cannot hide an
arrow.  The rules are between groups, not a table of per-module numbers: a new module needs no
entry here, only a place in a group.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ddpm_lite

PKG = Path(ddpm_lite.__file__).resolve().parent
SRC = PKG.parent
_spec = importlib.util.spec_from_file_location("layering", Path(__file__).resolve().parent / "layering.py")
layering = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layering)

GRAPH = layering.graph(PKG)
GROUP = {m: layering.group_of(m) for m in GRAPH}
BOOK_ONLY_DEPENDENCIES = ("sympy", "ipywidgets", "matplotlib", "IPython", "scipy")
#: What each group may import besides itself (the book may import the whole library).
ALLOWED = {
    "base": set(),
    "derivation": {"base"},
    "nets": {"base", "derivation"},
    "data": {"base"},
    "runs": {"base"},
    "training": {"base", "derivation", "nets", "runs"},
    "cli": {"base", "derivation", "nets", "data", "runs", "training"},
    "surface": {"base", "derivation", "nets", "data", "runs", "training", "cli"},
    "book": {"base", "derivation", "nets", "data", "runs", "training", "surface"},
}
LIBRARY = sorted(m for m in GRAPH if GROUP[m] != "book")


def test_every_module_is_in_a_known_group():
    assert set(GROUP.values()) <= set(ALLOWED), {m: g for m, g in GROUP.items() if g not in ALLOWED}
    assert {"schedule", "gaussian", "forward", "reverse", "diffusion", "sampling"} <= {
        m for m, g in GROUP.items() if g == "derivation"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_follow_the_rules_between_groups(module):
    """The derivation imports no group; nothing imports the book; training never imports the CLI; …"""
    wrong = sorted(t for t in GRAPH[module] if GROUP[t] != GROUP[module] and GROUP[t] not in ALLOWED[GROUP[module]])
    assert not wrong, f"{module} ({GROUP[module]}) imports {[(t, GROUP[t]) for t in wrong]}"


def test_the_import_graph_has_no_cycles():
    """Arrows only downward: the modules can be ordered so that each imports only earlier ones."""
    done, visiting = set(), []

    def visit(m: str) -> None:
        if m in done:
            return
        assert m not in visiting, f"import cycle: {' -> '.join(visiting[visiting.index(m):] + [m])}"
        visiting.append(m)
        for t in sorted(GRAPH[m]):
            visit(t)
        visiting.pop()
        done.add(m)

    for m in sorted(GRAPH):
        visit(m)


def test_the_counts_are_those_the_drawing_prints():
    result = layering.measure(PKG)
    assert result["modules"] == len(LIBRARY) and result["arrows_up"] == 0
    assert result["arrows"] == sum(len({t for t in GRAPH[m] if GROUP[t] != "book"}) for m in LIBRARY)


@pytest.mark.parametrize("path", [PKG / (m.replace(".", "/") + ".py") if (PKG / (m.replace(".", "/") + ".py")).exists()
                                  else PKG / m.replace(".", "/") / "__init__.py" for m in LIBRARY], ids=LIBRARY)
def test_library_never_imports_the_book_dependencies(path):
    other = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            other |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            other.add(node.module.split(".")[0])
    assert not (other & set(BOOK_ONLY_DEPENDENCIES)), f"{path.name} imports {sorted(other & set(BOOK_ONLY_DEPENDENCIES))}"


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) - (names[:1] in (["self"], ["cls"])) + (a.vararg is not None) + (a.kwarg is not None)


@pytest.mark.parametrize("path", [p for p in sorted(PKG.rglob("*.py")) if "book" not in p.relative_to(PKG).parts],
                         ids=lambda p: str(p.relative_to(PKG)))
def test_library_files_and_functions_stay_small(path):
    """About 300 lines a module, 80 lines of code and about ten parameters a function (docstrings not counted)."""
    text = path.read_text()
    assert len(text.splitlines()) <= 310, f"{path.name} has {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert _params(node) <= 11, f"{path.name}:{node.name} takes {_params(node)} parameters"
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]
            if body:
                length = body[-1].end_lineno - body[0].lineno + 1
                assert length <= 80, f"{path.name}:{node.name} has {length} lines of code"


def test_library_works_with_the_book_dependencies_blocked(tmp_path):
    """Train, sample, score and use the CLI with sympy, ipywidgets and matplotlib unimportable."""
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            # Refuse the book's dependencies to ddpm_lite's own library modules (torch itself
            # imports sympy, so the block looks at who is importing).
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] not in {BOOK_ONLY_DEPENDENCIES!r}:
                    return None
                f = sys._getframe(1)
                while f is not None and f.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
                    f = f.f_back
                caller = f.f_globals.get("__name__", "") if f is not None else ""
                if caller.startswith("ddpm_lite") and not caller.startswith("ddpm_lite.book"):
                    raise ImportError(f"blocked: {{caller}} imports {{name}}")
        sys.meta_path.insert(0, Block())
        import pkgutil, importlib
        import ddpm_lite
        for m in pkgutil.iter_modules(ddpm_lite.__path__):
            if m.name not in ("book", "__main__"):
                importlib.import_module("ddpm_lite." + m.name)
        import torch
        from ddpm_lite import GaussianDiffusion, NoiseSchedule, MLPDenoiser, train
        from ddpm_lite.cli import main
        d = GaussianDiffusion(NoiseSchedule.linear(20), num_levels=None)
        res = train(MLPDenoiser(dim=2, hidden=16, depth=1, T=20), d, torch.randn(64, 2), steps=3,
                    progress=False, device="cpu", checkpoint_dir={str(tmp_path / "run")!r})
        x = d.sample(res.ema_model, (8, 2), generator=torch.Generator().manual_seed(0))
        assert x.shape == (8, 2)
        assert main(["sample", "--run", {str(tmp_path / "run")!r}, "--n", "16",
                     "--out", {str(tmp_path / "pts.png")!r}, "--device", "cpu"]) == 0
        assert main(["train", "--data", "digits", "--steps", "2", "--T", "10", "--no-progress",
                     "--out", {str(tmp_path / "dig")!r}, "--device", "cpu"]) == 0
        assert main(["sample", "--run", {str(tmp_path / "dig")!r}, "--n", "4",
                     "--out", {str(tmp_path / "dig.png")!r}, "--device", "cpu"]) == 0
        assert main(["bpd", "--run", {str(tmp_path / "dig")!r}, "--n", "4", "--device", "cpu"]) == 0
        assert not any(n.split(".")[0] in ("matplotlib", "ipywidgets") for n in sys.modules), "a book dependency loaded"
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
    assert (tmp_path / "pts.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "dig.png").stat().st_size > 0


def test_moved_modules_say_where_they_went():
    with pytest.raises(ModuleNotFoundError, match="ddpm_lite.book.widgets"):
        import ddpm_lite.widgets  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match="ddpm_lite.book.symbolic"):
        from ddpm_lite import symbolic  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match=r"ddpm_lite\.runs\.checkpoint in ddpm_lite 0\.3\.0"):
        from ddpm_lite.checkpoint import load_checkpoint  # noqa: F401
