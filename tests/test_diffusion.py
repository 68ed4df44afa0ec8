"""GaussianDiffusion's posterior, reverse process, losses and bound against independent closed forms.

The reference point for most checks is Gaussian data x_0 ~ N(0, s² I): there the
optimal ε-predictor is linear, ε*(x_t, t) = √(1 − ᾱ_t) x_t / (ᾱ_t s² + 1 − ᾱ_t), and
every term of the bound has a closed form.  Constants in this file are rebuilt from
β with numpy (cumprod, not the schedule's log-sum), so a wrong coefficient in the
package cannot cancel against the same mistake here.  Monte-Carlo tolerances are
5 standard errors computed from the sample size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.diffusion import eps_loss_weight

LN2 = math.log(2.0)


def consts(schedule: NoiseSchedule) -> dict[str, np.ndarray]:
    """β, α, ᾱ and ᾱ_{t−1} rebuilt by plain products, index = timestep."""
    b = np.asarray(schedule.betas[1:], dtype=np.float64)
    a = 1.0 - b
    ab = np.concatenate([[1.0], np.cumprod(a)])
    return {"beta": np.concatenate([[0.0], b]), "alpha": np.concatenate([[1.0], a]), "ab": ab,
            "ab_prev": np.concatenate([[1.0], ab[:-1]])}


class OptimalEps:
    """ε*(x_t, t) = E[ε | x_t] for x_0 ~ N(0, s² I): a per-t multiple of x_t."""

    def __init__(self, schedule: NoiseSchedule, s: float) -> None:
        ab = consts(schedule)["ab"]
        self.c = np.sqrt(1.0 - ab) / (ab * s**2 + 1.0 - ab)
        self._t = torch.tensor(self.c)

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._t.to(xt.dtype)[t].view(-1, *([1] * (xt.dim() - 1))) * xt


def linear_eps(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """An arbitrary (non-optimal) ε-model for identities that hold for any model."""
    return 0.3 * xt + 0.1 * torch.sin(3.0 * xt) + 0.01 * t.view(-1, *([1] * (xt.dim() - 1))).to(xt.dtype)


# --------------------------------------------------------------------------- the forward posterior
@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("t", [2, 3, 17, 50])
def test_posterior_matches_gaussian_conditioning(kind, t):
    sch = NoiseSchedule.from_name(kind, 50)
    c = consts(sch)
    gen = np.random.default_rng(t)
    x0, xt = gen.normal(size=(4, 3)), gen.normal(size=(4, 3))
    # Joint of (x_{t−1}, x_t) given x_0: x_{t−1} = √ᾱ_{t−1} x_0 + √(1−ᾱ_{t−1}) e₁, x_t = √α_t x_{t−1} + √β_t e₂.
    m1, m2 = math.sqrt(c["ab_prev"][t]) * x0, math.sqrt(c["ab"][t]) * x0
    v1 = 1.0 - c["ab_prev"][t]
    cov = math.sqrt(c["alpha"][t]) * v1
    v2 = c["alpha"][t] * v1 + c["beta"][t]
    want_mean = m1 + cov / v2 * (xt - m2)
    want_var = v1 - cov**2 / v2

    d = GaussianDiffusion(sch)
    mean, var, log_var = d.q_posterior_mean_variance(torch.tensor(x0), torch.tensor(xt), torch.full((4,), t))
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var.numpy(), np.full((4, 3), want_var), rtol=1e-9)
    np.testing.assert_allclose(log_var.numpy(), np.log(want_var), rtol=1e-9, atol=1e-12)
    assert mean.dtype == torch.float64 and var.shape == xt.shape


def test_posterior_at_t1_is_a_point_mass_with_clipped_log_variance():
    sch = NoiseSchedule.linear(30)
    c = consts(sch)
    d = GaussianDiffusion(sch)
    x0, xt = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    mean, var, log_var = d.q_posterior_mean_variance(x0, xt, torch.ones(5, dtype=torch.long))
    assert torch.equal(mean, x0) and torch.all(var == 0)
    beta_tilde_2 = (1 - c["ab"][1]) / (1 - c["ab"][2]) * c["beta"][2]
    np.testing.assert_allclose(log_var.numpy(), math.log(beta_tilde_2), rtol=1e-10)


# --------------------------------------------------------------------------- ε ↔ x_0 and the reverse mean
@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 200), seed=st.integers(0, 2**31 - 1))
def test_predict_x0_and_eps_invert_the_reparameterization(t, seed):
    d = GaussianDiffusion(NoiseSchedule.cosine(200))
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 4, generator=g, dtype=torch.float64)
    tt = torch.full((3,), t)
    xt = d.q_sample(x0, tt, noise=eps)
    scale = 1.0 / math.sqrt(consts(d.schedule)["ab"][t])  # x̂_0 amplifies rounding of x_t by 1/√ᾱ_t
    torch.testing.assert_close(d.predict_x0_from_eps(xt, tt, eps), x0, rtol=0, atol=1e-12 * scale)
    torch.testing.assert_close(d.predict_eps_from_x0(xt, tt, x0), eps, rtol=0, atol=1e-9)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_p_mean_is_posterior_mean_at_predicted_x0_and_variance_is_the_choice(variance):
    sch = NoiseSchedule.linear(60)
    c = consts(sch)
    d = GaussianDiffusion(sch, variance=variance)
    xt = 0.5 * torch.randn(60, 3, dtype=torch.float64)
    t = torch.arange(1, 61)
    out = d.p_mean_variance(linear_eps, xt, t)
    eps = linear_eps(xt, t).numpy()
    tn = t.numpy()[:, None]
    # μ_θ from the ε-form written out here, and μ̃_t(x_t, x̂_0) from the conditioning formula.
    mu = (xt.numpy() - c["beta"][tn] / np.sqrt(1 - c["ab"][tn]) * eps) / np.sqrt(c["alpha"][tn])
    x0_hat = (xt.numpy() - np.sqrt(1 - c["ab"][tn]) * eps) / np.sqrt(c["ab"][tn])
    mu_tilde = (np.sqrt(c["ab_prev"][tn]) * c["beta"][tn] * x0_hat
                + np.sqrt(c["alpha"][tn]) * (1 - c["ab_prev"][tn]) * xt.numpy()) / (1 - c["ab"][tn])
    np.testing.assert_allclose(out["mean"].numpy(), mu, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(out["mean"].numpy(), mu_tilde, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(out["pred_x0"].numpy(), x0_hat, rtol=1e-9, atol=1e-10)
    with np.errstate(invalid="ignore"):  # index 0 is 0/0 and unused
        beta_tilde = (1 - c["ab_prev"]) / (1 - c["ab"]) * c["beta"]
    want = c["beta"][1:] if variance == "beta" else np.concatenate([[beta_tilde[2]], beta_tilde[2:]])
    np.testing.assert_allclose(out["variance"][:, 0].numpy(), want, rtol=1e-9)
    np.testing.assert_allclose(out["log_variance"][:, 0].numpy(), np.log(want), rtol=1e-9)


def test_clip_x0_clamps_prediction_and_steps_to_its_posterior_mean():
    d = GaussianDiffusion(NoiseSchedule.linear(40))
    xt = 3.0 * torch.randn(40, 2, dtype=torch.float64)
    t = torch.arange(1, 41)
    plain = d.p_mean_variance(linear_eps, xt, t)
    clipped = d.p_mean_variance(linear_eps, xt, t, clip_x0=True)
    assert clipped["pred_x0"].abs().max() <= 1.0 and plain["pred_x0"].abs().max() > 1.0
    torch.testing.assert_close(clipped["pred_x0"], plain["pred_x0"].clamp(-1, 1))
    torch.testing.assert_close(clipped["mean"], d.q_posterior_mean_variance(clipped["pred_x0"], xt, t)[0])
    inside = (plain["pred_x0"].abs() <= 1.0)  # where nothing was clipped the two means agree
    torch.testing.assert_close(clipped["mean"][inside], plain["mean"][inside])


# --------------------------------------------------------------------------- the terms of the bound
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_kl_term_matches_monte_carlo(variance):
    T, t, M = 20, 6, 200_000
    sch = NoiseSchedule.linear(T, beta_T=0.2)
    c = consts(sch)
    d = GaussianDiffusion(sch, variance=variance, num_levels=None)
    x0 = torch.tensor([[0.5, -1.0], [1.5, 0.2]], dtype=torch.float64)
    xt = torch.tensor([[0.1, -0.4], [1.2, 0.9]], dtype=torch.float64)
    got = d.vb_terms_bpd(linear_eps, x0, xt, torch.full((2,), t)).numpy()

    v1, cov = 1 - c["ab_prev"][t], math.sqrt(c["alpha"][t]) * (1 - c["ab_prev"][t])
    v2 = c["alpha"][t] * v1 + c["beta"][t]
    q_mean = math.sqrt(c["ab_prev"][t]) * x0.numpy() + cov / v2 * (xt.numpy() - math.sqrt(c["ab"][t]) * x0.numpy())
    q_var = v1 - cov**2 / v2
    eps = linear_eps(xt, torch.full((2,), t)).numpy()
    p_mean = (xt.numpy() - c["beta"][t] / math.sqrt(1 - c["ab"][t]) * eps) / math.sqrt(c["alpha"][t])
    p_var = c["beta"][t] if variance == "beta" else q_var
    rng = np.random.default_rng(0)
    x = q_mean + math.sqrt(q_var) * rng.normal(size=(M, 2, 2))
    log_ratio = norm.logpdf(x, q_mean, math.sqrt(q_var)) - norm.logpdf(x, p_mean, math.sqrt(p_var))
    per_draw = log_ratio.mean(axis=2) / LN2  # bits per dimension, per sample
    est, se = per_draw.mean(0), per_draw.std(0) / math.sqrt(M)
    assert np.all(np.abs(got - est) <= 5 * se + 1e-12), (got, est, se)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_kl_term_is_a_weighted_eps_error_plus_a_constant(variance):
    """L_{t−1} = C_t + β_t²/(2σ_t² α_t (1 − ᾱ_t)) ‖ε − ε_θ‖², exactly, for any ε_θ (eq. ``loss-weight``).

    The reference derivation writes the weight as β_t/(2σ_t² α_t (1 − ᾱ_{t−1})); that form is
    checked to disagree, so this test would notice if the code followed it.
    """
    T, D = 30, 5
    sch = NoiseSchedule.linear(T, beta_T=0.2)
    c = consts(sch)
    d = GaussianDiffusion(sch, variance=variance, num_levels=None)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(T - 1, D, generator=g, dtype=torch.float64)
    eps = torch.randn(T - 1, D, generator=g, dtype=torch.float64)
    t = torch.arange(2, T + 1)
    xt = d.q_sample(x0, t, noise=eps)
    kl_nats = d.vb_terms_bpd(linear_eps, x0, xt, t).numpy() * LN2 * D  # summed over dimensions
    tn = t.numpy()
    beta, alpha, ab, abp = c["beta"][tn], c["alpha"][tn], c["ab"][tn], c["ab_prev"][tn]
    beta_tilde = (1 - abp) / (1 - ab) * beta
    sig2 = beta if variance == "beta" else beta_tilde
    const = 0.5 * D * (np.log(sig2 / beta_tilde) + beta_tilde / sig2 - 1)
    err = ((eps - linear_eps(xt, t)) ** 2).sum(1).numpy()
    weight = beta**2 / (2 * sig2 * alpha * (1 - ab))
    np.testing.assert_allclose(kl_nats, const + weight * err, rtol=1e-8, atol=1e-10)
    reference_weight = beta / (2 * sig2 * alpha * (1 - abp))
    assert np.all(np.abs(const + reference_weight * err - kl_nats) > 1e-3 * np.abs(kl_nats))


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_decoder_probabilities_over_all_levels_sum_to_one_and_match_bin_integrals(variance):
    K = 5
    sch = NoiseSchedule.linear(10, beta_1=0.05, beta_T=0.3)
    c = consts(sch)
    d = GaussianDiffusion(sch, variance=variance, num_levels=K)
    levels = torch.linspace(-1, 1, K, dtype=torch.float64).view(K, 1)
    xt = torch.full((K, 1), 0.3, dtype=torch.float64)
    bpd = d.vb_terms_bpd(linear_eps, levels, xt, torch.ones(K, dtype=torch.long)).numpy()
    probs = 2.0 ** (-bpd)  # D = 1, so bits/dim is −log₂ P(x_0)
    assert abs(probs.sum() - 1.0) < 1e-10
    mean = d.p_mean_variance(linear_eps, xt[:1], torch.ones(1, dtype=torch.long))["mean"].item()
    # σ_1² = β_1, or β̃_2 in place of β̃_1 = 0.
    sd = math.sqrt(c["beta"][1] if variance == "beta" else (1 - c["ab"][1]) / (1 - c["ab"][2]) * c["beta"][2])
    edges = np.concatenate([[-np.inf], np.linspace(-1, 1, K)[:-1] + 1 / (K - 1), [np.inf]])
    np.testing.assert_allclose(probs, np.diff(norm.cdf(edges, mean, sd)), rtol=1e-9)


def gaussian_bound_closed_form(sch: NoiseSchedule, s: float, variance: str):
    """Per-dimension E[L_{t−1}] (nats) and the variance of its per-dimension draw, t = 1..T."""
    c = consts(sch)
    T = sch.T
    ab, abp, beta, alpha = c["ab"], c["ab_prev"], c["beta"], c["alpha"]
    with np.errstate(invalid="ignore"):  # index 0 is 0/0 and unused
        beta_tilde = (1 - abp) / (1 - ab) * beta
    sig2 = beta.copy() if variance == "beta" else beta_tilde.copy()
    sig2[1] = beta[1] if variance == "beta" else beta_tilde[2]
    m = (1 - beta / (ab * s**2 + 1 - ab)) / np.sqrt(alpha)  # μ_θ = m_t x_t under ε*
    mean_terms, var_terms = np.zeros(T + 1), np.zeros(T + 1)
    for t in range(1, T + 1):
        if t == 1:  # x_0 − m_1 x_1, then the Gaussian negative log density
            A, B = 1 - m[1] * math.sqrt(ab[1]), -m[1] * math.sqrt(1 - ab[1])
            const = 0.5 * math.log(2 * math.pi * sig2[1])
        else:  # μ̃_t − μ_θ = a x_0 + (b − m) x_t
            a = math.sqrt(abp[t]) * beta[t] / (1 - ab[t])
            b = math.sqrt(alpha[t]) * (1 - abp[t]) / (1 - ab[t])
            A, B = a + (b - m[t]) * math.sqrt(ab[t]), (b - m[t]) * math.sqrt(1 - ab[t])
            const = 0.5 * (math.log(sig2[t] / beta_tilde[t]) + beta_tilde[t] / sig2[t] - 1)
        V = A**2 * s**2 + B**2  # variance of the Gaussian residual
        mean_terms[t] = const + V / (2 * sig2[t])
        var_terms[t] = 2 * (V / (2 * sig2[t])) ** 2  # Var of (residual²/2σ²) for one dimension
    return mean_terms[1:], var_terms[1:]


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_bits_per_dim_matches_closed_form_for_gaussian_data(variance):
    T, s, N, D = 40, 0.5, 4000, 3
    sch = NoiseSchedule.linear(T, beta_1=1e-3, beta_T=0.25)
    d = GaussianDiffusion(sch, variance=variance, num_levels=None)
    g = torch.Generator().manual_seed(1)
    x0 = s * torch.randn(N, D, generator=g, dtype=torch.float64)
    out = d.bits_per_dim(OptimalEps(sch, s), x0, batch_size=30_000, generator=g)

    mean_t, var_t = gaussian_bound_closed_form(sch, s, variance)
    se = np.sqrt(var_t / D / N) / LN2
    assert out["vb"].shape == (T,)
    assert np.all(np.abs(out["vb"].numpy() - mean_t / LN2) <= 5 * se), np.abs(out["vb"].numpy() - mean_t / LN2) / se
    ab_T = consts(sch)["ab"][T]
    prior = 0.5 * (ab_T * (float((x0**2).mean()) - 1) - math.log(1 - ab_T)) / LN2
    assert out["prior"] == pytest.approx(prior, rel=1e-9)
    assert out["decoder"] == float(out["vb"][0])
    assert out["total"] == pytest.approx(out["prior"] + float(out["vb"].sum()), rel=1e-9)
    assert out["per_sample"].shape == (N,) and float(out["per_sample"].mean()) == pytest.approx(out["total"])
    total_closed = prior + mean_t.sum() / LN2
    se_total = float(out["per_sample"].std()) / math.sqrt(N)
    assert abs(out["total"] - total_closed) <= 5 * se_total
    # An upper bound on −log p_θ, hence on the data's own entropy ½ log₂(2πe s²).
    assert total_closed >= 0.5 * math.log2(2 * math.pi * math.e * s**2)


def test_bits_per_dim_does_not_depend_on_how_rows_are_stacked():
    sch = NoiseSchedule.linear(25, beta_T=0.3)
    d = GaussianDiffusion(sch, num_levels=None)
    x0 = 0.8 * torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = d.bits_per_dim(OptimalEps(sch, 0.8), x0, batch_size=7, generator=torch.Generator().manual_seed(1))
    b = d.bits_per_dim(OptimalEps(sch, 0.8), x0, batch_size=10_000, generator=torch.Generator().manual_seed(2))
    se = math.hypot(a["per_sample"].std(), b["per_sample"].std()) / math.sqrt(300)
    assert abs(a["total"] - b["total"]) <= 5 * se


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("t", [1, 10, 50])
def test_loss_simple_of_the_optimal_predictor_is_the_posterior_variance_of_eps(t):
    T, s, N, D = 50, 0.7, 20_000, 4
    sch = NoiseSchedule.linear(T, beta_T=0.1)
    ab = consts(sch)["ab"][t]
    d = GaussianDiffusion(sch, num_levels=None)
    g = torch.Generator().manual_seed(t)
    x0 = s * torch.randn(N, D, generator=g, dtype=torch.float64)
    loss = d.loss_simple(OptimalEps(sch, s), x0, t=torch.full((N,), t), generator=g)
    v = ab * s**2 / (ab * s**2 + 1 - ab)  # Var(ε | x_t)
    assert loss.shape == (N,)
    assert abs(float(loss.mean()) - v) <= 5 * math.sqrt(2 * v**2 / D / N)


def test_loss_vb_is_unbiased_for_the_bound_minus_the_prior():
    T, s, N = 30, 0.6, 40_000
    sch = NoiseSchedule.linear(T, beta_T=0.3)
    d = GaussianDiffusion(sch, num_levels=None)
    g = torch.Generator().manual_seed(3)
    x0 = s * torch.randn(N, 2, generator=g, dtype=torch.float64)
    vb = d.loss_vb(OptimalEps(sch, s), x0, generator=g)
    want = gaussian_bound_closed_form(sch, s, "beta")[0].sum() / LN2
    assert abs(float(vb.mean()) - want) <= 5 * float(vb.std()) / math.sqrt(N)


def test_random_timesteps_cover_exactly_1_to_T():
    d = GaussianDiffusion(NoiseSchedule.linear(10), num_levels=None)
    out = d.training_losses(lambda x, t: x, torch.zeros(5000, 1), generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(out["t"], minlength=12)
    assert counts[0] == 0 and counts[11] == 0 and (counts[1:11] > 0).all()
    # Uniform: each of the 10 counts is Binomial(5000, 1/10), sd = √450 ≈ 21.
    assert (counts[1:11] - 500).abs().max() <= 5 * math.sqrt(5000 * 0.1 * 0.9)


def test_training_losses_kinds_and_hybrid_gradient_equals_simple():
    d = GaussianDiffusion(NoiseSchedule.linear(50), num_levels=17)
    torch.manual_seed(0)
    net = torch.nn.Linear(65, 64)
    model = lambda x, t: net(torch.cat([x.flatten(1), t[:, None].float() / 50], 1)).view_as(x)  # noqa: E731
    x0 = torch.randint(0, 17, (16, 1, 8, 8)).float() * (2 / 16) - 1
    t = torch.randint(1, 51, (16,), generator=torch.Generator().manual_seed(0))
    t[0] = 1  # include the decoder term
    noise = torch.randn_like(x0)
    grads = {}
    for kind in ("simple", "vb", "hybrid"):
        net.zero_grad()
        out = d.training_losses(model, x0, kind=kind, t=t, noise=noise)
        out["loss"].mean().backward()
        grads[kind] = net.weight.grad.clone()
        assert out["loss"].shape == (16,) and torch.isfinite(out["loss"]).all()
        if kind == "hybrid":
            torch.testing.assert_close(out["loss"], out["mse"] + 0.001 * out["vb"])
        if kind != "simple":
            torch.testing.assert_close(out["vb"], 50 * d.vb_terms_bpd(model, x0, d.q_sample(x0, t, noise), t))
    # Fixed σ_t² and a detached mean: the vb part of the hybrid carries no gradient.
    torch.testing.assert_close(grads["hybrid"], grads["simple"])
    assert not torch.allclose(grads["vb"], grads["simple"])


# --------------------------------------------------------------------------- precision and robustness
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_term_is_finite_at_every_t(dtype):
    sch = NoiseSchedule.cosine(100)  # β_T is clipped at 0.999: the hardest end of the chain
    for variance in ("beta", "beta_tilde"):
        d = GaussianDiffusion(sch, variance=variance, num_levels=17)
        x0 = (torch.randint(0, 17, (100, 1, 4, 4)).to(dtype) * (2 / 16) - 1)
        t = torch.arange(1, 101)
        xt = d.q_sample(x0, t, generator=torch.Generator().manual_seed(0))
        p = d.p_mean_variance(linear_eps, xt, t)
        assert all(torch.isfinite(v).all() for v in p.values())
        vb = d.vb_terms_bpd(linear_eps, x0, xt, t)
        assert vb.dtype == dtype and torch.isfinite(vb).all() and (vb >= -1e-4).all()


def test_bf16_autocast_keeps_the_bound_in_float32():
    d = GaussianDiffusion(NoiseSchedule.linear(100), num_levels=17)
    net = torch.nn.Linear(16, 16)
    model = lambda x, t: net(x.flatten(1)).view_as(x)  # noqa: E731
    x0 = torch.randint(0, 17, (32, 1, 4, 4)).float() * (2 / 16) - 1
    t = torch.arange(1, 33)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = d.training_losses(model, x0, kind="vb", t=t, generator=torch.Generator().manual_seed(0))
    assert out["vb"].dtype == torch.float32 and torch.isfinite(out["vb"]).all()


def test_bad_inputs_raise_value_errors_that_name_the_argument():
    sch = NoiseSchedule.linear(10)
    d = GaussianDiffusion(sch)
    x0 = torch.zeros(4, 2)
    t = torch.full((4,), 3)
    cases = [
        (lambda: GaussianDiffusion(sch, variance="learnt"), "variance"),
        (lambda: GaussianDiffusion(sch, num_levels=1), "num_levels"),
        (lambda: GaussianDiffusion(np.ones(3)), "schedule"),
        (lambda: d.q_posterior_mean_variance(x0, x0, torch.full((4,), 0)), "t=0"),
        (lambda: d.q_posterior_mean_variance(x0, x0, torch.full((4,), 11)), "t=11"),
        (lambda: d.q_posterior_mean_variance(x0, x0, torch.full((4,), 2.0)), "integers"),
        (lambda: d.q_posterior_mean_variance(x0, x0, torch.full((3,), 2)), "t must have shape"),
        (lambda: d.q_posterior_mean_variance(x0, torch.zeros(4, 3), t), "xt"),
        (lambda: d.loss_simple(linear_eps, torch.full((4, 2), float("nan"))), "x0"),
        (lambda: d.training_losses(linear_eps, torch.full((4, 2), float("inf"))), "NaN or inf"),
        (lambda: d.loss_simple(linear_eps, torch.zeros(4, 2, dtype=torch.long)), "x0"),
        (lambda: d.loss_simple(linear_eps, torch.zeros(4)), "x0"),
        (lambda: d.loss_simple(linear_eps, x0, noise=torch.zeros(4, 3)), "noise"),
        (lambda: d.loss_simple(lambda x, t: x[:, :1], x0), "eps_model"),
        (lambda: d.training_losses(linear_eps, x0, kind="l1"), "kind"),
        (lambda: d.training_losses(linear_eps, x0, kind="hybrid", lambda_vb=-1.0), "lambda_vb"),
        (lambda: d.bits_per_dim(linear_eps, torch.full((4, 2), 0.1234)), "x0"),
        (lambda: d.bits_per_dim(linear_eps, x0, batch_size=0), "batch_size"),
        (lambda: d.vb_terms_bpd(linear_eps, torch.full((4, 2), 2.0), x0, t), "x0"),
    ]
    for call, needle in cases:
        with pytest.raises(ValueError, match=needle):
            call()
    # A loop that validated its data once can skip the per-step value checks (not the shape checks).
    bad = torch.full((4, 2), float("nan"))
    assert torch.isnan(d.training_losses(linear_eps, bad, check_inputs=False)["loss"]).all()
    with pytest.raises(ValueError, match="noise"):
        d.training_losses(linear_eps, bad, noise=torch.zeros(4, 3), check_inputs=False)


def test_eps_weight_from_the_general_formula():
    """Both closed forms equal β_t² / (2 σ_t² α_t (1 − ᾱ_t)) evaluated literally."""
    schedule = NoiseSchedule.linear(1000)
    s, t = schedule, np.arange(2, schedule.T + 1)
    for name, sigma2 in (("beta", s.betas), ("beta_tilde", s.posterior_variance)):
        literal = s.betas[t] ** 2 / (2 * sigma2[t] * s.alphas[t] * s.one_minus_alpha_bars[t])
        np.testing.assert_allclose(eps_loss_weight(s, name)[t], literal, rtol=1e-12)
    assert eps_loss_weight(s, "beta_tilde")[1] == math.inf
    assert np.isfinite(eps_loss_weight(s, "beta")[1])
    with pytest.raises(ValueError, match="variance"):
        eps_loss_weight(s, "beta_hat")


def test_weights_differ_only_near_t1():
    """w(β̃)/w(β) = (1 − ᾱ_t)/(1 − ᾱ_{t−1}) → 1: the two σ² choices matter only at small t."""
    schedule = NoiseSchedule.linear(1000)
    ratio = eps_loss_weight(schedule, "beta_tilde")[2:] / eps_loss_weight(schedule, "beta")[2:]
    assert ratio[0] > 1.9 and abs(ratio[-1] - 1) < 1e-4
    assert np.all(np.diff(ratio) < 0)


def test_config_round_trip_keeps_custom_betas_and_settings():
    """config()/from_config() is the one serialisation: an arbitrary β array comes back bit for bit."""
    import json

    betas = np.geomspace(1e-4, 0.3, 37)[::-1].copy()  # decreasing: no named schedule makes it
    d = GaussianDiffusion(NoiseSchedule(betas), variance="beta_tilde", num_levels=17)
    back = GaussianDiffusion.from_config(json.loads(json.dumps(d.config())))
    assert np.array_equal(back.schedule.betas, d.schedule.betas)
    assert (back.variance, back.num_levels, back.T) == ("beta_tilde", 17, 37)
    edited = d.config() | {"betas_sha256": "0" * 16}
    with pytest.raises(ValueError, match="checksum"):
        GaussianDiffusion.from_config(edited)
    legacy = {k: v for k, v in GaussianDiffusion(NoiseSchedule.cosine(50)).config().items() if k != "betas"}
    assert np.array_equal(GaussianDiffusion.from_config(legacy).schedule.betas, NoiseSchedule.cosine(50).betas)
    with pytest.deprecated_call():
        from ddpm_lite.training import diffusion_config
        assert diffusion_config(d) == d.config()
