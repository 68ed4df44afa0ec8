"""Timestep grids for few-step samplers: which of the paper's integer steps 1..T to visit.

The ODE samplers of :mod:`ddpm_lite.sampling` follow the probability-flow ODE of the forward
process x_t = α_t x_0 + σ_t ε with α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t); its natural time is the
log-SNR λ_t = log(α_t/σ_t).  Timesteps stay integers 1..T (the models only know those); the
grid is chosen by ``spacing``:

* ``"uniform"`` — evenly spaced in t, as :func:`ddim_timesteps`;
* ``"quadratic"`` — t ∝ i² (Song et al. 2021, appendix D.2): denser near the data;
* ``"logsnr"`` — evenly spaced in λ (Lu et al.'s choice): the step size the solver's
  error analysis measures in;
* ``"karras"`` — evenly spaced in σ^{1/7} with σ = e^{−λ} the noise-to-signal ratio
  (Karras et al. 2022, ρ = 7): denser still near the data, where thin structure forms.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from . import checks
from .schedule import NoiseSchedule

__all__ = ["SPACING_KINDS", "SpacingKind", "ddim_timesteps", "solver_timesteps", "log_snr"]

#: Timestep grids for the DPM-Solver++ samplers.
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


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The ``steps`` timesteps τ_S > … > τ_1 DDIM visits: evenly spaced in 1..T, T first.

    ``steps = T`` gives every timestep, so DDIM with η = 1 is then the ancestral
    sampler with σ_t² = β̃_t.
    """
    steps = checks.integer("steps", steps, 1, T, what=f"an integer in 1..T (T={T})")
    taus = np.round(np.linspace(T, 1, int(steps))).astype(np.int64)
    return [int(v) for v in taus]


def solver_timesteps(schedule: NoiseSchedule, steps: int, spacing: SpacingKind = "logsnr") -> list[int]:
    """The ``steps`` distinct timesteps T = τ_S > … > τ_1 ≥ 1 a few-step sampler visits.

    Every grid starts at T (where x_T ~ N(0, I) is drawn) and ends at 1; the sampler's
    last move is from τ_1 to the data, t = 0.  See the module docstring for the spacings.
    ``schedule`` may also be a diffusion (its ``schedule`` is used).
    """
    schedule = getattr(schedule, "schedule", schedule)
    T = schedule.T
    steps = checks.integer("steps", steps, 1, T, what=f"an integer in 1..T (T={T}) model evaluations")
    checks.choice("spacing", spacing, SPACING_KINDS)
    if spacing == "uniform" or steps == 1:
        return ddim_timesteps(T, steps)  # the same grid, so order 1 is DDIM step for step
    u = np.linspace(0.0, 1.0, steps)  # 0 at τ_1 = 1, 1 at τ_S = T
    if spacing == "quadratic":
        taus = 1 + u**2 * (T - 1)
    else:
        lam = log_snr(schedule)
        if spacing == "logsnr":
            targets = lam[1] + u * (lam[T] - lam[1])  # λ falls as t grows
        else:  # σ = e^{−λ}; ρ = 7 as recommended by Karras et al.
            rho_root = np.exp(-lam[1] / 7) + u * (np.exp(-lam[T] / 7) - np.exp(-lam[1] / 7))
            targets = -7 * np.log(rho_root)
        # λ_t is strictly decreasing in t, so interpolate t as a function of λ.
        taus = np.interp(targets, lam[1:][::-1], np.arange(T, 0, -1, dtype=np.float64))
    return _strictly_decreasing(taus, T)


def log_snr(schedule: NoiseSchedule) -> np.ndarray:
    """λ_t = log α_t − log σ_t for t = 0..T in float64 (λ_0 = +inf: ᾱ_0 = 1)."""
    s = schedule
    with np.errstate(divide="ignore"):
        return 0.5 * (np.log(s.alpha_bars) - np.log(s.one_minus_alpha_bars))
