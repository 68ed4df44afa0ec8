"""Chapter 13 (using the grid): the steps behind :class:`ddpm_lite.LevelPosteriorDenoiser`, and its checks.

The sympy steps follow the chapter: what x̂_0 the bound wants (the posterior mean), what the
bound charges for a wrong one (the mean error through μ̃_t), Bayes' rule over the K levels
as a softmax, and the ε that x̂_0 implies.  The numerical checks compare the package's
posterior over levels with Monte-Carlo frequencies, and give the chance that the likelihood
alone picks the wrong level at step t.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
import torch

from ..nets.levels import LevelPosteriorDenoiser, level_values
from ..schedule import NoiseSchedule
from .symbolic import (RELATIONS, Step, abar_prev, abar_t, alpha_t, beta_t, check_identity, complete_the_square,
                       log_normal, mu_theta_eps, to_free, x_0, x_t)

__all__ = ["x0_hat", "best_guess_step", "mean_error_step", "eps_from_x0_step", "bayes_softmax_step", "grid_steps",
           "wrong_level_probability", "simulated_wrong_level_rate", "posterior_by_monte_carlo"]

#: x̂_0, the model's guess of x_0.
x0_hat = sp.Symbol(r"\hat{x}_0", real=True)


def best_guess_step(K: int = 3) -> Step:
    """d/da Σ_k π_k (a − c_k)² = 2 (Σ_k π_k)(a − Σ_k π_k c_k / Σ_k π_k): zero at the posterior mean."""
    a = sp.Symbol("a", real=True)
    pis = sp.symbols(f"pi_1:{K + 1}", positive=True)
    cs = sp.symbols(f"c_1:{K + 1}", real=True)
    total = sum(pis)
    lhs = sp.diff(sum(p * (a - c) ** 2 for p, c in zip(pis, cs)), a)
    return check_identity("∂/∂x̂₀ of the expected squared error", lhs, 2 * total * (a - sum(p * c for p, c in zip(pis, cs)) / total))


def mean_error_step() -> Step:
    """μ̃_t(x_t, x_0) − μ̃_t(x_t, x̂_0) = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · (x_0 − x̂_0), from chapter 4's completed square."""
    mean = complete_the_square()["mean"]  # in x_0, x_t and the free symbols α_t, ᾱ_{t−1}
    lhs = mean - mean.subs(x_0, x0_hat)
    rhs = to_free(sp.sqrt(abar_prev) * beta_t / (1 - abar_t) * (x_0 - x0_hat))
    return check_identity("μ̃(xₜ, x₀) − μ̃(xₜ, x̂₀)", lhs, rhs)


def eps_from_x0_step() -> Step:
    """With ε_θ = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t), chapter 5's ε-form mean is μ̃_t(x_t, x̂_0)."""
    eps_theta = sp.Symbol(r"epsilon_theta", real=True)
    eps_of_x0 = (x_t - sp.sqrt(abar_t) * x0_hat) / sp.sqrt(1 - abar_t)
    lhs = to_free(mu_theta_eps.subs(eps_theta, eps_of_x0))
    rhs = complete_the_square()["mean"].subs(x_0, x0_hat)
    return check_identity("μ_θ with ε_θ from x̂₀", lhs, rhs)


def bayes_softmax_step(K: int = 3) -> Step:
    """Bayes' rule over K levels, π_k N(x_t; √ᾱ c_k, 1 − ᾱ) / Σ_j π_j N(x_t; √ᾱ c_j, 1 − ᾱ), is a softmax of
    log π_k − (x_t − √ᾱ c_k)²/(2(1 − ᾱ)): the Gaussian's constant and its x_t² term cancel."""
    pis = sp.symbols(f"pi_1:{K + 1}", positive=True)
    cs = sp.symbols(f"c_1:{K + 1}", real=True)
    a = sp.Symbol(r"\bar{\alpha}_t", positive=True)
    joint = [p * sp.exp(log_normal(x_t, sp.sqrt(a) * c, 1 - a)) for p, c in zip(pis, cs)]
    scores = [sp.log(p) - (x_t - sp.sqrt(a) * c) ** 2 / (2 * (1 - a)) for p, c in zip(pis, cs)]
    lhs = joint[0] / sum(joint)
    rhs = sp.exp(scores[0]) / sum(sp.exp(s) for s in scores)
    return check_identity("Bayes over the levels as a softmax", lhs, rhs,
                          points=[{a: sp.Rational(1, 2), x_t: sp.Rational(1, 3), **dict(zip(pis, (1, 2, 3))),
                                   **dict(zip(cs, (-1, 0, 1)))}])


