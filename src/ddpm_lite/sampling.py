"""Samplers for a trained ε-model: ancestral (Ho et al. 2020, Algorithm 2) and DDIM.

Both are written for speed on a CPU as much as on a GPU: every per-step constant is
computed once per call in float64 and handed to torch as a Python float, the loop
updates x in place, draws noise into one reused buffer, and never asks the device
for a value (no host/device synchronisation until the caller reads the result).
Inputs are validated once, before the loop.
"""

from __future__ import annotations

import numpy as np
import torch

from . import checks
from .plumbing import EpsModel, NoiseBuffer, check_eps_model, check_generator, randn
from .plumbing import resolve_device, resolve_dtype
from .reverse import ReverseProcess

__all__ = ["ancestral_sample", "ddim_sample", "ddim_timesteps"]


def _check_call(eps_model: object, shape: object, generator: object) -> tuple[int, ...]:
    check_eps_model(eps_model)
    check_generator(generator)
    if isinstance(shape, (int, np.integer)) or not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2:
        raise ValueError(f"shape must be a tuple (batch, ...) such as (500, 2) or (16, 1, 8, 8), got shape={shape!r}.")
    for s in shape:
        checks.integer("every entry of shape", s, 1, what=f"a positive integer (batch first, e.g. (500, 2)); shape={tuple(shape)!r}")
    return tuple(int(s) for s in shape)


