"""Shared parts of the ε-networks: the timestep embedding, the timestep check, a parameter count.

Every model follows the ``eps_model`` protocol of :class:`ddpm_lite.GaussianDiffusion`:
``model(xt, t)`` with ``xt`` of shape (batch, ...) and ``t`` a LongTensor of shape
(batch,) holding the paper's timesteps 1..T, returns a tensor shaped like ``xt`` (with
``learn_sigma=True``: twice its channels, ε then v).  Each model knows its ``T``.
"""


from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["timestep_embedding", "TimeEmbedding", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def timestep_embedding(t: torch.Tensor, dim: int, T: int = 1000, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t ∈ 1..T, shape (batch, dim) (Vaswani et al. 2017).

    t is first rescaled to s = 1000·t/T so that the frequencies cover the chain the same
    way whatever T is; then the first half of the features is cos(s·ω_i) and the second
    half sin(s·ω_i), with ω_i = max_period^(−i/half), i = 0..half−1.  An odd ``dim`` gets
    one zero column at the end.  Every entry lies in [−1, 1].
    """
    if dim < 2:
        raise ValueError(f"dim must be at least 2, got dim={dim}.")
    if T < 1:
        raise ValueError(f"T must be a positive integer, got T={T}.")
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    s = t.to(torch.float64) * (1000.0 / T)
    args = s[:, None] * omega.to(s.device)[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb.to(torch.float32)


@torch.compiler.disable  # data-dependent checks: run eagerly, never traced (fast_step compiles around them)
def _check_timesteps(t: object, batch: int, T: int) -> torch.Tensor:
    """``t`` as int64 timesteps after checking it: integers of shape (batch,) in 0..T.

    Models index a table of T + 1 rows with ``t`` (a negative t would wrap, t > T fail in
    torch).  The range is checked for CPU tensors only: on an accelerator it would sync
    with the host on every call, and the diffusion methods have already checked t.
    """
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t must be a LongTensor of timesteps 1..T (T={T}), shape (batch,), got {type(t).__name__}.")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"t must hold integer timesteps 1..T (T={T}), got dtype {t.dtype}.")
    if t.shape != (batch,):
        raise ValueError(f"t must have shape (batch,) = ({batch},), got {tuple(t.shape)}.")
    if t.device.type == "cpu" and t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi > T:
            bad = lo if lo < 0 else hi
            raise ValueError(f"timestep t={bad} is outside 1..T (T={T}) of this model.")
    return t if t.dtype == torch.long else t.long()  # uint8/bool-like t would index as a mask


class _FrozenTableCache:
    """Caches f(table) for inference: while sampling, every call evaluates the same function of
    the T + 1 tabulated timesteps, so it is computed once and rows are gathered afterwards.

    The cache is keyed on the version counters of the parameters involved, which every
    in-place update (optimizer step, EMA lerp, ``load_state_dict``) bumps, so it never serves
    stale values; it is bypassed while training, with gradients on, or under autocast.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: torch.Tensor | None = None

    @staticmethod
    def usable(module: nn.Module) -> bool:
        return not (module.training or torch.is_grad_enabled() or torch.is_autocast_enabled())

    def get(self, params: list[torch.Tensor], compute) -> torch.Tensor:  # noqa: ANN001
        key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        if key != self.key:
            self.value, self.key = compute(), key
        return self.value


class TimeEmbedding(nn.Module):
    """t ↦ MLP(sinusoid(t)): a learned embedding of the timestep, shape (batch, out_dim).

    The sinusoids for every t = 0..T are tabulated once (a non-persistent buffer, so it
    is not stored in checkpoints); a forward pass is one table lookup plus two linear
    layers, which matters when a CPU step costs a millisecond.
    """

    def __init__(self, T: int, out_dim: int, sinusoid_dim: int = 64) -> None:
        super().__init__()
        self.T = int(T)
        table = timestep_embedding(torch.arange(self.T + 1), sinusoid_dim, self.T)
        self.register_buffer("table", table, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(sinusoid_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))
        self._cache = _FrozenTableCache()

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if _FrozenTableCache.usable(self):
            return self._cache.get(list(self.mlp.parameters()), lambda: self.mlp(self.table))[t]
        return self.mlp(self.table[t])


def _sigma_cfg(learn_sigma: bool) -> dict:  # absent when off: older checkpoints' configs still match
    return {"learn_sigma": True} if learn_sigma else {}

