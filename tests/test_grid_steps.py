"""Chapter 13's steps and checks (ddpm_lite.book.grid): each holds, each could fail, and the numbers agree."""

import numpy as np
import pytest
import sympy as sp
import torch

from ddpm_lite import LevelPosteriorDenoiser, NoiseSchedule
from ddpm_lite.book import grid
from ddpm_lite.book.symbolic import abar_prev, alpha_t, check_identity, x_0, x_t


def test_every_step_holds_and_compares_two_different_expressions():
    steps = grid.grid_steps()
    assert len(steps) == 4
    for step in steps:
        assert step.holds, step.name
        assert sp.srepr(sp.sympify(step.lhs)) != sp.srepr(sp.sympify(step.rhs)), step.name


def test_mutations_of_the_steps_fail():
    x0h = grid.x0_hat
    err = grid.mean_error_step()
    # √ᾱ_t in place of √ᾱ_{t−1} (the reference's kind of slip) is refused.
    wrong = sp.sqrt(abar_prev * alpha_t) * (1 - alpha_t) / (1 - abar_prev * alpha_t) * (x_0 - x0h)
    assert not check_identity("mutated mean error", err.lhs, wrong).holds
    eps = grid.eps_from_x0_step()
    assert not check_identity("mutated ε-form", eps.lhs, eps.rhs.subs(x0h, x_0)).holds
    bayes = grid.bayes_softmax_step()
    assert not check_identity("softmax without the likelihood", bayes.lhs, bayes.lhs.subs(x_t, 0) * 0 + sp.Rational(1, 6)).holds
    best = grid.best_guess_step()
    a = sp.Symbol("a", real=True)
    assert not check_identity("mutated slope", best.lhs, best.rhs.subs(a, 2 * a)).holds


def test_the_package_posterior_matches_monte_carlo_frequencies():
    s = NoiseSchedule.linear(1000)
    m = LevelPosteriorDenoiser(s, 17)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        per_level = 2 * torch.randn(1, 17, 1, 1, generator=g)  # shared by all pixels, so pooling keeps it
        m.prior_logits.copy_(per_level + 0.5 * torch.randn(m.prior_logits.shape, generator=g))
    for t in (20, 200):
        r = grid.posterior_by_monte_carlo(m, t, n_images=2000)
        assert np.all(np.abs(r["freq"] - r["posterior"]) <= 5 * r["stderr"] + 2e-3), t
    # A mutation: the posterior without the prior is visibly off.
    with torch.no_grad():
        flat = LevelPosteriorDenoiser(s, 17)
    r_flat = grid.posterior_by_monte_carlo(flat, 200, n_images=2000)
    r_true = grid.posterior_by_monte_carlo(m, 200, n_images=2000)
    assert np.abs(r_true["freq"] - r_flat["posterior"]).max() > 0.05


def test_wrong_level_probability_against_simulation():
    s = NoiseSchedule.linear(1000)
    p = grid.wrong_level_probability(s, 17)
    g = torch.Generator().manual_seed(1)
    for t in (5, 10, 50):
        rate = grid.simulated_wrong_level_rate(s, 17, t, 200_000, g)
        se = (p[t - 1] * (1 - p[t - 1]) / 200_000) ** 0.5
        assert abs(rate - p[t - 1]) < 5 * se + 1e-6, (t, rate, p[t - 1])
    assert p[0] < 1e-6 and 0.1 < p[9] < 0.2 and np.all(np.diff(p) >= 0)