def ancestral_sample(diffusion: ReverseProcess, eps_model: EpsModel, shape: tuple[int, ...],
                     generator: torch.Generator | None = None, device: torch.device | str | None = None,
                     trajectory_every: int | None = None, clip_x0: bool = False, dtype: torch.dtype | None = None):
    """Draw x_0 by running p_θ from x_T ~ N(0, I) down to t = 1 (Algorithm 2, eq. ``sampling-step``).

    x_{t−1} = (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) ε_θ(x_t, t)) + σ_t z,  z ~ N(0, I) for t > 1 and
    z = 0 at t = 1, so the returned x_0 is the decoder mean μ_θ(x_1, 1) (no rounding to
    data levels: use :func:`ddpm_lite.data.from_model_range` for that).  σ_t² is the
    diffusion's ``variance`` choice (per element, from the model's v, when ``"learned"``).

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
        If set to k, also return a list of (t, x_t) for x_T, every t divisible by k, and
        x_0, in decreasing t: at most T//k + 2 tensors are kept.
    clip_x0:
        Clamp x̂_0 to [−1, 1] each step and step to μ̃_t(x_t, x̂_0) (images only).

    Runs under ``torch.inference_mode``; put the model in eval mode first.  The result is
    an inference tensor: ``.clone()`` it before using it where autograd records.
    """
    shape = _check_call(eps_model, shape, generator)
    trajectory_every = checks.integer("trajectory_every", trajectory_every, 1, allow_none=True)
    device, dtype = resolve_device(device, eps_model), resolve_dtype(dtype, eps_model)
    s, T = diffusion.schedule, diffusion.T
    # Per-step constants as Python floats: no tensor indexing, no device traffic in the loop.
    recip_sqrt_alpha = diffusion.recip_sqrt_alphas.tolist()
    eps_coef = diffusion.eps_coef.tolist()
    sigma = np.sqrt(diffusion.model_variance).tolist()
    # Learned Σ_θ: log σ = ½(v·log β_t + (1 − v)·log β̃_t), per element.
    half_hi, half_lo = (0.5 * diffusion.max_log_variance).tolist(), (0.5 * diffusion.min_log_variance).tolist()
    c_x0, c_eps = diffusion.sqrt_recip_alpha_bars.tolist(), diffusion.sqrt_recipm1_alpha_bars.tolist()
    post_x0, post_xt = s.posterior_mean_coef_x0.tolist(), s.posterior_mean_coef_xt.tolist()

    with torch.inference_mode():
        x = randn(shape, generator, device, dtype)
        noise = NoiseBuffer(x, generator)
        trajectory = [(T, x.clone())] if trajectory_every else None
        t_batch = torch.empty(shape[0], dtype=torch.long, device=device)
        for t in range(T, 0, -1):
            eps, v = diffusion.split_output(eps_model(x, t_batch.fill_(t)), x)
            if clip_x0:
                x0_hat = (x * c_x0[t]).sub_(eps, alpha=c_eps[t]).clamp_(-1.0, 1.0)
                x = x0_hat.mul_(post_x0[t]).add_(x, alpha=post_xt[t])
            else:
                x = x.sub_(eps, alpha=eps_coef[t]).mul_(recip_sqrt_alpha[t])
            if t > 1 and v is None:
                x.add_(noise(), alpha=sigma[t])
            elif t > 1:
                x.addcmul_(noise(), v.mul(half_hi[t] - half_lo[t]).add_(half_lo[t]).exp_())
            if trajectory is not None and ((t - 1) % trajectory_every == 0):
                trajectory.append((t - 1, x.clone()))
    return (x, trajectory) if trajectory is not None else x


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The ``steps`` timesteps τ_S > … > τ_1 DDIM visits: evenly spaced in 1..T, T first.

    ``steps = T`` gives every timestep, so DDIM with η = 1 is then the ancestral
    sampler with σ_t² = β̃_t.
    """
    steps = checks.integer("steps", steps, 1, T, what=f"an integer in 1..T (T={T})")
    taus = np.round(np.linspace(T, 1, int(steps))).astype(np.int64)
    return [int(v) for v in taus]


def ddim_sample(diffusion: ReverseProcess, eps_model: EpsModel, shape: tuple[int, ...], steps: int = 50,
                eta: float = 0.0, generator: torch.Generator | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) on the timesteps of :func:`ddim_timesteps`. DDIM is not derived in this book.

    From τ = t to the next visited step s (s = 0 after the last):
    x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t,
    σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s),
    x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε_θ + σ z.
    With ᾱ_0 = 1 the last step returns x̂_0 exactly.

    Parameters
    ----------
    steps:
        Number of model evaluations, 1..T (default 50).
    eta:
        Noise scale η ≥ 0: 0 is the deterministic DDIM sampler (x_T alone fixes x_0),
        1 with ``steps = T`` is ancestral sampling with σ_t² = β̃_t.
    generator, device, dtype:
        As for :func:`ancestral_sample`.  With η = 0 only x_T is random.
    """
    shape = _check_call(eps_model, shape, generator)
    T = diffusion.T
    taus = ddim_timesteps(T, steps)
    eta = checks.number("eta", eta, 0.0)
    device, dtype = resolve_device(device, eps_model), resolve_dtype(dtype, eps_model)
    s = diffusion.schedule
    a_bar, one_minus = s.alpha_bars, s.one_minus_alpha_bars
    # x_s = a·x_t + b·ε_θ + σ z with a = √(ᾱ_s/ᾱ_t), b = √(1 − ᾱ_s − σ²) − √ᾱ_s √((1 − ᾱ_t)/ᾱ_t).
    plan = []
    for i, t in enumerate(taus):
        prev = taus[i + 1] if i + 1 < len(taus) else 0
        # 1 − ᾱ_t/ᾱ_s = −expm1(log ᾱ_t − log ᾱ_s): accurate when the two steps are adjacent.
        ratio_gap = -np.expm1(np.log(a_bar[t]) - np.log(a_bar[prev]))
        sig = float(eta) * np.sqrt(one_minus[prev] / one_minus[t] * ratio_gap)
        a = np.sqrt(a_bar[prev] / a_bar[t])
        b = np.sqrt(max(one_minus[prev] - sig**2, 0.0)) - np.sqrt(a_bar[prev]) * diffusion.sqrt_recipm1_alpha_bars[t]
        plan.append((t, float(a), float(b), float(sig)))

    with torch.inference_mode():
        x = randn(shape, generator, device, dtype)
        noise = NoiseBuffer(x, generator)
        t_batch = torch.empty(shape[0], dtype=torch.long, device=device)
        for i, (t, a, b, sig) in enumerate(plan):
            eps = diffusion.split_output(eps_model(x, t_batch.fill_(t)), x)[0]  # DDIM ignores a learned v
            x = x.mul_(a).add_(eps, alpha=b)
            if sig > 0.0:
                x.add_(noise(), alpha=sig)
    return x
