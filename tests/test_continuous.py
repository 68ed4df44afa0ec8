"""Continuous-time diffusion (ddpm_lite.continuous, ddpm_lite.logsnr): the bound's limit, its estimator, the schedule.

The reference model is the optimal (posterior-mean) denoiser of Gaussian data x ~ N(0, v I),
for which every quantity has a closed form: the mean squared error per dimension mmse(ρ) = v/(1 + ρ v)
at SNR ρ, L_∞'s diffusion term ½ ∫_{ρ_min}^{ρ_max} mmse(ρ) dρ = ½ log((1 + ρ_max v)/(1 + ρ_min v)), and
the T-step bound's Σ_i ½ (ρ_{s_i} − ρ_{t_i}) mmse(ρ_{t_i}).  They are chapter 14's
(:mod:`ddpm_lite.book.continuous`, where sympy checks each and a Monte Carlo of the exact chain
confirms them), imported rather than written a second time; the library's estimators here are the
independent side.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ddpm_lite.book import continuous as closed
from ddpm_lite.continuous import ContinuousDiffusion, ContinuousModel
from ddpm_lite.logsnr import LogSNRSchedule
from ddpm_lite.sampling import SamplerConfig

V = 0.3  # data variance per dimension
GMIN, GMAX = -6.0, 4.0


class LinearDenoiser(nn.Module):
    """ε̂(z, γ) of the posterior mean for x ~ N(0, prior_var I) (optimal when prior_var is the data's)."""

    def __init__(self, prior_var: float) -> None:
        super().__init__()
        self.prior_var = prior_var

    def forward(self, z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        g = gamma.double().view(-1, *([1] * (z.dim() - 1)))
        a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)
        xh = a2.sqrt() * self.prior_var * z.double() / (a2 * self.prior_var + s2)
        return ((z.double() - a2.sqrt() * xh) / s2.sqrt()).to(z.dtype)


def curved_schedule(gmin: float = GMIN, gmax: float = GMAX, learn_ends: bool = False) -> LogSNRSchedule:
    """A learned-shape schedule pushed far from linear (its sigmoid part dominates)."""
    sch = LogSNRSchedule(gmin, gmax, shape="learned", learn_ends=learn_ends)
    with torch.no_grad():
        sch.shape.raw_a.fill_(4.0)
        sch.shape.raw_w.fill_(-3.0)
        sch.shape.raw_b.fill_(10.0)  # every sigmoid a step around t = ½: γ is S-shaped
        sch.shape.c.fill_(-5.0)
    return sch


def gaussian_data(n: int, d: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * math.sqrt(V)


def closed_form_diffusion_bits(gmin: float, gmax: float, v: float = V) -> float:
    """L_∞'s diffusion term for data N(0, v I) in bits/dim; only the ends enter."""
    return closed.diffusion_loss(closed.ContinuousSchedule(math.exp(-gmax), math.exp(-gmin)), v) / math.log(2)


def test_the_learned_shape_is_monotone_with_fixed_ends_and_its_slope_is_the_derivative():
    sch = curved_schedule()
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    with torch.no_grad():
        g, dg = sch(t)
    assert g.dtype == torch.float64 and dg.dtype == torch.float64
    assert float(g[0]) == pytest.approx(GMIN, abs=1e-12) and float(g[-1]) == pytest.approx(GMAX, abs=1e-12)
    assert bool((g[1:] > g[:-1]).all()) and bool((dg > 0).all())
    # Far from linear: somewhere γ is more than 1 away from the straight line between the ends.
    assert float((g - (GMIN + (GMAX - GMIN) * t)).abs().max()) > 1.0
    fd = (g[2:] - g[:-2]) / (t[2:] - t[:-2])
    assert torch.allclose(fd, dg[1:-1], rtol=1e-4, atol=1e-4)
    # Any parameters keep it monotone: randomise them.
    with torch.no_grad():
        for p in sch.shape.parameters():
            p.copy_(torch.randn_like(p) * 3)
        g2, dg2 = sch(t)
    assert bool((g2[1:] > g2[:-1]).all()) and bool((dg2 > 0).all())


@pytest.mark.parametrize("schedule", ["linear", "curved"])
def test_continuous_estimate_matches_the_closed_form_limit(schedule):
    """L_∞ of the optimal denoiser: Monte Carlo (both schedules, same ends) vs ½ log((1 + ρ_max v)/(1 + ρ_min v))."""
    sch = LogSNRSchedule(GMIN, GMAX) if schedule == "linear" else curved_schedule()
    model = ContinuousModel(LinearDenoiser(V), sch)
    res = ContinuousDiffusion(None).bits_per_dim(model, gaussian_data(3000), draws=8,
                                                 generator=torch.Generator().manual_seed(1))
    # stderr of the total bounds the diffusion term's noise too (L_T is exact, L_0's noise adds).
    assert res["diffusion"] == pytest.approx(closed_form_diffusion_bits(GMIN, GMAX), abs=4 * res["stderr"])
    assert res["stderr"] < 0.05


def test_the_interior_of_the_schedule_does_not_change_the_bound():
    """Two schedules with the same ends, the same data and noise: equal within MC error; different ends: not."""
    x = gaussian_data(3000, seed=3)
    d = ContinuousDiffusion(None)
    out = {}
    for name, sch in (("linear", LogSNRSchedule(GMIN, GMAX)), ("curved", curved_schedule()),
                      ("wider", LogSNRSchedule(GMIN - 3, GMAX))):
        r = d.bits_per_dim(ContinuousModel(LinearDenoiser(V), sch), x, draws=8,
                           generator=torch.Generator().manual_seed(5))
        out[name] = r
    se = math.hypot(out["linear"]["stderr"], out["curved"]["stderr"])
    assert abs(out["linear"]["diffusion"] - out["curved"]["diffusion"]) < 4 * se
    # The ends do matter: a larger SNR_max adds ½ log((1 + e^9 v)/(1 + e^6 v)) ≈ 2.2 bits of diffusion term.
    moved = closed_form_diffusion_bits(GMIN - 3, GMAX) - closed_form_diffusion_bits(GMIN, GMAX)
    assert out["wider"]["diffusion"] - out["linear"]["diffusion"] == pytest.approx(moved, abs=4 * se)
    assert moved > 10 * se


def test_the_loss_is_an_unbiased_estimate_of_the_integral_for_a_fixed_model():
    """A mis-specified linear denoiser: E over t ~ U(0,1) and ε of the loss vs quadrature of its ε-expectation."""
    prior_var = 1.0  # wrong on purpose: the data have V
    x = gaussian_data(64, seed=7)
    sch = curved_schedule()
    model = ContinuousModel(LinearDenoiser(prior_var), sch)
    d = ContinuousDiffusion(None, t_draw="low_discrepancy")
    # Quadrature: ε̂ = c z with c = (1 − α² p/(α² p + σ²))/σ, so ε − ε̂ = (1 − cσ)ε − cα x and
    # E_ε ‖ε − ε̂‖² = D (1 − cσ)² + c² α² ‖x‖², integrated against ½ γ′(t) dt (Simpson, 4001 points).
    t = torch.linspace(0, 1, 4001, dtype=torch.float64)
    with torch.no_grad():
        g, dg = sch(t)
    a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)
    c = (1 - a2 * prior_var / (a2 * prior_var + s2)) / s2.sqrt()
    sq = x.square().sum(1).mean()
    integrand = 0.5 * dg * (x.shape[1] * (1 - c * s2.sqrt()) ** 2 + c**2 * a2 * sq) / (x.shape[1] * math.log(2))
    w = torch.ones_like(t)
    w[1:-1:2], w[2:-1:2] = 4, 2
    exact = float((integrand * w).sum() / (3 * (len(t) - 1)))
    gen = torch.Generator().manual_seed(11)
    reps = []
    with torch.no_grad():
        for _ in range(400):
            t_draw, noise = d.draw_t_and_noise(x.shape, gen, x.device, x.dtype)
            reps.append(float(d.loss_terms(model, x, t_draw, noise)["diffusion"].mean()))
    reps = np.array(reps)
    assert reps.mean() == pytest.approx(exact, abs=4 * reps.std(ddof=1) / math.sqrt(len(reps)))


def discrete_diffusion_bits(sch: LogSNRSchedule, T: int, v: float = V) -> float:
    """Σ_i ½ (ρ(s_i) − ρ(t_i)) mmse(ρ(t_i)) in bits/dim, s_i = (i − 1)/T, t_i = i/T."""
    with torch.no_grad():
        rho = torch.exp(-sch.gamma(torch.arange(T + 1, dtype=torch.float64) / T))
    rho = rho.numpy()
    return float((0.5 * (rho[:-1] - rho[1:]) * closed.mmse(rho[1:], v)).sum()) / math.log(2)


def test_the_finite_T_bound_decreases_to_the_limit():
    sch = curved_schedule()
    limit = closed_form_diffusion_bits(GMIN, GMAX)
    Ts = (1, 4, 16, 64, 256, 1024, 16384)
    gaps = [discrete_diffusion_bits(sch, T) - limit for T in Ts]
    assert all(a > b > 0 for a, b in zip(gaps, gaps[1:]))  # above the limit, and tighter with every T
    assert gaps[0] > 0.5 and gaps[-1] < 2e-3
    assert gaps[5] / gaps[4] < 0.35  # the right Riemann sum's O(1/T): 4× the steps, about ¼ the gap


def test_the_library_discrete_bound_of_the_discretized_model_is_the_T_step_bound():
    """GaussianDiffusion.bits_per_dim on discretize(T): its KL terms sum to the T-step formula, L_0 and L_T agree."""
    x = gaussian_data(800, seed=13)
    sch = curved_schedule()
    model = ContinuousModel(LinearDenoiser(V), sch)
    d = ContinuousDiffusion(None)
    cont = d.bits_per_dim(model, x, draws=4, generator=torch.Generator().manual_seed(2))
    for T in (8, 64):
        res = d.bits_per_dim_at(model, x, T, generator=torch.Generator().manual_seed(3))
        kl = res["per_sample"] - res["prior"]
        # per-sample KL part: total minus the decoder (vb[0]) and the prior
        kl_mean = float(res["vb"][1:].sum())
        want = discrete_diffusion_bits(sch, T)
        se = float(kl.std() / math.sqrt(len(kl)))
        assert kl_mean == pytest.approx(want, abs=4 * se + 1e-3)
        assert res["prior"] == pytest.approx(cont["prior"], rel=1e-9)
        assert res["decoder"] == pytest.approx(cont["recon"], abs=0.05)  # both one-draw estimates of L_0


def test_gradients_reach_learned_ends_and_shape():
    x = gaussian_data(256, seed=17).float()
    sch = curved_schedule(learn_ends=True)
    model = ContinuousModel(LinearDenoiser(0.5), sch)
    d = ContinuousDiffusion(None)
    out = d.training_losses(model, x, generator=torch.Generator().manual_seed(0))
    out["loss"].mean().backward()
    assert sch.ends.grad is not None and bool(torch.isfinite(sch.ends.grad).all())
    assert bool((sch.ends.grad.abs() > 0).all())
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in sch.shape.parameters())


