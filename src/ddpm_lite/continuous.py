"""Continuous-time diffusion (VDM): the bound as T → ∞, its Monte-Carlo loss, and the finite-T bound.

With z_t = α_t x + σ_t ε and γ_t = −log SNR(t) from a :class:`~ddpm_lite.logsnr.LogSNRSchedule`,
the negative ELBO of Kingma et al. (2021) in the limit T → ∞ is

    L_∞ = L_T + L_0 + ½ E_{t~U(0,1), ε} [γ′(t) ‖ε − ε̂_θ(z_t, γ_t)‖²]      (VDM eq. 17)

with the prior term L_T = KL(q(z_1 | x) ‖ N(0, I)) and the reconstruction term
L_0 = −log p(x | z_0), here the book's discretized Gaussian decoder with mean x̂_θ(z_0, γ_0)
and variance σ_0² (continuous data: the Gaussian density).  All three are returned in bits/dim.

A finite grid t_i = i/T uses the same γ: :meth:`ContinuousDiffusion.discretize` writes it as a
:class:`~ddpm_lite.schedule.NoiseSchedule` of T + 1 steps (step j ↔ t = (j − 1)/T, so step 1 is
the decoder at γ_min) and wraps the model in :class:`DiscreteTimeModel` (integer step → γ).
The existing discrete bound (``GaussianDiffusion.bits_per_dim``) and every sampler then run
unchanged.  The wrapper asks for the reverse variance VDM uses, p(z_s | z_t) = q(z_s | z_t, x = x̂):
it sets the learned-variance output v to 0 (σ² = β̃_j, the posterior variance, so each KL is
½ (SNR_s − SNR_t)‖x − x̂‖²) and to 1 at step 1 (σ² = β_1 = σ_0², the decoder of L_0 above).

The model protocol: ``model(z, gamma) -> ε̂`` with gamma a float tensor (batch,), and
``model.schedule`` the LogSNRSchedule (see :class:`ContinuousModel`, which holds both, so the
optimizer, the EMA and the checkpoints carry a learned schedule with the network).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import checks
from .diffusion import GaussianDiffusion
from .gaussian import LN2, LOG_2PI, discretized_gaussian_log_likelihood
from .logsnr import LogSNRSchedule, alpha_sigma_sq, grid_noise_schedule
from .plumbing import check_generator, randn
from .reverse import ReverseProcess
from .schedule import MAX_T

__all__ = ["ContinuousDiffusion", "ContinuousModel", "DiscreteTimeModel", "TDrawKind", "T_DRAW_KINDS"]

#: How training draws t: independent U(0, 1), or one uniform shift of an even grid per batch
#: (VDM's low-discrepancy sampler: same mean, less variance).
TDrawKind = Literal["uniform", "low_discrepancy"]
T_DRAW_KINDS: tuple[str, ...] = get_args(TDrawKind)


class ContinuousModel(nn.Module):
    """A network ε̂(z, γ) and the schedule γ(t) it is trained with, as one module.

    ``config`` (for :func:`ddpm_lite.nets.build.build_model`) stores the network's config and
    the schedule's constructor arguments; learned ends and shape are in the state dict.
    """

    takes_gamma = True  #: called as model(z, γ) with float γ (the memory estimate of ddpm_lite.nets.memory asks)

    def __init__(self, net: nn.Module, schedule: LogSNRSchedule) -> None:
        super().__init__()
        if not isinstance(schedule, LogSNRSchedule):
            raise ValueError(f"schedule must be a ddpm_lite.logsnr.LogSNRSchedule, got {type(schedule).__name__}.")
        self.net, self.schedule = net, schedule
        self.config = {"kind": "continuous", "net": getattr(net, "config", None), "schedule": schedule.config()}

    def forward(self, z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return self.net(z, gamma)


class DiscreteTimeModel(nn.Module):
    """``model`` seen as a discrete-time ε-model on the grid of :meth:`ContinuousDiffusion.discretize`.

    ``forward(x, t)`` for integer steps t = 1..T+1 returns ε̂ stacked with v (v = 1 at t = 1,
    0 elsewhere): see the module docstring for why v is set and not learned.
    """

    def __init__(self, model: nn.Module, gammas: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("gammas", gammas.detach().to(torch.float64), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.model(x, self.gammas[t.long()].to(x.dtype))
        v = (t == 1).to(eps.dtype).view(-1, *([1] * (eps.dim() - 1))).expand_as(eps)
        return torch.cat([eps, v], dim=1)


class ContinuousDiffusion:
    """The variational bound in continuous time and its estimators (VDM), in bits/dim.

    Parameters
    ----------
    num_levels:
        K of the data for the discretized decoder of L_0 (17 for the digits), or None for
        continuous data (then L_0 is a negative log density).
    t_draw:
        ``"low_discrepancy"`` (default) or ``"uniform"``: how :meth:`draw_t_and_noise` draws t.
    recon_rows:
        In training, evaluate L_0 on only the first ``recon_rows`` samples of a batch and give every
        sample their mean: an unbiased estimate of the batch's mean L_0 for fewer model rows
        (L_0 needs its own model call at γ_min; with all rows a step costs two batches).  None
        (default): every sample.  :meth:`bits_per_dim` always uses every sample.
    """

    continuous = True
    learned_variance = False  # TrainConfig.check_with asks; the reverse variance here is implied by the bound
    variance = "posterior"

    def __init__(self, num_levels: int | None = 256, *, t_draw: TDrawKind = "low_discrepancy",
                 recon_rows: int | None = None) -> None:
        self.num_levels = checks.integer("num_levels", num_levels, 2, allow_none=True,
                                         hint="Use None for continuous data.")
        self.t_draw = checks.choice("t_draw", t_draw, T_DRAW_KINDS)
        self.recon_rows = checks.integer("recon_rows", recon_rows, 1, allow_none=True)

    # ------------------------------------------------------------------ serialisation
    def config(self) -> dict[str, Any]:
        """The settings as a JSON-able dict; ``time`` tells loaders which diffusion to rebuild."""
        extra = {"recon_rows": self.recon_rows} if self.recon_rows is not None else {}
        return {"time": "continuous", "num_levels": self.num_levels, "t_draw": self.t_draw, **extra}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ContinuousDiffusion":
        """Inverse of :meth:`config`."""
        if not isinstance(config, dict) or config.get("time") != "continuous":
            raise ValueError(f"not a continuous-time diffusion config (needs time='continuous'): {config!r:.200}.")
        return cls(config.get("num_levels", 256), t_draw=config.get("t_draw", "low_discrepancy"),
                   recon_rows=config.get("recon_rows"))

    def check_on_grid(self, x0: torch.Tensor) -> None:
        """Raise ValueError unless x0 lies on the ``num_levels`` grid (the discrete decoder's check)."""
        ReverseProcess.check_on_grid(self, x0)  # it reads only num_levels: one check for both diffusions

    def check_train_config(self, loss_kind: str, importance: bool) -> None:
        """Refuse training settings that mean nothing in continuous time, naming the fix."""
        if importance:
            raise ValueError("importance-sampled t is for a discrete chain (T steps); in continuous time use the "
                             "low-discrepancy draw instead: drop --importance / t_sampler.")
        if loss_kind != "vb":
            raise ValueError(f"continuous time trains on the bound itself: use loss_kind='vb' (--loss vb), "
                             f"not {loss_kind!r}.")

    # ------------------------------------------------------------------ draws
    def draw_t(self, batch: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
        """t in [0, 1), float64, shape (batch,): uniform, or (u + i/B) mod 1 for one u ~ U(0, 1)."""
        gen_device = generator.device if generator is not None else torch.device(device)
        if self.t_draw == "uniform":
            t = torch.rand(batch, generator=generator, device=gen_device, dtype=torch.float64)
        else:
            u = torch.rand(1, generator=generator, device=gen_device, dtype=torch.float64)
            t = torch.remainder(u + torch.arange(batch, device=gen_device, dtype=torch.float64) / batch, 1.0)
        return t.to(device)

    def draw_t_and_noise(self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
                         dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """One training batch's randomness in a fixed order: t, then ε (as GaussianDiffusion's)."""
        t = self.draw_t(shape[0], generator, device)
        return t, randn(shape, generator, device, dtype)

    # ------------------------------------------------------------------ the three terms
    def _per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over data dimensions → mean per dimension, in bits: Σ/(D ln 2), shape (batch,)."""
        return x.flatten(1).sum(1) / (x[0].numel() * LN2)

    def prior_bpd(self, schedule: LogSNRSchedule, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(N(α_1 x, σ_1²) ‖ N(0, 1)) per sample in bits/dim: ½ Σ(α_1²(x² − 1) − log σ_1²)."""
        g1 = schedule.gamma_max
        a2 = torch.sigmoid(-g1)
        # −log σ² = softplus(−γ): no log of a number near 1.
        kl = 0.5 * (a2 * (x0.to(torch.float64) ** 2 - 1.0) + F.softplus(-g1))
        return self._per_dim(kl)

    def recon_bpd(self, x0: torch.Tensor, eps_hat: torch.Tensor, z0: torch.Tensor, gamma0: torch.Tensor
                  ) -> torch.Tensor:
        """L_0 = −log p(x | z_0) per sample in bits/dim: decoder mean x̂ = (z_0 − σ_0 ε̂)/α_0, variance σ_0²."""
        a2, s2 = alpha_sigma_sq(gamma0.to(torch.float64))
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a, s = a2.sqrt().view(shape), s2.sqrt().view(shape)
        mean = (z0.to(torch.float64) - s * eps_hat.to(torch.float64)) / a
        log_var = torch.log(s2).view(shape)
        x = x0.to(torch.float64)
        if self.num_levels is not None:
            ll = discretized_gaussian_log_likelihood(x, mean, 0.5 * log_var, self.num_levels)
        else:
            ll = -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var))
        return self._per_dim(-ll)

    def loss_terms(self, model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   kind: str = "vb", lambda_vb: float = 0.0, noise0: torch.Tensor | None = None,
                   every_row: bool = False) -> dict[str, torch.Tensor]:
        """Per-sample bound L_T + L_0 + ½ γ′(t)‖ε − ε̂‖² in bits/dim, from one model call on 2·batch rows.

        The diffusion term uses (t, ``noise``); L_0 uses z_0 = α_0 x + σ_0 ε₀ with ε₀ =
        ``noise0`` or, when omitted, ``noise`` again (the two terms are separate expectations, so
        sharing ε keeps each unbiased and the training loop's draws unchanged).  Returns ``loss``
        (= ``vb``), ``diffusion``, ``prior``, ``recon``, ``mse`` and ``t``, each (batch,).
        ``kind`` and ``lambda_vb`` exist for the training loop's signature; only ``"vb"`` is accepted.
        ``every_row`` overrides ``recon_rows`` (evaluation).
        """
        if kind != "vb":
            self.check_train_config(kind, False)
        schedule = model.schedule
        b = x0.shape[0]
        k = b if every_row or self.recon_rows is None else min(b, self.recon_rows)
        gamma_t, dgamma = schedule(t)
        gamma0 = schedule.gamma_min.expand(k)
        gammas = torch.cat([gamma_t, gamma0])
        a2, s2 = alpha_sigma_sq(gammas)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a, s = a2.sqrt().to(x0.dtype).view(shape), s2.sqrt().to(x0.dtype).view(shape)
        eps_all = torch.cat([noise, (noise if noise0 is None else noise0)[:k]])
        z = a * torch.cat([x0, x0[:k]]) + s * eps_all
        eps_hat = model(z, gammas.to(x0.dtype))
        mse_sum = (noise - eps_hat[:b]).square().flatten(1).sum(1).to(torch.float64)
        diffusion = 0.5 * dgamma * mse_sum / (x0[0].numel() * LN2)
        recon = self.recon_bpd(x0[:k], eps_hat[b:], z[b:], gamma0)
        if k < b:
            recon = recon.mean().expand(b)
        prior = self.prior_bpd(schedule, x0)
        vb = diffusion + recon + prior
        return {"loss": vb, "vb": vb, "diffusion": diffusion, "recon": recon, "prior": prior,
                "mse": mse_sum / x0[0].numel(), "t": t}

    def training_losses(self, model: nn.Module, x0: torch.Tensor, kind: str = "vb", t: torch.Tensor | None = None,
                        noise: torch.Tensor | None = None, generator: torch.Generator | None = None
                        ) -> dict[str, torch.Tensor]:
        """:meth:`loss_terms` with checked inputs and t, ε drawn from ``generator`` when omitted."""
        self._check_model(model)
        check_generator(generator)
        if not isinstance(x0, torch.Tensor) or x0.dim() < 2 or x0.shape[0] < 1 or not x0.is_floating_point():
            raise ValueError("x0 must be a float tensor (batch, ...) with at least one sample.")
        self.check_on_grid(x0)
        draw_t, draw_noise = self.draw_t_and_noise(x0.shape, generator, x0.device, x0.dtype)
        t = draw_t if t is None else t.to(device=x0.device, dtype=torch.float64)
        if t.shape != (x0.shape[0],) or bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"t must be a float tensor of shape ({x0.shape[0]},) with values in [0, 1].")
        noise = draw_noise if noise is None else noise
        return self.loss_terms(model, x0, t, noise)

    def _check_model(self, model: object) -> None:
        if not isinstance(getattr(model, "schedule", None), LogSNRSchedule):
            raise ValueError("a continuous-time model needs its schedule: wrap the network as "
                             "ContinuousModel(net, LogSNRSchedule(...)) (model.schedule is missing).")

    # ------------------------------------------------------------------ the bound
    @torch.no_grad()
    def bits_per_dim(self, model: nn.Module, x0: torch.Tensor, draws: int = 16, batch_size: int = 4096,
                     generator: torch.Generator | None = None) -> dict[str, Any]:
        """The continuous-time bound L_∞ in bits/dim, estimated with ``draws`` stratified t per sample.

        Returns ``total`` (mean over samples), ``stderr`` (its standard error over samples, which
        includes the Monte-Carlo noise), ``prior``, ``recon``, ``diffusion`` and ``per_sample``.
        Put the model in eval mode first.
        """
        self._check_model(model)
        draws = checks.integer("draws", draws, 1)
        checks.integer("batch_size", batch_size, 1)
        check_generator(generator)
        self.check_on_grid(x0)
        n = x0.shape[0]
        parts = {k: torch.zeros(n, dtype=torch.float64) for k in ("diffusion", "recon", "prior")}
        rows = max(1, batch_size // (2 * draws))
        for start in range(0, n, rows):
            xs = x0[start:start + rows]
            m = xs.shape[0]
            # Stratified over the draws of each sample: draw k of sample i sits in [k/K, (k+1)/K).
            u = torch.rand(m, draws, generator=generator, dtype=torch.float64, device=generator.device
                           if generator is not None else "cpu")
            t = ((u + torch.arange(draws, dtype=torch.float64, device=u.device)) / draws).T.reshape(-1)
            x_rep = xs.repeat(draws, *([1] * (xs.dim() - 1)))
            noise = randn(x_rep.shape, generator, xs.device, xs.dtype)
            out = self.loss_terms(model, x_rep, t.to(xs.device), noise, every_row=True)
            for k in parts:
                parts[k][start:start + m] = out[k].double().cpu().view(draws, m).mean(0)
        per_sample = parts["diffusion"] + parts["recon"] + parts["prior"]
        return {"total": float(per_sample.mean()), "stderr": float(per_sample.std() / np.sqrt(n)) if n > 1 else 0.0,
                **{k: float(v.mean()) for k, v in parts.items()}, "per_sample": per_sample}

    @torch.no_grad()
    def discretize(self, model: nn.Module, T: int) -> tuple[GaussianDiffusion, DiscreteTimeModel]:
        """The finite-T diffusion on t_i = i/T with the model's γ, and the model as a discrete ε-model.

        Step j = 1..T+1 of the returned GaussianDiffusion is time (j − 1)/T: ᾱ_j = sigmoid(−γ((j − 1)/T)).
        Its ``bits_per_dim`` is VDM's discrete-time bound (eq. 11) with T diffusion steps, and
        ``sample`` runs any sampler (ancestral on all T + 1 steps, DDIM, DPM-Solver++).
        """
        self._check_model(model)
        T = checks.integer("T", T, 1, MAX_T - 1)
        t = torch.arange(T + 1, dtype=torch.float64, device=model.schedule.ends.device) / T
        gamma = model.schedule.gamma(t).detach().cpu()
        schedule = grid_noise_schedule(gamma, name=f"continuous(T={T})")
        gammas = torch.cat([gamma[:1], gamma])  # index j → γ((j − 1)/T); index 0 is never called
        diffusion = GaussianDiffusion(schedule, variance="learned", num_levels=self.num_levels)
        return diffusion, DiscreteTimeModel(model, gammas.to(model.schedule.ends.device))

    def bits_per_dim_at(self, model: nn.Module, x0: torch.Tensor, T: int, batch_size: int = 4096,
                        generator: torch.Generator | None = None) -> dict[str, Any]:
        """The discrete-time bound with T diffusion steps (every step evaluated), via the library's bound."""
        diffusion, wrapped = self.discretize(model, T)
        return diffusion.bits_per_dim(wrapped, x0, batch_size=batch_size, generator=generator)

    def __repr__(self) -> str:
        return f"ContinuousDiffusion(num_levels={self.num_levels}, t_draw={self.t_draw!r})"
