"""Tests for ddpm_lite.experiments: the exact Gaussian story against simulation and the package's
own Monte-Carlo bound, the baseline code length against a direct count, and the experiment runner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.experiments import (FlatEpsModel, LinearEps, code_of, exact_gaussian_bound,
                                   exact_gaussian_nll, linear_reverse_chain, optimal_eps_coef, optimal_simple_loss,
                                   pixel_categorical_bpd, scaled_linear_schedule, train_and_evaluate)
from ddpm_lite.gaussian import LN2, discretized_gaussian_log_likelihood

N = 20_000


def _gaussian_data(s2: float, n: int = N, seed: int = 0) -> torch.Tensor:
    return math.sqrt(s2) * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


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
    chain = linear_reverse_chain(d, k)
    x1_mean = d.sample(LinearEps(k), (N, 1), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x0 = x1_mean + math.sqrt(chain["sigma2"][1]) * torch.randn(N, 1, generator=torch.Generator().manual_seed(3),
                                                               dtype=torch.float64)
    v0 = chain["v"][0]
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
    m = linear_reverse_chain(d, k)["m"]
    x = torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]
    for t in (1, 7, 30):
        mean = d.p_mean_variance(LinearEps(k), x, torch.full((5,), t))["mean"]
        torch.testing.assert_close(mean, m[t] * x, rtol=1e-12, atol=1e-12)


def test_exact_helpers_reject_bad_input():
    d = GaussianDiffusion(NoiseSchedule.linear(10), num_levels=None)
    with pytest.raises(ValueError, match="s2"):
        optimal_eps_coef(d.schedule, -1.0)
    with pytest.raises(ValueError, match="length T"):
        linear_reverse_chain(d, np.zeros(5))
    with pytest.raises(ValueError, match="T must be an integer ≥ 21"):
        scaled_linear_schedule(10)


def test_scaled_linear_schedule_is_the_paper_schedule_at_1000():
    np.testing.assert_array_equal(scaled_linear_schedule(1000).betas, NoiseSchedule.linear(1000).betas)
    assert scaled_linear_schedule(100).alpha_bars[-1] < 1e-3


def test_pixel_categorical_bpd():
    rng = np.random.default_rng(0)
    train = torch.as_tensor(rng.integers(0, 5, (200, 3)))
    test = torch.as_tensor(rng.integers(0, 5, (50, 3)))
    expected = 0.0
    for i in range(3):
        counts = np.bincount(train[:, i].numpy(), minlength=5) + 1.0
        p = counts / counts.sum()
        expected += -np.log2(p[test[:, i].numpy()]).sum()
    assert abs(pixel_categorical_bpd(train, test, 5) - expected / test.numel()) < 1e-12
    # with no data at all the smoothed model is uniform
    assert abs(pixel_categorical_bpd(train[:0], test, 5) - math.log2(5)) < 1e-12
    with pytest.raises(ValueError, match="test_levels"):
        pixel_categorical_bpd(train, test + 5, 5)


def test_training_on_the_bound_has_finite_decoder_gradients_at_the_outer_levels():
    """Chapter 9 trains on the true bound, whose L_0 has open bins at −1 and 1: gradients must stay finite."""
    d = GaussianDiffusion(NoiseSchedule.linear(20), num_levels=17)
    x0 = torch.linspace(-1, 1, 17).repeat(3)
    mean = (x0 + 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    for log_var in (math.log(1e-4), math.log(0.05)):
        ll = d.decoder_log_likelihood(x0, mean, torch.full_like(x0, log_var))
        (grad,) = torch.autograd.grad(ll.sum(), mean)
        assert torch.isfinite(ll).all() and torch.isfinite(grad).all()
    levels = torch.linspace(-1, 1, 17)
    p = d.decoder_log_likelihood(levels, torch.full_like(levels, 0.3), torch.full_like(levels, math.log(0.1))).exp()
    assert abs(p.sum().item() - 1) < 1e-5


def test_code_of_strips_the_docstring():
    src = code_of(GaussianDiffusion.q_sample)
    assert src.lstrip().startswith("def q_sample")
    assert '"""' not in src and "return" in src
    with pytest.raises(ValueError):
        code_of(42)


def test_flat_eps_model_keeps_image_shape():
    from ddpm_lite.models import MLPDenoiser

    m = FlatEpsModel(MLPDenoiser(dim=64, hidden=16, depth=1, T=10))
    x = torch.randn(3, 1, 8, 8)
    assert m(x, torch.tensor([1, 5, 10])).shape == x.shape


def test_train_and_evaluate_is_deterministic():
    from ddpm_lite.data import digits

    torch.set_num_threads(1)
    d = GaussianDiffusion(scaled_linear_schedule(25), num_levels=17)
    tr, te = digits("train")[:256], digits("test")[:40]
    runs = [train_and_evaluate("x", d, tr, te, steps=5, batch_size=32, n_samples=40, bound_images=4, seed=3)
            for _ in range(2)]
    assert runs[0].fd == runs[1].fd and runs[0].bpd == runs[1].bpd
    assert math.isfinite(runs[0].fd) and math.isfinite(runs[0].bpd) and runs[0].details["bpd_se"] > 0
    vb = train_and_evaluate("vb", d, tr, te, steps=5, batch_size=32, n_samples=40, bound_images=4, seed=3,
                            loss_kind="vb")
    assert all(math.isfinite(loss) for _, loss in vb.losses)
