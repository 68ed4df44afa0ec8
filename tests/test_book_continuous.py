"""Chapter 14's helpers (ddpm_lite.book.continuous): each displayed step holds and a wrong variant of it
fails; the closed forms of the exact Gaussian chain agree with Monte-Carlo and with chapter 10's
independent route; the finite-T bound falls to L_∞; the schedule's shape moves the estimator's variance
but not its mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from ddpm_lite import GaussianDiffusion
from ddpm_lite.book import continuous as C
from ddpm_lite.book import symbolic as S
from ddpm_lite.book.exact import exact_gaussian_bound, optimal_eps_coef

S2, DIM = 0.25, 16
ENDS = (math.exp(-10.0), math.exp(10.0))


def _sched(shape: str) -> C.ContinuousSchedule:
    return C.ContinuousSchedule(*ENDS, shape=shape, s2=S2)


def test_every_step_holds():
    steps = [*C.snr_form_steps(), C.limit_step(), *C.change_of_variables_step(), *C.ends_steps()]
    assert len(steps) == 11 and all(s.holds for s in steps), [s.name for s in steps if not s.holds]


def test_wrong_variants_of_the_steps_fail():
    weight = (C.snr_prev_expr - C.snr_t_expr) / 2
    coef = sp.sqrt(S.abar_prev) * S.beta_t / (1 - S.abar_t)
    wrong = [
        S.check_identity("reversed SNRs", coef**2 / (2 * S.beta_tilde), -weight),
        S.check_identity("no ½", coef**2 / (2 * S.beta_tilde), 2 * weight),
        S.check_identity("σ² = β instead of β̃", coef**2 / (2 * S.beta_t), weight),
    ]
    assert not any(s.holds for s in wrong) and all(s.counterexample for s in wrong)


@pytest.mark.parametrize("shape", C.SHAPES)
def test_schedule_hits_its_ends_and_its_slope_is_the_derivative(shape):
    sc = _sched(shape)
    np.testing.assert_allclose(sc.snr(np.array([0.0, 1.0])), [ENDS[1], ENDS[0]], rtol=1e-10)
    t, h = np.linspace(0.02, 0.98, 25), 1e-6
    v, slope = sc.snr_and_slope(t)
    assert np.all(slope < 0) and np.all(np.diff(v) < 0)
    np.testing.assert_allclose((sc.snr(t + h) - sc.snr(t - h)) / (2 * h), slope, rtol=1e-6)


@pytest.mark.parametrize("shape", C.SHAPES)
def test_finite_T_bound_falls_to_the_limit(shape):
    sc, limit = _sched(shape), C.diffusion_loss(_sched(shape), S2)
    Ts = [2**k for k in range(11)]
    finite = np.array([C.diffusion_loss_finite(sc, S2, T) for T in Ts])
    assert np.all(np.diff(finite) < 0) and np.all(finite > limit)
    # a Riemann sum: the excess shrinks like 1/T once the grid resolves the schedule
    assert finite[-1] - limit < 0.6 * (finite[-2] - limit)
    t = np.linspace(0, 1, 400_001)
    v, slope = sc.snr_and_slope(t)
    from scipy.integrate import simpson

    assert abs(simpson(-0.5 * slope * C.mmse(v, S2), x=t) - limit) < 1e-6 * limit  # same L_∞, any shape


def test_finite_T_terms_match_chapter_10s_exact_chain():
    for shape in C.SHAPES:
        sc = _sched(shape)
        ns = C.grid_schedule(sc, 40)
        chain = exact_gaussian_bound(GaussianDiffusion(ns, variance="beta_tilde", num_levels=None),
                                     optimal_eps_coef(ns, S2), S2)
        assert chain["terms"][1:].sum() == pytest.approx(C.diffusion_loss_finite(sc, S2, 40), rel=1e-9)
        assert chain["prior"] == pytest.approx(C.prior_loss(sc.snr_min, S2), rel=1e-6)


@pytest.mark.parametrize("T", [None, 8])
def test_monte_carlo_estimates_have_the_closed_form_mean(T):
    sc = _sched("log-linear")
    e = C.estimates(sc, S2, 20_000, DIM, np.random.default_rng(1), T=T)
    want = C.diffusion_loss(sc, S2) if T is None else C.diffusion_loss_finite(sc, S2, T)
    assert abs(e.mean() - want) < 5 * e.std() / math.sqrt(e.size)


@pytest.mark.parametrize("shape", ["log-linear", "min-variance"])
def test_estimator_variance_matches_monte_carlo(shape):
    sc = _sched(shape)
    e = C.estimates(sc, S2, 40_000, DIM, np.random.default_rng(2))
    var, se = e.var(), math.sqrt((((e - e.mean()) ** 4).mean() - e.var() ** 2) / e.size)
    assert abs(var - C.estimator_variance(sc, S2, DIM)) < 5 * se


def test_min_variance_shape_leaves_only_the_chi_square_noise():
    # ‖x − x̂‖² = m(v) χ²_D and the shape makes ½(−SNR′) m constant: Var = 2 L_∞²/D, the least any shape gets
    variances = {s: C.estimator_variance(_sched(s), S2, DIM) for s in C.SHAPES}
    limit = C.diffusion_loss(_sched("log-linear"), S2)
    assert variances["min-variance"] == pytest.approx(2 * limit**2 / DIM, rel=1e-6)
    assert variances["min-variance"] < variances["log-linear"] < variances["linear-beta"]


def test_ends_closed_forms_against_monte_carlo_and_the_library():
    rng = np.random.default_rng(3)
    vmax = 50.0
    x = math.sqrt(S2) * rng.standard_normal(200_000)
    z0 = math.sqrt(vmax / (1 + vmax)) * x + math.sqrt(1 / (1 + vmax)) * rng.standard_normal(x.size)
    mean, var = z0 / math.sqrt(vmax / (1 + vmax)), 1 / vmax
    nll = 0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)
    assert abs(nll.mean() - C.reconstruction_loss(vmax)) < 5 * nll.std() / math.sqrt(x.size)
    ns = C.grid_schedule(C.ContinuousSchedule(0.02, vmax, s2=S2), 10)
    assert float(ns.prior_kl_per_dim(S2)) == pytest.approx(C.prior_loss(0.02, S2), rel=1e-9)
    # wide ends: L_T + L_∞ + L_0 comes down to the data's entropy and never below it
    totals = [C.prior_loss(lo, S2) + C.diffusion_loss(C.ContinuousSchedule(lo, hi), S2) + C.reconstruction_loss(hi)
              for lo, hi in ((1e-1, 1e1), (1e-3, 1e3), (1e-6, 1e6))]
    entropy = 0.5 * math.log(2 * math.pi * math.e * S2)
    assert np.all(np.diff(totals) < 0) and totals[-1] - entropy < 1e-5 and min(totals) > entropy


def test_denoiser_is_the_conditional_mean():
    rng = np.random.default_rng(4)
    v = 3.0
    x = math.sqrt(S2) * rng.standard_normal(100_000)
    z = math.sqrt(v / (1 + v)) * x + math.sqrt(1 / (1 + v)) * rng.standard_normal(x.size)
    err = x - C.denoise(z, v, S2)
    assert abs(np.mean(err * z)) < 5 * np.std(err * z) / math.sqrt(x.size)  # orthogonal to z
    assert abs(np.mean(err**2) - C.mmse(v, S2)) < 5 * np.std(err**2) / math.sqrt(x.size)


@pytest.mark.parametrize("kwargs, match", [
    ({"snr_min": 2.0, "snr_max": 1.0}, "snr_min < snr_max"),
    ({"snr_min": 0.0, "snr_max": 1.0}, "0 < snr_min"),
    ({"snr_min": 0.1, "snr_max": 1.0, "shape": "cosine"}, "shape must be one of"),
    ({"snr_min": 0.1, "snr_max": 1.0, "s2": -1.0}, "s2"),
])
def test_bad_schedules_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        C.ContinuousSchedule(**kwargs)
    with pytest.raises(ValueError, match="positive integer"):
        C.diffusion_loss_finite(_sched("log-linear"), S2, 0)
