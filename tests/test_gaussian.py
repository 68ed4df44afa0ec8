"""Tests for ddpm_lite.gaussian: the Gaussian KL, the discretized decoder, bits/dim.

Every reference value is computed independently of the code under test: numpy
formulas written from variances, scipy quadrature and CDFs, Monte-Carlo, and
mpmath at 60 digits for the regimes where double precision CDFs are not enough.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from ddpm_lite.gaussian import (
    bin_edges,
    discretized_gaussian_log_likelihood,
    nats_to_bits_per_dim,
    normal_kl,
)

FLOATS = (torch.float32, torch.float64)
EPS = {torch.float32: float(np.finfo(np.float32).eps), torch.float64: float(np.finfo(np.float64).eps)}


def kl_closed_form_np(m1, v1, m2, v2):
    """KL between 1-D Gaussians from variances (not log-variances), written independently."""
    return 0.5 * (np.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1.0)


def levels(num_levels: int, dtype=torch.float64) -> torch.Tensor:
    # Built in float64 and cast: torch.linspace *in* bfloat16 accumulates its step in
    # bfloat16 and puts two of the 256 levels in the wrong bin.
    return torch.linspace(-1.0, 1.0, num_levels, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------- normal_kl
@pytest.mark.parametrize("m1,v1,m2,v2", [(0.0, 1.0, 1.0, 1.0), (0.3, 0.5, -1.2, 2.0), (2.0, 1e-4, 2.1, 3e-4), (-5.0, 4.0, 0.0, 1.0)])
def test_normal_kl_matches_quadrature(m1, v1, m2, v2):
    """∫ p log(p/q) by scipy quadrature: shares no formula with the code."""
    p, q = stats.norm(m1, math.sqrt(v1)), stats.norm(m2, math.sqrt(v2))
    lo, hi = m1 - 12 * math.sqrt(v1), m1 + 12 * math.sqrt(v1)
    expected, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200)
    got = normal_kl(torch.tensor(m1, dtype=torch.float64), math.log(v1), m2, math.log(v2)).item()
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_normal_kl_known_value():
    # KL(N(0,1) ‖ N(1,1)) = ½ (μ₁−μ₂)² = ½ by hand.
    assert normal_kl(torch.tensor(0.0, dtype=torch.float64), 0.0, 1.0, 0.0).item() == pytest.approx(0.5, abs=1e-15)


def test_normal_kl_monte_carlo():
    """E_p[log p − log q] from samples, within 5 standard errors of the sample mean."""
    rng = np.random.default_rng(0)
    m1, v1, m2, v2 = 0.4, 0.7, -0.3, 1.6
    n = 200_000
    x = rng.normal(m1, math.sqrt(v1), n)
    log_ratio = stats.norm.logpdf(x, m1, math.sqrt(v1)) - stats.norm.logpdf(x, m2, math.sqrt(v2))
    se = log_ratio.std(ddof=1) / math.sqrt(n)
    got = normal_kl(torch.tensor(m1, dtype=torch.float64), math.log(v1), m2, math.log(v2)).item()
    assert abs(log_ratio.mean() - got) < 5 * se


param = st.floats(-20.0, 20.0, allow_nan=False)
logvar = st.floats(-20.0, 20.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(m1=param, lv1=logvar, m2=param, lv2=logvar, dtype=st.sampled_from(FLOATS))
def test_normal_kl_nonnegative_and_matches_closed_form(m1, lv1, m2, lv2, dtype):
    kl = normal_kl(torch.tensor(m1, dtype=dtype), torch.tensor(lv1, dtype=dtype), torch.tensor(m2, dtype=dtype), torch.tensor(lv2, dtype=dtype))
    assert kl.dtype == dtype and torch.isfinite(kl) and kl.item() >= 0.0
    # Compare with the closed form on the values the tensors actually hold.
    r = [float(torch.tensor(v, dtype=dtype)) for v in (m1, lv1, m2, lv2)]
    expected = kl_closed_form_np(r[0], math.exp(r[1]), r[2], math.exp(r[3]))
    # Rounding bound: each of the terms (up to e^{|Δlogvar|} and (Δμ)²/σ₂²) carries a few eps.
    scale = math.exp(r[1] - r[3]) + abs(r[1] - r[3]) + (r[0] - r[2]) ** 2 * math.exp(-r[3]) + 1.0
    assert abs(kl.item() - expected) <= 64 * EPS[dtype] * scale * max(1.0, abs(r[1]), abs(r[3]))


@settings(max_examples=200, deadline=None)
@given(m=param, lv=logvar, dtype=st.sampled_from(FLOATS))
def test_normal_kl_zero_iff_equal(m, lv, dtype):
    m_t, lv_t = torch.tensor(m, dtype=dtype), torch.tensor(lv, dtype=dtype)
    assert normal_kl(m_t, lv_t, m_t, lv_t).item() == 0.0
    # Distinct by a resolvable amount (≥ 1 % of σ and ≫ one ulp of the mean) → strictly positive.
    shift = max(1e-2 * math.exp(lv / 2), 1e3 * EPS[dtype] * abs(m))
    assert normal_kl(m_t, lv_t, m_t + shift, lv_t).item() > 0.0
    assert normal_kl(m_t, lv_t, m_t, lv_t + 1e-2).item() > 0.0


def test_normal_kl_tiny_logvar_difference_is_not_cancelled():
    """e^d − 1 − d for d = 1e−6 is d²/2 = 5e−13; the naive form returns 0 or a negative number in float32."""
    d = 1e-6
    kl = normal_kl(torch.tensor(0.0), torch.tensor(d), 0.0, 0.0)
    assert kl.item() == pytest.approx(0.5 * (math.expm1(d) - d), rel=1e-5)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_normal_kl_promotes_half_precision(half):
    m1, lv1 = torch.tensor([0.5, -1.0], dtype=half), torch.tensor([-3.0, 0.25], dtype=half)
    kl = normal_kl(m1, lv1, 0.0, 0.0)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl, normal_kl(m1.float(), lv1.float(), 0.0, 0.0))


def test_normal_kl_needs_a_tensor():
    with pytest.raises(TypeError, match="at least one torch.Tensor"):
        normal_kl(0.0, 0.0, 1.0, 0.0)


# ---------------------------------------------------------------------- bins
@pytest.mark.parametrize("K", [2, 17, 256])
def test_bins_tile_the_real_line(K):
    lower, upper = bin_edges(levels(K), K)
    assert lower[0].item() == -math.inf and upper[-1].item() == math.inf
    assert torch.equal(upper[:-1], lower[1:])  # the same floats: no gap, no overlap
    assert torch.all(upper > lower)


def test_bins_are_the_papers_delta_for_8_bit():
    x = levels(256)
    lower, upper = bin_edges(x, 256)
    torch.testing.assert_close(upper[1:-1] - x[1:-1], torch.full((254,), 1 / 255, dtype=torch.float64))
    torch.testing.assert_close(x[1:-1] - lower[1:-1], torch.full((254,), 1 / 255, dtype=torch.float64))


# ---------------------------------------------------------------------- decoder
def mp_log_prob(x: float, mean: float, sigma: float, K: int) -> float:
    """log P(bin of x) at 60 digits, using the tail on the mean's far side so nothing cancels."""
    mpmath.mp.dps = 60
    x, m, s, h = mpmath.mpf(x), mpmath.mpf(mean), mpmath.mpf(sigma), mpmath.mpf(1) / (K - 1)
    cdf = lambda z: mpmath.erfc(-z / mpmath.sqrt(2)) / 2  # Φ(z)
    sf = lambda z: mpmath.erfc(z / mpmath.sqrt(2)) / 2  # 1 − Φ(z)
    if x <= -1 + h / 2:
        p = cdf((x + h - m) / s)
    elif x >= 1 - h / 2:
        p = sf((x - h - m) / s)
    elif x - h > m:
        p = sf((x - h - m) / s) - sf((x + h - m) / s)
    else:
        p = cdf((x + h - m) / s) - cdf((x - h - m) / s)
    return float(mpmath.log(p))


