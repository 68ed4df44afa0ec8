"""Few-step ODE samplers: DPM-Solver++ (Lu et al. 2022) on timestep grids chosen for few steps.

The deterministic samplers follow the probability-flow ODE of the forward process
x_t = α_t x_0 + σ_t ε with α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t).  In the log-SNR
λ_t = log(α_t/σ_t) its exact solution from t to s < t is

    x_s = (σ_s/σ_t) x_t + σ_s ∫_{λ_t}^{λ_s} e^λ x̂_0(λ) dλ,

where x̂_0 = (x − σ ε_θ)/α is the model's guess of the data.  Holding x̂_0 constant over
the step gives DDIM (first order); extrapolating it linearly in λ from the previous
step's guess gives DPM-Solver++(2M), second order at the price of one stored tensor and
no extra model call.  The derivation, with checks, is chapter 12 of the book.

Timesteps stay the paper's integers 1..T (the models only know those); the grid is
chosen by ``spacing``:

* ``"uniform"`` — evenly spaced in t, as :func:`ddpm_lite.sampling.ddim_timesteps`;
* ``"quadratic"`` — t ∝ i² (Song et al. 2021, appendix D.2): denser near the data;
* ``"logsnr"`` — evenly spaced in λ (Lu et al.'s choice): the step size the solver's
  error analysis measures in;
* ``"karras"`` — evenly spaced in σ^{1/7} with σ = e^{−λ} the noise-to-signal ratio
  (Karras et al. 2022, ρ = 7): denser still near the data, where thin structure forms.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from . import checks
from .plumbing import (
    EpsModel,
    NoiseBuffer,
    check_model_output,
    randn,
    resolve_device,
    resolve_dtype,
)
from .reverse import ReverseProcess
from .sampling import _check_call, ddim_timesteps

__all__ = ["SPACING_KINDS", "SpacingKind", "dpm_solver_sample", "solver_timesteps"]

#: Timestep grids for :func:`dpm_solver_sample`.
SpacingKind = Literal["uniform", "quadratic", "logsnr", "karras"]
SPACING_KINDS: tuple[str, ...] = get_args(SpacingKind)


def _strictly_decreasing(taus: np.ndarray, T: int) -> list[int]:
    """Round to integers in 1..T and push apart equal neighbours, keeping the count.

    A grid in λ or t² crowds its smallest steps together; rounding can then merge them.
    Walking up from t = 1 each step is lifted to at least one above the previous, and
    walking down from T each is lowered below the next, so S distinct steps survive.
    """
    a = np.sort(np.clip(np.round(taus), 1, T).astype(np.int64))
    for i in range(1, len(a)):
        a[i] = max(a[i], a[i - 1] + 1)
    a[-1] = min(a[-1], T)
    for i in range(len(a) - 2, -1, -1):
        a[i] = min(a[i], a[i + 1] - 1)
    return [int(v) for v in a[::-1]]


def solver_timesteps(diffusion: ReverseProcess, steps: int, spacing: SpacingKind = "logsnr") -> list[int]:
    """The ``steps`` distinct timesteps T = τ_S > … > τ_1 ≥ 1 a few-step sampler visits.

    Every grid starts at T (where x_T ~ N(0, I) is drawn) and ends at 1; the sampler's
    last move is from τ_1 to the data, t = 0.  See the module docstring for the spacings.
    """
    T = diffusion.T
    steps = checks.integer("steps", steps, 1, T, what=f"an integer in 1..T (T={T}) model evaluations")
    checks.choice("spacing", spacing, SPACING_KINDS)
    if spacing == "uniform" or steps == 1:
        return ddim_timesteps(T, steps)  # the same grid, so order 1 is DDIM step for step
    u = np.linspace(0.0, 1.0, steps)  # 0 at τ_1 = 1, 1 at τ_S = T
    if spacing == "quadratic":
        taus = 1 + u**2 * (T - 1)
    else:
        lam = _log_snr(diffusion)
        if spacing == "logsnr":
            targets = lam[1] + u * (lam[T] - lam[1])  # λ falls as t grows
        else:  # σ = e^{−λ}; ρ = 7 as recommended by Karras et al.
            rho_root = np.exp(-lam[1] / 7) + u * (np.exp(-lam[T] / 7) - np.exp(-lam[1] / 7))
            targets = -7 * np.log(rho_root)
        # λ_t is strictly decreasing in t, so interpolate t as a function of λ.
        taus = np.interp(targets, lam[1:][::-1], np.arange(T, 0, -1, dtype=np.float64))
    return _strictly_decreasing(taus, T)


def _log_snr(diffusion: ReverseProcess) -> np.ndarray:
    """λ_t = log α_t − log σ_t for t = 0..T in float64 (λ_0 = +inf: ᾱ_0 = 1)."""
    s = diffusion.schedule
    with np.errstate(divide="ignore"):
        return 0.5 * (np.log(s.alpha_bars) - np.log(s.one_minus_alpha_bars))


def _plan(diffusion: ReverseProcess, taus: list[int], order: int, stochastic: bool) -> list[tuple]:
    """Per step (t, a, b, c, c_x0, c_eps, w): x_s = a·x_t + b·D + c·z, D the (extrapolated) x̂_0.

    ODE: a = σ_s/σ_t, b = α_s(1 − e^{−h}), c = 0, with h = λ_s − λ_t written through expm1
    so that short steps keep their digits.  SDE (Lu et al.'s SDE-DPM-Solver++): a =
    (σ_s/σ_t)e^{−h}, b = α_s(1 − e^{−2h}), c = σ_s√(1 − e^{−2h}); to first order that is
    the posterior step of q(x_s | x_t, x̂_0), DDIM with η = 1.  The last step (s = 0,
    h = ∞) is a = 0, b = 1, c = 0 in both: x_0 = x̂_0.
    w = 1/(2r), r = h_prev/h, weighs the linear extrapolation D = (1 + w) x̂_0 − w x̂_0,prev;
    it is 0 on the first step (no history), on the second (the guess at t = T, where
    α_T ≈ 0.006 magnifies every error of ε_θ about 150-fold, is no point to draw a line
    through) and on the last (an infinite step: a line extrapolated to λ = ∞ is meaningless).
    """
    s = diffusion.schedule
    lam = _log_snr(diffusion)
    alpha, sigma = np.sqrt(s.alpha_bars), np.sqrt(s.one_minus_alpha_bars)
    grid = list(taus) + [0]
    plan = []
    for i, t in enumerate(taus):
        nxt = grid[i + 1]
        a, b, c, w = 0.0, 1.0, 0.0, 0.0
        if nxt != 0:
            h = lam[nxt] - lam[t]
            if stochastic:
                a, b = sigma[nxt] / sigma[t] * np.exp(-h), -alpha[nxt] * np.expm1(-2 * h)
                c = sigma[nxt] * np.sqrt(-np.expm1(-2 * h))
            else:
                a, b = sigma[nxt] / sigma[t], -alpha[nxt] * np.expm1(-h)
            if order == 2 and i >= 2:
                w = 0.5 * h / (lam[t] - lam[grid[i - 1]])
        plan.append((int(t), float(a), float(b), float(c), float(1.0 / alpha[t]), float(sigma[t] / alpha[t]), float(w)))
    return plan


def dpm_solver_sample(diffusion: ReverseProcess, eps_model: EpsModel, shape: tuple[int, ...], steps: int = 20,
                      order: int = 2, spacing: SpacingKind = "logsnr", stochastic: bool = False,
                      generator: torch.Generator | None = None,
                      device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Deterministic sampling with DPM-Solver++ (data prediction, multistep) in ``steps`` model calls.

    From τ = t to the next visited step s, with h = λ_s − λ_t and x̂_0 = (x_t − σ_t ε_θ)/α_t:

    * ``order=1``: x_s = (σ_s/σ_t) x_t + α_s(1 − e^{−h}) x̂_0 — exactly DDIM with η = 0;
    * ``order=2`` (2M): the same with x̂_0 replaced by (1 + 1/(2r)) x̂_0 − 1/(2r) x̂_0,prev,
      r = h_prev/h, the line through the last two guesses evaluated mid-step.

    The first two steps (no usable previous guess) and the last (to t = 0) are first
    order; the last returns x̂_0 at τ_1.  ``stochastic=True`` takes the SDE form of the same
    solver, which adds fresh noise every step; otherwise only x_T is random.  Either way the
    same ``generator`` state gives the same samples.

    Parameters
    ----------
    steps:
        Model evaluations, 1..T (default 20).
    order:
        1 or 2 (default 2).
    spacing:
        ``"logsnr"`` (default), ``"quadratic"`` or ``"uniform"``: see :func:`solver_timesteps`.
    stochastic:
        False (default): the probability-flow ODE.  True: SDE-DPM-Solver++, whose first-order
        step is DDIM with η = 1; the noise it adds corrects part of the model's error, which
        can pay on data with thin structure (see ``benchmarks/README.md``).
    generator, device, dtype:
        As for :func:`ddpm_lite.sampling.ancestral_sample`.
    """
    shape = _check_call(eps_model, shape, generator)
    order = checks.integer("order", order, 1, 2, what="1 (DDIM) or 2 (DPM-Solver++(2M))")
    plan = _plan(diffusion, solver_timesteps(diffusion, steps, spacing), order, bool(stochastic))
    device, dtype = resolve_device(device, eps_model), resolve_dtype(dtype, eps_model)
    with torch.inference_mode():
        x = randn(shape, generator, device, dtype)
        noise = NoiseBuffer(x, generator)
        t_batch = torch.empty(shape[0], dtype=torch.long, device=device)
        prev_x0 = None
        for i, (t, a, b, c, c_x0, c_eps, w) in enumerate(plan):
            eps = eps_model(x, t_batch.fill_(t))
            if i == 0:
                check_model_output(eps, x)
            x0 = (x * c_x0).sub_(eps, alpha=c_eps)
            d = x0 if w == 0.0 else (x0 * (1.0 + w)).sub_(prev_x0, alpha=w)
            x = d if a == 0.0 else x.mul_(a).add_(d, alpha=b)  # the last step: x_0 = x̂_0
            if c > 0.0:
                x.add_(noise(), alpha=c)
            prev_x0 = x0
    return x
