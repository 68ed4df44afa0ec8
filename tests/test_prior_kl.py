"""L_T = KL(q(x_T|x_0) ‖ N(0, I)) per dimension: never below 0, and accurate where ᾱ_T is tiny.

The closed form ½(ᾱ_T(m2 − 1) − log(1 − ᾱ_T)) cancels to rounding noise once ᾱ_T is small:
chapter 1's explorer showed L_T = −5.3e-19 bits/dim at T = 4000.  The reference here is the
same closed form in 50-digit arithmetic (mpmath), with ᾱ_T the exact product of the
schedule's own float64 α_t, so only the library's arithmetic is under test.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from ddpm_lite import NoiseSchedule


def _reference(s: NoiseSchedule, m2: float) -> float:
    with mpmath.workdps(50):
        abar = mpmath.fprod(1 - mpmath.mpf(float(b)) for b in s.betas[1:])
        return float((abar * (mpmath.mpf(m2) - 1) - mpmath.log1p(-abar)) / 2)


SCHEDULES = [("linear", T) for T in (1, 10, 50, 200, 1000, 2000, 4000)] + [("cosine", T) for T in (10, 1000, 4000)]


@pytest.mark.parametrize("kind, T", SCHEDULES, ids=[f"{k}-{T}" for k, T in SCHEDULES])
@pytest.mark.parametrize("m2", [0.0, 1e-6, 0.3, 1.0])
def test_prior_kl_is_nonnegative_and_matches_50_digit_arithmetic(kind, T, m2):
    s = NoiseSchedule.cosine(T) if kind == "cosine" else NoiseSchedule.linear(T)
    got, want = float(s.prior_kl_per_dim(m2)), _reference(s, m2)
    assert got >= 0.0
    # ᾱ_T itself carries ~1e-14 relative error from the float64 product; L_T must not add more.
    assert got == pytest.approx(want, rel=1e-11, abs=0.0), (kind, T, m2, got, want)


def test_at_T_4000_the_prior_term_is_positive_not_rounding_noise():
    """The explorer's case: the linear schedule at T = 4000 and the digits' E[x_0²] (about 0.3)."""
    s = NoiseSchedule.linear(4000)
    abar = float(s.alpha_bars[4000])
    got = float(s.prior_kl_per_dim(0.3))
    assert 0.0 < got and got == pytest.approx(0.5 * abar * 0.3, rel=1e-9)  # ½ᾱ m2 + O(ᾱ²)


def test_prior_kl_broadcasts_over_mean_squares():
    s = NoiseSchedule.linear(4000)
    m2 = np.array([0.0, 0.3, 1.0])
    np.testing.assert_array_equal(s.prior_kl_per_dim(m2), [float(s.prior_kl_per_dim(v)) for v in m2])
