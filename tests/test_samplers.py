"""Ancestral and DDIM samplers: determinism, shapes, trajectories, and the distribution they sample.

With Gaussian data x_0 ~ N(0, s² I) and the optimal ε-predictor every sampler step is
linear in x_t plus independent noise, so the variance of the returned x_0 follows by
propagating Var(x_T) = 1 through the steps.  Samples must match that variance within
5 standard errors of a sample variance (√(2/n)·v), and the mean 0 within 5·√(v/n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.sampling import ddim_timesteps


def alpha_bars(schedule: NoiseSchedule) -> np.ndarray:
    return np.concatenate([[1.0], np.cumprod(1.0 - np.asarray(schedule.betas[1:]))])


class OptimalEps:
    """ε*(x_t, t) = √(1 − ᾱ_t) x_t / (ᾱ_t s² + 1 − ᾱ_t), exact for x_0 ~ N(0, s² I)."""

    def __init__(self, schedule: NoiseSchedule, s: float) -> None:
        ab = alpha_bars(schedule)
        self.c = np.sqrt(1.0 - ab) / (ab * s**2 + 1.0 - ab)
        self._t = torch.tensor(self.c)

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._t.to(xt.dtype)[t].view(-1, *([1] * (xt.dim() - 1))) * xt


def ancestral_variance(schedule: NoiseSchedule, s: float, variance: str) -> float:
    """Var(x_0) of Algorithm 2 under ε*: v ← m_t² v + σ_t² (no noise at t = 1)."""
    ab = alpha_bars(schedule)
    beta = np.concatenate([[0.0], np.asarray(schedule.betas[1:])])
    v = 1.0
    for t in range(schedule.T, 0, -1):
        m = (1 - beta[t] / (ab[t] * s**2 + 1 - ab[t])) / math.sqrt(1 - beta[t])
        sig2 = beta[t] if variance == "beta" else (1 - ab[t - 1]) / (1 - ab[t]) * beta[t]
        v = m**2 * v + (sig2 if t > 1 else 0.0)
    return v


def ddim_variance(schedule: NoiseSchedule, s: float, steps: int, eta: float) -> float:
    """Var(x_0) of DDIM under ε*, from Song et al.'s update written out here."""
    ab = alpha_bars(schedule)
    c = OptimalEps(schedule, s).c
    taus = ddim_timesteps(schedule.T, steps) + [0]
    v = 1.0
    for t, prev in zip(taus[:-1], taus[1:]):
        sig2 = eta**2 * (1 - ab[prev]) / (1 - ab[t]) * (1 - ab[t] / ab[prev])
        x0_coef = (1 - math.sqrt(1 - ab[t]) * c[t]) / math.sqrt(ab[t])  # x̂_0 = x0_coef · x_t
        k = math.sqrt(ab[prev]) * x0_coef + math.sqrt(1 - ab[prev] - sig2) * c[t]
        v = k**2 * v + sig2
    return v


def assert_gaussian_stats(x: torch.Tensor, v: float) -> None:
    flat = x.double().flatten()
    n = flat.numel()
    assert abs(float(flat.mean())) <= 5 * math.sqrt(v / n)
    assert abs(float(flat.var()) - v) <= 5 * v * math.sqrt(2 / n)


