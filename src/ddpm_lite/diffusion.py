"""GaussianDiffusion: the class a user builds — q, p_θ and the bound, plus training and sampling.

The layers of the derivation stack up as classes, each in its own module:
:class:`ddpm_lite.forward.ForwardProcess` (q: noising, the posterior, L_T) →
:class:`ddpm_lite.reverse.ReverseProcess` (p_θ, the decoder, the KL terms, bits/dim) →
:class:`GaussianDiffusion` (the training objectives, the samplers of
:mod:`ddpm_lite.sampling`, and the one serialisation of its settings).  Timesteps are the
paper's t = 1..T, given as integer tensors of shape (batch,); the ε-model protocol is
described in :mod:`ddpm_lite.plumbing`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch

from . import checks, sampling
from .plumbing import EpsModel, check_eps_model, check_generator, randn
from .reverse import VARIANCE_KINDS, ReverseProcess, VarianceKind, eps_loss_weight
from .schedule import NoiseSchedule
from .spacing import SPACING_KINDS, SpacingKind

if TYPE_CHECKING:  # a type only; importing it at run time would make the package import circular
    from .training.timesteps import ImportanceSampler

__all__ = ["GaussianDiffusion", "EpsModel", "VarianceKind", "LossKind", "VARIANCE_KINDS", "LOSS_KINDS",
           "eps_loss_weight"]

#: Choices of training objective for :meth:`GaussianDiffusion.training_losses`.
LossKind = Literal["simple", "vb", "hybrid"]
LOSS_KINDS: tuple[str, ...] = get_args(LossKind)


def _betas_sha256(schedule: NoiseSchedule) -> str:
    betas = np.ascontiguousarray(schedule.betas, dtype=np.float64)
    return hashlib.sha256(betas.tobytes()).hexdigest()[:16]


class GaussianDiffusion(ReverseProcess):
    """The DDPM of a fixed :class:`NoiseSchedule`: q, p_θ and the bound (inherited), plus the
    training objectives, the samplers and the one serialisation of its settings.

    Parameters are those of :class:`ddpm_lite.reverse.ReverseProcess`: ``schedule``,
    ``variance`` (σ_t²: ``"beta"``, ``"beta_tilde"`` or ``"learned"``) and ``num_levels`` (K of the data, or
    None for continuous data).
    """

    # ------------------------------------------------------------------ serialisation
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this diffusion, as a JSON-able dict (the one serialisation).

        ``betas`` holds β_1..β_T exactly (JSON writes float64 with round-trip precision), so a
        schedule given as an arbitrary array is rebuilt bit for bit; ``betas_sha256`` identifies
        it in short, e.g. when comparing a checkpoint with the current settings.
        """
        return {
            "schedule": self.schedule.name,
            "T": int(self.T),
            "betas": [float(b) for b in self.schedule.betas[1:]],
            "betas_sha256": _betas_sha256(self.schedule),
            "variance": self.variance,
            "num_levels": self.num_levels,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "GaussianDiffusion":
        """Inverse of :meth:`config`.

        Configs written before the betas were stored (``betas`` missing) are rebuilt from the
        schedule's name and T, and refused if that does not reproduce ``betas_sha256``.
        """
        if not isinstance(config, dict) or "T" not in config:
            raise ValueError(f"a diffusion config must be a dict from GaussianDiffusion.config(), got {config!r:.200}.")
        name = config.get("schedule", "custom")
        if config.get("betas") is not None:
            schedule = NoiseSchedule(config["betas"], name=str(name))
        else:
            schedule = NoiseSchedule.from_name(name, config["T"])
        diffusion = cls(schedule, variance=config.get("variance", "beta"), num_levels=config.get("num_levels", 256))
        want = config.get("betas_sha256")
        if schedule.T != config["T"] or (want is not None and want != _betas_sha256(schedule)):
            raise ValueError(f"the stored noise schedule ({name}, T={config['T']}) does not match its checksum; "
                             "the run's config was edited or damaged.")
        return diffusion

    # ------------------------------------------------------------------ checks and draws
    def draw_t_and_noise(self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
                         dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The random numbers of one training batch, in a fixed order: t ~ U{1..T}, then ε ~ N(0, I).

        Both are drawn on the generator's device (so a seed means the same on any device) and
        moved to ``device``.  :meth:`training_losses` draws through this method when it is not
        given t and noise, so a caller that draws a global batch here and keeps a slice (data
        parallel training) replays exactly what one process would have drawn.
        """
        t = self._draw_t(shape[0], generator, device)
        return t, randn(shape, generator, device, dtype)

    def _draw_t(self, batch: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        gen_device = generator.device if generator is not None else device
        return torch.randint(1, self.T + 1, (batch,), generator=generator, device=gen_device).to(device)

    # ------------------------------------------------------------------ training objectives
    def training_losses(self, eps_model: EpsModel, x0: torch.Tensor, kind: LossKind = "simple", lambda_vb: float = 0.001,
                        t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, check_inputs: bool = True,
                        t_sampler: ImportanceSampler | None = None) -> dict[str, torch.Tensor]:
        """Per-sample training losses from one ε_θ evaluation (eqs. ``l-simple``, ``Lt-minus-1``).

        Parameters
        ----------
        kind:
            ``"simple"``: L_simple = ‖ε − ε_θ(x_t, t)‖² averaged over dimensions (default).
            ``"vb"``: the bound, T·L_{t−1} in bits/dim (see :meth:`loss_vb`).
            ``"hybrid"``: L_hybrid = L_simple + ``lambda_vb``·T·L_{t−1} with μ_θ detached in
            the vb term (Nichol & Dhariwal 2021, §3.1): the vb term trains only the learned
            variance (``variance="learned"``), L_simple alone trains the mean.  With a fixed
            σ_t² the hybrid's gradient equals L_simple's.
        lambda_vb:
            Weight of the vb term in ``"hybrid"``; 0.001 as in Nichol & Dhariwal.
        t, noise:
            Timesteps (batch,) in 1..T and ε shaped like x0; drawn (uniform t, standard
            normal ε) from ``generator`` when omitted.
        t_sampler:
            An :class:`ddpm_lite.training.timesteps.ImportanceSampler`: when given (and ``t`` is not),
            t is drawn from it, ``loss`` is weighted by 1/(T p_t) (still unbiased for the
            objective) and the vb term is recorded to update p.  Needs kind ``"vb"`` or
            ``"hybrid"`` (p is driven by L_{t−1}).
        check_inputs:
            Check x_0 for NaN/inf (and, for the bound, that it lies on the ``num_levels``
            grid).  Default True.  These checks read a value back from the device; a
            training loop whose data were checked once may pass False to avoid one
            host/device synchronisation per step.  Shapes and ``t`` are always checked.

        Returns a dict of (batch,) tensors: ``loss`` (what to average and backpropagate),
        ``mse``, ``t``, ``weight`` (1/(T p_t), ones without a sampler), and for kinds ``"vb"`` and ``"hybrid"`` also ``vb`` (T·L_{t−1}, bits/dim).
        """
        checks.choice("kind", kind, LOSS_KINDS)
        checks.number("lambda_vb", lambda_vb, 0.0)
        check_eps_model(eps_model)
        check_generator(generator)
        self._check_x(x0, finite=check_inputs, nonempty=True)
        if kind != "simple" and check_inputs:
            self.check_on_grid(x0)
        weight = None
        if t_sampler is not None:
            if kind == "simple":
                raise ValueError("t_sampler needs kind='vb' or 'hybrid': its probabilities follow L_{t-1}.")
            if t is None:
                t, weight = t_sampler.draw(x0.shape[0], generator, x0.device)
        # The same draws, in the same order, as draw_t_and_noise.
        t = self._draw_t(x0.shape[0], generator, x0.device) if t is None else self._check_t(t, x0)
        if noise is None:
            noise = randn(x0.shape, generator, x0.device, x0.dtype)
        else:
            self._check_same_shape(noise, x0, "noise")
        xt = self._q_sample(x0, t, noise)
        eps, v = self._eps(eps_model, xt, t)
        mse = (noise - eps).square().flatten(1).mean(1)
        out = {"mse": mse, "t": t, "weight": torch.ones_like(mse) if weight is None else weight}
        if kind == "simple":
            out["loss"] = mse
            return out
        vb = self.T * self._vb_terms_bpd(x0, xt, t, eps, detach_mean=(kind == "hybrid"), v=v)
        out["vb"] = vb
        loss = vb if kind == "vb" else mse + lambda_vb * vb
        out["loss"] = loss if weight is None else loss * weight
        if t_sampler is not None:
            t_sampler.update(t, vb / self.T)
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

    # ------------------------------------------------------------------ sampling
    def sample(self, eps_model: EpsModel, shape: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str | None = None, trajectory_every: int | None = None,
               clip_x0: bool = False, dtype: torch.dtype | None = None,
               sampler: sampling.SamplerConfig | sampling.SamplerKind = "ancestral"):
        """Samples from p_θ: by default ancestral sampling, Algorithm 2 of Ho et al. (eq. ``sampling-step``).

        ``sampler`` picks another (``"ddim"``, ``"dpm++"``, ``"dpm++sde"``, or a
        :class:`ddpm_lite.sampling.SamplerConfig` with its options).  See
        :func:`ddpm_lite.sampling.sample` for the options.  Returns x_0, or (x_0, trajectory)
        when ``trajectory_every`` is set.
        """
        return sampling.sample(self, eps_model, shape, sampler, generator=generator, device=device, dtype=dtype,
                               trajectory_every=trajectory_every, clip_x0=clip_x0)

    def ddim_sample(self, eps_model: EpsModel, shape: tuple[int, ...], steps: int = 50, eta: float = 0.0,
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
        """DDIM(η) on ``steps`` of the T timesteps (Song et al. 2021, eq. 12); η = 0 is deterministic.

        Shorthand for :meth:`sample` with ``SamplerConfig("ddim", steps, eta=eta)``.
        """
        checks.integer("steps", steps, 1, self.T, what=f"an integer in 1..T (T={self.T})")  # None is no default here
        return self.sample(eps_model, shape, generator, device, dtype=dtype,
                           sampler=sampling.SamplerConfig("ddim", steps, eta=eta))

    def dpm_solver_sample(self, eps_model: EpsModel, shape: tuple[int, ...], steps: int = 20, order: int = 2,
                          spacing: SpacingKind = "logsnr", stochastic: bool = False,
                          generator: torch.Generator | None = None, device: torch.device | str | None = None,
                          dtype: torch.dtype | None = None) -> torch.Tensor:
        """DPM-Solver++ (Lu et al. 2022) in ``steps`` model calls; ``order=1`` is DDIM's step on the solver's grid.

        Shorthand for :meth:`sample` with ``SamplerConfig("dpm++sde" if stochastic else "dpm++",
        steps, order=order, spacing=spacing)``; see :func:`ddpm_lite.sampling.dpm_solver_plan`.
        """
        # Here None must not mean "the default": these shorthands name their defaults.
        checks.integer("steps", steps, 1, self.T, what=f"an integer in 1..T (T={self.T}) model evaluations")
        checks.choice("spacing", spacing, SPACING_KINDS)
        kind = "dpm++sde" if stochastic else "dpm++"
        return self.sample(eps_model, shape, generator, device, dtype=dtype,
                           sampler=sampling.SamplerConfig(kind, steps, order=order, spacing=spacing))

    def __repr__(self) -> str:
        return f"GaussianDiffusion({self.schedule!r}, variance={self.variance!r}, num_levels={self.num_levels})"
