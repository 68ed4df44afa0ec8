"""The variance schedule β_1..β_T and every quantity derived from it.

Convention (see ``book/notation.md``): every array has length ``T + 1`` so that
index ``t`` *is* the paper's timestep ``t``.  Index 0 stands for clean data:
β_0 = 0, α_0 = 1, ᾱ_0 = 1.  All constants are built once in float64; callers
cast them to their working dtype at the point of use.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from . import checks

__all__ = ["NoiseSchedule", "SCHEDULE_KINDS", "MAX_T"]

#: Names accepted by :meth:`NoiseSchedule.from_name`.
SCHEDULE_KINDS = ("linear", "cosine", "quadratic", "sigmoid")

#: Largest chain length we build.  Arrays are O(T) float64, so 10⁶ steps is
#: about 100 MB of constants; longer chains are refused rather than allowed to
#: exhaust memory.
MAX_T = 1_000_000

#: Smallest β_t accepted: below about 1e-30 the float32 bound becomes NaN (β = 1e-300 does).
MIN_BETA = 1e-20

# The cosine schedule's β are clipped here (Nichol & Dhariwal 2021, §3.2): the
# last steps would otherwise have β_T = 1, i.e. α_T = 0 and a singular chain.
COSINE_MAX_BETA = 0.999


def _check_T(T: object) -> int:
    T = checks.integer("T", T, what="a positive integer number of steps")
    if T < 1:
        raise ValueError(f"T must be at least 1, got T={T}.")
    if T > MAX_T:
        raise ValueError(f"T={T} is larger than the supported maximum {MAX_T}; use a shorter chain.")
    return T


def _check_beta_range(beta_1: float, beta_T: float) -> tuple[float, float]:
    return tuple(checks.number(name, value, 0.0, 1.0, lo_open=True, hi_open=True,
                               what="a number strictly between 0 and 1")
                 for name, value in (("beta_1", beta_1), ("beta_T", beta_T)))


class NoiseSchedule:
    """A fixed forward-process variance schedule and its derived constants.

    Parameters
    ----------
    betas:
        β_1, …, β_T as a 1-D sequence of length T ≥ 1.  Every value must be
        finite and lie strictly inside (0, 1): β_t = 0 would make a step that
        adds no noise (and an infinite posterior precision), β_t = 1 would
        erase the signal in one step.

    Attributes (all float64 numpy arrays of length T + 1, index = timestep)
    ----------
    betas:                β_t, with β_0 = 0.
    alphas:               α_t = 1 − β_t.
    alpha_bars:           ᾱ_t = ∏_{s≤t} α_s, with ᾱ_0 = 1            (eq. ``closed-form-marginal``).
    alpha_bars_prev:      ᾱ_{t−1}; index 0 repeats ᾱ_0 = 1.
    one_minus_alpha_bars: 1 − ᾱ_t, computed without cancellation for small t.
    posterior_variance:   β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t; β̃_1 = 0 exactly (ᾱ_0 = 1).
    posterior_log_variance_clipped:
                          log β̃_t, with t = 1 (where β̃_1 = 0) replaced by log β̃_2 so
                          that it is finite; index 0 copies index 1.  For T = 1 there is no
                          β̃_2 and log β_1 is used instead.
    posterior_mean_coef_x0:  √ᾱ_{t−1} β_t / (1 − ᾱ_t)          (coefficient of x_0 in μ̃_t).
    posterior_mean_coef_xt:  √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)    (coefficient of x_t in μ̃_t).
    snr:                  ᾱ_t / (1 − ᾱ_t); index 0 is +inf (clean data has no noise).
    log_snr:              log ᾱ_t − log(1 − ᾱ_t); index 0 is +inf.
    sqrt_betas, sqrt_alphas, sqrt_alpha_bars, sqrt_one_minus_alpha_bars:
                          square roots of the above, precomputed for the samplers.
    """

    def __init__(self, betas: Sequence[float] | np.ndarray, *, name: str = "custom") -> None:
        try:
            b = np.asarray(betas, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"betas must be a 1-D sequence of numbers in (0, 1); could not convert it: {exc}") from None
        if b.ndim != 1:
            raise ValueError(f"betas must be 1-D (β_1..β_T), got an array of shape {b.shape}.")
        _check_T(b.size if b.size else 0)
        bad = ~np.isfinite(b)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"betas must be finite; β_{i + 1} = {b[i]}.")
        bad = (b < MIN_BETA) | (b >= 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"every β_t must lie strictly between 0 and 1 (at least {MIN_BETA:g}, below which float32 "
                f"turns the bound to NaN); β_{i + 1} = {b[i]!r}. "
                "Use a small positive value (e.g. 1e-4) instead of 0 and clip large values below 1."
            )
        self.name = name
        self.T = int(b.size)
        self._build(b)

    # ------------------------------------------------------------------ builders
    @classmethod
    def linear(cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> "NoiseSchedule":
        """β_t rising linearly from ``beta_1`` at t = 1 to ``beta_T`` at t = T (Ho et al. 2020).

        For T = 1 the single step uses ``beta_1``.
        """
        T = _check_T(T)
        b1, bT = _check_beta_range(beta_1, beta_T)
        return cls(b1 + (bT - b1) * _unit_ramp(T), name="linear")

    @classmethod
    def quadratic(cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> "NoiseSchedule":
        """√β_t rising linearly from √``beta_1`` to √``beta_T`` (the "quad" schedule of DDIM)."""
        T = _check_T(T)
        b1, bT = _check_beta_range(beta_1, beta_T)
        r1, rT = math.sqrt(b1), math.sqrt(bT)
        return cls((r1 + (rT - r1) * _unit_ramp(T)) ** 2, name="quadratic")

    @classmethod
    def sigmoid(cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> "NoiseSchedule":
        """β_t = beta_1 + (beta_T − beta_1)·σ(u), u from −6 to 6 (GeoDiff); σ(±6) leaves the ends 0.25 % inside the range."""
        T = _check_T(T)
        b1, bT = _check_beta_range(beta_1, beta_T)
        u = -6.0 + 12.0 * _unit_ramp(T)
        return cls(b1 + (bT - b1) / (1.0 + np.exp(-u)), name="sigmoid")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = COSINE_MAX_BETA) -> "NoiseSchedule":
        """ᾱ(t) = f(t)/f(0) with f(t) = cos²(π/2 · (t/T + s)/(1 + s)) (Nichol & Dhariwal 2021).

        β_t = min(1 − ᾱ(t)/ᾱ(t−1), ``max_beta``); the clip only bites at the last step(s),
        so ᾱ_T computed from the clipped β is ≈ 1e-3·ᾱ(T−1) rather than exactly 0.
        """
        T = _check_T(T)
        s = checks.number("s", s, 0.0, what="a finite number ≥ 0 (the cosine offset)")
        max_beta = checks.number("max_beta", max_beta, 0.0, 1.0, lo_open=True, hi_open=True)
        t = np.arange(T + 1, dtype=np.float64)
        f = np.cos((t / T + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
        betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
        # With s = 0 the first ratio is exactly 1 and β_1 = 0, which the chain cannot use.
        betas = np.maximum(betas, np.finfo(np.float64).tiny)
        return cls(betas, name="cosine")

    @classmethod
    def from_name(cls, kind: str, T: int = 1000, **kwargs: float) -> "NoiseSchedule":
        """Build a schedule by name: one of :data:`SCHEDULE_KINDS`."""
        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown schedule kind {kind!r}; choose one of {', '.join(SCHEDULE_KINDS)}.")
        return getattr(cls, kind)(T, **kwargs)

    # ------------------------------------------------------------------ derived
    def _build(self, b: np.ndarray) -> None:
        T = self.T
        self.betas = np.concatenate([[0.0], b])
        self.alphas = 1.0 - self.betas
        # Sum logs instead of multiplying: 1 − ᾱ_t for small t is then accurate to
        # full relative precision via expm1, which the posterior variance needs.
        log_alpha_bars = np.concatenate([[0.0], np.cumsum(np.log1p(-b))])
        self.alpha_bars = np.exp(log_alpha_bars)
        self.one_minus_alpha_bars = -np.expm1(log_alpha_bars)
        self.alpha_bars_prev = np.concatenate([[1.0], self.alpha_bars[:-1]])
        one_minus_prev = np.concatenate([[0.0], self.one_minus_alpha_bars[:-1]])

        denom = self.one_minus_alpha_bars.copy()
        denom[0] = 1.0  # index 0 is not a chain step; avoid 0/0 and fill it by hand below
        self.posterior_variance = one_minus_prev / denom * self.betas
        self.posterior_variance[0] = 0.0
        self.posterior_mean_coef_x0 = np.sqrt(self.alpha_bars_prev) * self.betas / denom
        self.posterior_mean_coef_xt = np.sqrt(self.alphas) * one_minus_prev / denom
        # At index 0 "the posterior" is the identity on x_0.
        self.posterior_mean_coef_x0[0], self.posterior_mean_coef_xt[0] = 1.0, 0.0

        floor = self.posterior_variance[2] if T >= 2 else self.betas[1]
        clipped = self.posterior_variance.copy()
        clipped[0] = clipped[1] = floor
        self.posterior_log_variance_clipped = np.log(clipped)

        with np.errstate(divide="ignore"):
            self.snr = self.alpha_bars / self.one_minus_alpha_bars
            self.log_snr = log_alpha_bars - np.log(self.one_minus_alpha_bars)
        self.snr[0] = self.log_snr[0] = np.inf

        self.sqrt_betas = np.sqrt(self.betas)
        self.sqrt_alphas = np.sqrt(self.alphas)
        self.sqrt_alpha_bars = np.sqrt(self.alpha_bars)
        self.sqrt_one_minus_alpha_bars = np.sqrt(self.one_minus_alpha_bars)

        for arr in vars(self).values():
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)  # shared constants: nobody should edit them in place

    # ------------------------------------------------------------------ helpers
    def check_t(self, t: object) -> None:
        """Raise ValueError unless every entry of ``t`` is an integer timestep in 1..T."""
        arr = np.asarray(t.detach().cpu() if hasattr(t, "detach") else t)
        if arr.size == 0:
            return
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"timesteps must be integers in 1..{self.T}, got dtype {arr.dtype}.")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 1 or hi > self.T:
            bad = lo if lo < 1 else hi
            raise ValueError(f"timestep t={bad} is outside 1..T (T={self.T}); timesteps follow the paper and start at 1.")

    def prior_kl_per_dim(self, mean_square: float | np.ndarray) -> np.ndarray:
        """L_T per data dimension in nats, averaged over data with E[x_0²] = ``mean_square``.

        KL(N(√ᾱ_T x_0, 1 − ᾱ_T) ‖ N(0, 1)) = ½(1 − ᾱ_T + ᾱ_T x_0² − 1 − log(1 − ᾱ_T)), which is
        linear in x_0², so its average over a dataset needs only the second moment.
        """
        try:
            m2 = np.asarray(mean_square, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"mean_square must be a number ≥ 0 (E[x_0²] of the data), got {mean_square!r}.") from None
        if not (np.isfinite(m2).all() and (m2 >= 0).all()):
            raise ValueError(f"mean_square must be finite and ≥ 0 (E[x_0²] of the data), got mean_square={mean_square!r}.")
        a = float(self.alpha_bars[self.T])
        # ½(ᾱ(m2 − 1) − log(1 − ᾱ)) = ½(ᾱ m2 + Σ_{k≥2} ᾱᵏ/k): both parts ≥ 0.  Written the first way
        # it cancels to rounding noise once ᾱ_T is small (−5e-19 bits/dim at T = 4000, a KL below
        # 0); the series (smallest term first, as the JavaScript explorer sums it) keeps full
        # relative precision for ᾱ < 1/4, where 40 terms reach 1e-24 of the first; log1p the rest.
        excess = sum(a**k / k for k in range(40, 1, -1)) if a < 0.25 else -a - np.log1p(-a)
        return 0.5 * (a * m2 + excess)

    def __len__(self) -> int:
        return self.T

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name}, T={self.T}, β_1={self.betas[1]:.3g}, β_T={self.betas[-1]:.3g}, ᾱ_T={self.alpha_bars[-1]:.3g})"


def _unit_ramp(T: int) -> np.ndarray:
    """(t − 1)/(T − 1) for t = 1..T, i.e. 0 → 1; all zeros when T = 1.

    Written out (not ``np.linspace``) so the in-browser explorer can use the
    identical formula and agree to the last few bits.
    """
    if T == 1:
        return np.zeros(1)
    return np.arange(T, dtype=np.float64) / (T - 1)
