"""Which network: rebuild one from the ``config`` a checkpoint stores, or pick one for a data shape.

The catalogue of :mod:`ddpm_lite.nets` (MLP, U-Net) and :mod:`ddpm_lite.nets.levels` (the
level-posterior U-Net) in one place, so loading a run never needs to know which module a
model came from.
"""

from __future__ import annotations

import inspect
from typing import Literal, get_args

from torch import nn

from ..schedule import NoiseSchedule
from .levels import LevelPosteriorDenoiser
from .mlp import MLPDenoiser
from .unet import UNet

__all__ = ["build_model", "default_model", "DenoiserKind", "DENOISER_KINDS"]

#: What predicts ε: the plain network (``"eps"``), or ε through Bayes' rule over the data's
#: grey levels (``"levels"``, :class:`LevelPosteriorDenoiser`; images only).
DenoiserKind = Literal["eps", "levels"]
DENOISER_KINDS: tuple[str, ...] = get_args(DenoiserKind)

_TUPLES = ("image_size", "channel_mult", "attention_resolutions")


def build_model(config: dict) -> nn.Module:
    """Rebuild a model from its ``config`` dict (as stored in checkpoints)."""
    if not isinstance(config, dict):
        raise ValueError(f"model config must be a dict with a 'kind' entry, got {type(config).__name__}.")
    cfg = dict(config)
    kind = cfg.pop("kind", None)
    if kind in ("continuous", "gamma_unet", "continuous_levels", "ensemble"):
        return _build_continuous(kind, cfg)
    cls = {"mlp": MLPDenoiser, "unet": UNet, "level_posterior": LevelPosteriorDenoiser}.get(kind)
    if cls is None:
        raise ValueError(f"model config kind must be 'mlp', 'unet' or 'level_posterior', got {kind!r}.")
    allowed = set(inspect.signature(cls).parameters) - {"unet", "schedule"}
    if cls is LevelPosteriorDenoiser:
        allowed |= set(inspect.signature(UNet).parameters) - {"T", "learn_sigma", "out_channels"}
        allowed.add("betas")
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"model config for kind={kind!r} has unknown entries {unknown}; allowed: {sorted(allowed)}.")
    for key in _TUPLES:
        if cfg.get(key) is not None:
            cfg[key] = tuple(cfg[key])
    if kind == "mlp":
        if cfg.get("data_shape") is not None:
            cfg["data_shape"] = tuple(cfg["data_shape"])
        return MLPDenoiser(**cfg)
    if kind == "unet":
        return UNet(**cfg)
    if "betas" not in cfg:
        raise ValueError("a level_posterior model config needs its 'betas' (the noise schedule it was built for).")
    return LevelPosteriorDenoiser(NoiseSchedule(cfg.pop("betas")), **cfg)


def _build_continuous(kind: str, cfg: dict) -> nn.Module:
    """The continuous-time kinds of :mod:`ddpm_lite.nets.continuous` (a network of γ, and its schedule)."""
    from ..continuous import ContinuousModel
    from ..logsnr import LogSNRSchedule
    from .continuous import ContinuousLevelDenoiser, EnsembleDenoiser, GammaUNet

    nets = ("gamma_unet", "continuous_levels", "ensemble")
    try:
        if kind == "continuous":
            if not isinstance(cfg["net"], dict) or cfg["net"].get("kind") not in nets:
                raise ValueError("a continuous model config's 'net' must be a gamma_unet, continuous_levels or "
                                 "ensemble config.")
            return ContinuousModel(build_model(cfg["net"]), LogSNRSchedule(**cfg["schedule"]))
        if kind == "ensemble":
            members = cfg.pop("members")
            if cfg or not isinstance(members, list) or not members or len(members) > 64 or not all(
                    isinstance(m, dict) and m.get("kind") in nets[:2] for m in members):
                raise ValueError("an ensemble config is {'kind': 'ensemble', 'members': [1 to 64 gamma_unet or "
                                 "continuous_levels configs]}.")
            return EnsembleDenoiser([build_model(m) for m in members])
        for key in _TUPLES:
            if cfg.get(key) is not None:
                cfg[key] = tuple(cfg[key])
        return GammaUNet(**cfg) if kind == "gamma_unet" else ContinuousLevelDenoiser(**cfg)
    except (KeyError, TypeError) as err:
        raise ValueError(f"model config for kind={kind!r} is incomplete or has unknown entries ({err}).") from None


def default_model(data_shape: tuple[int, ...], T: int = 1000, learn_sigma: bool = False,
                  levels: tuple[NoiseSchedule, int] | None = None) -> nn.Module:
    """The model the CLI and the benchmarks use for data of shape (N, ...) — one recipe, one place.

    * points (N, d): :class:`MLPDenoiser` with 3 blocks of 128;
    * 8×8 images (and anything up to 15 px): :class:`UNet` with the defaults (99 329 params for gray);
    * 16×16 … 31 px: ``base_channels=32, channel_mult=(1, 2)``, attention at H/2;
    * 32 px and up: ``base_channels=64, channel_mult=(1, 2, 2)``, attention at H/4.
    Image sides must be divisible by 2^(levels − 1).  ``learn_sigma`` adds the v channels.
    ``levels=(schedule, K)`` wraps the same U-Net as a :class:`LevelPosteriorDenoiser` for data
    on K levels (images only).
    """
    shape = tuple(int(s) for s in data_shape)
    if len(shape) == 2:
        if levels is not None:
            raise ValueError("the level-posterior model is for images (N, C, H, W); points are continuous data.")
        return MLPDenoiser(dim=shape[1], T=T, learn_sigma=learn_sigma)
    if len(shape) != 4:
        raise ValueError(f"data must have shape (N, d) for points or (N, C, H, W) for images, got {shape}.")
    c, h, w = shape[1:]
    side = min(h, w)
    kw: dict = dict(in_channels=c, image_size=(h, w))
    if 16 <= side < 32:
        kw.update(base_channels=32, channel_mult=(1, 2), attention_resolutions=(h // 2,))
    elif side >= 32:
        kw.update(base_channels=64, channel_mult=(1, 2, 2), attention_resolutions=(h // 4,))
    if levels is not None:
        schedule, k = levels
        return LevelPosteriorDenoiser(schedule, k, learn_sigma=learn_sigma, **kw)
    return UNet(T=T, learn_sigma=learn_sigma, **kw)