def grid_steps() -> list[Step]:
    """Every step of chapter 13, in the order the chapter shows them."""
    return [best_guess_step(), mean_error_step(), eps_from_x0_step(), bayes_softmax_step()]


def wrong_level_probability(schedule: NoiseSchedule, num_levels: int) -> np.ndarray:
    """P(the likelihood alone picks a wrong level) at t = 1..T for an interior level, uniform prior.

    The boundary between neighbouring levels c and c + h (h = 2/(K − 1)) lies at √ᾱ_t (c + h/2),
    so the pick is wrong when |√(1 − ᾱ_t) ε| > √ᾱ_t h/2: probability 2 Φ(−√ᾱ_t h / (2√(1 − ᾱ_t))).
    """
    ab = np.asarray(schedule.alpha_bars[1:], dtype=np.float64)
    z = np.sqrt(ab) * (1.0 / (num_levels - 1)) / np.sqrt(1.0 - ab)
    return np.array([math.erfc(v / math.sqrt(2.0)) for v in z])


def simulated_wrong_level_rate(schedule: NoiseSchedule, num_levels: int, t: int, n: int,
                               generator: torch.Generator) -> float:
    """How often the level nearest to x_t/√ᾱ_t is not the true one, by simulation: ``n`` draws of
    x_t for the interior level c = 0 (the uniform-prior pick that :func:`wrong_level_probability`
    gives in closed form)."""
    ab = float(schedule.alpha_bars[t])
    h = 2.0 / (num_levels - 1)
    xt = (1 - ab) ** 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    nearest = torch.round((xt / ab**0.5 + 1) / h) * h - 1
    return float((nearest.abs() > 1e-9).double().mean())


def posterior_by_monte_carlo(model: LevelPosteriorDenoiser, t: int, n_images: int = 4000, bins: int = 30,
                             seed: int = 0) -> dict[str, np.ndarray]:
    """The model's posterior over levels against Monte-Carlo frequencies, with the network's logits at zero.

    Draws every pixel of ``n_images`` images from the model's per-pixel prior (its
    ``prior_logits``), noises them to x_t, and sorts the x_t values into ``bins`` bins of equal
    count.  In each bin it compares how often each level produced those x_t with the model's
    posterior averaged over the same x_t: by the tower rule, E[1{x_0 = c_k} | bin] =
    E[p(c_k | x_t) | bin], so the two agree up to Monte-Carlo error whatever the bin width.
    Returns ``freq``, ``posterior``, ``stderr`` (bins × K; the standard error a frequency has
    if the posterior is right, √(p(1 − p)/n)) and the bins' mean x_t, ``centres``.
    """
    g = torch.Generator().manual_seed(seed)
    k, (h, w) = model.num_levels, model.image_size
    prior = torch.softmax(model.prior_logits.detach().double(), dim=1)  # (C, K, H, W)
    c = prior.shape[0]
    flat = prior.permute(0, 2, 3, 1).reshape(-1, k)  # one row per pixel
    idx = torch.multinomial(flat, n_images, replacement=True, generator=g).T.reshape(n_images, c, h, w)
    x0 = level_values(k)[idx]
    ab = float(model.sqrt_alpha_bar[t].double() ** 2)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        zero = torch.zeros(n_images, c, k, h, w)
        post = torch.softmax(model.level_log_posterior(xt.float(), torch.full((n_images,), t), zero).double(), dim=2)
    xt_flat, idx_flat = xt.flatten(), idx.flatten()
    post_flat = post.permute(0, 1, 3, 4, 2).reshape(-1, k)
    order = torch.argsort(xt_flat)
    freq, mean_post, se, centres = [], [], [], []
    for chunk in order.tensor_split(bins):
        onehot = torch.nn.functional.one_hot(idx_flat[chunk], k).double()
        f = onehot.mean(0)
        freq.append(f)
        mp = post_flat[chunk].mean(0)
        se.append(torch.sqrt(mp * (1 - mp) / len(chunk)))  # the spread a count has if the posterior is right
        mean_post.append(mp)
        centres.append(xt_flat[chunk].mean())
    return {"centres": torch.stack(centres).numpy(), "freq": torch.stack(freq).numpy(),
            "posterior": torch.stack(mean_post).numpy(), "stderr": torch.stack(se).numpy()}
