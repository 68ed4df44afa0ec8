"""One sampler core: every sampler is a plan of per-step coefficients, run by one loop.

Each sampler here moves from a visited timestep t to the next one s < t (s = 0 last) by

    x_s = a·x_t + b·D + c·z,   z ~ N(0, I),   D = x̂_0 or a line through the last two x̂_0,

where x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ(x_t, t))/√ᾱ_t is the model's guess of the data.  The
samplers differ only in their coefficients (:func:`plan`):

* ``"ancestral"`` — Algorithm 2 of Ho et al. (eq. ``sampling-step``), every t: a and b are
  the posterior mean's coefficients (μ̃_t(x_t, x̂_0) is the ε-form step written through
  x̂_0) and c = σ_t from the diffusion's ``variance`` (per element from v when learned);
* ``"ddim"`` — DDIM(η) of Song et al. (2021, eq. 12) on evenly spaced steps;
* ``"dpm++"``, ``"dpm++sde"`` — DPM-Solver++(2M) of Lu et al. (2022) and its SDE form on
  the probability-flow ODE; D extrapolates x̂_0 linearly in the log-SNR λ (chapter 12).

A model with a learned variance returns (ε, v); the loop splits that output once per
step, whichever sampler runs.  Per-step constants are float64 numbers turned into Python
floats once per call; the loop updates x in place, draws noise into one reused buffer and
never reads a value back from the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np
import torch

from . import checks
from .spacing import SpacingKind, ddim_timesteps, log_snr, solver_timesteps
from .plumbing import EpsModel, NoiseBuffer, check_eps_model, check_generator, randn, resolve_device, resolve_dtype
from .reverse import ReverseProcess

__all__ = ["SamplerKind", "SAMPLER_KINDS", "SamplerConfig", "Step", "plan", "ancestral_plan", "ddim_plan",
           "dpm_solver_plan", "run_plan", "sample"]

#: The samplers, by name; the command line's ``--sampler`` choices are these.
SamplerKind = Literal["ancestral", "ddim", "dpm++", "dpm++sde"]
SAMPLER_KINDS: tuple[str, ...] = get_args(SamplerKind)
#: Model calls when ``steps`` is not given (at most T): ancestral visits every t.
DEFAULT_STEPS = {"ddim": 50, "dpm++": 20, "dpm++sde": 20}


@dataclass(frozen=True)
class SamplerConfig:
    """Which sampler, and its options: ``steps`` (model calls), ``eta`` (DDIM's noise scale η ≥ 0),
    ``order`` (1 or 2, DPM-Solver++) and ``spacing`` (the solver's grid, see :mod:`ddpm_lite.spacing`).

    An option that does not apply to ``kind`` must be left unset, so a typo cannot pass silently.
    """

    kind: SamplerKind = "ancestral"
    steps: int | None = None
    eta: float | None = None
    order: int | None = None
    spacing: SpacingKind | None = None

    def checked(self, T: int) -> "SamplerConfig":
        """This configuration with every option checked and every default filled in for a chain of T steps."""
        kind = checks.choice("sampler", self.kind, SAMPLER_KINDS)
        unused = [f"{n}={getattr(self, n)!r}" for n, users in (("eta", ("ddim",)), ("order", ("dpm++", "dpm++sde")),
                                                              ("spacing", ("dpm++", "dpm++sde")))
                  if getattr(self, n) is not None and kind not in users]
        if unused:
            raise ValueError(f"{', '.join(unused)} does not apply to sampler {kind!r}; leave it unset.")
        if kind == "ancestral":
            if self.steps not in (None, T):
                raise ValueError(f"the ancestral sampler visits all T={T} steps, got steps={self.steps!r}; for fewer "
                                 "steps use sampler 'ddim' (eta=1.0 is its ancestral-like form) or 'dpm++'.")
            return SamplerConfig("ancestral", T)
        steps = min(DEFAULT_STEPS[kind], T) if self.steps is None else self.steps
        steps = checks.integer("steps", steps, 1, T, what=f"an integer in 1..T (T={T}) model evaluations")
        if kind == "ddim":
            return SamplerConfig(kind, steps, eta=checks.number("eta", 0.0 if self.eta is None else self.eta, 0.0))
        order = checks.integer("order", 2 if self.order is None else self.order, 1, 2,
                               what="1 (DDIM's step) or 2 (DPM-Solver++(2M))")
        return SamplerConfig(kind, steps, order=order, spacing=self.spacing or "logsnr")


class Step(NamedTuple):
    """One move t → s:  x̂_0 = c_x0·x_t − c_eps·ε,  D = (1 + w)·x̂_0 − w·x̂_0,prev,  x_s = a·x_t + b·D + c·z.

    ``log_c`` is (log c at v = 0, log c at v = 1) where c follows a learned variance
    (σ = exp(v·log_c[1] + (1 − v)·log_c[0]) per element), else None.
    """

    t: int
    c_x0: float
    c_eps: float
    a: float
    b: float
    c: float
    w: float = 0.0
    log_c: tuple[float, float] | None = None


def _step(d: ReverseProcess, t: int, a: float, b: float, c: float, w: float = 0.0, log_c: tuple | None = None) -> Step:
    # x̂_0's coefficients are the diffusion's own (ReverseProcess.predict_x0), for every sampler.
    return Step(int(t), float(d.sqrt_recip_alpha_bars[t]), float(d.sqrt_recipm1_alpha_bars[t]), float(a), float(b),
                float(c), float(w), None if log_c is None else (float(log_c[0]), float(log_c[1])))


def ancestral_plan(diffusion: ReverseProcess) -> list[Step]:
    """Algorithm 2: x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t z for t = T..1, z = 0 at t = 1 (eq. ``sampling-step``)."""
    s = diffusion.schedule
    sigma = np.sqrt(diffusion.model_variance)
    half_lo, half_hi = 0.5 * diffusion.min_log_variance, 0.5 * diffusion.max_log_variance
    steps = []
    for t in range(diffusion.T, 0, -1):
        a, b = s.posterior_mean_coef_xt[t], s.posterior_mean_coef_x0[t]  # a·x_t + b·x̂_0 = μ̃_t(x_t, x̂_0)
        c = sigma[t] if t > 1 else 0.0  # z = 0 at t = 1
        learned = diffusion.learned_variance and t > 1  # then σ_t per element from the model's v
        steps.append(_step(diffusion, t, a, b, c, log_c=(half_lo[t], half_hi[t]) if learned else None))
    return steps


def ddim_plan(diffusion: ReverseProcess, taus: list[int], eta: float) -> list[Step]:
    """DDIM(η): x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε_θ + σ z with σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s).

    Written through x̂_0 (ε_θ = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t)): a = √(1 − ᾱ_s − σ²)/√(1 − ᾱ_t),
    b = √ᾱ_s − a √ᾱ_t.  With ᾱ_0 = 1 the last step returns x̂_0.
    """
    s = diffusion.schedule
    a_bar, one_minus = s.alpha_bars, s.one_minus_alpha_bars
    steps = []
    for i, t in enumerate(taus):
        prev = taus[i + 1] if i + 1 < len(taus) else 0
        # 1 − ᾱ_t/ᾱ_s = −expm1(log ᾱ_t − log ᾱ_s): accurate when the two steps are adjacent.
        ratio_gap = -np.expm1(np.log(a_bar[t]) - np.log(a_bar[prev]))
        sig = float(eta) * np.sqrt(one_minus[prev] / one_minus[t] * ratio_gap)
        a = np.sqrt(max(one_minus[prev] - sig**2, 0.0)) / np.sqrt(one_minus[t])
        steps.append(_step(diffusion, t, a, np.sqrt(a_bar[prev]) - a * np.sqrt(a_bar[t]), sig))
    return steps


def dpm_solver_plan(diffusion: ReverseProcess, taus: list[int], order: int, stochastic: bool) -> list[Step]:
    """DPM-Solver++ (data prediction, multistep): h = λ_s − λ_t, written through expm1 so short steps keep their digits.

    ODE: a = σ_s/σ_t, b = α_s(1 − e^{−h}), c = 0.  SDE (SDE-DPM-Solver++): a = (σ_s/σ_t)e^{−h},
    b = α_s(1 − e^{−2h}), c = σ_s √(1 − e^{−2h}); to first order the posterior step of
    q(x_s | x_t, x̂_0), DDIM with η = 1.  The last step (s = 0, h = ∞) is x_0 = x̂_0.
    w = 1/(2r), r = h_prev/h, weighs the line through the last two x̂_0 (order 2); it is 0 on
    the first step (no history), on the second (the guess at t = T, where α_T ≈ 0.006
    magnifies every error of ε_θ about 150-fold, is no point to draw a line through) and on
    the last (a line extrapolated to λ = ∞ is meaningless).
    """
    s = diffusion.schedule
    lam = log_snr(s)
    alpha, sigma = np.sqrt(s.alpha_bars), np.sqrt(s.one_minus_alpha_bars)
    grid = list(taus) + [0]
    steps = []
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
        steps.append(_step(diffusion, t, a, b, c, w))
    return steps


def plan(diffusion: ReverseProcess, config: SamplerConfig | SamplerKind) -> list[Step]:
    """The coefficients of the sampler ``config`` (a :class:`SamplerConfig` or a sampler's name) on this chain."""
    cfg = (config if isinstance(config, SamplerConfig) else SamplerConfig(config)).checked(diffusion.T)
    if cfg.kind == "ancestral":
        return ancestral_plan(diffusion)
    if cfg.kind == "ddim":
        return ddim_plan(diffusion, ddim_timesteps(diffusion.T, cfg.steps), cfg.eta)
    taus = solver_timesteps(diffusion.schedule, cfg.steps, cfg.spacing)
    return dpm_solver_plan(diffusion, taus, cfg.order, stochastic=cfg.kind == "dpm++sde")


def _check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) or not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2:
        raise ValueError(f"shape must be a tuple (batch, ...) such as (500, 2) or (16, 1, 8, 8), got shape={shape!r}.")
    for s in shape:
        checks.integer("every entry of shape", s, 1, what=f"a positive integer (batch first, e.g. (500, 2)); shape={tuple(shape)!r}")
    return tuple(int(s) for s in shape)


