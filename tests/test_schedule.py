"""NoiseSchedule: every derived constant against an independent closed form."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpm_lite.schedule import MAX_T, SCHEDULE_KINDS, NoiseSchedule

ARRAYS = ("betas", "alphas", "alpha_bars", "alpha_bars_prev", "one_minus_alpha_bars", "posterior_variance",
          "posterior_log_variance_clipped", "posterior_mean_coef_x0", "posterior_mean_coef_xt")


def test_linear_endpoints_by_hand():
    s = NoiseSchedule.linear(1000, 1e-4, 0.02)
    assert s.T == 1000 and len(s.betas) == 1001
    assert s.betas[0] == 0.0 and s.alpha_bars[0] == 1.0
    assert s.betas[1] == pytest.approx(1e-4, rel=1e-15)
    assert s.betas[1000] == pytest.approx(0.02, rel=1e-15)
    # β_t at the midpoint of a linear ramp, written out by hand.
    assert s.betas[500] == pytest.approx(1e-4 + (0.02 - 1e-4) * 499 / 999, rel=1e-14)


def test_t1_quantities_by_hand():
    s = NoiseSchedule.linear(1000, 1e-4, 0.02)
    assert s.alphas[1] == pytest.approx(0.9999, rel=1e-15)
    assert s.alpha_bars[1] == pytest.approx(0.9999, rel=1e-15)
    assert s.one_minus_alpha_bars[1] == pytest.approx(1e-4, rel=1e-12)
    assert s.posterior_variance[1] == 0.0  # ᾱ_0 = 1, so β̃_1 = 0 exactly
    assert s.posterior_mean_coef_x0[1] == pytest.approx(1.0, rel=1e-12)  # μ̃_1 = x_0
    assert s.posterior_mean_coef_xt[1] == 0.0
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    assert s.posterior_log_variance_clipped[1] == s.posterior_log_variance_clipped[2]


def test_alpha_bar_T_matches_plain_product():
    b = np.linspace(1e-4, 0.02, 1000)
    s = NoiseSchedule(b)
    np.testing.assert_allclose(s.alpha_bars[1:], np.cumprod(1 - b), rtol=1e-12)
    assert s.alpha_bars[-1] == pytest.approx(4.035e-5, rel=1e-3)  # the paper's schedule leaves ᾱ_T ≈ 4e-5


def test_short_chain_keeps_signal():
    """T = 50 with the paper's β range leaves ᾱ_T ≈ 0.60: the short-chain pitfall."""
    s = NoiseSchedule.linear(50, 1e-4, 0.02)
    expected = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 49) for i in range(50))
    assert s.alpha_bars[-1] == pytest.approx(expected, rel=1e-12)
    assert 0.59 < s.alpha_bars[-1] < 0.61


def test_posterior_formulas_against_joint_gaussian_conditioning():
    """β̃_t and μ̃_t coefficients from conditioning the joint of (x_{t-1}, x_t) given x_0."""
    s = NoiseSchedule.cosine(200)
    for t in (2, 3, 50, 199, 200):
        ab_prev, ab, a = s.alpha_bars[t - 1], s.alpha_bars[t], s.alphas[t]
        # Given x_0: x_{t-1} = √ᾱ_{t-1} x_0 + noise of var v1; x_t = √α_t x_{t-1} + noise of var β_t.
        v1 = 1 - ab_prev
        cov = np.array([[v1, math.sqrt(a) * v1], [math.sqrt(a) * v1, a * v1 + s.betas[t]]])
        slope = cov[0, 1] / cov[1, 1]
        cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        # mean = √ᾱ_{t-1} x0 + slope (x_t − √ᾱ_t x0)  → coefficient of x_0 is √ᾱ_{t-1} − slope √ᾱ_t
        coef_x0 = math.sqrt(ab_prev) - slope * math.sqrt(ab)
        assert s.posterior_variance[t] == pytest.approx(cond_var, rel=1e-10)
        assert s.posterior_mean_coef_xt[t] == pytest.approx(slope, rel=1e-10)
        assert s.posterior_mean_coef_x0[t] == pytest.approx(coef_x0, rel=1e-9, abs=1e-15)


def test_cosine_against_its_definition():
    T, s_off = 1000, 0.008
    s = NoiseSchedule.cosine(T, s=s_off)
    f = lambda t: math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 2, 10, 500, 900, 990):
        assert s.alpha_bars[t] == pytest.approx(f(t) / f(0), rel=1e-9)
    assert s.betas[T] == 0.999  # the clip bites at the last step
    assert np.all(s.betas[1:] <= 0.999)


