"""GaussianDiffusion: the reverse process p_θ, the training losses and the bound.

One method per equation of the book; the docstring of each names the equation label
it implements.  Timesteps are the paper's t = 1..T, given as integer tensors of
shape (batch,).  The forward process q (q_sample, the posterior, x_0 ↔ ε, L_T) is
inherited from :class:`ddpm_lite.forward.ForwardProcess`.  The samplers live in
:mod:`ddpm_lite.sampling`; the methods
:meth:`GaussianDiffusion.sample` and :meth:`GaussianDiffusion.ddim_sample` call them.

The ε-model protocol used throughout::

    eps_model(xt: Tensor(batch, ...), t: LongTensor(batch,)) -> Tensor shaped like xt

where ``t`` holds the paper's timesteps 1..T.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import sampling
from .forward import ForwardProcess
from .gaussian import LN2, discretized_gaussian_log_likelihood, normal_kl
from .schedule import NoiseSchedule

__all__ = ["GaussianDiffusion", "EpsModel", "VARIANCE_KINDS", "LOSS_KINDS"]

#: ``eps_model(xt, t) -> ε̂`` with t the paper's timesteps 1..T, shape (batch,).
EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Choices of the reverse-process variance σ_t² (Ho et al. 2020, §3.2).
VARIANCE_KINDS = ("beta", "beta_tilde")

#: Choices of training objective for :meth:`GaussianDiffusion.training_losses`.
LOSS_KINDS = ("simple", "vb", "hybrid")

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianDiffusion(ForwardProcess):
    """The DDPM reverse process, its losses and samplers, over a fixed :class:`NoiseSchedule`.

    Parameters
    ----------
    schedule:
        The forward-process variances β_1..β_T and their derived constants.
    variance:
        σ_t² of the reverse step p_θ(x_{t−1} | x_t) = N(μ_θ(x_t, t), σ_t² I).  Default ``"beta"``.

        * ``"beta"``: σ_t² = β_t, for every t including the decoder at t = 1 (σ_1² = β_1, as
          in the paper's text; Ho et al.'s released code uses β̃_2 there).  Optimal when
          x_0 ~ N(0, I) (Ho et al. 2020, §3.2).
        * ``"beta_tilde"``: σ_t² = β̃_t, the forward posterior variance, optimal when x_0 is
          a single point.  β̃_1 = 0 would give the decoder zero width, so at t = 1 this uses
          β̃_2 (``schedule.posterior_log_variance_clipped``; β_1 if T = 1), as Ho et al.'s
          code does.

        The choice changes the bound (L_{t−1} and L_0) and the ancestral sampler's noise;
        it does not change L_simple or DDIM.
    num_levels:
        Number of intensity levels K of the data, used by the discretized decoder L_0
        (bins of width 2/(K−1) on [−1, 1]).  Default 256 (8-bit images); the bundled
        digits have 17 (:data:`ddpm_lite.data.DIGITS_LEVELS`).  ``None`` means continuous
        data (e.g. 2-D points): L_0 is then the negative log *density* −log N(x_0; μ_θ(x_1, 1),
        σ_1²), so "bits per dimension" is a differential quantity and may be negative.
    """

    def __init__(self, schedule: NoiseSchedule, *, variance: str = "beta", num_levels: int | None = 256) -> None:
        super().__init__(schedule)
        if variance not in VARIANCE_KINDS:
            raise ValueError(f"variance must be one of {VARIANCE_KINDS}, got variance={variance!r}.")
        if num_levels is not None and (isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer))
                                       or num_levels < 2):
            raise ValueError(f"num_levels must be an integer ≥ 2 or None (continuous data), got num_levels={num_levels!r}.")
        self.variance = variance
        self.num_levels = None if num_levels is None else int(num_levels)
        self._build_reverse_constants()

    def _build_reverse_constants(self) -> None:
        """Float64 tables (length T + 1, index = timestep) used by the reverse process."""
        s = self.schedule
        if self.variance == "beta":
            var = s.betas.copy()
            var[0] = s.betas[1]  # index 0 is not a step; keep it finite
        else:
            var = np.exp(s.posterior_log_variance_clipped)
        self.model_variance = var
        self.model_log_variance = np.log(var)
        # μ_θ = (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) ε_θ)  (eq. ``eps-param``).
        self.recip_sqrt_alphas = 1.0 / s.sqrt_alphas
        denom = s.sqrt_one_minus_alpha_bars.copy()
        denom[0] = 1.0
        self.eps_coef = s.betas / denom  # β_t/√(1 − ᾱ_t); 0 at index 0
        for name in ("model_variance", "model_log_variance", "recip_sqrt_alphas", "eps_coef"):
            getattr(self, name).setflags(write=False)

    # ------------------------------------------------------------------ checks
    def _check_on_grid(self, x0: torch.Tensor) -> None:
        """The discretized decoder needs x_0 on the K-level grid of ``num_levels``."""
        if self.num_levels is None:
            return
        k = self.num_levels - 1
        # float32 resolves 1/(K−1) spacing to ~1e-5 for any K we use, and exists on every device (MPS has no float64).
        levels = (x0.detach().float() + 1.0) * (k / 2.0)
        off = (levels - levels.round()).abs().max() if x0.numel() else torch.tensor(0.0)
        lo, hi = (float(levels.min()), float(levels.max())) if x0.numel() else (0.0, 0.0)
        if lo < -1e-3 or hi > k + 1e-3 or float(off) > 1e-3:
            raise ValueError(
                f"x0 must lie on the {self.num_levels}-level grid in [-1, 1] for the discretized decoder "
                f"(num_levels={self.num_levels}); found values off the grid. Scale data with "
                "ddpm_lite.data.to_model_range, or build GaussianDiffusion(num_levels=None) for continuous data."
            )

    @staticmethod
    def _check_model(eps_model: object) -> None:
        if not callable(eps_model):
            raise ValueError(f"eps_model must be callable as eps_model(xt, t), got {type(eps_model).__name__}.")

    def _eps(self, eps_model: EpsModel, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self._check_model(eps_model)
        eps = eps_model(xt, t)
        if not isinstance(eps, torch.Tensor) or eps.shape != xt.shape:
            got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
            raise ValueError(f"eps_model(xt, t) must return a tensor shaped like xt {tuple(xt.shape)}, got {got}.")
        return eps

    def _random_t(self, batch: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """t ~ Uniform{1..T}, drawn on the generator's device so a seed means the same on any device."""
        gen_device = generator.device if generator is not None else device
        return torch.randint(1, self.T + 1, (batch,), generator=generator, device=gen_device).to(device)

    # ------------------------------------------------------------------ reverse process
    def p_mean_variance(self, eps_model: EpsModel, xt: torch.Tensor, t: torch.Tensor, clip_x0: bool = False
                        ) -> dict[str, torch.Tensor]:
        """Mean and variance of p_θ(x_{t−1} | x_t) = N(μ_θ, σ_t² I) (eq. ``eps-param``).

        μ_θ(x_t, t) = (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)), σ_t² from ``variance``.

        ``clip_x0=True`` clamps x̂_0 to [−1, 1] and uses μ̃_t(x_t, x̂_0) as the mean; without
        clipping the two forms are the same number (the ε-form is used).  Clipping is a
        sampling heuristic for image data and is not part of the bound.

        Returns a dict with ``mean``, ``variance``, ``log_variance`` (broadcast to xt's
        shape), ``pred_x0`` (x̂_0) and ``eps`` (ε_θ).
        """
        self._check_model(eps_model)
        self._check_x(xt, "xt")
        t = self._check_t(t, xt)
        eps = self._eps(eps_model, xt, t)
        return self._p_from_eps(xt, t, eps, clip_x0)

    def _p_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip_x0: bool = False):
        pred_x0 = self._predict_x0(xt, t, eps)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            mean = self._q_posterior(pred_x0, xt, t)[0]
        else:
            mean = self._coef("recip_sqrt_alphas", t, xt) * (xt - self._coef("eps_coef", t, xt) * eps)
        return {
            "mean": mean,
            "variance": self._coef("model_variance", t, xt).expand_as(xt),
            "log_variance": self._coef("model_log_variance", t, xt).expand_as(xt),
            "pred_x0": pred_x0,
            "eps": eps,
        }

    # ------------------------------------------------------------------ the bound, term by term
    def decoder_log_likelihood(self, x0: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
        """log p_θ(x_0 | x_1) per element, in nats, with mean μ_θ(x_1, 1) (eq. ``decoder``).

        Discretized Gaussian with ``num_levels`` bins when set, else the Gaussian log
        density (continuous data).  Computed in at least float32.
        """
        work = torch.promote_types(torch.promote_types(x0.dtype, mean.dtype), torch.float32)
        x0, mean, log_variance = x0.to(work), mean.to(work), log_variance.to(work)
        if self.num_levels is not None:
            return discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance, self.num_levels)
        return -0.5 * (_LOG_2PI + log_variance + (x0 - mean) ** 2 * torch.exp(-log_variance))

    def vb_terms_bpd(self, eps_model: EpsModel, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """L_{t−1} for each sample, in bits per dimension (eqs. ``Lt-minus-1``, ``decoder``).

        For t ≥ 2: KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)), a Gaussian KL.
        For t = 1: −log p_θ(x_0 | x_1), the decoder with log-scale ½ log σ_1².
        Both are averaged over data dimensions and divided by ln 2.  Returns shape (batch,).
        """
        self._check_model(eps_model)
        self._check_x(x0, finite=True, nonempty=True)
        self._check_x(xt, "xt")
        self._check_same_shape(xt, x0, "xt")
        t = self._check_t(t, x0)
        self._check_on_grid(x0)
        eps = self._eps(eps_model, xt, t)
        return self._vb_terms_bpd(x0, xt, t, eps)

    def _vb_terms_bpd(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                      detach_mean: bool = False) -> torch.Tensor:
        # The bound is evaluated in at least float32 whatever the model's precision.
        work = torch.promote_types(xt.dtype, torch.float32)
        x0, xt, eps = x0.to(work), xt.to(work), eps.to(work)
        p = self._p_from_eps(xt, t, eps)
        mean = p["mean"].detach() if detach_mean else p["mean"]
        true_mean, _, true_log_var = self._q_posterior(x0, xt, t)
        kl = normal_kl(true_mean, true_log_var, mean, p["log_variance"]).flatten(1).mean(1) / LN2
        is_decoder = t == 1
        if not bool(is_decoder.any()):
            return kl
        idx = is_decoder.nonzero(as_tuple=True)[0]
        nll = -self.decoder_log_likelihood(x0[idx], mean[idx], p["log_variance"][idx]).flatten(1).mean(1) / LN2
        return kl.index_put((idx,), nll.to(kl.dtype))

    # ------------------------------------------------------------------ training objectives
    def training_losses(self, eps_model: EpsModel, x0: torch.Tensor, kind: str = "simple", lambda_vb: float = 0.001,
                        t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, check_inputs: bool = True
                        ) -> dict[str, torch.Tensor]:
        """Per-sample training losses from one ε_θ evaluation (eqs. ``l-simple``, ``Lt-minus-1``).

        Parameters
        ----------
        kind:
            ``"simple"``: L_simple = ‖ε − ε_θ(x_t, t)‖² averaged over dimensions (default).
            ``"vb"``: the bound, T·L_{t−1} in bits/dim (see :meth:`loss_vb`).
            ``"hybrid"``: L_simple + ``lambda_vb``·T·L_{t−1} with μ_θ detached in the vb
            term (Nichol & Dhariwal 2021, §3.1): there the vb term only trains a learned
            variance.  Our σ_t² is fixed, so the hybrid's gradient equals L_simple's; the
            option exists so the objective's value can be logged and compared.
        lambda_vb:
            Weight of the vb term in ``"hybrid"``; 0.001 as in Nichol & Dhariwal.
        t, noise:
            Timesteps (batch,) in 1..T and ε shaped like x0; drawn (uniform t, standard
            normal ε) from ``generator`` when omitted.
        check_inputs:
            Check x_0 for NaN/inf (and, for the bound, that it lies on the ``num_levels``
            grid).  Default True.  These checks read a value back from the device; a
            training loop whose data were checked once may pass False to avoid one
            host/device synchronisation per step.  Shapes and ``t`` are always checked.

        Returns a dict of (batch,) tensors: ``loss`` (what to average and backpropagate),
        ``mse``, ``t``, and for kinds ``"vb"`` and ``"hybrid"`` also ``vb`` (T·L_{t−1}, bits/dim).
        """
        if kind not in LOSS_KINDS:
            raise ValueError(f"kind must be one of {LOSS_KINDS}, got kind={kind!r}.")
        if not (isinstance(lambda_vb, (int, float)) and math.isfinite(lambda_vb) and lambda_vb >= 0):
            raise ValueError(f"lambda_vb must be a finite number ≥ 0, got lambda_vb={lambda_vb!r}.")
        self._check_model(eps_model)
        self._check_generator(generator)
        self._check_x(x0, finite=check_inputs, nonempty=True)
        if kind != "simple" and check_inputs:
            self._check_on_grid(x0)
        t = self._random_t(x0.shape[0], x0.device, generator) if t is None else self._check_t(t, x0)
        if noise is None:
            noise = sampling.randn(x0.shape, generator, x0.device, x0.dtype)
        else:
            self._check_same_shape(noise, x0, "noise")
        xt = self._q_sample(x0, t, noise)
        eps = self._eps(eps_model, xt, t)
        mse = (noise - eps).square().flatten(1).mean(1)
        out = {"mse": mse, "t": t}
        if kind == "simple":
            out["loss"] = mse
            return out
        vb = self.T * self._vb_terms_bpd(x0, xt, t, eps, detach_mean=(kind == "hybrid"))
        out["vb"] = vb
        out["loss"] = vb if kind == "vb" else mse + lambda_vb * vb
        return out

    def loss_simple(self, eps_model: EpsModel, x0: torch.Tensor, t: torch.Tensor | None = None,
                    noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_simple per sample: ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖² / dim, t ~ U{1..T} (eq. ``l-simple``)."""
        return self.training_losses(eps_model, x0, "simple", t=t, noise=noise, generator=generator)["loss"]

    def loss_vb(self, eps_model: EpsModel, x0: torch.Tensor, t: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """T·L_{t−1} per sample in bits/dim, t ~ U{1..T}: an unbiased estimate of L_0 + … + L_{T−1}.

        Adding the constant L_T (:meth:`prior_bpd`) to its mean over t gives the full bound
        of :meth:`bits_per_dim`.  Bits (not nats) so that ``lambda_vb`` = 0.001 in
        :meth:`training_losses` weighs it as Nichol & Dhariwal do.
        """
        return self.training_losses(eps_model, x0, "vb", t=t, noise=noise, generator=generator)["loss"]

    # ------------------------------------------------------------------ the whole bound
    @torch.no_grad()
    def bits_per_dim(self, eps_model: EpsModel, x0: torch.Tensor, batch_size: int = 4096,
                     generator: torch.Generator | None = None) -> dict:
        """The full bound L_T + Σ_{t≥2} L_{t−1} + L_0 in bits/dim, every t evaluated (eq. ``bpd-total``).

        Each (sample, t) pair gets one draw of x_t ~ q(x_t | x_0).  Several timesteps
        are stacked into one model call of at most ``batch_size`` rows to keep the model
        busy; the noise a seed produces therefore depends on ``batch_size``.

        Returns a dict: ``total`` (float, mean over samples), ``prior`` (float, L_T),
        ``vb`` (float64 tensor (T,), mean L_{t−1} at index t − 1, so ``vb[0]`` is L_0),
        ``decoder`` (float, = vb[0]) and ``per_sample`` (float64 tensor (N,), each
        sample's whole bound).  Put the model in eval mode first.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got batch_size={batch_size!r}.")
        self._check_model(eps_model)
        self._check_generator(generator)
        self._check_x(x0, finite=True, nonempty=True)
        self._check_on_grid(x0)
        n_total, T = x0.shape[0], self.T
        num_dims = int(np.prod(x0.shape[1:]))
        per_sample = self.prior_kl(x0).cpu().double() / (num_dims * LN2)
        prior = float(per_sample.mean())
        vb_sum = torch.zeros(T + 1, dtype=torch.float64)
        chunk = min(n_total, batch_size)
        for start in range(0, n_total, chunk):
            xs = x0[start:start + chunk]
            n = xs.shape[0]
            k = max(1, batch_size // n)  # timesteps per model call
            for t_lo in range(1, T + 1, k):
                ts = torch.arange(t_lo, min(t_lo + k, T + 1), device=x0.device)
                rows = ts.repeat_interleave(n)
                x_rep = xs.repeat(len(ts), *([1] * (xs.dim() - 1)))
                noise = sampling.randn(x_rep.shape, generator, x0.device, x0.dtype)
                xt = self._q_sample(x_rep, rows, noise)
                eps = self._eps(eps_model, xt, rows)
                terms = self._vb_terms_bpd(x_rep, xt, rows, eps).cpu().double().view(len(ts), n)
                vb_sum[t_lo:t_lo + len(ts)] += terms.sum(1)
                per_sample[start:start + n] += terms.sum(0)
        vb = vb_sum[1:] / n_total
        return {"total": float(per_sample.mean()), "prior": prior, "vb": vb, "decoder": float(vb[0]),
                "per_sample": per_sample}

    # ------------------------------------------------------------------ sampling
    def sample(self, eps_model: EpsModel, shape: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str | None = None, trajectory_every: int | None = None,
               clip_x0: bool = False, dtype: torch.dtype | None = None):
        """Ancestral sampling, Algorithm 2 of Ho et al. (eq. ``sampling-step``).

        See :func:`ddpm_lite.sampling.ancestral_sample` for the options.  Returns x_0, or
        (x_0, trajectory) when ``trajectory_every`` is set.
        """
        return sampling.ancestral_sample(self, eps_model, shape, generator=generator, device=device,
                                         trajectory_every=trajectory_every, clip_x0=clip_x0, dtype=dtype)

    def ddim_sample(self, eps_model: EpsModel, shape: tuple[int, ...], steps: int = 50, eta: float = 0.0,
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
        """DDIM sampling on ``steps`` of the T timesteps (Song et al. 2021, eq. 12).

        See :func:`ddpm_lite.sampling.ddim_sample` for the options.
        """
        return sampling.ddim_sample(self, eps_model, shape, steps=steps, eta=eta, generator=generator,
                                    device=device, dtype=dtype)

    def __repr__(self) -> str:
        return f"GaussianDiffusion({self.schedule!r}, variance={self.variance!r}, num_levels={self.num_levels})"