def run_plan(diffusion: ReverseProcess, eps_model: EpsModel, steps: list[Step], x: torch.Tensor,
             generator: torch.Generator | None = None, trajectory_every: int | None = None,
             clip_x0: bool = False) -> tuple[torch.Tensor, list | None]:
    """Run ``steps`` from x = x_T (updated in place): the one loop every sampler shares.

    Returns (x_0, trajectory): with ``trajectory_every`` = k, the list of (t, x_t) for x_T,
    every visited t divisible by k, and x_0, else None.  Call under ``torch.inference_mode``.
    """
    noise = NoiseBuffer(x, generator)
    trajectory = [(steps[0].t, x.clone())] if trajectory_every else None
    t_batch = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    x0_prev = None
    for i, st in enumerate(steps):
        eps, v = diffusion.split_output(eps_model(x, t_batch.fill_(st.t)), x)
        x0 = (x * st.c_x0).sub_(eps, alpha=st.c_eps)
        if clip_x0:
            x0.clamp_(-1.0, 1.0)
        d = x0 if st.w == 0.0 else (x0 * (1.0 + st.w)).sub_(x0_prev, alpha=st.w)
        if st.a == 0.0:  # a last step: x_0 = b·D (b = 1 up to rounding)
            x = d if st.b == 1.0 else d * st.b
        else:
            x = x.mul_(st.a).add_(d, alpha=st.b)
        if st.log_c is not None and v is not None:
            lo, hi = st.log_c
            x.addcmul_(noise(), v.mul(hi - lo).add_(lo).exp_())
        elif st.c > 0.0:
            x.add_(noise(), alpha=st.c)
        x0_prev = x0
        s = steps[i + 1].t if i + 1 < len(steps) else 0
        if trajectory is not None and s % trajectory_every == 0:
            trajectory.append((s, x.clone()))
    return x, trajectory


