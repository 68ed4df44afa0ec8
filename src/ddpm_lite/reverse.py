"""The reverse process p_θ and the variational bound: the model's side of the derivation.

:class:`ReverseProcess` extends :class:`ddpm_lite.forward.ForwardProcess` (q, which needs no
model) with what needs an ε-model: the mean and variance of p_θ(x_{t−1} | x_t), the decoder
L_0, the KL terms L_{t−1} and the whole bound in bits per dimension.  One method per
equation; each docstring names the equation label it implements.
:class:`ddpm_lite.GaussianDiffusion` adds the training objectives and the samplers.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from . import checks
from .forward import ForwardProcess
from .gaussian import LN2, LOG_2PI, discretized_gaussian_log_likelihood, normal_kl
from .plumbing import EpsModel, check_eps_model, check_generator, check_model_output, randn
from .schedule import NoiseSchedule

__all__ = ["ReverseProcess", "VarianceKind", "VARIANCE_KINDS", "eps_loss_weight"]

#: Choices of the reverse-process variance σ_t²: fixed (Ho et al. 2020, §3.2) or learned
#: per dimension (Nichol & Dhariwal 2021, eq. 15).
VarianceKind = Literal["beta", "beta_tilde", "learned"]
VARIANCE_KINDS: tuple[str, ...] = get_args(VarianceKind)


def eps_loss_weight(schedule: NoiseSchedule, variance: VarianceKind = "beta") -> np.ndarray:
    """Weight of ‖ε − ε_θ‖² in L_{t−1} under the ε-parameterization (eq. ``eps-weight``).

    w_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t)), float64, length T + 1 (index = t; index 0 is
    not a chain step and holds 0).

    variance:
        ``"beta"`` — σ_t² = β_t, so w_t = β_t / (2 α_t (1 − ᾱ_t)).
        ``"beta_tilde"`` — σ_t² = β̃_t, so w_t = β_t / (2 α_t (1 − ᾱ_{t−1})); at t = 1
        β̃_1 = 0 and the weight is +inf (the reverse step would have to be exact).
    """
    checks.choice("variance", variance, VARIANCE_KINDS)
    if variance == "learned":
        raise ValueError("eps_loss_weight needs a fixed σ_t²: with variance='learned' the weight depends on the "
                         "model's v; pass variance='beta' or 'beta_tilde'.")
    s = schedule
    w = np.zeros(s.T + 1)
    t = np.arange(1, s.T + 1)
    if variance == "beta":
        w[t] = s.betas[t] / (2.0 * s.alphas[t] * s.one_minus_alpha_bars[t])
    else:
        # β_t²/(β̃_t (1 − ᾱ_t)) = β_t / (1 − ᾱ_{t−1}); t = 1 is an explicit inf, not 0/0.
        one_minus_prev = s.one_minus_alpha_bars[t - 1]
        safe = np.where(one_minus_prev > 0, one_minus_prev, 1.0)
        w[t] = np.where(one_minus_prev > 0, s.betas[t] / (2.0 * s.alphas[t] * safe), np.inf)
    return w


class ReverseProcess(ForwardProcess):
    """The reverse process p_θ of DDPM and the variational bound it is trained and scored on.

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

        * ``"learned"``: Σ_θ = exp(v log β_t + (1 − v) log β̃_t) per dimension (Nichol &
          Dhariwal 2021, eq. 15), v the second half of the model's output channels (build the
          model with ``learn_sigma=True``: it returns 2C channels, ε then v).  log β̃_t is the
          clipped table of ``"beta_tilde"``, so v ≡ 1 is exactly ``"beta"`` and v ≡ 0 exactly
          ``"beta_tilde"``, t = 1 included.

        The choice changes the bound (L_{t−1} and L_0) and the ancestral sampler's noise;
        it does not change L_simple or DDIM.
    num_levels:
        Number of intensity levels K of the data, used by the discretized decoder L_0
        (bins of width 2/(K−1) on [−1, 1]).  Default 256 (8-bit images); the bundled
        digits have 17 (:data:`ddpm_lite.data.DIGITS_LEVELS`).  ``None`` means continuous
        data (e.g. 2-D points): L_0 is then the negative log *density* −log N(x_0; μ_θ(x_1, 1),
        σ_1²), so "bits per dimension" is a differential quantity and may be negative.
    """

    def __init__(self, schedule: NoiseSchedule, *, variance: VarianceKind = "beta", num_levels: int | None = 256) -> None:
        super().__init__(schedule)
        self.variance = checks.choice("variance", variance, VARIANCE_KINDS)
        self.num_levels = checks.integer("num_levels", num_levels, 2, allow_none=True,
                                         hint="Use None for continuous data.")
        self._build_reverse_constants()

    def _build_reverse_constants(self) -> None:
        """Float64 tables (length T + 1, index = timestep) used by the reverse process."""
        s = self.schedule
        # The two ends of the learned interpolation, and the fixed choices themselves.
        self.max_log_variance = np.log(np.concatenate([[s.betas[1]], s.betas[1:]]))  # index 0 kept finite
        self.min_log_variance = np.array(s.posterior_log_variance_clipped, dtype=np.float64)
        # For "learned" these fixed tables are v ≡ 0 (β̃), used only where no model output exists.
        log_var = self.max_log_variance if self.variance == "beta" else self.min_log_variance
        self.model_log_variance = log_var.copy()
        self.model_variance = np.exp(log_var)
        # μ_θ = (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) ε_θ)  (eq. ``eps-param``).
        self.recip_sqrt_alphas = 1.0 / s.sqrt_alphas
        denom = s.sqrt_one_minus_alpha_bars.copy()
        denom[0] = 1.0
        self.eps_coef = s.betas / denom  # β_t/√(1 − ᾱ_t); 0 at index 0
        for name in ("model_variance", "model_log_variance", "recip_sqrt_alphas", "eps_coef", "max_log_variance",
                     "min_log_variance"):
            getattr(self, name).setflags(write=False)

    # ------------------------------------------------------------------ checks
    def check_on_grid(self, x0: torch.Tensor) -> None:
        """Raise ValueError unless x_0 lies on the K-level grid the discretized decoder needs.

        No-op for continuous data (``num_levels=None``).  Reads values back from the device:
        call it once per dataset, not per step.
        """
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

    @property
    def learned_variance(self) -> bool:
        """True when σ_t² comes from the model's v output (``variance="learned"``)."""
        return self.variance == "learned"

    def _eps(self, eps_model: EpsModel, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(ε_θ, v) from one model call; v is None for a fixed variance."""
        check_eps_model(eps_model)
        if hasattr(eps_model, "check_schedule"):  # a model with ᾱ_t built in (ddpm_lite.nets.levels) must share ours
            eps_model.check_schedule(self.schedule)
        return self.split_output(eps_model(xt, t), xt)

    def split_output(self, out: object, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split a model output into (ε_θ, v): shaped like xt, or with twice its channels (dim 1) when learned."""
        if not self.learned_variance:
            check_model_output(out, xt)
            return out, None
        want = (xt.shape[0], 2 * xt.shape[1], *xt.shape[2:]) if xt.dim() > 1 else None
        if not isinstance(out, torch.Tensor) or want is None or tuple(out.shape) != want:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"variance='learned' needs a model that returns ε and v stacked on dim 1, shape {want}, "
                             f"got {got}; build it with learn_sigma=True.")
        eps, v = out.chunk(2, dim=1)
        return eps, v

    def learned_log_variance(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log Σ_θ = v log β_t + (1 − v) log β̃_t per element (Nichol & Dhariwal 2021, eq. 15).

        log β̃_t is clipped at t = 1 to log β̃_2 (the table of ``"beta_tilde"``), so the decoder
        keeps a finite width for every v.
        """
        hi, lo = self.coef_at("max_log_variance", t, v), self.coef_at("min_log_variance", t, v)
        return v * hi + (1.0 - v) * lo

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
        check_eps_model(eps_model)
        self._check_x(xt, "xt")
        t = self._check_t(t, xt)
        eps, v = self._eps(eps_model, xt, t)
        return self._p_from_eps(xt, t, eps, clip_x0, v)

    def _p_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, clip_x0: bool = False,
                    v: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        pred_x0 = self._predict_x0(xt, t, eps)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
            mean = self._q_posterior(pred_x0, xt, t)[0]
        else:
            mean = self.coef_at("recip_sqrt_alphas", t, xt) * (xt - self.coef_at("eps_coef", t, xt) * eps)
        if v is None:
            log_var = self.coef_at("model_log_variance", t, xt).expand_as(xt)
            var = self.coef_at("model_variance", t, xt).expand_as(xt)
        else:
            log_var = self.learned_log_variance(v.to(xt.dtype), t)
            var = torch.exp(log_var)
        return {
            "mean": mean,
            "variance": var,
            "log_variance": log_var,
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
        return -0.5 * (LOG_2PI + log_variance + (x0 - mean) ** 2 * torch.exp(-log_variance))

    def vb_terms_bpd(self, eps_model: EpsModel, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """L_{t−1} for each sample, in bits per dimension (eqs. ``Lt-minus-1``, ``decoder``).

        For t ≥ 2: KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)), a Gaussian KL.
        For t = 1: −log p_θ(x_0 | x_1), the decoder with log-scale ½ log σ_1².
        Both are averaged over data dimensions and divided by ln 2.  Returns shape (batch,).
        """
        check_eps_model(eps_model)
        self._check_x(x0, finite=True, nonempty=True)
        self._check_x(xt, "xt")
        self._check_same_shape(xt, x0, "xt")
        t = self._check_t(t, x0)
        self.check_on_grid(x0)
        eps, v = self._eps(eps_model, xt, t)
        return self._vb_terms_bpd(x0, xt, t, eps, v=v)

    def _vb_terms_bpd(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                      detach_mean: bool = False, v: torch.Tensor | None = None) -> torch.Tensor:
        # The bound is evaluated in at least float32 whatever the model's precision.
        work = torch.promote_types(xt.dtype, torch.float32)
        x0, xt, eps = x0.to(work), xt.to(work), eps.to(work)
        p = self._p_from_eps(xt, t, eps, v=v)
        mean = p["mean"].detach() if detach_mean else p["mean"]
        true_mean, _, true_log_var = self._q_posterior(x0, xt, t)
        kl = normal_kl(true_mean, true_log_var, mean, p["log_variance"]).flatten(1).mean(1) / LN2
        is_decoder = t == 1
        if not bool(is_decoder.any()):
            return kl
        idx = is_decoder.nonzero(as_tuple=True)[0]
        nll = -self.decoder_log_likelihood(x0[idx], mean[idx], p["log_variance"][idx]).flatten(1).mean(1) / LN2
        return kl.index_put((idx,), nll.to(kl.dtype))

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
        checks.integer("batch_size", batch_size, 1)
        check_eps_model(eps_model)
        check_generator(generator)
        self._check_x(x0, finite=True, nonempty=True)
        self.check_on_grid(x0)
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
                noise = randn(x_rep.shape, generator, x0.device, x0.dtype)
                xt = self._q_sample(x_rep, rows, noise)
                eps, v = self._eps(eps_model, xt, rows)
                terms = self._vb_terms_bpd(x_rep, xt, rows, eps, v=v).cpu().double().view(len(ts), n)
                vb_sum[t_lo:t_lo + len(ts)] += terms.sum(1)
                per_sample[start:start + n] += terms.sum(0)
        vb = vb_sum[1:] / n_total
        return {"total": float(per_sample.mean()), "prior": prior, "vb": vb, "decoder": float(vb[0]),
                "per_sample": per_sample}