def test_quadratic_and_sigmoid_endpoints():
    q = NoiseSchedule.quadratic(100, 1e-4, 0.02)
    assert q.betas[1] == pytest.approx(1e-4, rel=1e-12) and q.betas[100] == pytest.approx(0.02, rel=1e-12)
    assert np.all(np.diff(np.sqrt(q.betas[1:])) == pytest.approx(np.diff(np.sqrt(q.betas[1:]))[0], rel=1e-9))
    sg = NoiseSchedule.sigmoid(100, 1e-4, 0.02)
    sig = lambda u: 1 / (1 + math.exp(-u))  # noqa: E731
    assert sg.betas[1] == pytest.approx(1e-4 + (0.02 - 1e-4) * sig(-6), rel=1e-12)
    assert np.all(np.diff(sg.betas[1:]) > 0)


def test_snr_and_log_snr():
    s = NoiseSchedule.linear(100)
    t = np.arange(1, 101)
    np.testing.assert_allclose(s.snr[t], s.alpha_bars[t] / (1 - s.alpha_bars[t]), rtol=1e-10)
    np.testing.assert_allclose(s.log_snr[t], np.log(s.snr[t]), rtol=1e-10)
    assert np.all(np.diff(s.log_snr[1:]) < 0)  # noise only ever increases
    assert s.snr[0] == np.inf


def test_prior_kl_per_dim_closed_form():
    s = NoiseSchedule.linear(50)
    a = s.alpha_bars[-1]
    m2 = 0.7
    expected = 0.5 * ((1 - a) + a * m2 - 1 - math.log(1 - a))
    assert s.prior_kl_per_dim(m2) == pytest.approx(expected, rel=1e-12)


def test_arrays_are_read_only():
    s = NoiseSchedule.linear(10)
    with pytest.raises(ValueError):
        s.betas[3] = 0.5


@pytest.mark.parametrize(
    "betas, match",
    [
        ([], "at least 1"),
        ([[0.1, 0.2]], "1-D"),
        ([0.1, float("nan")], "finite"),
        ([0.1, float("inf")], "finite"),
        ([0.1, 0.0], "strictly between 0 and 1"),
        ([0.1, 1.0], "strictly between 0 and 1"),
        ([-0.1], "strictly between 0 and 1"),
        (["a", "b"], "could not convert"),
    ],
)
def test_bad_arrays_are_refused(betas, match):
    with pytest.raises(ValueError, match=match):
        NoiseSchedule(betas)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: NoiseSchedule.linear(0), "at least 1"),
        (lambda: NoiseSchedule.linear(2.5), "positive integer"),
        (lambda: NoiseSchedule.linear(True), "positive integer"),
        (lambda: NoiseSchedule.linear(MAX_T + 1), "maximum"),
        (lambda: NoiseSchedule.linear(10, beta_1=0.0), "beta_1"),
        (lambda: NoiseSchedule.linear(10, beta_T=1.5), "beta_T"),
        (lambda: NoiseSchedule.linear(10, beta_T=float("nan")), "beta_T"),
        (lambda: NoiseSchedule.cosine(10, s=-1.0), "offset"),
        (lambda: NoiseSchedule.from_name("exponential"), "unknown schedule kind"),
    ],
)
def test_bad_constructor_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_check_t():
    s = NoiseSchedule.linear(10)
    s.check_t(np.array([1, 10]))
    for bad in ([0], [11], [-3]):
        with pytest.raises(ValueError, match="outside 1..T"):
            s.check_t(np.array(bad))
    with pytest.raises(ValueError, match="integers"):
        s.check_t(np.array([1.5]))


def test_T_equal_one():
    s = NoiseSchedule.linear(1, beta_1=0.3)
    assert s.T == 1 and s.alpha_bars[1] == pytest.approx(0.7)
    assert np.isfinite(s.posterior_log_variance_clipped).all()


betas_strategy = st.lists(st.floats(1e-6, 0.999, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(betas_strategy)
def test_any_valid_schedule_is_finite_and_consistent(b):
    s = NoiseSchedule(b)
    t = np.arange(1, s.T + 1)
    for name in ARRAYS:
        assert np.isfinite(getattr(s, name)).all(), name
    assert np.all(np.diff(s.alpha_bars) < 0)
    np.testing.assert_allclose(s.alpha_bars[t], s.alpha_bars[t - 1] * s.alphas[t], rtol=1e-10)
    np.testing.assert_allclose(s.alpha_bars + s.one_minus_alpha_bars, 1.0, rtol=1e-12)
    assert np.all(s.posterior_variance[t] <= s.betas[t] * (1 + 1e-12))  # β̃_t ≤ β_t
    assert np.all(s.posterior_variance[t] >= 0)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SCHEDULE_KINDS), st.integers(1, 3000))
def test_named_schedules_are_valid_for_any_T(kind, T):
    s = NoiseSchedule.from_name(kind, T)
    assert s.T == T
    assert np.all((s.betas[1:] > 0) & (s.betas[1:] < 1))
    assert np.isfinite(s.log_snr[1:]).all()