def sample(diffusion: ReverseProcess, eps_model: EpsModel, shape: tuple[int, ...],
           sampler: SamplerConfig | SamplerKind = "ancestral", *, generator: torch.Generator | None = None,
           device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           trajectory_every: int | None = None, clip_x0: bool = False):
    """Draw samples of ``shape`` with ``sampler`` (a name of :data:`SAMPLER_KINDS` or a :class:`SamplerConfig`).

    Parameters
    ----------
    shape:
        (batch, ...) of the samples, e.g. (5000, 2) or (64, 1, 8, 8).
    generator:
        Source of all randomness (x_T and every z); the same seed gives the same samples.
    device, dtype:
        Where and in which precision to sample; default: those of the model's first
        floating parameter (CPU/float32 for a plain function).  ``device="auto"`` picks
        cuda, then mps, then cpu.
    trajectory_every:
        k: also return the list of (t, x_t) for x_T, every visited t divisible by k, and
        x_0, in decreasing t (at most T//k + 2 tensors are kept).
    clip_x0:
        Clamp x̂_0 to [−1, 1] each step (images only).

    No rounding to data levels: use :func:`ddpm_lite.data.from_model_range` for that.  Runs
    under ``torch.inference_mode``; put the model in eval mode first.  The result is an
    inference tensor: ``.clone()`` it before using it where autograd records.
    """
    check_eps_model(eps_model)
    check_generator(generator)
    shape = _check_shape(shape)
    trajectory_every = checks.integer("trajectory_every", trajectory_every, 1, allow_none=True)
    steps = plan(diffusion, sampler)
    device, dtype = resolve_device(device, eps_model), resolve_dtype(dtype, eps_model)
    with torch.inference_mode():
        x, trajectory = run_plan(diffusion, eps_model, steps, randn(shape, generator, device, dtype), generator,
                                 trajectory_every, bool(clip_x0))
    return (x, trajectory) if trajectory is not None else x