# --------------------------------------------------------------------------- the sampled distribution
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ancestral_samples_have_the_propagated_gaussian_variance(variance):
    T, s = 100, 0.5
    sch = NoiseSchedule.linear(T, beta_1=1e-3, beta_T=0.2)
    d = GaussianDiffusion(sch, variance=variance, num_levels=None)
    x = d.sample(OptimalEps(sch, s), (10_000, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = ancestral_variance(sch, s, variance)
    assert_gaussian_stats(x, v)


def test_the_variance_choice_changes_the_samples_detectably():
    T, s = 30, 0.3
    sch = NoiseSchedule.linear(T, beta_1=1e-2, beta_T=0.4)
    v_beta, v_tilde = ancestral_variance(sch, s, "beta"), ancestral_variance(sch, s, "beta_tilde")
    n = 20_000
    assert abs(v_beta - v_tilde) > 20 * v_tilde * math.sqrt(2 / n)  # the two are resolvable at this n
    for variance, v in (("beta", v_beta), ("beta_tilde", v_tilde)):
        d = GaussianDiffusion(sch, variance=variance, num_levels=None)
        x = d.sample(OptimalEps(sch, s), (n, 1), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert_gaussian_stats(x, v)


def test_ddim_eta1_all_steps_is_ancestral_with_beta_tilde():
    T, s = 100, 0.5
    sch = NoiseSchedule.linear(T, beta_1=1e-3, beta_T=0.2)
    d = GaussianDiffusion(sch, variance="beta_tilde", num_levels=None)
    model = OptimalEps(sch, s)
    # Same seed, same draws (x_T, then one z per step t ≥ 2): the two samplers agree exactly.
    a = d.sample(model, (2000, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    b = d.ddim_sample(model, (2000, 2), steps=T, eta=1.0, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    # And in distribution, on an independent draw.
    c = d.ddim_sample(model, (10_000, 2), steps=T, eta=1.0, generator=torch.Generator().manual_seed(6),
                      dtype=torch.float64)
    assert_gaussian_stats(c, ancestral_variance(sch, s, "beta_tilde"))
    assert ddim_variance(sch, s, T, 1.0) == pytest.approx(ancestral_variance(sch, s, "beta_tilde"), rel=1e-10)


@pytest.mark.parametrize("steps,eta", [(20, 0.0), (20, 0.5), (7, 1.0)])
def test_ddim_samples_have_the_propagated_gaussian_variance(steps, eta):
    T, s = 200, 0.6
    sch = NoiseSchedule.linear(T, beta_1=1e-3, beta_T=0.1)
    d = GaussianDiffusion(sch, num_levels=None)
    x = d.ddim_sample(OptimalEps(sch, s), (20_000, 2), steps=steps, eta=eta,
                      generator=torch.Generator().manual_seed(steps), dtype=torch.float64)
    assert_gaussian_stats(x, ddim_variance(sch, s, steps, eta))


def test_ddim_eta0_is_a_deterministic_map_of_x_T():
    sch = NoiseSchedule.linear(50)
    d = GaussianDiffusion(sch, num_levels=None)
    model = OptimalEps(sch, 0.5)
    a = d.ddim_sample(model, (64, 2), steps=10, generator=torch.Generator().manual_seed(3))
    b = d.ddim_sample(model, (64, 2), steps=10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # Under ε* each step multiplies x_t by one constant, so x_0 / x_T is the same for every entry.
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    ratio = a / x_T
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0, 0])), rtol=1e-4, atol=1e-6)


def test_ddim_timesteps_start_at_T_decrease_and_cover_all_steps_when_asked():
    for T, steps in [(1000, 50), (10, 10), (10, 1), (7, 3)]:
        taus = ddim_timesteps(T, steps)
        assert taus[0] == T and len(taus) == steps and all(a > b >= 1 for a, b in zip(taus, taus[1:]))
    assert ddim_timesteps(10, 10) == list(range(10, 0, -1))


# --------------------------------------------------------------------------- determinism, shapes, trajectories
def test_same_seed_same_samples_different_seed_different():
    sch = NoiseSchedule.linear(40)
    d = GaussianDiffusion(sch, num_levels=None)
    model = OptimalEps(sch, 1.0)
    for sampler in (lambda g: d.sample(model, (8, 2), generator=g),
                    lambda g: d.ddim_sample(model, (8, 2), steps=10, eta=0.7, generator=g)):
        a = sampler(torch.Generator().manual_seed(0))
        b = sampler(torch.Generator().manual_seed(0))
        c = sampler(torch.Generator().manual_seed(1))
        assert torch.equal(a, b) and not torch.allclose(a, c)


def test_shapes_and_dtypes_for_points_and_images():
    d = GaussianDiffusion(NoiseSchedule.linear(20), num_levels=17)

    class ImageModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x, t):
            return self.conv(x) * (t.view(-1, 1, 1, 1) / 20)

    image_model = ImageModel().double()
    g = torch.Generator().manual_seed(0)
    img = d.sample(image_model, (5, 1, 8, 8), generator=g)
    assert img.shape == (5, 1, 8, 8) and img.dtype == torch.float64  # follows the model's parameters
    assert d.ddim_sample(image_model, (3, 1, 8, 8), steps=5, generator=g).shape == (3, 1, 8, 8)
    pts = d.sample(lambda x, t: 0.1 * x, (7, 2), generator=g)
    assert pts.shape == (7, 2) and pts.dtype == torch.float32 and torch.isfinite(pts).all()
    clipped = d.sample(lambda x, t: -x, (50, 1, 8, 8), generator=g, clip_x0=True)
    assert clipped.abs().max() <= 1.0  # at t = 1 the step returns the clamped x̂_0


def test_trajectory_keeps_x_T_every_kth_step_and_the_result():
    T, k = 50, 20
    sch = NoiseSchedule.linear(T)
    d = GaussianDiffusion(sch, num_levels=None)
    model = OptimalEps(sch, 0.5)
    x0, traj = d.sample(model, (16, 2), generator=torch.Generator().manual_seed(4), trajectory_every=k)
    assert [t for t, _ in traj] == [50, 40, 20, 0]
    assert torch.equal(traj[0][1], torch.randn(16, 2, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(traj[-1][1], x0)
    assert torch.equal(x0, d.sample(model, (16, 2), generator=torch.Generator().manual_seed(4)))
    _, every = d.sample(model, (2, 2), generator=torch.Generator().manual_seed(4), trajectory_every=1)
    assert [t for t, _ in every] == list(range(T, -1, -1))
    _, sparse = d.sample(model, (2, 2), generator=torch.Generator().manual_seed(4), trajectory_every=1000)
    assert [t for t, _ in sparse] == [50, 0]  # memory stays bounded by T // k + 2 tensors


def test_sampler_bad_inputs_raise_value_errors_that_name_the_argument():
    d = GaussianDiffusion(NoiseSchedule.linear(10))
    ok = lambda x, t: x  # noqa: E731
    cases = [
        (lambda: d.sample(ok, 5), "shape"),
        (lambda: d.sample(ok, (0, 2)), "shape"),
        (lambda: d.sample(ok, (4,)), "shape"),
        (lambda: d.sample("model", (4, 2)), "eps_model"),
        (lambda: d.sample(lambda x, t: x[:, :1], (4, 2)), "eps_model"),
        (lambda: d.sample(ok, (4, 2), generator=0), "generator"),
        (lambda: d.sample(ok, (4, 2), trajectory_every=0), "trajectory_every"),
        (lambda: d.sample(ok, (4, 2), device="not-a-device"), "device"),
        (lambda: d.sample(ok, (4, 2), dtype=torch.long), "dtype"),
        (lambda: d.ddim_sample(ok, (4, 2), steps=0), "steps"),
        (lambda: d.ddim_sample(ok, (4, 2), steps=11), "steps"),
        (lambda: d.ddim_sample(ok, (4, 2), steps=5, eta=-0.1), "eta"),
        (lambda: d.ddim_sample(ok, (4, 2), steps=5, eta=float("nan")), "eta"),
    ]
    for call, needle in cases:
        with pytest.raises(ValueError, match=needle):
            call()


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samplers_stay_finite_on_a_cosine_chain_under_bf16_autocast(sampler):
    sch = NoiseSchedule.cosine(200)  # ᾱ_T ≈ 6e-8 after the β clip: 1/√ᾱ_T ≈ 4000
    d = GaussianDiffusion(sch, variance="beta_tilde", num_levels=17)
    torch.manual_seed(0)
    net = torch.nn.Linear(16, 16)
    model = lambda x, t: net(x.flatten(1)).view_as(x)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if sampler == "ancestral":
            x = d.sample(model, (8, 1, 4, 4), generator=g, clip_x0=True)
        else:
            x = d.ddim_sample(model, (8, 1, 4, 4), steps=40, eta=1.0, generator=g)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()


# --------------------------------------------------------------------------- one core, plans of coefficients
def test_the_ancestral_plan_multiplied_out_is_algorithm_2():
    """a·x_t + b·x̂_0 with x̂_0 = c_x0·x_t − c_eps·ε has eq. sampling-step's coefficients at every t."""
    from ddpm_lite.sampling import ancestral_plan

    for d in (GaussianDiffusion(NoiseSchedule.linear(1000), num_levels=None),
              GaussianDiffusion(NoiseSchedule.cosine(50), variance="beta_tilde", num_levels=None)):
        steps = ancestral_plan(d)
        assert [st.t for st in steps] == list(range(d.T, 0, -1))
        for st in steps:
            x_coef, eps_coef = st.a + st.b * st.c_x0, st.b * st.c_eps
            assert x_coef == pytest.approx(d.recip_sqrt_alphas[st.t], rel=1e-10)
            assert eps_coef == pytest.approx(d.recip_sqrt_alphas[st.t] * d.eps_coef[st.t], rel=1e-10)
            assert st.c == (math.sqrt(d.model_variance[st.t]) if st.t > 1 else 0.0)


@pytest.mark.parametrize("steps", [1, 7, 50])
def test_ddim_with_eta_zero_is_the_first_order_solver_step_for_step(steps):
    """Two derivations, one step: DDIM's (η = 0) and DPM-Solver++'s first order on the same grid."""
    from ddpm_lite.sampling import ddim_plan, dpm_solver_plan
    from ddpm_lite.spacing import ddim_timesteps

    d = GaussianDiffusion(NoiseSchedule.linear(1000), num_levels=None)
    taus = ddim_timesteps(d.T, steps)
    for p, q in zip(ddim_plan(d, taus, 0.0), dpm_solver_plan(d, taus, order=1, stochastic=False), strict=True):
        assert p.t == q.t and p.c == q.c == 0.0 and q.w == 0.0
        assert p.a == pytest.approx(q.a, rel=1e-12, abs=1e-15) and p.b == pytest.approx(q.b, rel=1e-9, abs=1e-15)


def test_sampler_options_that_do_not_apply_are_refused_and_defaults_fill_in():
    from ddpm_lite.sampling import SAMPLER_KINDS, SamplerConfig

    assert SamplerConfig("ddim").checked(20) == SamplerConfig("ddim", 20, eta=0.0)
    assert SamplerConfig("dpm++").checked(1000) == SamplerConfig("dpm++", 20, order=2, spacing="logsnr")
    assert SamplerConfig().checked(30) == SamplerConfig("ancestral", 30)
    for cfg, word in ((SamplerConfig("dpm++", eta=0.5), "eta"), (SamplerConfig("ddim", spacing="karras"), "spacing"),
                      (SamplerConfig("ancestral", 10), "ancestral"), (SamplerConfig("euler"), "sampler")):
        with pytest.raises(ValueError, match=word):
            cfg.checked(30)
    from ddpm_lite.cli.args import build_parser

    sample_parser = build_parser()._subparsers._group_actions[0].choices["sample"]
    choices = next(a.choices for a in sample_parser._actions if a.dest == "sampler")
    assert tuple(choices) == SAMPLER_KINDS


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpm++", "dpm++sde"])
def test_every_sampler_runs_a_learned_variance_model(sampler):
    """The loop splits (ε, v) once for every sampler (the DPM-Solver++ samplers once failed on v)."""
    from ddpm_lite import UNet

    d = GaussianDiffusion(NoiseSchedule.linear(10), variance="learned", num_levels=17)
    torch.manual_seed(0)
    model = UNet(image_size=8, base_channels=8, channel_mult=(1,), num_res_blocks=1, attention_resolutions=(), T=10,
                 learn_sigma=True).eval()
    x = d.sample(model, (3, 1, 8, 8), generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()
