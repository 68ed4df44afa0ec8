"""Gaussian densities the bound is made of: the KL between two Gaussians, the
discretized Gaussian decoder of L_0, and conversions to bits per dimension.

Everything here works elementwise on tensors of any shape and any floating dtype;
reductions over data dimensions are left to the caller so per-pixel terms stay
available for plots.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "bin_edges",
    "nats_to_bits_per_dim",
    "LN2",
]

LN2 = math.log(2.0)


def _as_tensor(x: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=like.dtype, device=like.device)


def normal_kl(
    mean1: torch.Tensor, logvar1: torch.Tensor | float, mean2: torch.Tensor | float, logvar2: torch.Tensor | float
) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), elementwise, in nats (eq. ``gaussian-kl``).

    ½ [ log σ₂²/σ₁² + (σ₁² + (μ₁ − μ₂)²)/σ₂² − 1 ].  Log-variances are taken instead of
    variances so that tiny variances (β̃_1 ≈ 0) stay representable.
    """
    ref = next(a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor))
    logvar1, mean2, logvar2 = (_as_tensor(a, ref) for a in (logvar1, mean2, logvar2))
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def bin_edges(x: torch.Tensor, num_levels: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper edges of the decoder bin around each level ``x`` in [−1, 1].

    The K levels are −1 + 2k/(K−1); each bin reaches half a level spacing, 1/(K−1),
    either side, and the outermost bins are open: (−∞, −1 + 1/(K−1)] and [1 − 1/(K−1), ∞).
    For K = 256 this is the paper's δ± with 1/255 (eq. ``decoder``).
    """
    half = 1.0 / (num_levels - 1)
    inf = torch.full_like(x, math.inf)
    lower = torch.where(x <= -1.0 + half / 2, -inf, x - half)
    upper = torch.where(x >= 1.0 - half / 2, inf, x + half)
    return lower, upper


def _log_diff_exp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(eᵃ − eᵇ) for a ≥ b, accurate when the two are close."""
    return a + torch.log(-torch.expm1(torch.clamp(b - a, max=0.0)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, num_levels: int = 256
) -> torch.Tensor:
    """log P(x) under the discretized Gaussian decoder, elementwise, in nats.

    P(x) = Φ((upper − mean)/σ) − Φ((lower − mean)/σ) with σ = e^log_scale and the bin
    edges of :func:`bin_edges`.  Computed from log-CDFs (``torch.special.log_ndtr``) on
    whichever side of the mean the bin lies, so it is finite for means far outside
    [−1, 1] and for σ from 1e−6 to 1e6; the probabilities over the K levels sum to 1.

    ``x`` must hold values on the K-level grid (data scaled by :func:`ddpm_lite.data`).
    """
    if num_levels < 2:
        raise ValueError(f"num_levels must be at least 2, got {num_levels}.")
    if not torch.is_floating_point(x):
        raise ValueError(f"x must be a floating tensor scaled to [-1, 1], got dtype {x.dtype}.")
    if x.numel() and (x.min() < -1.0 - 1e-4 or x.max() > 1.0 + 1e-4):
        raise ValueError(
            f"x must lie in [-1, 1] (found values in [{x.min().item():.3g}, {x.max().item():.3g}]); "
            "scale data with ddpm_lite.data.to_model_range first."
        )
    # Work in at least float32: the tails of log Φ lose everything in bf16/fp16.
    work = torch.promote_types(torch.promote_types(x.dtype, mean.dtype), torch.float32)
    x, mean, log_scale = x.to(work), mean.to(work), log_scale.to(work)
    lower, upper = bin_edges(x, num_levels)
    inv_scale = torch.exp(-log_scale)
    z_lo, z_hi = (lower - mean) * inv_scale, (upper - mean) * inv_scale
    # A bin right of the mean: use upper-tail probabilities Φ(−z), which do not round to 1.
    right = z_lo > 0
    a = torch.where(right, torch.special.log_ndtr(-z_lo), torch.special.log_ndtr(z_hi))
    b = torch.where(right, torch.special.log_ndtr(-z_hi), torch.special.log_ndtr(z_lo))
    log_p = _log_diff_exp(a, b)
    # If both log-CDFs round to the same float the difference is lost; fall back to
    # density × width at the bin centre, which is what the integral tends to there.
    width = torch.clamp(upper - lower, max=2.0 / (num_levels - 1))
    z_mid = (x - mean) * inv_scale
    approx = -0.5 * z_mid**2 - 0.5 * math.log(2 * math.pi) - log_scale + torch.log(width)
    return torch.where(torch.isfinite(log_p), log_p, approx)


def nats_to_bits_per_dim(nats: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """Convert a total in nats over ``num_dims`` data dimensions to bits per dimension."""
    if num_dims < 1:
        raise ValueError(f"num_dims must be a positive integer, got {num_dims}.")
    return nats / (num_dims * LN2)
