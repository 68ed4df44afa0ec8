"""The noise schedule of continuous-time diffusion: γ(t) = −log SNR(t) on t ∈ [0, 1] (VDM).

Kingma et al. (2021, "Variational Diffusion Models") write the forward process as
z_t = α_t x + σ_t ε with α_t² = sigmoid(−γ_t) and σ_t² = sigmoid(γ_t), so that
SNR(t) = α_t²/σ_t² = exp(−γ_t) and α_t² + σ_t² = 1 (variance preserving).  γ rises from
γ_min = γ(0) (almost clean) to γ_max = γ(1) (almost pure noise).

:class:`LogSNRSchedule` is γ as a module: fixed linear in t between its ends, or a learned
monotone shape between them; each end either fixed or learned.  Why only the ends matter to
the bound: L_∞ = ½ ∫ E‖x − x̂(z, v)‖² dv over SNR values v from SNR_min to SNR_max depends on the
path t ↦ γ(t) only through its endpoints (a change of variables, VDM eq. 15), so a learned
interior can only change the variance of the Monte-Carlo estimate, never its mean.

The ends are float64 (they are the schedule's constants, and σ_0² ≈ 1.7e-6 at γ_min = −13.3
needs the precision); γ is computed in float64 and cast by the caller where it meets the network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import checks
from .schedule import NoiseSchedule

__all__ = ["LogSNRSchedule", "MonotoneShape", "GAMMA_MIN", "GAMMA_MAX", "alpha_sigma_sq", "grid_noise_schedule"]

#: VDM's initial ends: SNR_max = e^13.3 (σ_0 ≈ 1.3e-3, far below the digits' bin half-width
#: 1/16) and SNR_min = e^−5 (α_1² ≈ 0.0067, so L_T is small but not zero).
GAMMA_MIN, GAMMA_MAX = -13.3, 5.0


def alpha_sigma_sq(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α², σ²) = (sigmoid(−γ), sigmoid(γ)): each to full relative precision, unlike 1 − sigmoid."""
    return torch.sigmoid(-gamma), torch.sigmoid(gamma)


def grid_noise_schedule(gamma: torch.Tensor | np.ndarray, name: str = "continuous grid") -> NoiseSchedule:
    """The DDPM chain that visits the noise levels ``gamma`` = γ(t_0), …, γ(t_T), one step each.

    Step j = 1..T+1 ends at ᾱ_j = sigmoid(−γ(t_{j−1})): step 1 takes the data to z at t_0 (the
    decoder's level), steps 2..T+1 go t_{i−1} → t_i.  Its KL terms L_{t−1}, t ≥ 2, are then the T terms
    of the finite-T bound on that grid (VDM eq. 11).  β_j = 1 − ᾱ_j/ᾱ_{j−1} is formed from log ᾱ
    (``-expm1`` of a difference) so that a step between two close levels keeps its digits.
    """
    g = torch.as_tensor(gamma, dtype=torch.float64).detach().cpu()
    if g.dim() != 1 or len(g) < 2:
        raise ValueError(f"gamma must be γ at t_0..t_T (1-D, at least 2 values), got shape {tuple(g.shape)}.")
    log_ab = F.logsigmoid(-g).numpy()
    return NoiseSchedule(-np.expm1(np.diff(np.concatenate([[0.0], log_ab]))), name=name)


