"""Chapter 14 (the bound in continuous time): the sympy steps it displays and the exact chain it measures.

The steps take chapter 4's posterior (:data:`.posterior.mu_tilde`, :data:`.posterior.beta_tilde`) and
chapter 3's Gaussian KL to the signal-to-noise form of L_{t−1}, then to the limit T → ∞ and the change of
variables v = SNR(t) (Kingma et al. 2021).  The numbers are for data x ~ N(0, s² I): given z_t =
α_t x + σ_t ε (α_t² = SNR/(1 + SNR), σ_t² = 1/(1 + SNR)) the best guess x̂ = E[x | z_t] is linear in z_t
and its error x − x̂ is Gaussian with variance :func:`mmse` whatever z_t is, so every term of the bound
and the variance of its one-sample estimate have closed forms.  All per dimension, in nats, float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from .. import NoiseSchedule
from ..logsnr import LogSNRSchedule, grid_noise_schedule
from .posterior import beta_tilde, mu_tilde, x_0_of_eps
from .verdict import (
    Step,
    abar_prev,
    abar_t,
    beta_t,
    check_identity,
    eps,
    eps_theta,
    gaussian_kl,
    log_normal,
    x_0,
)

__all__ = ["x0_hat", "snr_prev_expr", "snr_t_expr", "snr_form_steps", "limit_step", "change_of_variables_step",
           "ends_steps", "SHAPES", "ContinuousSchedule", "mmse", "denoise", "prior_loss", "reconstruction_loss",
           "diffusion_loss", "diffusion_loss_finite", "estimates", "estimator_variance", "grid_schedule"]

# ----------------------------------------------------------------------------- symbolic steps
#: x̂_0, the network's guess of the data.
x0_hat = sp.Symbol(r"\hat{x}_0", real=True)
#: SNR(t − 1) and SNR(t) written from their definition (eq. ``snr``) in the book's ᾱ symbols.
snr_prev_expr = abar_prev / (1 - abar_prev)
snr_t_expr = abar_t / (1 - abar_t)


def snr_form_steps() -> list[Step]:
    """L_{t−1} of a network that predicts x̂_0 (σ_t² = β̃_t) as ½(SNR(t−1) − SNR(t))(x_0 − x̂_0)², line by line,
    and its ε-form ½(SNR(t−1)/SNR(t) − 1)(ε − ε̂)²; every left side is built from chapter 4's μ̃_t and β̃_t."""
    model_mean = mu_tilde.subs(x_0, x0_hat)  # μ_θ = μ̃_t(x_t, x̂_0): the posterior mean at the guess
    kl = gaussian_kl(mu_tilde, beta_tilde, model_mean, beta_tilde)
    coef = sp.sqrt(abar_prev) * beta_t / (1 - abar_t)
    weight = (snr_prev_expr - snr_t_expr) / 2
    x0_err = (x_0 - x0_hat) ** 2
    eps_of = {x_0: x_0_of_eps, x0_hat: x_0_of_eps.subs(eps, eps_theta)}
    return [
        check_identity("equal variances: only the means count", kl, (mu_tilde - model_mean) ** 2 / (2 * beta_tilde)),
        check_identity("the means differ by a multiple of x₀ − x̂₀", mu_tilde - model_mean, coef * (x_0 - x0_hat)),
        check_identity("the weight is a difference of SNRs", coef**2 / (2 * beta_tilde), weight),
        check_identity("Lₜ₋₁ in SNR form", kl, weight * x0_err),
        check_identity("Lₜ₋₁ in ε-form", (weight * x0_err).subs(eps_of, simultaneous=True),
                       (snr_prev_expr / snr_t_expr - 1) / 2 * (eps - eps_theta) ** 2),
    ]


# A smooth family for the limit: log SNR(t) = −(g₀ + g₁ t + g₂ t²) holds the log-linear schedule (g₂ = 0) and
# the continuous linear-β one's bulk (chapter 1's ᾱ(t) = exp(−∫β) is quadratic in the exponent).
_t, _T = sp.Symbol("t", positive=True), sp.Symbol("T", positive=True)
_g = sp.symbols("g_0 g_1 g_2", real=True)


