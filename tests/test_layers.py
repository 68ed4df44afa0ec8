"""The package's shape: two layers, arrows only downward, files and functions a reader can hold.

The import graph is drawn from the source (every ``import`` statement, at module level or
inside a function, under ``TYPE_CHECKING`` or not), so a lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ddpm_lite

PKG = Path(ddpm_lite.__file__).resolve().parent
SRC = PKG.parent

#: Floors of the library, bottom up.  An import must go to a strictly lower floor.
LIBRARY_FLOORS = {
    "checks": 0, "plumbing": 0, "runs.directory": 0, "training.progress": 0,
    "schedule": 1, "gaussian": 1, "runs.checkpoint": 1, "data.datasets": 1, "nets.embedding": 1,
    "training.timesteps": 1,
    "data.images": 1.2, "data.png": 1.2, "nets.mlp": 1.2, "nets.unet": 1.2, "data.__init__": 1.3,
    "nets.levels": 1.5, "nets.build": 1.7, "nets.__init__": 1.8,
    "forward": 2, "data.metrics": 2, "training.distributed": 2, "training.state": 2, "data.baselines": 2,
    "runs.__init__": 2,
    "reverse": 3, "training.guards": 3,
    "spacing": 1.5, "sampling": 4,
    "diffusion": 5, "training.step": 5.5,
    "training.loop": 6, "training.__init__": 6.2,
    "cli.args": 6.5, "cli.main": 7, "cli.__init__": 7.2, "__main__": 8, "__init__": 8,
}
#: The teaching layer sits above the whole library.
BOOK_FLOORS = {
    "book.display": 9,
    "book.__init__": 10, "book.symbolic": 10, "book.bound": 11, "book.grid": 11, "book.exact": 10, "book.plotting": 10, "book.experiments": 10,
    "book.widgets.base": 11,
    "book.widgets.forward": 12, "book.widgets.posterior": 12, "book.widgets.reverse_chain": 12,
    "book.widgets.__init__": 13,
}
FLOORS = {**LIBRARY_FLOORS, **BOOK_FLOORS}
BOOK_ONLY_DEPENDENCIES = ("sympy", "ipywidgets", "matplotlib", "IPython", "scipy")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PKG).with_suffix("").parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules of ddpm_lite this file imports, top-level names of other packages it imports)."""
    own, other = set(), set()
    name = _module_name(path)
    package = name.rsplit(".", 1)[0] if "." in name else ""
    if path.name == "__init__.py":
        package = name.rsplit(".", 1)[0] if name != "__init__" else ""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ddpm_lite"):
                    own.add(alias.name.removeprefix("ddpm_lite").lstrip("."))
                else:
                    other.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module.startswith("ddpm_lite"):
                    base = node.module.removeprefix("ddpm_lite").lstrip(".")
                    own.update(f"{base}.{a.name}".lstrip(".") for a in node.names)
                else:
                    other.add(node.module.split(".")[0])
                continue
            parts = package.split(".") if package else []
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
            # "from . import checks" names a module; "from .diffusion import X" names a module too.
            own.update(f"{base}.{a.name}".lstrip(".") for a in node.names)
            if node.module:  # "from . import x" names the sibling x, not the package's __init__
                own.add(base)
    resolved = set()
    for target in own:
        # Keep the longest prefix that is one of our modules ("diffusion.GaussianDiffusion" → "diffusion").
        parts = target.split(".")
        for k in range(len(parts), 0, -1):
            cand = ".".join(parts[:k])
            if cand in FLOORS or f"{cand}.__init__" in FLOORS:
                resolved.add(cand if cand in FLOORS else f"{cand}.__init__")
                break
    resolved.discard(name)
    return resolved, other


MODULES = sorted(PKG.rglob("*.py"))


def test_every_module_has_a_floor():
    names = {_module_name(p) for p in MODULES}
    assert names == set(FLOORS), f"new or removed modules: {sorted(names ^ set(FLOORS))}; give each a floor"


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_imports_point_downward(path):
    name = _module_name(path)
    own, _ = _imports(path)
    up = sorted(m for m in own if FLOORS[m] >= FLOORS[name])
    assert not up, f"{name} (floor {FLOORS[name]}) imports {up}, which are not below it"


@pytest.mark.parametrize("path", [p for p in MODULES if not _module_name(p).startswith("book")], ids=_module_name)
def test_library_never_imports_the_book_or_its_dependencies(path):
    own, other = _imports(path)
    assert not [m for m in own if m.startswith("book")], f"{path.name} imports the teaching layer"
    assert not (other & set(BOOK_ONLY_DEPENDENCIES)), f"{path.name} imports {sorted(other & set(BOOK_ONLY_DEPENDENCIES))}"


@pytest.mark.parametrize("path", [p for p in MODULES if not _module_name(p).startswith("book")], ids=_module_name)
def test_library_files_and_functions_stay_small(path):
    """≲ 400 lines a file, ≲ 80 lines of code a function (docstrings not counted)."""
    text = path.read_text()
    assert len(text.splitlines()) <= 400, f"{path.name} has {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
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
