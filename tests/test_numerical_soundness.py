"""Numerical soundness of the bound over random valid schedules (hypothesis).

Every vb term L_{t−1} (at every t, both variance choices), the decoder log-likelihood and
bits_per_dim must be finite in float32 and under CPU bf16 autocast, for random β arrays
with T = 2..60 and for the named schedules (cosine with its β clip included).  The
posterior variance at t = 1 and the log-variance clamp are checked explicitly.

Not repeated here (see tests/test_gaussian.py): the decoder's probabilities summing to 1
over extreme means and scales (``test_decoder_probabilities_sum_to_one``), its agreement
with mpmath, and finite decoder gradients.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.schedule import SCHEDULE_KINDS

FAST = settings(max_examples=25, deadline=None)

betas_st = st.integers(2, 60).flatmap(
    lambda T: arrays(np.float64, T, elements=st.floats(1e-6, 0.999, allow_nan=False)))


class LinearEps(torch.nn.Module):
    """A small fixed ε-predictor with a t-dependent output: ε̂ = tanh(w x_t + b t/T)."""

    def __init__(self, T):
        super().__init__()
        self.T = T

    def forward(self, xt, t):
        return torch.tanh(0.7 * xt + (t.to(xt.dtype) / self.T).view(-1, *[1] * (xt.dim() - 1)))


def _x0_grid(K=17, n=6):
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, K, (n, 1, 2, 2), generator=g)
    levels[0] = 0
    levels[1] = K - 1  # the open end bins
    return levels.float() * (2.0 / (K - 1)) - 1.0


def _all_terms_finite(s, variance, num_levels, autocast=False):
    d = GaussianDiffusion(s, variance=variance, num_levels=num_levels)
    x0 = _x0_grid(num_levels) if num_levels else torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    model = LinearEps(s.T)
    t = torch.arange(1, s.T + 1).repeat_interleave(x0.shape[0])
    x0r = x0.repeat(s.T, *[1] * (x0.dim() - 1))
    xt = d.q_sample(x0r, t, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        vb = d.vb_terms_bpd(model, x0r, xt, t)
        res = d.bits_per_dim(model, x0, batch_size=64, generator=torch.Generator().manual_seed(3))
    assert vb.dtype == torch.float32 and torch.isfinite(vb).all(), (s, variance, vb)
    assert (vb[t > 1] >= 0).all()  # KLs
    assert np.isfinite(res["total"]) and torch.isfinite(res["vb"]).all() and np.isfinite(res["prior"])


@FAST
@given(betas=betas_st, variance=st.sampled_from(["beta", "beta_tilde"]), levels=st.sampled_from([17, 256, None]))
def test_every_vb_term_finite_for_random_schedules(betas, variance, levels):
    _all_terms_finite(NoiseSchedule(betas), variance, levels)


@settings(max_examples=10, deadline=None)
@given(betas=betas_st, variance=st.sampled_from(["beta", "beta_tilde"]))
def test_every_vb_term_finite_under_bf16_autocast(betas, variance):
    _all_terms_finite(NoiseSchedule(betas), variance, 17, autocast=True)


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
@pytest.mark.parametrize("T", [2, 7, 60])
def test_named_schedules_bound_finite(kind, T):
    s = NoiseSchedule.from_name(kind, T)
    if kind == "cosine":
        assert s.betas[-1] == pytest.approx(0.999)  # the clip bites at the last step
    for variance in ("beta", "beta_tilde"):
        _all_terms_finite(s, variance, 17)
        _all_terms_finite(s, variance, None, autocast=True)


@FAST
@given(betas=betas_st)
def test_posterior_variance_at_t1_and_log_variance_clamp(betas):
    s = NoiseSchedule(betas)
    assert s.posterior_variance[1] == 0.0  # β̃_1 = 0 exactly: ᾱ_0 = 1
    # The clamp: log β̃_1 = −∞ is replaced by log β̃_2, every entry finite, equal to log β̃_t for t ≥ 2.
    assert np.isfinite(s.posterior_log_variance_clipped).all()
    assert s.posterior_log_variance_clipped[1] == np.log(s.posterior_variance[2])
    np.testing.assert_allclose(s.posterior_log_variance_clipped[2:], np.log(s.posterior_variance[2:]), rtol=1e-12)
    # β̃_t ≤ β_t: the posterior is narrower than one forward step.
    assert (s.posterior_variance[1:] <= s.betas[1:] * (1 + 1e-12)).all()


def test_log_variance_clamp_for_T1():
    s = NoiseSchedule([0.3])
    assert s.posterior_log_variance_clipped[1] == np.log(0.3)


@FAST
@given(betas=betas_st, mean=st.floats(-1e4, 1e4), log_var=st.floats(-30, 30))
def test_decoder_log_likelihood_finite_and_not_positive(betas, mean, log_var):
    d = GaussianDiffusion(NoiseSchedule(betas), num_levels=256)
    x0 = torch.linspace(-1, 1, 256).view(-1, 1)
    ll = d.decoder_log_likelihood(x0, torch.full_like(x0, mean), torch.full_like(x0, log_var))
    assert torch.isfinite(ll).all() and (ll <= 1e-6).all()
