"""ε_θ for data on a grid of K levels: a network's guess at x_0, corrected by Bayes' rule.

Images here take one of K known values per dimension (the digits: 17 grey levels).  For such
data the forward process says exactly how likely each level is after noising:
q(x_t | x_0 = c_k) = N(√ᾱ_t c_k, (1 − ᾱ_t) I).  :class:`LevelPosteriorDenoiser` lets a U-Net
output K logits per dimension (its prior guess of the level given all of x_t), adds that
log-likelihood, and reads off the posterior mean x̂_0 = Σ_k c_k softmax_k.  It returns
ε_θ = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t), so it is an ε-model like any other: the diffusion, the
bound, the samplers and the checkpoints need nothing new.

Why it helps the bound: for small t the noise is far narrower than the gap between levels,
the likelihood picks the right level unless the network is very sure of another, and x̂_0
is exact.  A plain ε-network has to learn that rounding, and its small errors are multiplied
by 1/√(1 − ᾱ_t) (100 at t = 1): the first ten terms cost it ~1 bit/dim (benchmarks/README.md,
"Likelihood").  Here they cost almost nothing and the network's capacity goes to the middle
of the chain, where what a pixel is depends on its neighbours.  Chapter 13 derives it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import checks
from .unet import UNet
from .embedding import _check_timesteps
from ..schedule import NoiseSchedule

__all__ = ["LevelPosteriorDenoiser", "level_values"]


def level_values(num_levels: int) -> torch.Tensor:
    """The K grid values c_k = −1 + 2k/(K − 1), k = 0..K−1, in float64 (the data range [−1, 1])."""
    checks.integer("num_levels", num_levels, 2)
    return torch.linspace(-1.0, 1.0, num_levels, dtype=torch.float64)


class LevelPosteriorDenoiser(nn.Module):
    """ε_θ(x_t, t) through the posterior over the K levels of each dimension of x_0.

    Parameters
    ----------
    schedule:
        The noise schedule of the diffusion this model is trained with; its ᾱ_t gives the
        exact likelihood of each level.  Stored (as β_1..β_T) in ``config``, and checked
        against the diffusion by :meth:`check_schedule` (training does it for you).
    num_levels:
        K, the number of values each dimension of x_0 takes, evenly spaced on [−1, 1]
        (17 for the bundled digits, 256 for 8-bit images).  Data off that grid makes the
        posterior meaningless; the diffusion's bound refuses such data anyway.
    learn_sigma:
        Also return v for a learned reverse variance (``GaussianDiffusion(variance="learned")``):
        the output is then ε and v stacked on dim 1, as for the other models.  Default False.
    **unet:
        Passed to :class:`ddpm_lite.nets.UNet` (``in_channels``, ``image_size``,
        ``base_channels``, …); its output width is set here to C·K logits (+ C for v).

    The logits start at zero, so an untrained model is the exact posterior under a uniform
    prior over levels, independently per dimension: already a sensible denoiser.  A learned
    per-position bias on the logits (the levels' marginal frequencies at each pixel) is
    added to the U-Net's output.
    """

    def __init__(self, schedule: NoiseSchedule, num_levels: int, *, learn_sigma: bool = False, **unet: object) -> None:
        super().__init__()
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a NoiseSchedule (the diffusion's), got {type(schedule).__name__}.")
        self.num_levels = checks.integer("num_levels", num_levels, 2, hint="Use 17 for the bundled digits.")
        c = int(unet.get("in_channels", 1))
        self.net = UNet(T=schedule.T, out_channels=c * (num_levels + int(bool(learn_sigma))), **unet)
        self.in_channels, self.image_size, self.T = self.net.in_channels, self.net.image_size, schedule.T
        self.learn_sigma = bool(learn_sigma)
        net_cfg = {k: v for k, v in self.net.config.items() if k not in ("kind", "T", "out_channels")}
        self.config = dict(kind="level_posterior", betas=[float(b) for b in schedule.betas[1:]],
                           num_levels=self.num_levels, learn_sigma=self.learn_sigma, **net_cfg)
        self.prior_logits = nn.Parameter(torch.zeros(c, num_levels, *self.image_size))
        ab = np.array(schedule.alpha_bars, dtype=np.float64)
        ab[0] = ab[1]  # t = 0 (x_t = x_0) would divide by 1 − ᾱ_0 = 0; nothing samples it
        self.register_buffer("sqrt_alpha_bar", torch.from_numpy(np.sqrt(ab)).float(), persistent=False)
        self.register_buffer("one_minus_alpha_bar", torch.from_numpy(1.0 - ab).float(), persistent=False)
        self.register_buffer("levels", level_values(num_levels).float(), persistent=False)
        self._betas = np.array(schedule.betas[1:], dtype=np.float64)

    def check_schedule(self, schedule: NoiseSchedule) -> None:
        """Raise ValueError unless ``schedule`` has this model's β_1..β_T (its likelihood would be wrong)."""
        b = np.asarray(schedule.betas[1:], dtype=np.float64)
        if b.shape != self._betas.shape or not np.array_equal(b, self._betas):
            raise ValueError(
                f"this LevelPosteriorDenoiser was built for another noise schedule (T={len(self._betas)}) than the "
                f"diffusion's ({schedule.name}, T={schedule.T}); build it with LevelPosteriorDenoiser(diffusion.schedule, ...)."
            )

    def level_log_posterior(self, xt: torch.Tensor, t: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x_0 = c_k | x_t) up to a constant, shape (batch, C, K, H, W).

        logits (network + per-position prior) + log N(x_t; √ᾱ_t c_k, 1 − ᾱ_t), the latter up to
        terms that do not depend on k.
        """
        shape = (-1, 1, 1, 1, 1)
        a, s2 = self.sqrt_alpha_bar[t].view(shape), self.one_minus_alpha_bar[t].view(shape)
        c = self.levels.view(1, 1, -1, 1, 1)
        return logits + self.prior_logits - (xt.unsqueeze(2) - a * c) ** 2 / (2.0 * s2)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = _check_timesteps(t, xt.shape[0], self.T)
        out = self.net(xt, t).float()
        b, c, k = xt.shape[0], self.in_channels, self.num_levels
        logits = out[:, : c * k].reshape(b, c, k, *self.image_size)
        x = xt.float()
        post = torch.softmax(self.level_log_posterior(x, t, logits), dim=2)
        x0 = (post * self.levels.view(1, 1, -1, 1, 1)).sum(2)
        a = self.sqrt_alpha_bar[t].view(-1, 1, 1, 1)
        eps = (x - a * x0) / self.one_minus_alpha_bar[t].sqrt().view(-1, 1, 1, 1)
        if self.learn_sigma:
            eps = torch.cat([eps, out[:, c * k:]], dim=1)
        return eps.to(xt.dtype)
