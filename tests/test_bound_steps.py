"""Chapter 11's sympy steps (ddpm_lite.book.bound): each holds, and each could fail."""

import sympy as sp
import pytest

from ddpm_lite.book import bound as bd
from ddpm_lite.book.symbolic import check_identity

STEP_FUNCTIONS = [bd.optimal_variance_steps, bd.interpolation_steps, bd.importance_steps]


@pytest.mark.parametrize("make", STEP_FUNCTIONS, ids=lambda f: f.__name__)
def test_every_step_holds_and_compares_two_different_expressions(make):
    steps = make()
    assert steps, f"{make.__name__} returned no steps"
    for step in steps:
        assert step.holds, step.name
        assert sp.srepr(sp.sympify(step.lhs)) != sp.srepr(sp.sympify(step.rhs)), step.name


def test_a_wrong_importance_distribution_is_refused():
    """p_t ∝ m_t (the second moment itself, not its root) is not the stationary point."""
    m = sp.symbols("m_1:5", positive=True)
    stationary = next(s for s in bd.importance_steps() if "stationary" in s.name)
    wrong = m[0] / sum(m)
    assert not check_identity("mutated p_1", stationary.lhs, wrong).holds