def test_fixed_ends_are_float64_buffers_not_parameters():
    sch = LogSNRSchedule()
    assert sch.ends.dtype == torch.float64 and not any(True for _ in sch.parameters())
    assert "ends" in dict(sch.named_buffers())


def test_low_discrepancy_draw_puts_one_t_in_each_stratum():
    d = ContinuousDiffusion(None, t_draw="low_discrepancy")
    t = d.draw_t(16, torch.Generator().manual_seed(0), "cpu")
    assert t.dtype == torch.float64 and bool(((t >= 0) & (t < 1)).all())
    assert sorted((t * 16).floor().long().tolist()) == list(range(16))


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpm++"])
def test_every_sampler_runs_on_the_discretized_model(sampler):
    """The optimal denoiser's samples have the data's variance V (the samplers are exact for it as steps grow)."""
    model = ContinuousModel(LinearDenoiser(V), LogSNRSchedule(GMIN, GMAX))
    diffusion, wrapped = ContinuousDiffusion(None).discretize(model, 200)
    how = SamplerConfig(sampler) if sampler == "ancestral" else SamplerConfig(sampler, 50)
    x = diffusion.sample(wrapped, (4000, 2), generator=torch.Generator().manual_seed(0), device="cpu",
                         dtype=torch.float64, sampler=how)
    assert bool(torch.isfinite(x).all())
    assert float(x.var()) == pytest.approx(V, rel=0.08)


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="swap"):
        LogSNRSchedule(3.0, -3.0)
    d = ContinuousDiffusion(17)
    with pytest.raises(ValueError, match="low-discrepancy"):
        d.check_train_config("vb", True)
    with pytest.raises(ValueError, match="--loss vb"):
        d.check_train_config("simple", False)
    with pytest.raises(ValueError, match="ContinuousModel"):
        d.training_losses(LinearDenoiser(V), torch.zeros(2, 1, 8, 8))


