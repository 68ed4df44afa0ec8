"""Gaussian densities the bound is made of: the KL between two Gaussians, the
discretized Gaussian decoder of L_0, and conversions to bits per dimension.

Everything here works elementwise on tensors of any shape; reductions over data
dimensions are left to the caller so per-pixel terms stay available for plots.
Half-precision inputs (float16, bfloat16) are promoted to float32 before any
arithmetic: the log-CDF tails and the small differences below would lose every
digit in a 3-significant-digit format.  Results come back in the working dtype.
"""

from __future__ import annotations

import math

import torch

from . import checks

__all__ = [
    "normal_kl",
    "discretized_gaussian_log_likelihood",
    "bin_edges",
    "level_index",
    "nats_to_bits_per_dim",
    "LN2",
    "LOG_2PI",
]

LN2 = math.log(2.0)
#: log 2π, the constant of every Gaussian log-density.
LOG_2PI = math.log(2.0 * math.pi)
_HALF_LOG_2PI = 0.5 * LOG_2PI

#: Half-width of a bin, in units of σ, below which the decoder switches from a
#: difference of two log-CDFs to a midpoint expansion.  Chosen where the two
#: error sources cross: the log-CDF difference loses about eps/h relative digits,
#: the expansion truncates at about h⁴/8.  float32: both ≈ 1e-6; float64: ≈ 1e-13.
_NARROW_BIN = {torch.float32: 0.03, torch.float64: 1e-3}


def _working_dtype(*args: object) -> torch.dtype:
    """The promoted floating dtype of the tensor arguments, at least float32."""
    dtype = torch.float32
    for a in args:
        if isinstance(a, torch.Tensor):
            if not (a.is_floating_point()):
                raise TypeError(f"expected floating tensors, got dtype {a.dtype}; convert with .float().")
            dtype = torch.promote_types(dtype, a.dtype)
    return dtype


