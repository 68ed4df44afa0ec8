"""DPM-Solver++ (ddpm_lite.sampling) on a Gaussian toy whose exact answer is known in closed form.

For data x_0 ~ N(m, s²) the noisy marginal is N(α_t m, v_t) with v_t = ᾱ_t s² + 1 − ᾱ_t, the
optimal ε-model is linear, ε*(x_t, t) = σ_t (x_t − α_t m)/v_t, and the probability-flow ODE
keeps (x_t − α_t m)/√v_t constant.  So the ODE carries x_T to
x_1 = α_1 m + √(v_1/v_T)(x_T − α_T m), and every sampler's last move (to t = 0) is the
denoiser x̂_0 = (x_1 − σ_1 ε*)/α_1 at t = 1.  That composition is the exact answer a
perfect few-step solver returns; its error must shrink at the solver's order.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.sampling import ddim_timesteps
from ddpm_lite.spacing import SPACING_KINDS, solver_timesteps

M, S = 0.7, 0.5
T = 1000


@pytest.fixture(scope="module")
def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)


class OptimalEps:
    """ε*(x_t, t) for x_0 ~ N(M, S²), tabulated for t = 0..T in float64."""

    def __init__(self, d: GaussianDiffusion) -> None:
        ab = torch.tensor(d.schedule.alpha_bars, dtype=torch.float64)
        self.alpha, self.sigma, self.v = ab.sqrt(), (1 - ab).sqrt(), ab * S**2 + 1 - ab

    def __call__(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sg, v = (c.to(xt.dtype)[t].view(-1, 1) for c in (self.alpha, self.sigma, self.v))
        return sg * (xt - a * M) / v


def exact_answer(d: GaussianDiffusion, x_T: torch.Tensor) -> torch.Tensor:
    ab = d.schedule.alpha_bars
    v = lambda t: ab[t] * S**2 + 1 - ab[t]
    x1 = math.sqrt(ab[1]) * M + math.sqrt(v(1) / v(T)) * (x_T - math.sqrt(ab[T]) * M)
    eps = math.sqrt(1 - ab[1]) * (x1 - math.sqrt(ab[1]) * M) / v(1)
    return (x1 - math.sqrt(1 - ab[1]) * eps) / math.sqrt(ab[1])


def draw(d, steps, order=2, spacing="logsnr", seed=0, n=500):
    gen = torch.Generator().manual_seed(seed)
    return d.dpm_solver_sample(OptimalEps(d), (n, 1), steps=steps, order=order, spacing=spacing, generator=gen,
                               dtype=torch.float64)


def x_T(seed=0, n=500):
    return torch.randn((n, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("order, lo, hi", [(1, 0.8, 1.2), (2, 1.7, 2.3)])
def test_error_against_the_exact_ode_solution_falls_at_the_solver_order(diffusion, order, lo, hi):
    exact = exact_answer(diffusion, x_T())
    errs = [float((draw(diffusion, k, order) - exact).abs().max()) for k in (40, 80, 160)]
    assert errs[0] > errs[1] > errs[2]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(lo < r < hi for r in rates), (errs, rates)


def test_second_order_beats_first_order_at_twenty_steps(diffusion):
    exact = exact_answer(diffusion, x_T())
    e1 = float((draw(diffusion, 20, 1) - exact).abs().max())
    e2 = float((draw(diffusion, 20, 2) - exact).abs().max())
    assert e2 < e1 / 4, (e1, e2)


@pytest.mark.parametrize("spacing", SPACING_KINDS)
def test_every_spacing_converges_to_the_exact_answer(diffusion, spacing):
    exact = exact_answer(diffusion, x_T())
    err = float((draw(diffusion, 500, 2, spacing) - exact).abs().max())
    assert err < 0.01 * float(exact.std())


@pytest.mark.parametrize("steps", [1, 7, 50])
def test_first_order_on_the_uniform_grid_is_ddim(diffusion, steps):
    eps = OptimalEps(diffusion)
    ddim = diffusion.ddim_sample(eps, (300, 1), steps=steps, generator=torch.Generator().manual_seed(3),
                                 dtype=torch.float64)
    ours = draw(diffusion, steps, order=1, spacing="uniform", seed=3, n=300)
    assert solver_timesteps(diffusion, steps, "uniform") == ddim_timesteps(T, steps)
    torch.testing.assert_close(ours, ddim, rtol=1e-12, atol=1e-12)


def test_the_sampled_distribution_is_the_data_distribution(diffusion):
    x = draw(diffusion, 25, n=20_000)
    n = x.numel()
    assert abs(float(x.mean()) - M) < 5 * S / math.sqrt(n) + 0.01
    assert abs(float(x.std()) - S) < 5 * S / math.sqrt(2 * n) + 0.01


def test_same_generator_same_samples_and_another_seed_differs(diffusion):
    a, b, c = draw(diffusion, 10, seed=5), draw(diffusion, 10, seed=5), draw(diffusion, 10, seed=6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("spacing", SPACING_KINDS)
@pytest.mark.parametrize("steps", [1, 2, 3, 10, 50, 333, 1000])
def test_grids_are_distinct_decreasing_from_T_to_1(diffusion, spacing, steps):
    taus = solver_timesteps(diffusion, steps, spacing)
    assert len(taus) == steps and taus[0] == T
    assert all(a > b for a, b in itertools.pairwise(taus))
    assert taus[-1] == (1 if steps > 1 else T)


def test_logsnr_grid_is_even_in_log_snr_away_from_rounding(diffusion):
    taus = np.array(solver_timesteps(diffusion, 20, "logsnr"))
    ab = diffusion.schedule.alpha_bars[taus]
    lam = 0.5 * np.log(ab / (1 - ab))
    gaps = np.diff(lam)[:10]  # the high-noise half, where integer rounding moves λ little
    assert np.ptp(gaps) < 0.1 * abs(gaps.mean())


@pytest.mark.parametrize("bad", [0, -3, T + 1, 2.5, "10", None, True])
def test_bad_step_counts_are_refused_by_name(diffusion, bad):
    with pytest.raises(ValueError, match="steps"):
        diffusion.dpm_solver_sample(OptimalEps(diffusion), (4, 1), steps=bad)


@pytest.mark.parametrize("kw, name", [({"order": 3}, "order"), ({"order": 0}, "order"),
                                      ({"spacing": "cosine"}, "spacing"), ({"spacing": None}, "spacing")])
def test_bad_order_and_spacing_are_refused_by_name(diffusion, kw, name):
    with pytest.raises(ValueError, match=name):
        diffusion.dpm_solver_sample(OptimalEps(diffusion), (4, 1), steps=5, **kw)


def test_float32_model_on_its_own_device_and_dtype(diffusion):
    model = torch.nn.Linear(2, 2, dtype=torch.float32)
    x = diffusion.dpm_solver_sample(lambda xt, t: model(xt), (8, 2), steps=4,
                                    generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (8, 2) and torch.isfinite(x).all()


@pytest.mark.parametrize("sampler", ["dpm++", "dpm++sde"])
def test_cli_samples_with_dpm_solver(tmp_path, capsys, sampler):
    from ddpm_lite.cli import main

    run = tmp_path / "roll"
    assert main(["train", "--data", "swiss_roll", "--steps", "5", "--T", "50", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "pts.png"
    assert main(["sample", "--run", str(run), "--n", "64", "--sampler", sampler, "--ddim-steps", "6",
                 "--out", str(out)]) == 0
    assert f'"sampler": "{sampler}"' in capsys.readouterr().out
    pts = np.load(tmp_path / "pts.npy")
    assert pts.shape == (64, 2) and np.isfinite(pts).all()


@pytest.mark.parametrize("steps", [2, 9, 40])
def test_stochastic_first_order_is_ddim_with_eta_one(diffusion, steps):
    eps = OptimalEps(diffusion)
    ddim = diffusion.ddim_sample(eps, (300, 1), steps=steps, eta=1.0, generator=torch.Generator().manual_seed(4),
                                 dtype=torch.float64)
    ours = diffusion.dpm_solver_sample(eps, (300, 1), steps=steps, order=1, spacing="uniform", stochastic=True,
                                       generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(ours, ddim, rtol=1e-10, atol=1e-10)


def test_stochastic_second_order_draws_the_data_distribution_and_beats_first_order(diffusion):
    """With few steps the SDE sampler's spread is biased; the bias must fall faster at order 2."""
    def draw_sde(order, steps):
        return diffusion.dpm_solver_sample(OptimalEps(diffusion), (20_000, 1), steps=steps, order=order,
                                           stochastic=True, generator=torch.Generator().manual_seed(8),
                                           dtype=torch.float64)

    x = draw_sde(2, 100)
    n = x.numel()
    assert abs(float(x.mean()) - M) < 5 * S / math.sqrt(n) + 0.01
    assert abs(float(x.std()) - S) < 5 * S / math.sqrt(2 * n) + 0.01
    bias1, bias2 = (abs(float(draw_sde(o, 50).std()) - S) for o in (1, 2))
    assert bias2 < bias1 / 4, (bias1, bias2)
