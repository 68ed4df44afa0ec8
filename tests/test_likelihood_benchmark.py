"""benchmarks/likelihood.py's flags: the default is the continuous-time recipe, bad combinations are refused.

The acceptance command of issue 24 is ``python benchmarks/likelihood.py --seconds 600 --seed S`` with no
other flag, so what the defaults resolve to is the recipe being reported.  Training itself is
covered by the library's tests; these only parse.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def likelihood():
    sys.path.insert(0, str(BENCH))
    try:
        import likelihood as module
    finally:
        sys.path.remove(str(BENCH))
    return module


def parse(likelihood, monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["likelihood.py", *argv])
    return likelihood.parse_args()


def test_defaults_resolve_to_the_continuous_recipe(likelihood, monkeypatch):
    args = parse(likelihood, monkeypatch, "--seconds", "600")
    recipe = likelihood.TIME_RECIPE["continuous"]
    assert args.time == "continuous" and args.importance is False and args.variance == "posterior"
    assert {k: getattr(args, k) for k in recipe} == recipe
    # A flag on the command line wins over the time's default; 0 rows means every row.
    args = parse(likelihood, monkeypatch, "--no-learn-ends", "--recon-rows", "0", "--members", "3")
    assert args.learn_ends is False and args.recon_rows is None and args.members == 3


def test_discrete_time_keeps_chapter_13s_recipe(likelihood, monkeypatch):
    args = parse(likelihood, monkeypatch, "--time", "discrete")
    assert (args.variance, args.importance, args.members) == ("learned", True, 1)


@pytest.mark.parametrize("argv, match", [
    (["--time", "discrete", "--members", "2"], "continuous time"),
    (["--members", "0"], "N ≥ 1"),
    (["--members", "2", "--run", "somewhere"], "without --run"),
    (["--lr-decay", "cosine", "--holdout", "0"], "--holdout"),
    (["--variance", "beta"], "discrete time"),
])
def test_bad_combinations_exit_with_the_fix(argv, match):
    out = subprocess.run([sys.executable, str(BENCH / "likelihood.py"), *argv], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and match in out.stderr, out.stderr[-500:]
    assert "Traceback" not in out.stderr


def test_the_cosine_rate_falls_from_one_to_zero_over_the_budget(likelihood, monkeypatch):
    args = parse(likelihood, monkeypatch, "--lr-decay", "cosine")
    scales = [likelihood.lr_scale(args, p) for p in (0.0, 0.25, 0.5, 1.0)]
    assert scales == pytest.approx([1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.0], abs=1e-12)
    assert likelihood.lr_scale(parse(likelihood, monkeypatch), 0.9) == 1.0
