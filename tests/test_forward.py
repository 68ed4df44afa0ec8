"""The forward process: one-shot q(x_t|x_0) against the iterated chain, and L_T."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.data import digits, swiss_roll, to_model_range


def test_marginal_recursion_symbolically():
    """Induction step of eq. closed-form-marginal: if x_{t-1}|x_0 ~ N(√ᾱ_{t-1}x_0, 1−ᾱ_{t-1}) then x_t|x_0 ~ N(√ᾱ_t x_0, 1−ᾱ_t)."""
    ab_prev, beta = sp.symbols("abar_prev beta", positive=True)
    x0 = sp.Symbol("x0", real=True)
    alpha = 1 - beta
    mean = sp.sqrt(alpha) * sp.sqrt(ab_prev) * x0
    var = alpha * (1 - ab_prev) + beta
    ab = alpha * ab_prev
    assert sp.simplify(mean - sp.sqrt(ab) * x0) == 0
    assert sp.simplify(var - (1 - ab)) == 0


@pytest.mark.parametrize("t", [1, 7, 40])
def test_iterated_chain_matches_closed_form(t):
    torch.manual_seed(0)
    s = NoiseSchedule.linear(40, 1e-3, 0.1)
    d = GaussianDiffusion(s)
    n = 40000
    x0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64).expand(n, 2)
    g = torch.Generator().manual_seed(1)
    xt = d.q_sample_iterative(x0, t, generator=g)[t]
    mean, var = math.sqrt(s.alpha_bars[t]) * x0[0], s.one_minus_alpha_bars[t]
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt(2 / (n - 1))
    assert torch.all((xt.mean(0) - mean).abs() < 5 * se_mean)
    assert torch.all((xt.var(0) - var).abs() < 5 * se_var)
    # and the one-shot sampler draws from the same law
    xs = d.q_sample(x0, torch.full((n,), t), generator=g)
    assert torch.all((xs.mean(0) - mean).abs() < 5 * se_mean)
    assert torch.all((xs.var(0) - var).abs() < 5 * se_var)


def test_q_sample_with_given_noise_is_exact():
    s = NoiseSchedule.linear(10)
    d = GaussianDiffusion(s)
    x0 = torch.randn(4, 3, dtype=torch.float64)
    eps = torch.randn(4, 3, dtype=torch.float64)
    t = torch.tensor([1, 3, 5, 10])
    xt = d.q_sample(x0, t, noise=eps)
    for i, ti in enumerate(t.tolist()):
        expected = math.sqrt(s.alpha_bars[ti]) * x0[i] + math.sqrt(1 - s.alpha_bars[ti]) * eps[i]
        torch.testing.assert_close(xt[i], expected, rtol=1e-12, atol=1e-12)


def test_q_step_sample_moments():
    s = NoiseSchedule.linear(10, 0.05, 0.3)
    d = GaussianDiffusion(s)
    n = 50000
    x_prev = torch.full((n, 1), 0.8, dtype=torch.float64)
    x = d.q_step_sample(x_prev, torch.full((n,), 4), generator=torch.Generator().manual_seed(0))
    m, v = math.sqrt(s.alphas[4]) * 0.8, s.betas[4]
    assert abs(x.mean().item() - m) < 5 * math.sqrt(v / n)
    assert abs(x.var().item() - v) < 5 * v * math.sqrt(2 / (n - 1))


def test_prior_kl_matches_closed_form_and_monte_carlo():
    s = NoiseSchedule.linear(50)
    d = GaussianDiffusion(s)
    x0 = digits("test").double()
    lt = d.prior_kl(x0)  # nats per image
    per_dim = s.prior_kl_per_dim((x0**2).mean().item())
    assert lt.mean().item() / 64 == pytest.approx(float(per_dim), rel=1e-10)
    # Monte-Carlo of E_q[log q(x_T|x_0) − log N(x_T; 0, 1)] for one image
    a, v = s.alpha_bars[-1], s.one_minus_alpha_bars[-1]
    g = torch.Generator().manual_seed(0)
    x = x0[:1].expand(20000, -1, -1, -1)
    xT = d.q_sample(x, torch.full((20000,), 50), generator=g)
    logq = -0.5 * ((xT - math.sqrt(a) * x) ** 2 / v + math.log(2 * math.pi * v))
    logp = -0.5 * (xT**2 + math.log(2 * math.pi))
    est = (logq - logp).flatten(1).sum(1)
    assert abs(est.mean().item() - lt[0].item()) < 5 * est.std().item() / math.sqrt(20000)


def test_prior_bpd_paper_schedule_is_negligible_short_chain_is_not():
    x0 = digits("test")
    long = GaussianDiffusion(NoiseSchedule.linear(1000)).prior_bpd(x0)
    short = GaussianDiffusion(NoiseSchedule.linear(50)).prior_bpd(x0)
    assert long < 1e-4
    assert short > 0.1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d: d.q_sample(torch.zeros(3, 2), torch.tensor([0, 1, 2])), "outside 1..T"),
        (lambda d: d.q_sample(torch.zeros(3, 2), torch.tensor([1, 2, 11])), "outside 1..T"),
        (lambda d: d.q_sample(torch.zeros(3, 2), torch.tensor([1, 2])), "shape"),
        (lambda d: d.q_sample(torch.zeros(3, 2, dtype=torch.long), torch.tensor([1, 2, 3])), "floating"),
        (lambda d: d.q_sample(np.zeros((3, 2)), torch.tensor([1, 2, 3])), "torch.Tensor"),
        (lambda d: d.q_sample(torch.zeros(3), torch.tensor([1, 2, 3])), "batch dimension"),
        (lambda d: d.q_sample(torch.zeros(3, 2), torch.tensor([1, 2, 3]), noise=torch.zeros(3, 3)), "noise"),
        (lambda d: d.q_sample_iterative(torch.zeros(3, 2), 11), "t_max"),
        (lambda d: GaussianDiffusion("linear"), "NoiseSchedule"),
    ],
)
def test_forward_bad_input(call, match):
    d = GaussianDiffusion(NoiseSchedule.linear(10))
    with pytest.raises(ValueError, match=match):
        call(d)


def test_data_ranges_and_split():
    tr, te = digits("train"), digits("test")
    assert tr.shape == (1497, 1, 8, 8) and te.shape == (300, 1, 8, 8)
    assert tr.min() == -1 and tr.max() == 1
    levels = torch.unique((te + 1) * 8)
    assert torch.allclose(levels, levels.round()) and len(levels) <= 17
    assert not any(torch.equal(a, b) for a in te[:5] for b in tr[:200])  # no obvious leak
    pts = swiss_roll(1000, seed=0)
    assert pts.shape == (1000, 2)
    torch.testing.assert_close(pts.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="split"):
        digits("validation")
    with pytest.raises(ValueError, match="levels"):
        to_model_range(np.array([0, 300]))
