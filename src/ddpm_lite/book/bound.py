"""Chapter 11 (tightening the bound): the sympy steps it displays and the one measurement it plots.

The steps are checked with :func:`ddpm_lite.book.symbolic.check_identity`, like every other
chapter's; :func:`bound_terms_three_ways` evaluates a learned-variance model's bound at every t
with three reverse variances from *one* model call per (image, t): σ_t² = β_t (v ≡ 1),
σ_t² = β̃_t (v ≡ 0) and the learned Σ_θ, so "before" and "after" share the same mean μ_θ.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from .. import GaussianDiffusion
from ..gaussian import LN2
from ..plumbing import randn
from .symbolic import Step, check_identity, gaussian_kl

__all__ = ["btilde", "delta", "var", "v", "optimal_variance_steps", "interpolation_steps", "importance_steps",
           "bound_terms_three_ways"]

#: β̃_t (the true posterior's variance), δ (the mean's error μ̃_t − μ_θ in one dimension),
#: σ² (the reverse variance), v (the interpolation weight).
btilde = sp.Symbol(r"\tilde{\beta}_t", positive=True)
delta = sp.Symbol(r"\delta", real=True)
var = sp.Symbol(r"\sigma^2", positive=True)
v = sp.Symbol("v", real=True)
_beta = sp.Symbol(r"\beta", positive=True)  # β_t without the schedule's α relation (a free symbol)


def _kl(s: sp.Expr) -> sp.Expr:
    """One dimension of L_{t−1}: KL(N(μ̃, β̃) ‖ N(μ̃ − δ, s))."""
    return gaussian_kl(0, btilde, -delta, s)


def optimal_variance_steps() -> list[Step]:
    """The KL's slope in σ² is (σ² − β̃ − δ²)/(2σ⁴): zero at σ*² = β̃ + δ², negative below, positive
    above (a minimum); the KL left there is ½ log(1 + δ²/β̃)."""
    star = btilde + delta**2
    return [
        check_identity("∂KL/∂σ²", sp.diff(_kl(var), var), (var - btilde - delta**2) / (2 * var**2)),
        check_identity("the KL at σ*² = β̃ + δ²", gaussian_kl(0, btilde, -delta, sp.Symbol(r"\sigma_*^2", positive=True)
                                                          ).subs(sp.Symbol(r"\sigma_*^2", positive=True), star),
                       sp.log(1 + delta**2 / btilde) / 2),
    ]


def interpolation_steps() -> list[Step]:
    """Σ(v) = exp(v log β + (1 − v) log β̃) = β^v β̃^(1−v); the KL's slope in v, ½ log(β/β̃)(1 − σ*²/Σ),
    vanishes where Σ = σ*² = β̃ + δ², which v* = log(σ*²/β̃)/log(β/β̃) reaches."""
    sigma_v = sp.exp(v * sp.log(_beta) + (1 - v) * sp.log(btilde))
    power_form = _beta**v * btilde ** (1 - v)
    slope = sp.log(_beta / btilde) * (1 - (btilde + delta**2) / power_form) / 2
    v_star = (sp.log(btilde + delta**2) - sp.log(btilde)) / (sp.log(_beta) - sp.log(btilde))
    return [
        check_identity("Σ(v) as a power", sigma_v, power_form),
        check_identity("∂KL/∂v", sp.diff(_kl(sigma_v), v), slope),
        check_identity("log Σ at v* = log(σ*²/β̃)/log(β/β̃)", sp.log(sigma_v).subs(v, v_star),
                       sp.log(btilde + delta**2)),
    ]


def importance_steps(T: int = 4) -> list[Step]:
    """For T terms: Σ_t p_t · L_t/(T p_t) = (1/T) Σ_t L_t (unbiased); the variance's Lagrangian
    Σ_t m_t/(T² p_t) + λ(Σ_t p_t − 1) is stationary at p_t = √m_t/Σ_s √m_s (m_t = E[L_t²])."""
    L = sp.symbols(f"L_1:{T + 1}", real=True)
    p = sp.symbols(f"p_1:{T + 1}", positive=True)
    m = sp.symbols(f"m_1:{T + 1}", positive=True)
    weighted = sp.Add(*(sp.Mul(pi, Li / (T * pi), evaluate=False) for pi, Li in zip(p, L)), evaluate=False)
    unbiased = check_identity("E_p[L_t/(T p_t)]", weighted, sum(L) / T)
    root_sum = sum(sp.sqrt(mi) for mi in m)
    lam = sp.Symbol("lambda", positive=True)
    lagrangian = sum(mi / (T**2 * pi) for mi, pi in zip(m, p)) + lam * (sum(p) - 1)
    # Stationary in every p_t, then the constraint fixes λ.
    p_of_lam = [sp.solve(sp.diff(lagrangian, pi), pi)[0] for pi in p]
    lam_star = sp.solve(sum(p_of_lam) - 1, lam)[0]
    p_star = [pi.subs(lam, lam_star) for pi in p_of_lam]
    # The claimed p_1 written as 1/(1 + Σ_{s>1} √(m_s/m_1)), so that the check has to
    # simplify what solve() returned rather than meet its own canonical form.
    p1_claimed = 1 / (1 + sp.Add(*(sp.sqrt(mi / m[0]) for mi in m[1:])))
    return [
        unbiased,
        check_identity("p_1 where the Lagrangian is stationary", p_star[0], p1_claimed),
        check_identity("E[(L_t/(T p_t))²] at that p", sum(mi / (T**2 * ps) for mi, ps in zip(m, p_star)),
                       root_sum**2 / T**2),
    ]


@torch.no_grad()
def bound_terms_three_ways(diffusion: GaussianDiffusion, model: torch.nn.Module, x0: torch.Tensor,
                           seed: int = 0, batch_size: int = 4096) -> dict[str, np.ndarray | float]:
    """Per-t bound terms (bits/dim, index t − 1) of a learned-variance model, three ways at once.

    Returns ``beta``, ``beta_tilde``, ``learned`` (each (T,), the mean of L_{t−1} over x0 with
    σ_t² = β_t, β̃_t or Σ_θ), ``prior`` (L_T), ``mean_sq_err`` (T,: mean over images and
    dimensions of (μ̃_t − μ_θ)², the δ² of the optimum) and ``learned_log_var`` (T,: mean
    log Σ_θ).  Every (image, t) gets one draw of x_t from ``seed``.
    """
    if not diffusion.learned_variance:
        raise ValueError("bound_terms_three_ways needs GaussianDiffusion(variance='learned') and its model.")
    gen = torch.Generator().manual_seed(seed)
    T, n = diffusion.T, x0.shape[0]
    sums = {k: torch.zeros(T + 1, dtype=torch.float64) for k in
            ("beta", "beta_tilde", "learned", "mean_sq_err", "learned_log_var")}
    k = max(1, batch_size // n)
    for t_lo in range(1, T + 1, k):
        ts = torch.arange(t_lo, min(t_lo + k, T + 1))
        rows = ts.repeat_interleave(n)
        x_rep = x0.repeat(len(ts), *([1] * (x0.dim() - 1)))
        xt = diffusion.q_sample(x_rep, rows, noise=randn(x_rep.shape, gen, x0.device, x0.dtype))
        eps, vv = diffusion.split_output(model(xt, rows), xt)
        for key, vk in (("beta", torch.ones_like(vv)), ("beta_tilde", torch.zeros_like(vv)), ("learned", vv)):
            terms = diffusion.vb_terms_from_eps(x_rep, xt, rows, eps, v=vk)
            sums[key][t_lo:t_lo + len(ts)] += terms.double().view(len(ts), n).sum(1)
        p = diffusion.p_from_eps(xt, rows, eps, v=vv)
        err = (diffusion.q_posterior_mean_variance(x_rep, xt, rows)[0] - p["mean"]).square().flatten(1).mean(1)
        sums["mean_sq_err"][t_lo:t_lo + len(ts)] += err.double().view(len(ts), n).sum(1)
        logv = p["log_variance"].flatten(1).mean(1).double().view(len(ts), n).sum(1)
        sums["learned_log_var"][t_lo:t_lo + len(ts)] += logv
    out: dict[str, np.ndarray | float] = {key: (s[1:] / n).numpy() for key, s in sums.items()}
    out["prior"] = float(diffusion.prior_kl(x0).mean()) / (x0[0].numel() * LN2)
    return out