def limit_step() -> Step:
    """T (SNR(t − 1/T) − SNR(t)) → −SNR′(t) as T → ∞ (sympy's limit) for log SNR quadratic in t."""
    snr = sp.exp(-(_g[0] + _g[1] * _t + _g[2] * _t**2))
    lim = sp.limit(_T * (snr.subs(_t, _t - 1 / _T) - snr), _T, sp.oo)
    return check_identity("T (SNR(t − 1/T) − SNR(t)) → −SNR′(t)", lim, -sp.diff(snr, _t))


_s2, _v, _vmin, _vmax = sp.symbols("s^2 v v_min v_max", positive=True)


def mmse_expr() -> sp.Expr:
    """Var(x | z_v) for x ~ N(0, s²), z_v = αx + σε with α² = v/(1+v), σ² = 1/(1+v): s² − Cov(x, z)²/Var(z)."""
    a2, sig2 = _v / (1 + _v), 1 / (1 + _v)
    return _s2 - (sp.sqrt(a2) * _s2) ** 2 / (a2 * _s2 + sig2)


def change_of_variables_step() -> tuple[Step, Step]:
    """For any differentiable SNR(t): −SNR′(t) m(SNR(t)) = −d/dt M(SNR(t)) with M(v) = ∫ m dv (sympy's
    antiderivative), so ∫₀¹ −SNR′ m(SNR) dt = M(SNR(0)) − M(SNR(1)) = ∫ m(v) dv over [SNR_min, SNR_max]; and
    half that integral is ½ log((1 + v_max s²)/(1 + v_min s²)) (L_∞ for Gaussian data)."""
    m = mmse_expr()
    snr = sp.Function("SNR")(_t)
    big_m = sp.integrate(m, _v)
    in_v = sp.integrate(m, (_v, _vmin, _vmax))
    return (check_identity("t → v = SNR(t): the integrand is a derivative", -sp.diff(snr, _t) * m.subs(_v, snr),
                           -sp.Derivative(big_m.subs(_v, snr), _t)),
            check_identity("L∞ for Gaussian data", in_v / 2, sp.log((1 + _vmax * _s2) / (1 + _vmin * _s2)) / 2))


def ends_steps() -> list[Step]:
    """The optimal error m(v) = s²/(1 + v s²); L_T = KL(q(z_1|x) ‖ N(0, 1)) averaged over x ~ N(0, s²), in
    SNR_min; L_0 = E[−log N(x; z_0/α_0, σ_0²/α_0²)], in SNR_max."""
    x = sp.Symbol("x", real=True)
    a2, sig2 = _vmin / (1 + _vmin), 1 / (1 + _vmin)
    l_T = sp.expand(gaussian_kl(sp.sqrt(a2) * x, sig2, 0, 1)).subs(x**2, _s2)  # linear in x²: average
    b2, tau2 = _vmax / (1 + _vmax), 1 / (1 + _vmax)
    z0 = sp.sqrt(b2) * x + sp.sqrt(tau2) * eps
    l_0 = sp.expand(-log_normal(x, z0 / sp.sqrt(b2), tau2 / b2)).subs(eps**2, 1)  # E ε² = 1
    return [
        check_identity("optimal error m(v)", mmse_expr(), _s2 / (1 + _v * _s2)),
        check_identity("the prior term, from the low end", l_T, (_vmin * (_s2 - 1) / (1 + _vmin) + sp.log(1 + _vmin)) / 2),
        check_identity("the decoder term, from the high end", l_0, (sp.log(2 * sp.pi / _vmax) + 1) / 2),
    ]


# ----------------------------------------------------------------------------- the exact Gaussian chain
SHAPES = ("log-linear", "linear-beta", "min-variance")
# The book's linear schedule (β from 1e−4 to 0.02 over T = 1000 steps) in continuous time τ ∈ [τ₀, 1]:
# −log ᾱ(τ) = B₀τ + ½(B₁ − B₀)τ² with B = Tβ; τ₀ = 1/T is its first step.
_B0, _B1, _TAU0 = 0.1, 20.0, 1e-3


