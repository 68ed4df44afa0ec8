"""The exact 1-D chain of chapters 02–03: three independent routes to the bound agree."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_lite import NoiseSchedule
from ddpm_lite.toy_chain import LinearGaussianChain

SCHED = NoiseSchedule.linear(T=4, beta_1=0.1, beta_T=0.4)
PERTURBED = dict(a=np.r_[0.0, 0.9 * SCHED.sqrt_alphas[1:]], b=np.full(5, 0.2), s2=1.7 * SCHED.betas + 0.01)


@pytest.mark.parametrize("x0", [-2.0, 0.0, 1.3])
def test_bound_equals_nll_plus_gap(x0):
    chain = LinearGaussianChain(SCHED, **PERTURBED)
    gap = chain.gap(x0)
    assert gap > 1e-3  # a wrong model must leave a gap
    assert chain.bound(x0) == pytest.approx(-chain.log_p_x0(x0) + gap, rel=1e-10)


def test_exact_reverse_has_no_gap():
    chain = LinearGaussianChain(SCHED)
    assert abs(chain.gap(0.7)) < 1e-10
    assert chain.bound(0.7) == pytest.approx(-chain.log_p_x0(0.7), rel=1e-12)


def test_split_expected_sums_to_bound():
    chain = LinearGaussianChain(SCHED, **PERTURBED)
    terms = chain.split_expected(0.4)
    assert terms["L_T"] + terms["L_{t-1}"].sum() + terms["L_0"] == pytest.approx(chain.bound(0.4), rel=1e-10)


def test_split_terms_equal_bound_per_sample_and_monte_carlo():
    chain = LinearGaussianChain(SCHED, **PERTURBED)
    path = chain.sample_q(0.4, 40_000, np.random.default_rng(1))
    per_sample = -(chain.log_p_joint(path) - chain.log_q(path))
    split = chain.split_terms(path)
    np.testing.assert_allclose(split["L_T"] + split["L_{t-1}"].sum(1) + split["L_0"], per_sample, rtol=1e-10, atol=1e-10)
    se = per_sample.std(ddof=1) / np.sqrt(per_sample.size)
    assert abs(per_sample.mean() - chain.bound(0.4)) < 5 * se


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="length T \\+ 1"):
        LinearGaussianChain(SCHED, a=np.ones(3))
    with pytest.raises(ValueError, match="s2_t"):
        LinearGaussianChain(SCHED, s2=np.zeros(5))
