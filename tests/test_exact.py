"""ddpm_lite.book.exact: the 1-D chain of chapters 2–3 (three independent routes to the bound
agree) and the Gaussian-data story of chapter 10 against simulation and the package's own
Monte-Carlo bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.book.exact import (
    LinearEps,
    LinearGaussianChain,
    exact_gaussian_bound,
    exact_gaussian_nll,
    optimal_eps_coef,
    optimal_simple_loss,
)
from ddpm_lite.book.experiments import scaled_linear_schedule
from ddpm_lite.gaussian import LN2

N = 20_000


def _gaussian_data(s2: float, n: int = N, seed: int = 0) -> torch.Tensor:
    return math.sqrt(s2) * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

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


@pytest.mark.parametrize("t", [1, 50, 300])
def test_optimal_eps_is_the_regression_slope(t):
    s2 = 0.3
    d = GaussianDiffusion(NoiseSchedule.linear(400), num_levels=None)
    x0 = _gaussian_data(s2)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xt = d.q_sample(x0, torch.full((N,), t), noise=noise)
    slope = float((noise * xt).sum() / (xt * xt).sum())
    se = float((noise - slope * xt).std() / xt.square().sum().sqrt())
    assert abs(slope - optimal_eps_coef(d.schedule, s2)[t]) < 5 * se
    # and its loss is the residual variance of eq. exact-simple-floor
    loss = d.loss_simple(LinearEps(optimal_eps_coef(d.schedule, s2)), x0, t=torch.full((N,), t), noise=noise)
    assert abs(float(loss.mean()) - optimal_simple_loss(d.schedule, s2)[t]) < 5 * float(loss.std()) / math.sqrt(N)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_reverse_chain_variance_matches_sampling(variance):
    s2 = 0.2
    d = GaussianDiffusion(scaled_linear_schedule(60), variance=variance, num_levels=None)
    k = optimal_eps_coef(d.schedule, s2)
    chain = LinearGaussianChain.from_eps_coef(d, k)
    x1_mean = d.sample(LinearEps(k), (N, 1), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x0 = x1_mean + math.sqrt(chain.s2[1]) * torch.randn(N, 1, generator=torch.Generator().manual_seed(3),
                                                        dtype=torch.float64)
    v0 = chain.marginal_moments()[1][0]
    assert abs(x0.var().item() - v0) < 5 * v0 * math.sqrt(2 / (N - 1))


@pytest.mark.parametrize("variance,s2", [("beta", 0.25), ("beta_tilde", 0.25), ("beta", 2.0)])
def test_exact_bound_matches_monte_carlo(variance, s2):
    d = GaussianDiffusion(scaled_linear_schedule(40), variance=variance, num_levels=None)
    k = optimal_eps_coef(d.schedule, s2)
    x0 = _gaussian_data(s2, 5000, seed=4)
    mc = d.bits_per_dim(LinearEps(k), x0, generator=torch.Generator().manual_seed(5))
    per = mc["per_sample"] * LN2
    exact = exact_gaussian_bound(d, k, s2)
    # The sample's own second moment differs from s²; L_T is linear in it, the KLs nearly so.
    assert abs(per.mean().item() - exact["total"]) < 5 * per.std().item() / math.sqrt(len(per)) + 1e-3


def test_stationary_data_make_the_bound_tight():
    for T in (25, 200):
        d = GaussianDiffusion(scaled_linear_schedule(T), variance="beta", num_levels=None)
        k = optimal_eps_coef(d.schedule, 1.0)
        b, nll = exact_gaussian_bound(d, k, 1.0)["total"], exact_gaussian_nll(d, k, 1.0)
        assert abs(b - nll) < 1e-9
        assert abs(nll - 0.5 * math.log(2 * math.pi * math.e)) < 1e-9


@settings(max_examples=25, deadline=None)
@given(s2=st.floats(1e-3, 10.0), T=st.integers(21, 300), variance=st.sampled_from(["beta", "beta_tilde"]),
       scale=st.floats(0.5, 1.5))
def test_bound_is_above_nll_above_entropy(s2, T, variance, scale):
    d = GaussianDiffusion(scaled_linear_schedule(T), variance=variance, num_levels=None)
    k = scale * optimal_eps_coef(d.schedule, s2)          # also for non-optimal linear models
    b, nll = exact_gaussian_bound(d, k, s2)["total"], exact_gaussian_nll(d, k, s2)
    assert b >= nll - 1e-8 * max(1.0, abs(nll))
    assert nll >= 0.5 * math.log(2 * math.pi * math.e * s2) - 1e-10


def test_linear_reverse_chain_mean_matches_p_mean_variance():
    d = GaussianDiffusion(NoiseSchedule.linear(30, 1e-3, 0.2), num_levels=None)
    k = optimal_eps_coef(d.schedule, 0.5)
    m = LinearGaussianChain.from_eps_coef(d, k).a
    x = torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]
    for t in (1, 7, 30):
        mean = d.p_mean_variance(LinearEps(k), x, torch.full((5,), t))["mean"]
        torch.testing.assert_close(mean, m[t] * x, rtol=1e-12, atol=1e-12)


def test_exact_helpers_reject_bad_input():
    d = GaussianDiffusion(NoiseSchedule.linear(10), num_levels=None)
    with pytest.raises(ValueError, match="s2"):
        optimal_eps_coef(d.schedule, -1.0)
    with pytest.raises(ValueError, match="length T"):
        LinearGaussianChain.from_eps_coef(d, np.zeros(5))