def _lin_beta_gamma(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """γ = −log SNR = log(expm1(u)) of the continuous linear-β schedule and dγ/dτ."""
    u = _B0 * tau + 0.5 * (_B1 - _B0) * tau**2
    du = _B0 + (_B1 - _B0) * tau
    return np.log(np.expm1(u)), du / -np.expm1(-u)


@dataclass(frozen=True)
class ContinuousSchedule:
    """SNR(t) for t ∈ [0, 1], falling from ``snr_max`` at t = 0 to ``snr_min`` at t = 1.

    ``shape`` fixes the interior: ``"log-linear"`` (log SNR linear in t), ``"linear-beta"`` (the book's linear
    β schedule in continuous time, its log SNR rescaled to the ends, as Kingma et al. rescale a learned γ), or
    ``"min-variance"`` (the shape under which the one-sample estimate of L_∞ varies least for data N(0, ``s2``);
    see :func:`estimator_variance`).
    """

    snr_min: float
    snr_max: float
    shape: str = "log-linear"
    s2: float = 1.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}.")
        if not (0 < self.snr_min < self.snr_max < math.inf):
            raise ValueError(f"need 0 < snr_min < snr_max < inf, got snr_min={self.snr_min}, snr_max={self.snr_max}.")
        if not self.s2 > 0:
            raise ValueError(f"s2 (the data variance) must be > 0, got {self.s2}.")

    def snr_and_slope(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(SNR(t), dSNR/dt); the slope is negative."""
        t = np.asarray(t, dtype=np.float64)
        g0, g1 = -math.log(self.snr_max), -math.log(self.snr_min)  # γ = −log SNR at the ends
        if self.shape == "min-variance":
            c, r = 1 + self.snr_min * self.s2, (1 + self.snr_max * self.s2) / (1 + self.snr_min * self.s2)
            v = (c * r ** (1 - t) - 1) / self.s2
            return v, -c * r ** (1 - t) * math.log(r) / self.s2
        if self.shape == "log-linear":  # the library's fixed schedule, γ linear between its ends
            gam, dgam = (a.numpy() for a in LogSNRSchedule(g0, g1)(torch.from_numpy(t)))
            snr = np.exp(-gam)
            return snr, -dgam * snr
        lo, hi = (_lin_beta_gamma(np.array(_TAU0))[0], _lin_beta_gamma(np.array(1.0))[0])
        gam, dgam = _lin_beta_gamma(_TAU0 + (1 - _TAU0) * t)
        shape, dshape = (gam - lo) / (hi - lo), dgam * (1 - _TAU0) / (hi - lo)
        snr = np.exp(-(g0 + (g1 - g0) * shape))
        return snr, -(g1 - g0) * dshape * snr

    def snr(self, t: np.ndarray | float) -> np.ndarray:
        """SNR(t)."""
        return self.snr_and_slope(t)[0]


def mmse(v: np.ndarray | float, s2: float) -> np.ndarray:
    """E(x − E[x | z_v])² = s²/(1 + v s²) per dimension (eq. ``ct-mmse``)."""
    return s2 / (1 + np.asarray(v, dtype=np.float64) * s2)


def denoise(z: np.ndarray, v: np.ndarray | float, s2: float) -> np.ndarray:
    """x̂ = E[x | z_v] = α s² z/(α² s² + σ²), the best guess from z_v = αx + σε (α² = v/(1+v))."""
    v = np.asarray(v, dtype=np.float64)
    a2, sig2 = v / (1 + v), 1 / (1 + v)
    return np.sqrt(a2) * s2 * z / (a2 * s2 + sig2)


def prior_loss(snr_min: float, s2: float) -> float:
    """L_T = KL(q(z_1 | x) ‖ N(0, 1)) averaged over x ~ N(0, s²), per dimension (eq. ``ct-ends``)."""
    return 0.5 * (snr_min * (s2 - 1) / (1 + snr_min) + math.log1p(snr_min))


def reconstruction_loss(snr_max: float) -> float:
    """L_0 = E[−log N(x; z_0/α_0, σ_0²/α_0²)] = ½ log(2π/SNR_max) + ½, per dimension (eq. ``ct-ends``)."""
    return 0.5 * (math.log(2 * math.pi / snr_max) + 1)


def diffusion_loss(sched: ContinuousSchedule, s2: float) -> float:
    """L_∞ = ½ ∫ m(v) dv over [SNR_min, SNR_max] = ½ log((1 + SNR_max s²)/(1 + SNR_min s²)) (eq. ``ct-gauss``)."""
    return 0.5 * math.log((1 + sched.snr_max * s2) / (1 + sched.snr_min * s2))


def diffusion_loss_finite(sched: ContinuousSchedule, s2: float, T: int) -> float:
    """Σ_{i=1}^{T} ½ (SNR(t_{i−1}) − SNR(t_i)) m(SNR(t_i)) on t_i = i/T: the T KL terms of eq. ``ct-snr-form``."""
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}.")
    v = sched.snr(np.arange(int(T) + 1) / T)
    return float(0.5 * np.sum((v[:-1] - v[1:]) * mmse(v[1:], s2)))


def estimates(sched: ContinuousSchedule, s2: float, n: int, dim: int, rng: np.random.Generator,
              T: int | None = None) -> np.ndarray:
    """n one-sample estimates of the diffusion loss per dimension, each from one x ~ N(0, s² I_dim), one ε, one t.

    T None: t ~ U(0, 1) and ½(−SNR′(t))‖x − x̂‖²/dim (eq. ``ct-limit``); T given: i ~ U{1..T} and
    (T/2)(SNR(t_{i−1}) − SNR(t_i))‖x − x̂(z_{t_i})‖²/dim, whose mean is :func:`diffusion_loss_finite`.
    """
    x, e = math.sqrt(s2) * rng.standard_normal((n, dim)), rng.standard_normal((n, dim))
    if T is None:
        v, slope = sched.snr_and_slope(rng.uniform(size=n))
        weight = -slope
    else:
        i = rng.integers(1, T + 1, size=n)
        v, v_prev = sched.snr(i / T), sched.snr((i - 1) / T)
        weight = T * (v_prev - v)
    z = np.sqrt(v / (1 + v))[:, None] * x + np.sqrt(1 / (1 + v))[:, None] * e
    err = ((x - denoise(z, v[:, None], s2)) ** 2).sum(1)
    return 0.5 * weight * err / dim


def estimator_variance(sched: ContinuousSchedule, s2: float, dim: int, grid: int = 200_001) -> float:
    """Var of one estimate of :func:`estimates` (T None), exactly up to quadrature: ‖x − x̂‖² = m(v)·χ²_dim, so
    Var = (1 + 2/dim) ∫₀¹ ¼ SNR′(t)² m(SNR(t))² dt − L_∞² (eq. ``ct-variance``); Simpson's rule on ``grid`` points."""
    from scipy.integrate import simpson

    t = np.linspace(0.0, 1.0, grid)
    v, slope = sched.snr_and_slope(t)
    second = (1 + 2 / dim) * simpson(0.25 * slope**2 * mmse(v, s2) ** 2, x=t)
    return float(second - diffusion_loss(sched, s2) ** 2)


def grid_schedule(sched: ContinuousSchedule, T: int) -> NoiseSchedule:
    """The DDPM chain of chapter 1 whose step 1 takes the data to z at t = 0 (SNR_max) and whose steps 2..T+1
    visit t_i = i/T: ᾱ_{i+1} = SNR(t_i)/(1 + SNR(t_i)).  Its terms L_{t−1}, t ≥ 2, are the T terms of
    :func:`diffusion_loss_finite`, computed by chapter 10's independent route (:mod:`.exact`)."""
    return grid_noise_schedule(-np.log(sched.snr(np.arange(int(T) + 1) / T)), name=f"{sched.shape} grid, T={T}")