def _to(x: torch.Tensor | float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(float(x), dtype=dtype, device=device)


# ---------------------------------------------------------------------- KL
def _exp_minus_one_minus(d: torch.Tensor) -> torch.Tensor:
    """e^d − 1 − d ≥ 0, accurate to full relative precision even for tiny |d|.

    Written naively it cancels catastrophically near d = 0 (and can even come out
    negative, which would make a KL negative); there we sum its Taylor series
    d²/2! + d³/3! + …, which for |d| ≤ 0.1 converges to float64 precision in 12 terms.
    """
    small = d.abs() <= 0.1
    ds = torch.where(small, d, torch.zeros_like(d))  # keep the series' input tame where unused
    series = torch.zeros_like(d)
    for k in range(13, 1, -1):  # Horner: d²(1/2! + d(1/3! + d(1/4! + …)))
        series = series * ds + 1.0 / math.factorial(k)
    series = series * ds * ds
    dl = torch.where(small, torch.ones_like(d), d)  # the direct form, only used away from 0
    return torch.where(small, series, torch.expm1(dl) - dl)


def normal_kl(
    mean1: torch.Tensor | float,
    logvar1: torch.Tensor | float,
    mean2: torch.Tensor | float,
    logvar2: torch.Tensor | float,
) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), elementwise, in nats (eq. ``gaussian-kl``).

    ½ [ log σ₂²/σ₁² + σ₁²/σ₂² − 1 + (μ₁ − μ₂)²/σ₂² ], evaluated as
    ½ [ (e^d − 1 − d) + (μ₁ − μ₂)² e^{−logvar2} ] with d = logvar1 − logvar2, so both
    terms are ≥ 0 by construction and the result is exactly 0 iff the two Gaussians
    are equal.  Log-variances (not variances) are taken so tiny variances such as
    β̃_2 stay representable.  At least one argument must be a tensor; arguments
    broadcast against each other; the result has the promoted dtype (≥ float32).
    """
    ref = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor)), None)
    if ref is None:
        raise TypeError("normal_kl needs at least one torch.Tensor argument (got only Python numbers).")
    dtype = _working_dtype(mean1, logvar1, mean2, logvar2)
    mean1, logvar1, mean2, logvar2 = (_to(a, dtype, ref.device) for a in (mean1, logvar1, mean2, logvar2))
    variance_term = _exp_minus_one_minus(logvar1 - logvar2)
    mean_term = (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    return 0.5 * (variance_term + mean_term)


# ---------------------------------------------------------------------- decoder
def level_index(x: torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    """The integer level k in 0..K−1 nearest to each ``x`` in [−1, 1] (inverse of eq. ``data-scaling``)."""
    _check_num_levels(num_levels)
    return torch.round((x + 1.0) * ((num_levels - 1) / 2.0)).clamp(0, num_levels - 1)


def bin_edges(x: torch.Tensor, num_levels: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper edges of the decoder bin around each level ``x`` in [−1, 1] (eq. ``decoder``).

    The K levels are −1 + 2k/(K−1); each bin reaches half a level spacing, 1/(K−1),
    either side, so neighbouring bins share an edge and together they tile the real
    line; the outermost bins are open: (−∞, −1 + 1/(K−1)] and [1 − 1/(K−1), ∞).
    For K = 256 this is the paper's δ₋ / δ₊ with 1/255.

    The edges are computed from the level index k (x is snapped to the nearest level),
    as (2k ± 1 − (K−1))/(K−1): the upper edge of level k and the lower edge of level k+1
    are then the *same* float.  Computing them as x ± 1/(K−1) instead leaves gaps and
    overlaps of one rounding error, which for σ ≲ 1e−4 in float32 is a visible fraction
    of σ and breaks Σ_k P(k) = 1.
    """
    k = level_index(x, num_levels)
    scale = 1.0 / (num_levels - 1)
    # Edge = (2k ± 1 − (K − 1)) / (K − 1): the numerator is an exact small integer, so each edge
    # is rounded once, relative to its own size.  (2k ± 1)/(K − 1) − 1 would cancel near 0 and
    # leave an absolute error of one ulp of 1, which is 6e−6 σ in float32 when σ = 0.01.
    centred = 2.0 * k - (num_levels - 1)
    lower = torch.where(k == 0, -math.inf, (centred - 1.0) * scale)
    upper = torch.where(k == num_levels - 1, math.inf, (centred + 1.0) * scale)
    return lower, upper


def _check_num_levels(num_levels: int) -> None:
    checks.integer("num_levels", num_levels, 2, hint="(256 for 8-bit images, 17 for the digits)")


def _log_sinhc(s: torch.Tensor) -> torch.Tensor:
    """log(sinh(s)/s), even in s; series near 0, and |s| + log(1 − e^{−2|s|}) − log 2|s| elsewhere (no overflow)."""
    a = s.abs()
    small = a < 0.1
    a_big = torch.where(small, torch.ones_like(a), a)
    big = a_big + torch.log(-torch.expm1(-2.0 * a_big)) - torch.log(2.0 * a_big)
    a2 = a * a  # series x²/6 − x⁴/180 + x⁶/2835 − x⁸/37800; next term < 1e−15 relative at |s| = 0.1
    series = a2 * (1.0 / 6.0 - a2 * (1.0 / 180.0 - a2 * (1.0 / 2835.0 - a2 / 37800.0)))
    return torch.where(small, series, big)


def _tilted_second_moment(s: torch.Tensor) -> torch.Tensor:
    """E[v²] for v on [−1, 1] with density ∝ e^{s v}: 1 − 2 L(s)/s, L the Langevin function coth s − 1/s."""
    a = s.abs()
    small = a < 0.1
    a_big = torch.where(small, torch.ones_like(a), a)
    big = 1.0 - 2.0 * (1.0 / torch.tanh(a_big) - 1.0 / a_big) / a_big
    a2 = a * a  # from coth x = 1/x + x/3 − x³/45 + 2x⁵/945 − x⁷/4725 + 2x⁹/93555 − …
    series = 1.0 / 3.0 + a2 * (2.0 / 45.0 - a2 * (4.0 / 945.0 - a2 * (2.0 / 4725.0 - a2 * 4.0 / 93555.0)))
    return torch.where(small, series, big)