# (1/255 + 0.011, 0.01): a bin next to 0 at σ_1, where edges written as (2k+1)/(K−1) − 1 lose 6e−6 σ in float32.
EXTREMES = [(1 / 255 + 0.011, 0.01), (0.0, 1e6), (0.0, 1e5), (0.3, 1e3), (0.0, 10.0), (50.0, 1.0), (-50.0, 1e-6), (0.1, 0.01), (0.0, 1.0), (0.2, 0.05), (3.0, 1e-3), (-0.7, 3e-2)]


@pytest.mark.parametrize("K", [17, 256])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mean,sigma", EXTREMES)
def test_decoder_matches_mpmath(mean, sigma, dtype, K):
    """Accurate to a few eps relative to (1 + |log P|) in every regime, edge bins included.

    The bound: rounding the inputs (mean, σ) by one eps moves log P ≈ −z²/2 by about
    eps·z², i.e. eps·|log P|; 50 eps leaves room for the arithmetic on top of that.
    """
    x = levels(K)[[0, 1, K // 3, K // 2, K - 2, K - 1]]
    got = discretized_gaussian_log_likelihood(x.to(dtype), torch.tensor(mean, dtype=dtype), torch.tensor(math.log(sigma), dtype=dtype), K)
    sigma_held = math.exp(float(torch.tensor(math.log(sigma), dtype=dtype)))
    mean_held = float(torch.tensor(mean, dtype=dtype))
    for xi, gi in zip(x.tolist(), got.double().tolist()):
        expected = mp_log_prob(float(torch.tensor(xi, dtype=dtype)), mean_held, sigma_held, K)
        assert abs(gi - expected) <= 50 * EPS[dtype] * (1.0 + abs(expected)), (xi, gi, expected)


@pytest.mark.parametrize("s", [1e-9, 1e-3, 0.05, 0.0999, 0.1001, 0.7, 3.0, 40.0, 1e4])
def test_narrow_bin_helpers_match_mpmath(s):
    """The two ingredients of the narrow-bin expansion, on both sides of each series/closed-form switch."""
    from ddpm_lite.gaussian import _log_sinhc, _tilted_second_moment

    mpmath.mp.dps = 60
    S = mpmath.mpf(s)
    log_sinhc = mpmath.log(mpmath.sinh(S) / S)
    # E[v²] under density ∝ e^{s v} on [−1, 1], by quadrature: independent of the Langevin formula.
    m2 = mpmath.quad(lambda v: v * v * mpmath.exp(S * v), [-1, 1]) / mpmath.quad(lambda v: mpmath.exp(S * v), [-1, 1])
    for sign in (1.0, -1.0):
        t = torch.tensor(sign * s, dtype=torch.float64)
        assert _log_sinhc(t).item() == pytest.approx(float(log_sinhc), rel=1e-12)
        assert _tilted_second_moment(t).item() == pytest.approx(float(m2), rel=1e-12)


@pytest.mark.parametrize("K", [17, 256])
def test_decoder_matches_scipy_cdf_differences(K):
    """Where Φ(b) − Φ(a) in float64 is accurate (P ≥ 1e−8, so its absolute error ~1e−16 is ≤ 1e−8 relative)."""
    rng = np.random.default_rng(1)
    x = levels(K).repeat(40)
    mean = torch.as_tensor(rng.uniform(-1.5, 1.5, x.shape))
    sigma = torch.as_tensor(np.exp(rng.uniform(math.log(0.02), math.log(3.0), x.shape)))
    lower, upper = bin_edges(x, K)
    p_scipy = stats.norm.cdf(((upper - mean) / sigma).numpy()) - stats.norm.cdf(((lower - mean) / sigma).numpy())
    got = discretized_gaussian_log_likelihood(x, mean, torch.log(sigma), K).exp().numpy()
    ok = p_scipy >= 1e-8
    assert ok.sum() > len(ok) // 2
    np.testing.assert_allclose(got[ok], p_scipy[ok], rtol=1e-7, atol=0)


@settings(max_examples=150, deadline=None)
@given(
    mean=st.floats(-50.0, 50.0),
    log_sigma=st.floats(math.log(1e-6), math.log(1e6)),
    K=st.sampled_from([2, 17, 256]) | st.integers(2, 300),
    dtype=st.sampled_from(FLOATS),
)
def test_decoder_probabilities_sum_to_one(mean, log_sigma, K, dtype):
    """Σ over all K levels = 1 for any mean and scale; every term finite, edge bins included.

    Each term is accurate to ~10 eps relative (test above), so the sum is within 64 eps of 1.
    """
    x = levels(K, dtype)
    log_p = discretized_gaussian_log_likelihood(x, torch.tensor(mean, dtype=dtype), torch.tensor(log_sigma, dtype=dtype), K)
    assert log_p.dtype == dtype
    assert torch.all(torch.isfinite(log_p)) and torch.all(log_p <= 0)
    assert abs(log_p.double().exp().sum().item() - 1.0) <= 64 * EPS[dtype]


@settings(max_examples=100, deadline=None)
@given(mean=st.floats(-50.0, 50.0), log_sigma=st.floats(math.log(1e-6), math.log(1e6)), K=st.sampled_from([17, 256]))
def test_decoder_gradients_are_finite(mean, log_sigma, K):
    x = levels(K, torch.float32)
    m = torch.full((K,), mean, requires_grad=True)
    ls = torch.full((K,), log_sigma, requires_grad=True)
    discretized_gaussian_log_likelihood(x, m, ls, K).sum().backward()
    assert torch.all(torch.isfinite(m.grad)) and torch.all(torch.isfinite(ls.grad))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("z", [-5.0, -25.0, -1e3, -4.5e4, -1e7])
def test_decoder_tail_gradient_is_the_mills_ratio(z, dtype):
    """d/dμ log Φ((δ₊ − μ)/σ) = −φ(z)/(σ Φ(z)) for the open lowest bin, checked deep in the tail."""
    sigma = 0.5
    upper = -1.0 + 1.0 / 16  # δ₊ of the lowest of 17 levels
    m = torch.tensor(upper - z * sigma, dtype=dtype, requires_grad=True)
    discretized_gaussian_log_likelihood(torch.tensor(-1.0, dtype=dtype), m, torch.tensor(math.log(sigma), dtype=dtype), 17).backward()
    mpmath.mp.dps = 60
    zz = (mpmath.mpf(upper) - mpmath.mpf(float(m.detach()))) / sigma
    expected = -float(mpmath.npdf(zz) / mpmath.ncdf(zz)) / sigma
    assert m.grad.item() == pytest.approx(expected, rel=100 * EPS[dtype] * (1 + abs(z)))


def test_decoder_gradient_matches_finite_differences():
    x = levels(17)[[0, 3, 8, 16]]
    m = torch.tensor([0.1, -0.4, 0.05, 0.9], dtype=torch.float64, requires_grad=True)
    ls = torch.tensor([-1.0, -2.5, -4.0, 0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: discretized_gaussian_log_likelihood(x, a, b, 17), (m, ls))


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_decoder_promotes_half_precision(half):
    x = levels(256, half)
    mean, log_scale = torch.full((256,), 0.3, dtype=half), torch.full((256,), -3.0, dtype=half)
    log_p = discretized_gaussian_log_likelihood(x, mean, log_scale, 256)
    assert log_p.dtype == torch.float32 and torch.all(torch.isfinite(log_p))
    torch.testing.assert_close(log_p, discretized_gaussian_log_likelihood(x.float(), mean.float(), log_scale.float(), 256))
    assert abs(log_p.double().exp().sum().item() - 1.0) < 1e-5


def test_decoder_broadcasts_scalar_parameters():
    x = levels(17)
    a = discretized_gaussian_log_likelihood(x, 0.2, math.log(0.1), 17)
    b = discretized_gaussian_log_likelihood(x, torch.full_like(x, 0.2), torch.full_like(x, math.log(0.1)), 17)
    torch.testing.assert_close(a, b)


def test_decoder_rejects_bad_input():
    with pytest.raises(ValueError, match=r"x must lie in \[-1, 1\]"):
        discretized_gaussian_log_likelihood(torch.tensor([1.5]), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        discretized_gaussian_log_likelihood(torch.tensor([0.0, math.nan]), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="num_levels"):
        discretized_gaussian_log_likelihood(torch.tensor([0.0]), torch.zeros(1), torch.zeros(1), num_levels=1)
    with pytest.raises(TypeError, match="floating"):
        discretized_gaussian_log_likelihood(torch.tensor([0]), torch.zeros(1), torch.zeros(1))


# ---------------------------------------------------------------------- bits/dim
def test_bits_per_dim_hand_cases():
    # A uniform model over 256 levels costs ln 256 nats per dimension = 8 bits.
    assert nats_to_bits_per_dim(3 * 4 * math.log(256), 12) == pytest.approx(8.0, abs=1e-12)
    # Two levels, decoder mean exactly between them: each bin holds ½, so 1 bit per dimension.
    x = torch.tensor([[-1.0, 1.0, 1.0, -1.0, 1.0]], dtype=torch.float64)
    nll = -discretized_gaussian_log_likelihood(x, torch.zeros_like(x), torch.zeros_like(x), 2).sum()
    assert nats_to_bits_per_dim(nll, 5).item() == pytest.approx(1.0, abs=1e-15)


def test_bits_per_dim_rejects_bad_dims():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_dims"):
            nats_to_bits_per_dim(1.0, bad)


# ---------------------------------------------------------------------- numbers on the pitfalls page
def test_pitfall_page_decoder_numbers():
    """Recompute every number book/pitfalls.md quotes for the decoder section."""
    # Sum to one over 41 means in [−50, 50] × 25 scales in [1e−6, 1e6]: within 3e−7 / 2e−15.
    means, scales = torch.linspace(-50, 50, 41), torch.logspace(-6, 6, 25)
    for K in (256, 17):
        for dtype, bound in ((torch.float32, 3e-7), (torch.float64, 2e-15)):
            x = levels(K, dtype)[:, None, None]
            log_p = discretized_gaussian_log_likelihood(x, means.to(dtype)[None, :, None], scales.log().to(dtype)[None, None, :], K)
            assert (log_p.double().exp().sum(0) - 1).abs().max().item() <= bound
    # Upper limit read as x_0 itself: left half-bins only; at μ = 0 they sum to exactly ½.
    x = levels(256).numpy()
    lower = np.where(x <= -1 + 1 / 510, -np.inf, x - 1 / 255)
    for sigma in (0.01, 0.5, 3.0):
        assert (stats.norm.cdf(x / sigma) - stats.norm.cdf(lower / sigma)).sum() == pytest.approx(0.5, abs=1e-13)
    # Literal integrand: density × width, 0.3129 against the true 0.3051 at μ = x, σ = 0.01.
    true = discretized_gaussian_log_likelihood(torch.tensor([1 / 255], dtype=torch.float64), 1 / 255, math.log(0.01)).exp().item()
    literal = stats.norm.pdf(0, scale=0.01) * 2 / 255
    assert round(true, 4) == 0.3051 and round(literal, 4) == 0.3129
