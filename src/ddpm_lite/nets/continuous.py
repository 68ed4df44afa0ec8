"""Networks for continuous time: ε̂(z, γ) conditioned on the log-noise γ = −log SNR instead of a step t.

Conditioning on γ rather than on t makes the network's input the same for every schedule:
two schedules with the same ends present it with the same (z, γ) pairs, which is what the
continuous-time bound's invariance to the schedule's interior rests on, and a learned
schedule never invalidates what the network has learned.

* :class:`GammaUNet` — the book's U-Net with the timestep table replaced by an embedding of γ;
* :class:`ContinuousLevelDenoiser` — the level posterior of :mod:`ddpm_lite.nets.levels` in
  continuous time: α² = sigmoid(−γ) and σ² = sigmoid(γ) come from γ itself, so no table of
  ᾱ_t is needed and a learned schedule is used exactly.
* :func:`continuous_model` — either of them with a :class:`~ddpm_lite.logsnr.LogSNRSchedule`,
  as the :class:`~ddpm_lite.continuous.ContinuousModel` the training loop takes;
* :class:`EnsembleDenoiser` and :func:`ensemble_model` — several trained networks of γ as one
  denoiser (their mean ε̂), a model like any other for the bound and the samplers.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from .. import checks
from ..continuous import ContinuousModel
from ..logsnr import GAMMA_MAX, GAMMA_MIN, LogSNRSchedule
from .embedding import timestep_embedding
from .levels import level_values
from .unet import UNet

__all__ = ["GammaEmbedding", "GammaUNet", "ContinuousLevelDenoiser", "EnsembleDenoiser", "continuous_model",
           "ensemble_model"]

#: γ is mapped linearly from this fixed range onto the sinusoids' 0..1000 (a fixed range, not the
#: schedule's ends, so learned ends do not move the embedding of a given noise level).
GAMMA_RANGE = (-20.0, 10.0)


class GammaEmbedding(nn.Module):
    """γ ↦ MLP(sinusoid(1000·(γ − γ_lo)/(γ_hi − γ_lo))), shape (batch, out_dim)."""

    def __init__(self, out_dim: int, sinusoid_dim: int = 64) -> None:
        super().__init__()
        self.sinusoid_dim = sinusoid_dim
        self.mlp = nn.Sequential(nn.Linear(sinusoid_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        lo, hi = GAMMA_RANGE
        s = (gamma.to(torch.float64) - lo) * (1000.0 / (hi - lo))
        emb = timestep_embedding(s, self.sinusoid_dim, 1000).to(self.mlp[0].weight.dtype)
        return self.mlp(emb)


def _check_gamma(gamma: object, batch: int) -> torch.Tensor:
    if not isinstance(gamma, torch.Tensor) or not gamma.is_floating_point() or gamma.shape != (batch,):
        raise ValueError(f"gamma must be a float tensor of shape ({batch},) (log-noise levels −log SNR), "
                         f"got {gamma!r:.80}.")
    return gamma


class GammaUNet(UNet):
    """:class:`ddpm_lite.nets.UNet` called as ``net(z, gamma)``; the constructor takes UNet's arguments but T."""

    def __init__(self, **unet: object) -> None:
        if "T" in unet:
            raise ValueError("GammaUNet is conditioned on γ, not on a step: drop T.")
        super().__init__(T=1, **unet)
        self.time = GammaEmbedding(self.time.mlp[0].out_features)
        self.config = {k: v for k, v in self.config.items() if k != "T"} | {"kind": "gamma_unet"}

    def forward(self, z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if z.dim() != 4 or z.shape[1] != self.in_channels or tuple(z.shape[2:]) != self.image_size:
            raise ValueError(f"z must have shape (batch, {self.in_channels}, {self.image_size[0]}, "
                             f"{self.image_size[1]}), got {tuple(z.shape)}.")
        return self._trunk(z, self.time(_check_gamma(gamma, z.shape[0])))


class ContinuousLevelDenoiser(nn.Module):
    """ε̂(z, γ) through the exact posterior over the K levels of each pixel (chapter 13, continuous time).

    The U-Net outputs K logits per pixel (plus a learned per-position prior); adding the
    likelihood log N(z; α c_k, σ²) and normalising gives p(x = c_k | z), whose mean is x̂;
    ε̂ = (z − α x̂)/σ.  The arguments are :class:`GammaUNet`'s plus ``num_levels``.
    """

    def __init__(self, num_levels: int, **unet: object) -> None:
        super().__init__()
        self.num_levels = checks.integer("num_levels", num_levels, 2, hint="Use 17 for the bundled digits.")
        c = int(unet.get("in_channels", 1))
        self.net = GammaUNet(out_channels=c * num_levels, **unet)
        self.in_channels, self.image_size = c, self.net.image_size
        net_cfg = {k: v for k, v in self.net.config.items() if k not in ("kind", "out_channels")}
        self.config = dict(kind="continuous_levels", num_levels=self.num_levels, **net_cfg)
        self.prior_logits = nn.Parameter(torch.zeros(c, num_levels, *self.image_size))
        self.register_buffer("levels", level_values(num_levels).float(), persistent=False)

    def forward(self, z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        b, c, k = z.shape[0], self.in_channels, self.num_levels
        logits = self.net(z, gamma).float().reshape(b, c, k, *self.image_size)
        g = gamma.to(torch.float64)
        shape = (-1, 1, 1, 1, 1)
        a = torch.sigmoid(-g).sqrt().float().view(shape)
        s2 = torch.sigmoid(g).float().view(shape)
        cl = self.levels.view(1, 1, -1, 1, 1)
        log_post = logits + self.prior_logits - (z.float().unsqueeze(2) - a * cl) ** 2 / (2.0 * s2)
        x0 = (torch.softmax(log_post, dim=2) * cl).sum(2)
        eps = (z.float() - a.squeeze(2) * x0) / s2.squeeze(2).sqrt()
        return eps.to(z.dtype)


def continuous_model(data_shape: tuple[int, ...], *, num_levels: int | None = None, gamma_min: float = GAMMA_MIN,
                     gamma_max: float = GAMMA_MAX, learn_ends: bool = False, shape: str = "linear",
                     **unet: object) -> ContinuousModel:
    """A continuous-time model for images of ``data_shape`` (N, C, H, W): the level posterior when
    ``num_levels`` is given, else a :class:`GammaUNet`; with its :class:`LogSNRSchedule`."""
    dims = tuple(int(s) for s in data_shape)
    if len(dims) != 4:
        raise ValueError(f"continuous time is implemented for images (N, C, H, W); got data of shape {dims}. "
                         "Use the discrete-time models for points.")
    kw = dict(in_channels=dims[1], image_size=(dims[2], dims[3]), **unet)
    net = ContinuousLevelDenoiser(num_levels, **kw) if num_levels is not None else GammaUNet(**kw)
    return ContinuousModel(net, LogSNRSchedule(gamma_min, gamma_max, learn_ends=learn_ends, shape=shape))


class EnsembleDenoiser(nn.Module):
    """The mean ε̂(z, γ) of several networks of γ: one denoiser, so the bound holds for it as for any.

    At a fixed (z, γ) the guess x̂ = (z − σ ε̂)/α is affine in ε̂, so the mean ε̂ is the mean x̂, and
    by convexity ‖x − mean_k x̂_k‖² ≤ mean_k ‖x − x̂_k‖²: at every z and γ the ensemble's
    diffusion loss is at most its members' average, lower by how much they disagree.  Worth it
    when one network stops improving early (over-fitting a small training set, as on the
    digits): the rest of a time budget then trains another member instead.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, nn.Module) for m in members):
            raise ValueError("EnsembleDenoiser needs a non-empty sequence of networks ε̂(z, γ) (nn.Module).")
        self.members = nn.ModuleList(members)
        self.config = {"kind": "ensemble", "members": [getattr(m, "config", None) for m in members]}

    def forward(self, z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        out = self.members[0](z, gamma)
        for m in self.members[1:]:
            out = out + m(z, gamma)
        return out / len(self.members)


def ensemble_model(models: Sequence[ContinuousModel]) -> ContinuousModel:
    """One :class:`ContinuousModel` from several trained ones (copies; the originals are untouched).

    The networks become an :class:`EnsembleDenoiser`; the schedule is fixed and linear in γ between
    the mean of the members' ends (learned or not).  Only the ends enter L_∞ (its interior
    changes the estimate's variance, not its mean), and every member is a network of γ, so each
    is used at exactly the noise levels it was trained on.
    """
    models = list(models)
    if not models or not all(isinstance(m, ContinuousModel) for m in models):
        raise ValueError("ensemble_model needs a non-empty sequence of ddpm_lite.continuous.ContinuousModel.")
    ends = torch.stack([m.schedule.ends.detach().to("cpu", torch.float64) for m in models]).mean(0)
    net = EnsembleDenoiser([copy.deepcopy(m.net) for m in models])
    return ContinuousModel(net, LogSNRSchedule(float(ends[0]), float(ends[1]))).to(models[0].schedule.ends.device)