class MonotoneShape(nn.Module):
    """A strictly increasing s: [0, 1] → [0, 1] with s(0) = 0 and s(1) = 1 (VDM's monotone network).

    f(t) = w·t + Σ_j a_j sigmoid(b_j t + c_j)/H with w, a_j, b_j > 0 (softplus of free
    parameters), so f′ > 0 everywhere; s(t) = (f(t) − f(0))/(f(1) − f(0)).  The sigmoid
    part starts small, so an untrained shape is close to linear.
    """

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = checks.integer("hidden", hidden, 1)
        gen = torch.Generator().manual_seed(0)  # a fixed init: the schedule is part of the recipe, not the seed
        self.raw_w = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.raw_a = nn.Parameter(torch.full((hidden,), -2.0, dtype=torch.float64))
        self.raw_b = nn.Parameter(torch.randn(hidden, generator=gen, dtype=torch.float64) + 2.0)
        self.c = nn.Parameter(torch.randn(hidden, generator=gen, dtype=torch.float64) * 2.0)

    def _f_and_slope(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, a, b = F.softplus(self.raw_w), F.softplus(self.raw_a), F.softplus(self.raw_b)
        u = torch.sigmoid(t.unsqueeze(-1) * b + self.c)
        f = w * t + (a * u).sum(-1) / self.hidden
        slope = w + (a * b * u * (1.0 - u)).sum(-1) / self.hidden
        return f, slope

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(t), s′(t)) for t in [0, 1], float64, shaped like t."""
        t = t.to(torch.float64)
        f, slope = self._f_and_slope(t)
        ends, _ = self._f_and_slope(torch.tensor([0.0, 1.0], dtype=torch.float64, device=t.device))
        span = ends[1] - ends[0]
        return (f - ends[0]) / span, slope / span


class LogSNRSchedule(nn.Module):
    """γ(t) = γ_min + (γ_max − γ_min)·s(t) on t ∈ [0, 1]: s(t) = t (``shape="linear"``) or learned.

    Parameters
    ----------
    gamma_min, gamma_max:
        The ends γ(0) < γ(1), i.e. SNR_max = e^−γ_min and SNR_min = e^−γ_max.
    learn_ends:
        Make both ends parameters (trained by the bound: γ_max through L_T and the diffusion
        loss, γ_min through L_0 and the diffusion loss).  Default False.
    shape:
        ``"linear"`` (fixed) or ``"learned"`` (a :class:`MonotoneShape`).
    hidden:
        Width of the learned shape's network.
    """

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX, *, learn_ends: bool = False,
                 shape: str = "linear", hidden: int = 32) -> None:
        super().__init__()
        lo = checks.number("gamma_min", gamma_min, -30.0, 30.0, what="a log-noise level in [-30, 30]")
        hi = checks.number("gamma_max", gamma_max, -30.0, 30.0, what="a log-noise level in [-30, 30]")
        if not lo < hi:
            raise ValueError(f"gamma_min must be below gamma_max (γ rises with t), got {lo} and {hi}; swap them.")
        self.shape_kind = checks.choice("shape", shape, ("linear", "learned"))
        self.learn_ends = bool(learn_ends)
        ends = torch.tensor([lo, hi], dtype=torch.float64)
        if self.learn_ends:
            self.ends = nn.Parameter(ends)
        else:
            self.register_buffer("ends", ends)
        self.shape = MonotoneShape(hidden) if shape == "learned" else None
        self._init = {"gamma_min": lo, "gamma_max": hi, "learn_ends": self.learn_ends, "shape": shape,
                      **({"hidden": int(hidden)} if shape == "learned" else {})}

    @property
    def gamma_min(self) -> torch.Tensor:
        """γ(0), a 0-d float64 tensor (a parameter's view when learned)."""
        return self.ends[0]

    @property
    def gamma_max(self) -> torch.Tensor:
        """γ(1), a 0-d float64 tensor."""
        return self.ends[1]

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (the initial ends); learned values live in the state dict."""
        return dict(self._init)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ(t), γ′(t)) in float64 for t in [0, 1]; γ′ analytic, so no second autograd pass is needed."""
        t = t.to(device=self.ends.device, dtype=torch.float64)
        lo, hi = self.ends[0], self.ends[1]
        if self.shape is None:
            return lo + (hi - lo) * t, (hi - lo).expand_as(t)
        s, ds = self.shape(t)
        return lo + (hi - lo) * s, (hi - lo) * ds

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        """γ(t) alone."""
        return self(t)[0]

    def extra_repr(self) -> str:
        lo, hi = float(self.ends[0]), float(self.ends[1])
        return f"γ ∈ [{lo:.3g}, {hi:.3g}] (SNR {math.exp(-hi):.3g}…{math.exp(-lo):.3g}), shape={self.shape_kind}"
