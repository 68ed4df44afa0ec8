"""No notebook assert compares a quantity with itself (issue 22).

`ddpm_lite.book.symbolic.check_identity` refuses a sympy step whose two sides are the same
expression; this is the same guard for the chapters' plain ``assert`` statements and
``assert_close``-style calls.  Every code cell is parsed; names bound by a simple assignment
(``total = per_sample.mean()``) are replaced by the expression they were bound to, a few
levels deep, so that ``assert total == per_sample.mean()`` is recognised as the same
computation written twice.  Such an assert cannot fail, so it checks nothing.  The guard
is syntactic: it does not know what a library function returns, so it is a floor, not a
proof that every check has teeth.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CLOSE_CALLS = {"assert_close", "assert_allclose", "allclose", "isclose", "array_equal", "equal",
               "assert_array_equal", "assert_equal", "approx"}
DEPTH = 4  # how many assignments deep a name is followed


def _cell_sources(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        # IPython magics and shell escapes are not Python.
        out.append(re.sub(r"^\s*[%!].*$", "", src, flags=re.M))
    return out


class _Expander(ast.NodeTransformer):
    def __init__(self, env: dict[str, ast.expr], depth: int) -> None:
        self.env, self.depth = env, depth

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if self.depth > 0 and isinstance(node.ctx, ast.Load) and node.id in self.env:
            return _expand(self.env[node.id], self.env, self.depth - 1)
        return node


def _expand(expr: ast.expr, env: dict[str, ast.expr], depth: int = DEPTH) -> ast.expr:
    import copy

    return _Expander(env, depth).visit(copy.deepcopy(expr))


def _same(a: ast.expr, b: ast.expr, env: dict[str, ast.expr]) -> bool:
    return ast.dump(_expand(a, env)) == ast.dump(_expand(b, env))


def _self_comparisons(test: ast.expr, env: dict[str, ast.expr]) -> list[str]:
    """Pairs of operands inside one assert that are the same computation."""
    found = []
    for node in ast.walk(test):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for a, b in zip(operands, operands[1:]):
                if _same(a, b, env):
                    found.append(ast.unparse(node))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            if _same(node.left, node.right, env):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Call):
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if fn in CLOSE_CALLS and len(node.args) >= 2 and _same(node.args[0], node.args[1], env):
                found.append(ast.unparse(node))
    return found


class _Scanner(ast.NodeVisitor):
    """Walks statements in source order, recording simple assignments and checking asserts."""

    def __init__(self) -> None:
        self.env: dict[str, ast.expr] = {}
        self.problems: list[str] = []

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = _expand(value, self.env, 1)
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self._bind(t, v)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:  # unpacked from a call: no longer a known expression
                if isinstance(t, ast.Name):
                    self.env.pop(t.id, None)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._bind(target, node.value)

    def visit_For(self, node: ast.For) -> None:
        for t in ast.walk(node.target):
            if isinstance(t, ast.Name):
                self.env.pop(t.id, None)
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        self.problems += [f"assert {p}" for p in _self_comparisons(node.test, self.env)]

    def visit_Call(self, node: ast.Call) -> None:
        fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if fn.startswith("assert") and fn in CLOSE_CALLS:
            self.problems += _self_comparisons(node, self.env)
        self.generic_visit(node)


def self_compared_asserts(sources: list[str]) -> list[str]:
    """The asserts in ``sources`` (one string per cell, in order) that compare a quantity
    with itself computed the same way."""
    scanner = _Scanner()
    for src in sources:
        scanner.visit(ast.parse(src))
    return scanner.problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_assert_compares_a_quantity_with_itself(path):
    problems = self_compared_asserts(_cell_sources(path))
    assert not problems, (f"{path.name}: these checks cannot fail (the same computation on both "
                          f"sides); derive one side independently: {problems}")


@pytest.mark.parametrize("src", [
    "total = per_sample.mean()\nassert abs(total - per_sample.mean()) < 1e-9",
    "a = f(x)\nb = a\nassert b == f(x)",
    "y = np.exp(z)\nnp.testing.assert_allclose(y, np.exp(z))",
    "rate, dist = p + v.sum(), w\nassert rate + dist == p + v.sum() + w",
])
def test_guard_catches_a_self_comparison(src):
    """The guard must fire on each of these, or it would pass every notebook vacuously."""
    assert self_compared_asserts([src])


@pytest.mark.parametrize("src", [
    "total = per_sample.mean()\nassert abs(total - by_hand.mean()) < 5 * se",
    "a = f(x)\nfor a in range(3):\n    pass\nassert a == f(x)",
    "x = q_sample(x0, t, noise=eps)\ntorch.testing.assert_close(x, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)",
])
def test_guard_passes_independent_sides(src):
    assert not self_compared_asserts([src])