def _log_ndtr(z: torch.Tensor) -> torch.Tensor:
    """log Φ(z), with a gradient that stays right in the far left tail.

    ``torch.special.log_ndtr`` has accurate values, but its backward pass divides two
    underflowing numbers: at z = −1000 the float32 gradient is 956 instead of 1000, at
    z = −4.5e4 it is 0.399 instead of 4.5e4 (float64 is off by 1 % at z = −1e7).  Below
    z = −20 we therefore use the asymptotic series (Abramowitz & Stegun 26.2.12)
    log Φ(z) = −z²/2 − log(−z √(2π)) + log(1 − 1/z² + 3/z⁴ − 15/z⁶ + …), whose
    autograd derivative is exact; eight terms reach float64 precision at z = −20.
    """
    tail = z < -20.0
    zt = torch.where(tail, z, torch.full_like(z, -20.0))
    inv_z2 = 1.0 / (zt * zt)
    # Horner in u = 1/z²: Σ_{k=1..8} (−1)^k (2k−1)!! u^k = −u(1 − 3u(1 − 5u(1 − …(1 − 15u))))
    nested = torch.ones_like(zt)
    for k in range(8, 1, -1):
        nested = 1.0 - (2 * k - 1) * inv_z2 * nested
    asymptotic = -0.5 * zt * zt - _HALF_LOG_2PI - torch.log(-zt) + torch.log1p(-inv_z2 * nested)
    return torch.where(tail, asymptotic, torch.special.log_ndtr(torch.where(tail, torch.zeros_like(z), z)))


