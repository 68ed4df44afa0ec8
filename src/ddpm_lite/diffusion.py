"""GaussianDiffusion: the forward process q, and (later) the reverse process and its losses.

One method per equation of the book; the docstring of each names the equation label
it implements.  Timesteps are the paper's t = 1..T, given as integer tensors of
shape (batch,).
"""

from __future__ import annotations

import numpy as np
import torch

from .gaussian import nats_to_bits_per_dim, normal_kl
from .schedule import NoiseSchedule

__all__ = ["GaussianDiffusion"]


class GaussianDiffusion:
    """The DDPM forward (and reverse) process over a fixed :class:`NoiseSchedule`."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a ddpm_lite.NoiseSchedule, got {type(schedule).__name__}.")
        self.schedule = schedule
        self.T = schedule.T
        self._tables: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}

    def _coef(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``schedule.<name>[t]`` cast to ``like``'s dtype/device, shaped to broadcast against it.

        Each table is cast once per (device, dtype) and cached, so a training step does
        not copy T + 1 constants to the GPU every time.
        """
        key = (name, like.device, like.dtype)
        table = self._tables.get(key)
        if table is None:
            arr = np.ascontiguousarray(getattr(self.schedule, name))
            table = self._tables[key] = torch.tensor(arr, dtype=like.dtype).to(like.device)
        return table[t.to(like.device)].reshape(t.shape[0], *([1] * (like.dim() - 1)))

    # ------------------------------------------------------------------ checks
    def _check_x(self, x: torch.Tensor, name: str = "x0") -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if not torch.is_floating_point(x):
            raise ValueError(f"{name} must be a floating tensor, got dtype {x.dtype}; convert with .float().")
        if x.dim() < 2:
            raise ValueError(f"{name} must have a batch dimension first, shape (batch, ...), got shape {tuple(x.shape)}.")

    def _check_t(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}.")
        self.schedule.check_t(t)
        return t.long()

    # ------------------------------------------------------------------ forward process
    def q_step_sample(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """One forward step x_t ~ q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I) (eq. ``forward-step``)."""
        self._check_x(x_prev, "x_prev")
        t = self._check_t(t, x_prev)
        if noise is None:
            noise = torch.randn(x_prev.shape, generator=generator, device=x_prev.device, dtype=x_prev.dtype)
        return self._coef("sqrt_alphas", t, x_prev) * x_prev + self._coef("sqrt_betas", t, x_prev) * noise

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean √ᾱ_t x_0 and variance (1 − ᾱ_t) of q(x_t | x_0) (eq. ``closed-form-marginal``)."""
        self._check_x(x0)
        t = self._check_t(t, x0)
        mean = self._coef("sqrt_alpha_bars", t, x0) * x0
        var = self._coef("one_minus_alpha_bars", t, x0).expand_as(x0)
        return mean, var

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε in one shot (eq. ``reparam-xt``)."""
        self._check_x(x0)
        t = self._check_t(t, x0)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}.")
        return self._coef("sqrt_alpha_bars", t, x0) * x0 + self._coef("sqrt_one_minus_alpha_bars", t, x0) * noise

    def q_sample_iterative(self, x0: torch.Tensor, t_max: int, keep: list[int] | None = None,
                           generator: torch.Generator | None = None) -> dict[int, torch.Tensor]:
        """Run the chain x_0 → x_1 → … → x_{t_max} one transition at a time.

        Returns {t: x_t} for every t in ``keep`` (default: only ``t_max``); memory is
        bounded by the number of kept steps, not by ``t_max``.
        """
        self._check_x(x0)
        if not (1 <= int(t_max) <= self.T):
            raise ValueError(f"t_max must lie in 1..T (T={self.T}), got {t_max}.")
        keep_set = {int(t_max)} if keep is None else {int(k) for k in keep}
        if any(k < 0 or k > t_max for k in keep_set):
            raise ValueError(f"every kept step must lie in 0..t_max={t_max}, got {sorted(keep_set)}.")
        out = {0: x0.clone()} if 0 in keep_set else {}
        x = x0
        for t in range(1, int(t_max) + 1):
            x = self.q_step_sample(x, torch.full((x0.shape[0],), t, device=x0.device), generator=generator)
            if t in keep_set:
                out[t] = x.clone()
        return out

    # ------------------------------------------------------------------ L_T
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per sample, summed over dimensions, in nats (eq. ``LT-closed-form``)."""
        self._check_x(x0)
        t = torch.full((x0.shape[0],), self.T, device=x0.device, dtype=torch.long)
        mean, var = self.q_mean_variance(x0, t)
        kl = normal_kl(mean, torch.log(var), 0.0, 0.0)
        return kl.flatten(1).sum(1)

    def prior_bpd(self, x0: torch.Tensor) -> float:
        """L_T averaged over the batch, in bits per dimension."""
        num_dims = int(np.prod(x0.shape[1:]))
        return float(nats_to_bits_per_dim(self.prior_kl(x0).mean(), num_dims))