def test_new_modules_are_device_agnostic():
    src = Path(__file__).resolve().parents[1] / "src" / "ddpm_lite"
    for name in ("continuous.py", "logsnr.py", "nets/continuous.py"):
        text = (src / name).read_text()
        assert ".cuda(" not in text and "device=\"cuda\"" not in text, name


def test_recon_rows_estimate_the_batch_mean_of_L0_from_its_first_rows():
    x = gaussian_data(32, seed=19)
    model = ContinuousModel(LinearDenoiser(V), LogSNRSchedule(GMIN, GMAX))
    t = torch.full((32,), 0.5, dtype=torch.float64)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    full = ContinuousDiffusion(None).loss_terms(model, x, t, noise)
    part = ContinuousDiffusion(None, recon_rows=4).loss_terms(model, x, t, noise)
    assert torch.allclose(part["recon"], full["recon"][:4].mean().expand(32))
    assert torch.equal(part["diffusion"], full["diffusion"]) and torch.equal(part["prior"], full["prior"])
    assert ContinuousDiffusion.from_config(ContinuousDiffusion(None, recon_rows=4).config()).recon_rows == 4


def test_an_ensemble_is_the_mean_denoiser_and_never_scores_worse_than_its_members_on_average():
    """Same draws for all: per image, the ensemble's bound ≤ the members' mean (convexity of ‖x − x̂‖²)."""
    from ddpm_lite.nets.continuous import EnsembleDenoiser, ensemble_model

    sch = LogSNRSchedule(GMIN, GMAX)
    members = [ContinuousModel(LinearDenoiser(v), LogSNRSchedule(GMIN, GMAX)) for v in (0.1, 0.3, 0.9)]
    ens = ensemble_model(members)
    assert torch.equal(ens.schedule.ends, sch.ends) and isinstance(ens.net, EnsembleDenoiser)
    z, g = torch.randn(5, 2, dtype=torch.float64), torch.linspace(-5, 3, 5, dtype=torch.float64)
    assert torch.allclose(ens(z, g), sum(m(z, g) for m in members) / 3, atol=1e-12)
    x, d = gaussian_data(400, seed=5), ContinuousDiffusion(None)
    score = lambda m: d.bits_per_dim(m, x, draws=8, generator=torch.Generator().manual_seed(7))["per_sample"]
    each = torch.stack([score(m) for m in members])
    mixed = score(ens)
    assert torch.all(mixed <= each.mean(0) + 1e-9)
    assert mixed.mean() < each.mean(0).mean() - 1e-3  # strictly lower: the members disagree
    # The optimal member alone is better than an ensemble with two wrong ones: averaging is no free lunch.
    assert each[1].mean() < mixed.mean()