def _log_prob_narrow_bin(z_mid: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """log ∫_{z_mid−h}^{z_mid+h} φ(z) dz for a bin narrow in units of σ (h ≲ 0.03).

    ∫ φ(z_mid + u) du = φ(z_mid) ∫ e^{−z_mid u} e^{−u²/2} du over [−h, h]; the first
    factor integrates to 2h sinh(s)/s with s = z_mid h, and e^{−u²/2} ≈ 1 − u²/2 averaged
    under that tilted weight gives 1 − h²/2 · E[v²].  Neglected: ≤ h⁴/8 relative.
    This uses the bin width h directly, so it does not suffer the cancellation of
    Φ(b) − Φ(a) when a and b round to (nearly) the same number.
    """
    s = z_mid * h
    return (-0.5 * z_mid**2 - _HALF_LOG_2PI + torch.log(2.0 * h) + _log_sinhc(s)
            + torch.log1p(-0.5 * h * h * _tilted_second_moment(s)))


def _log_prob_wide_bin(z_lo: torch.Tensor, z_hi: torch.Tensor, h: torch.Tensor, z_mid: torch.Tensor) -> torch.Tensor:
    """log(Φ(z_hi) − Φ(z_lo)) from log-CDFs, using upper tails for bins right of the mean.

    log(Φ(b) − Φ(a)) = log Φ(b) + log(1 − e^{log Φ(a) − log Φ(b)}).  On the right of the
    mean Φ(a), Φ(b) both round to 1, so there we use the mirror image Φ(−a) − Φ(−b).
    Far in a tail (|z| ≳ h/eps) the two log-CDFs can round to the same float; the log
    ratio is then −2h|z_mid| to leading order, which makes the second factor 1 to
    working precision, as it should be.
    """
    right = z_lo > 0
    a = _log_ndtr(torch.where(right, -z_lo, z_hi))
    b = _log_ndtr(torch.where(right, -z_hi, z_lo))
    log_ratio = torch.where(b < a, b - a, -2.0 * h * z_mid.abs())
    return a + torch.log(-torch.expm1(log_ratio))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor | float, log_scale: torch.Tensor | float, num_levels: int = 256
) -> torch.Tensor:
    """log p(x | mean, σ) of the discretized Gaussian decoder, elementwise, in nats (eq. ``decoder``).

    p(x) = ∫_{δ₋(x)}^{δ₊(x)} N(u; mean, σ²) du = Φ((δ₊ − mean)/σ) − Φ((δ₋ − mean)/σ), with
    σ = e^log_scale and the bin edges of :func:`bin_edges` (open at the two end levels,
    so the K probabilities sum to 1).  The result is finite and accurate for means far
    outside [−1, 1] and σ from 1e−6 to 1e6; gradients are finite there too:

    * open end bins use one log-CDF, log Φ(z_hi) or log Φ(−z_lo);
    * interior bins wider than ~0.03σ use a difference of log-CDFs (``torch.special.log_ndtr``,
      with an asymptotic series below z = −20 so the gradient stays right),
      mirrored to the upper tail right of the mean;
    * narrower bins use a midpoint expansion that never subtracts nearby numbers.

    Parameters
    ----------
    x:          data on the K-level grid in [−1, 1] (see ``ddpm_lite.data.to_model_range``).
    mean:       decoder mean μ_θ(x_1, 1), broadcastable against ``x``.
    log_scale:  log σ (log standard deviation, not variance), broadcastable against ``x``.
    num_levels: K, the number of intensity levels (256 for 8-bit images, 17 for the digits).
    """
    _check_num_levels(num_levels)
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating torch.Tensor scaled to [-1, 1], got {got}.")
    if x.numel() and torch.isnan(x).any():
        raise ValueError("x contains NaN; the decoder needs data on the K-level grid in [-1, 1].")
    if x.numel() and (x.min() < -1.0 - 1e-4 or x.max() > 1.0 + 1e-4):
        raise ValueError(
            f"x must lie in [-1, 1] (found values in [{x.min().item():.3g}, {x.max().item():.3g}]); "
            "scale data with ddpm_lite.data.to_model_range first."
        )
    dtype = _working_dtype(x, mean, log_scale)
    x, mean, log_scale = torch.broadcast_tensors(
        x.to(dtype), _to(mean, dtype, x.device), _to(log_scale, dtype, x.device)
    )
    half = 1.0 / (int(num_levels) - 1)
    lower, upper = bin_edges(x, num_levels)
    is_lowest, is_highest = torch.isinf(lower), torch.isinf(upper)
    centre = (lower + upper) / 2  # x snapped to its level; end bins are replaced below
    centre = torch.where(is_lowest, upper - half, torch.where(is_highest, lower + half, centre))
    inv_scale = torch.exp(-log_scale)
    z_mid = (centre - mean) * inv_scale
    h = half * inv_scale  # half the bin width, in units of σ
    # Edges in units of σ from the shared edge floats, so neighbouring bins meet exactly.
    z_lo = (torch.where(is_lowest, centre - half, lower) - mean) * inv_scale
    z_hi = (torch.where(is_highest, centre + half, upper) - mean) * inv_scale

    narrow = h < _NARROW_BIN.get(dtype, _NARROW_BIN[torch.float32])
    # Each branch sees harmless inputs where it is not selected, so no inf/NaN
    # appears in the unused branch and nothing leaks into the gradient through torch.where.
    h_narrow = torch.where(narrow, h, torch.full_like(h, 1e-3))
    interior = torch.where(
        narrow,
        _log_prob_narrow_bin(z_mid, h_narrow),
        _log_prob_wide_bin(torch.where(narrow, z_mid - 1.0, z_lo), torch.where(narrow, z_mid + 1.0, z_hi), h, z_mid),
    )
    lowest = _log_ndtr(z_hi)  # (−∞, δ₊]
    highest = _log_ndtr(-z_lo)  # [δ₋, ∞)
    return torch.where(is_lowest, lowest, torch.where(is_highest, highest, interior))


# ---------------------------------------------------------------------- units
def nats_to_bits_per_dim(nats: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """Convert a negative log-likelihood of ``num_dims`` data dimensions from nats to bits per dimension (eq. ``bits-per-dim``).

    bits/dim = nats / (D ln 2).  E.g. a uniform model over 256 levels costs D ln 256
    nats, i.e. exactly 8 bits/dim.
    """
    checks.integer("num_dims", num_dims, 1)
    return nats / (num_dims * LN2)
