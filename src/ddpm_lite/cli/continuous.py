"""The command line's continuous-time runs (``train --time continuous``): settings, model, sampling, bpd.

Kept apart from :mod:`ddpm_lite.cli.main` so that the discrete path reads as before: a run's
diffusion config says ``time: continuous`` and every command asks this module what to do with it.
A continuous-time run is sampled and scored on a grid of T steps of its own γ
(:meth:`ddpm_lite.continuous.ContinuousDiffusion.discretize`), or, for ``bpd``, in the limit.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["resolve_train_args", "build_continuous", "diffusion_from_config", "for_sampling", "bound_json"]

#: train's defaults in discrete time; None in the parser so that a flag given with --time continuous is seen.
DISCRETE_DEFAULTS = {"schedule": "linear", "variance": "beta", "loss": "simple", "T": 1000}


def resolve_train_args(args: argparse.Namespace) -> None:
    """Fill the defaults of ``train`` for its ``--time``, refusing flags that do not apply (each names the fix)."""
    if args.time == "discrete":
        for key, value in DISCRETE_DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        for flag, given in (("--learn-ends", args.learn_ends), ("--gamma-shape", args.gamma_shape is not None),
                            ("--gamma-min", args.gamma_min is not None), ("--gamma-max", args.gamma_max is not None)):
            if given:
                raise ValueError(f"{flag} is for continuous time: add --time continuous, or drop {flag}.")
        return
    wrong = {"--schedule": args.schedule, "--variance": args.variance, "--T": args.T}
    for flag, value in wrong.items():
        if value is not None:
            raise ValueError(f"{flag} is for discrete time: with --time continuous the schedule is γ(t) between "
                             f"--gamma-min and --gamma-max (and the bound fixes the variance); drop {flag}.")
    if args.loss not in (None, "vb"):
        raise ValueError(f"--time continuous trains on the bound itself: use --loss vb (or leave it out), "
                         f"not --loss {args.loss}.")
    if args.importance:
        raise ValueError("--importance is for discrete time; --time continuous draws t with the low-discrepancy "
                         "sampler instead: drop --importance.")
    args.loss, args.T = "vb", None


def build_continuous(args: argparse.Namespace, data: Any, meta: dict) -> tuple[Any, Any]:
    """(model, diffusion) of ``train --time continuous`` for ``data``: images only."""
    import torch

    from ..continuous import ContinuousDiffusion
    from ..logsnr import GAMMA_MAX, GAMMA_MIN
    from ..nets.continuous import continuous_model

    if data.dim() != 4:
        raise ValueError("--time continuous is implemented for images (digits or a folder); for 2-D points "
                         "use the default --time discrete.")
    torch.manual_seed(args.seed)
    levels = meta["num_levels"] if args.denoiser == "levels" else None
    model = continuous_model(tuple(data.shape), num_levels=levels,
                             gamma_min=GAMMA_MIN if args.gamma_min is None else args.gamma_min,
                             gamma_max=GAMMA_MAX if args.gamma_max is None else args.gamma_max,
                             learn_ends=args.learn_ends, shape=args.gamma_shape or "linear")
    return model, ContinuousDiffusion(meta["num_levels"])


def diffusion_from_config(config: dict) -> Any:
    """The diffusion a run's stored config describes: continuous-time, or a GaussianDiffusion."""
    from ..continuous import ContinuousDiffusion
    from ..diffusion import GaussianDiffusion

    if isinstance(config, dict) and config.get("time") == "continuous":
        return ContinuousDiffusion.from_config(config)
    return GaussianDiffusion.from_config(config)


def for_sampling(model: Any, diffusion: Any, T: int | None) -> tuple[Any, Any]:
    """(model, diffusion) to sample from: a continuous-time run on a grid of ``T`` steps (default 1000)."""
    if not getattr(diffusion, "continuous", False):
        if T is not None:
            raise ValueError(f"--T is for continuous-time runs; this run has its own T={diffusion.T}: drop --T.")
        return model, diffusion
    discrete, wrapped = diffusion.discretize(model, 1000 if T is None else T)
    return wrapped, discrete


def bound_json(model: Any, diffusion: Any, x: Any, T: int | None, draws: int, generator: Any) -> dict:
    """The bound of ``bpd`` as JSON: every step of a discrete run; a continuous run's T → ∞ bound (and with
    ``--T``, its bound at T steps)."""
    if not getattr(diffusion, "continuous", False):
        if T is not None:
            raise ValueError(f"--T is for continuous-time runs; this run has its own T={diffusion.T}: drop --T.")
        res = diffusion.bits_per_dim(model, x, generator=generator)
        out = {"bits_per_dim": res["total"], "prior_L_T": res["prior"], "sum_L_t_minus_1": float(res["vb"][1:].sum()),
               "decoder_L_0": res["decoder"]}
        if diffusion.num_levels is None:
            out["note"] = "continuous data: a differential bound (can be negative), not a code length"
        return out
    res = diffusion.bits_per_dim(model, x, draws=draws, generator=generator)
    out = {"bits_per_dim": res["total"], "stderr": res["stderr"], "prior_L_T": res["prior"],
           "diffusion_L_inf": res["diffusion"], "decoder_L_0": res["recon"], "draws": draws, "time": "continuous",
           "gamma_min": float(model.schedule.gamma_min.detach()), "gamma_max": float(model.schedule.gamma_max.detach())}
    if T is not None:
        out[f"bits_per_dim_T{T}"] = diffusion.bits_per_dim_at(model, x, T, generator=generator)["total"]
    return out
