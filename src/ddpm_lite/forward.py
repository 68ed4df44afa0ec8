"""The forward process q of DDPM: noising, its closed-form marginal and its posterior.

:class:`ForwardProcess` holds everything that depends on the schedule alone (no model):
q(x_t | x_{t−1}), q(x_t | x_0), the posterior q(x_{t−1} | x_t, x_0), the ε ↔ x_0
reparameterization and the prior term L_T.  :class:`ddpm_lite.GaussianDiffusion`
extends it with the reverse process, the losses and the samplers.  Timesteps are the
paper's t = 1..T, given as integer tensors of shape (batch,).
"""

from __future__ import annotations

import numpy as np
import torch

from . import checks
from .gaussian import nats_to_bits_per_dim, normal_kl
from .plumbing import check_generator, randn
from .schedule import NoiseSchedule

#: Smallest ᾱ_T a diffusion accepts: the smallest normal float64.  Below it ᾱ_T has underflowed
#: (often to exactly 0) and 1/√ᾱ_T, hence DDIM and x̂_0, turn inf/NaN.
MIN_ALPHA_BAR_T = float(np.finfo(np.float64).tiny)

__all__ = ["ForwardProcess"]


class ForwardProcess:
    """The fixed forward (noising) process over a :class:`NoiseSchedule`.

    Parameters
    ----------
    schedule:
        The forward-process variances β_1..β_T and their derived constants.

    Besides the schedule's tables it builds (float64, index = timestep)
    ``sqrt_recip_alpha_bars`` = 1/√ᾱ_t and ``sqrt_recipm1_alpha_bars`` = √((1 − ᾱ_t)/ᾱ_t),
    the two coefficients of x̂_0 (eq. ``x0-from-eps``).
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a ddpm_lite.NoiseSchedule, got {type(schedule).__name__}.")
        if not schedule.alpha_bars[-1] >= MIN_ALPHA_BAR_T:
            raise ValueError(f"this schedule's ᾱ_T = ∏(1 − β_t) underflows to {schedule.alpha_bars[-1]:.3g} "
                             f"(T={schedule.T}, β_T={schedule.betas[-1]:.3g}), so x_0 cannot be recovered in "
                             "floating point; lower beta_T or T (the paper uses β_T = 0.02 at T = 1000).")
        self.schedule = schedule
        self.T = schedule.T
        self._tables: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}
        # 1/ᾱ_t − 1 written as (1 − ᾱ_t)/ᾱ_t: no cancellation for small t.
        self.sqrt_recip_alpha_bars = 1.0 / schedule.sqrt_alpha_bars
        self.sqrt_recipm1_alpha_bars = np.sqrt(schedule.one_minus_alpha_bars / schedule.alpha_bars)
        for arr in (self.sqrt_recip_alpha_bars, self.sqrt_recipm1_alpha_bars):
            arr.setflags(write=False)

    def _table(self, name: str) -> np.ndarray:
        for owner in (self, self.schedule):
            arr = getattr(owner, name, None)
            if isinstance(arr, np.ndarray) and arr.shape == (self.T + 1,):
                return arr
        raise ValueError(f"no table named {name!r} of length T + 1 on {type(self).__name__} or its schedule; "
                         "use a name such as 'sqrt_alpha_bars' or 'posterior_variance'.")

    def coef_at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Table ``name`` at timesteps ``t``, cast to ``like``'s dtype and device, shaped (batch, 1, …, 1).

        ``name`` is any float64 table of length T + 1 on this object or its schedule, e.g.
        ``"sqrt_alpha_bars"`` or ``"posterior_variance"``; the result broadcasts against ``like``,
        which is how every formula of the book turns "the schedule value at t" into tensor code.

        Tables are looked up on this object first, then on the schedule.  Each is cast
        once per (device, dtype) and cached, so a training step does not copy T + 1
        constants to the accelerator every time.
        """
        key = (name, like.device, like.dtype)
        table = self._tables.get(key)
        if table is None:
            arr = np.ascontiguousarray(self._table(name))
            table = self._tables[key] = torch.tensor(arr, dtype=like.dtype).to(like.device)
        return table[t.to(like.device)].reshape(t.shape[0], *([1] * (like.dim() - 1)))

    # ------------------------------------------------------------------ checks
    def _check_x(self, x: torch.Tensor, name: str = "x0", finite: bool = False, nonempty: bool = False) -> None:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if not torch.is_floating_point(x):
            raise ValueError(f"{name} must be a floating tensor, got dtype {x.dtype}; convert with .float().")
        if x.dim() < 2:
            raise ValueError(f"{name} must have a batch dimension first, shape (batch, ...), got shape {tuple(x.shape)}.")
        if nonempty and x.numel() == 0:
            # A mean over no samples is NaN; say so here rather than return it.
            raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); give at least one sample with at least one dimension.")
        if finite and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf; clean or drop those samples first.")

    def _check_t(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            if t is None or isinstance(t, (str, bytes)):
                raise ValueError(f"t must be integer timesteps in 1..{self.T}, shape (batch,), got t={t!r}.")
            try:
                t = torch.as_tensor(np.asarray(t))
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(f"t must be integer timesteps in 1..{self.T}, shape (batch,), got t={t!r}.") from None
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}.")
        self.schedule.check_t(t)
        return t.long().to(x.device)

    def _check_same_shape(self, a: torch.Tensor, like: torch.Tensor, name: str, like_name: str = "x0") -> None:
        if not isinstance(a, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(a).__name__}.")
        if a.shape != like.shape:
            raise ValueError(f"{name} must have the shape of {like_name} {tuple(like.shape)}, got {tuple(a.shape)}.")


    # ------------------------------------------------------------------ forward process
    def q_step_sample(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """One forward step x_t ~ q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I) (eq. ``forward-step``)."""
        self._check_x(x_prev, "x_prev")
        t = self._check_t(t, x_prev)
        check_generator(generator)
        if noise is None:
            noise = randn(x_prev.shape, generator, x_prev.device, x_prev.dtype)
        return self.coef_at("sqrt_alphas", t, x_prev) * x_prev + self.coef_at("sqrt_betas", t, x_prev) * noise

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean √ᾱ_t x_0 and variance (1 − ᾱ_t) of q(x_t | x_0) (eq. ``closed-form-marginal``)."""
        self._check_x(x0)
        t = self._check_t(t, x0)
        mean = self.coef_at("sqrt_alpha_bars", t, x0) * x0
        var = self.coef_at("one_minus_alpha_bars", t, x0).expand_as(x0)
        return mean, var

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε in one shot (eq. ``reparam-xt``)."""
        self._check_x(x0)
        t = self._check_t(t, x0)
        check_generator(generator)
        if noise is None:
            noise = randn(x0.shape, generator, x0.device, x0.dtype)
        else:
            self._check_same_shape(noise, x0, "noise")
        return self._q_sample(x0, t, noise)

    def _q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.coef_at("sqrt_alpha_bars", t, x0) * x0 + self.coef_at("sqrt_one_minus_alpha_bars", t, x0) * noise

    def q_sample_iterative(self, x0: torch.Tensor, t_max: int, keep: list[int] | None = None,
                           generator: torch.Generator | None = None) -> dict[int, torch.Tensor]:
        """Run the chain x_0 → x_1 → … → x_{t_max} one transition at a time.

        Returns {t: x_t} for every t in ``keep`` (default: only ``t_max``); memory is
        bounded by the number of kept steps, not by ``t_max``.
        """
        self._check_x(x0)
        check_generator(generator)
        t_max = checks.integer("t_max", t_max, 1, self.T, what=f"an integer in 1..T (T={self.T})")
        try:
            keep_set = {int(t_max)} if keep is None else {int(k) for k in keep}
        except (TypeError, ValueError):
            raise ValueError(f"keep must be a list of integer timesteps in 0..t_max={t_max}, got keep={keep!r}.") from None
        if any(k < 0 or k > t_max for k in keep_set):
            raise ValueError(f"every kept step must lie in 0..t_max={t_max}, got {sorted(keep_set)}.")
        out = {0: x0.clone()} if 0 in keep_set else {}
        x = x0
        for t in range(1, int(t_max) + 1):
            x = self.q_step_sample(x, torch.full((x0.shape[0],), t, device=x0.device), generator=generator)
            if t in keep_set:
                out[t] = x.clone()
        return out

    # ------------------------------------------------------------------ forward posterior
    def q_posterior_mean_variance(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """μ̃_t(x_t, x_0), β̃_t and log β̃_t of q(x_{t−1} | x_t, x_0) (eqs. ``posterior-mean``, ``posterior-variance``).

        μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t.

        At t = 1 the posterior is a point mass: μ̃_1 = x_0 and β̃_1 = 0 exactly.  The
        returned variance is that 0, but log β̃_1 = −∞ is replaced by log β̃_2
        (``schedule.posterior_log_variance_clipped``) so that KLs built from it stay
        finite; the bound never uses the t = 1 KL (L_0 is the decoder term instead).
        Variances are returned broadcast (not copied) to the shape of ``xt``.
        """
        self._check_x(x0)
        self._check_x(xt, "xt")
        self._check_same_shape(xt, x0, "xt")
        t = self._check_t(t, x0)
        return self._q_posterior(x0, xt, t)

    def _q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        mean = self.coef_at("posterior_mean_coef_x0", t, xt) * x0 + self.coef_at("posterior_mean_coef_xt", t, xt) * xt
        var = self.coef_at("posterior_variance", t, xt).expand_as(xt)
        log_var = self.coef_at("posterior_log_variance_clipped", t, xt).expand_as(xt)
        return mean, var, log_var

    # ------------------------------------------------------------------ ε ↔ x_0
    def predict_x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t, the reparameterization solved for x_0 (eq. ``x0-from-eps``)."""
        self._check_x(xt, "xt")
        self._check_same_shape(eps, xt, "eps", "xt")
        return self._predict_x0(xt, self._check_t(t, xt), eps)

    def _predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.coef_at("sqrt_recip_alpha_bars", t, xt) * xt - self.coef_at("sqrt_recipm1_alpha_bars", t, xt) * eps

    def predict_eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """ε = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t), the inverse of :meth:`predict_x0_from_eps`."""
        self._check_x(xt, "xt")
        self._check_same_shape(x0, xt, "x0", "xt")
        t = self._check_t(t, xt)
        return (xt - self.coef_at("sqrt_alpha_bars", t, xt) * x0) / self.coef_at("sqrt_one_minus_alpha_bars", t, xt)

    # ------------------------------------------------------------------ the prior term L_T
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per sample, summed over dimensions, in nats (eq. ``LT``; the closed form is ``LT-closed-form``)."""
        self._check_x(x0)
        t = torch.full((x0.shape[0],), self.T, device=x0.device, dtype=torch.long)
        mean, var = self.q_mean_variance(x0, t)
        kl = normal_kl(mean, torch.log(var), 0.0, 0.0)
        return kl.flatten(1).sum(1)

    def prior_bpd(self, x0: torch.Tensor) -> float:
        """L_T averaged over the batch, in bits per dimension."""
        num_dims = int(np.prod(x0.shape[1:]))
        return float(nats_to_bits_per_dim(self.prior_kl(x0).mean(), num_dims))