def test_an_ensemble_takes_the_mean_of_learned_ends_and_round_trips_through_its_config():
    from ddpm_lite.nets.build import build_model
    from ddpm_lite.nets.continuous import continuous_model, ensemble_model

    models = []
    for seed, shift in ((0, 0.0), (1, 1.0)):
        torch.manual_seed(seed)
        m = continuous_model((1, 1, 8, 8), num_levels=17, learn_ends=True, gamma_min=-9.0, base_channels=8)
        with torch.no_grad():
            m.schedule.ends += shift
        models.append(m)
    ens = ensemble_model(models)
    assert ens.schedule.ends.tolist() == pytest.approx([-8.5, 5.5])
    assert not any(p is q for p in ens.parameters() for q in models[0].parameters())  # copies
    again = build_model(ens.config)
    again.load_state_dict(ens.state_dict())
    z, g = torch.randn(3, 1, 8, 8), torch.tensor([-6.0, 0.0, 4.0])
    with torch.no_grad():
        assert torch.equal(again.eval()(z, g), ens.eval()(z, g))
    for bad in ({"kind": "ensemble", "members": []}, {"kind": "ensemble", "members": [{"kind": "unet"}]},
                {"kind": "ensemble", "members": [ens.net.members[0].config], "extra": 1}):
        with pytest.raises(ValueError, match="ensemble"):
            build_model(bad)
    with pytest.raises(ValueError, match="ContinuousModel"):
        ensemble_model([])
