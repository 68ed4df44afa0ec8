"""ε_θ for points in R^d: a residual MLP with the timestep embedded in every block.

The sizes are picked for a laptop CPU (2 threads): see ``benchmarks/README.md``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .. import checks
from .embedding import _check_timesteps, _FrozenTableCache, _sigma_cfg, timestep_embedding

__all__ = ["MLPDenoiser"]


class MLPDenoiser(nn.Module):
    """ε_θ for points in R^d: a residual MLP with the time embedding added in every block.

    x → Linear(d, H) → [h ← h + Linear(SiLU(h + e_l(t)))] × depth → SiLU → Linear(H, d).

    Why this shape: a plain MLP that sees t only at its input forgets it by the last
    layer and stalls above the noise floor; adding a per-block projection of the time
    embedding and a residual path lets every layer be told the noise level and keeps
    gradients healthy.  The output layer starts at zero, so an untrained model predicts
    ε = 0 (loss ≈ d per sample) instead of a random field.

    Parameter count (d = 2): 75 138 for the default ``hidden=128, depth=3`` (64 sinusoids).

    ``data_shape`` lets the same network denoise small images flattened to vectors:
    with ``dim=64, data_shape=(1, 8, 8)`` it takes and returns (batch, 1, 8, 8); with
    ``hidden=256`` that is 280 384 parameters, and at 8×8 it is several times cheaper per
    step than a U-Net (no convolutions), at the price of no built-in notion of locality.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, T: int = 1000, sinusoid_dim: int = 64,
                 data_shape: tuple[int, ...] | None = None, learn_sigma: bool = False) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth), ("T", T)):
            checks.integer(name, value, 1)
        if data_shape is not None and math.prod(data_shape) != dim:
            raise ValueError(f"data_shape {tuple(data_shape)} must hold dim={dim} values, it holds {math.prod(data_shape)}.")
        self.config = dict(kind="mlp", dim=dim, hidden=hidden, depth=depth, T=T, sinusoid_dim=sinusoid_dim,
                           data_shape=None if data_shape is None else list(data_shape), **_sigma_cfg(learn_sigma))
        self.dim, self.depth, self.T = dim, depth, T
        self.data_shape = None if data_shape is None else tuple(data_shape)
        # The sinusoids of every t, tabulated once (not stored in checkpoints).
        self.register_buffer("table", timestep_embedding(torch.arange(T + 1), sinusoid_dim, T), persistent=False)
        # One Linear gives every block its own projection of the time features; the SiLU
        # inside each block makes the time dependence nonlinear, so no separate time MLP
        # is needed (it would double the cost of a CPU step).
        self.time_proj = nn.Linear(sinusoid_dim, hidden * depth)
        self._cache = _FrozenTableCache()
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim * (2 if learn_sigma else 1))  # learn_sigma: ε then v (dim 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        want = (self.dim,) if self.data_shape is None else self.data_shape
        if tuple(xt.shape[1:]) != want:
            raise ValueError(f"xt must have shape (batch, {', '.join(map(str, want))}), got {tuple(xt.shape)}.")
        t = _check_timesteps(t, xt.shape[0], self.T)
        if _FrozenTableCache.usable(self):
            proj = self._cache.get([self.time_proj.weight, self.time_proj.bias], lambda: self.time_proj(self.table))[t]
        else:
            proj = self.time_proj(self.table[t])
        e = proj.chunk(self.depth, dim=1)
        h = self.inp(xt.reshape(xt.shape[0], self.dim).to(self.inp.weight.dtype))  # fp64/fp16 in: our dtype
        for block, e_l in zip(self.blocks, e):
            h = h + block(F.silu(h + e_l))
        return self.out(F.silu(h)).reshape(xt.shape[0], -1, *xt.shape[2:]).to(xt.dtype)

