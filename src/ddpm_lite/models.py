"""Noise-prediction networks ε_θ(x_t, t) for 2-D points and for small images.

Every model follows the ``eps_model`` protocol of :class:`ddpm_lite.GaussianDiffusion`:
``model(xt, t)`` with ``xt`` of shape (batch, ...) and ``t`` a LongTensor of shape
(batch,) holding the paper's timesteps 1..T, returns a tensor shaped like ``xt`` (with
``learn_sigma=True``: twice its channels, ε then v).  Each model knows its ``T``.

The sizes are picked for a laptop CPU (2 threads): see ``benchmarks/README.md``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import checks

__all__ = ["timestep_embedding", "TimeEmbedding", "MLPDenoiser", "UNet", "count_parameters"]


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


def _sigma_cfg(learn_sigma: bool) -> dict:  # absent when off: older checkpoints' configs still match
    return {"learn_sigma": True} if learn_sigma else {}


def _groups(channels: int, wanted: int) -> int:
    """Largest divisor of ``channels`` that is ≤ ``wanted`` (GroupNorm needs a divisor)."""
    for g in range(min(wanted, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv3×3, add time, GroupNorm → SiLU → dropout → conv3×3, plus a skip path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # Zero-initialised last conv: each block starts as the identity (plus skip).
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H·W positions, with a residual path."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # (b, hw, c)
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """A small U-Net ε_θ for images (batch, C, H, W), C = 1 (grayscale) or 3 (RGB).

    Levels: one per entry of ``channel_mult``; level i works at resolution H/2^i with
    ``base_channels · channel_mult[i]`` channels and ``num_res_blocks`` residual blocks.
    Downsampling is a stride-2 conv, upsampling nearest-neighbour + conv; the decoder
    concatenates the encoder's output of the same level (one skip per level).  Self-
    attention is added after the blocks of every level whose resolution is listed in
    ``attention_resolutions`` and in the middle when the lowest resolution is listed.
    H and W must be divisible by 2^(levels − 1).  ``out_channels`` overrides the output width
    (default C, or 2C with ``learn_sigma``) for heads such as :mod:`ddpm_lite.levels`.
    ``dropout`` (default 0) drops features inside every residual block while training, as
    Nichol & Dhariwal do against over-fitting when the bound is the goal.

    Parameter counts (in_channels = 1, T-independent):
      * default ``base_channels=16, channel_mult=(1, 2), num_res_blocks=1`` — 99 329
        (the 8×8 digits model: small enough for many steps/s on 2 CPU threads);
      * ``base_channels=32`` — 386 049;
      * ``in_channels=3, image_size=32, base_channels=64, channel_mult=(1, 2, 2),
        attention_resolutions=(8,)`` for 32×32 RGB — 2 855 811.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | tuple[int, int] = 8,
        base_channels: int = 16,
        channel_mult: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attention_resolutions: tuple[int, ...] = (),
        groups: int = 8,
        T: int = 1000,
        learn_sigma: bool = False,
        out_channels: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        for name, value in (("base_channels", base_channels), ("num_res_blocks", num_res_blocks),
                            ("groups", groups), ("T", T)):
            checks.integer(name, value, 1)
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}.")
        if not channel_mult or any(int(m) < 1 for m in channel_mult):
            raise ValueError(f"channel_mult must be a non-empty tuple of positive integers, got {channel_mult!r}.")
        factor = 2 ** (len(channel_mult) - 1)
        if len(size) != 2 or any(s < 1 or s % factor for s in size):
            raise ValueError(
                f"image_size {size} must be divisible by 2^(len(channel_mult) - 1) = {factor} in both dimensions."
            )
        self.config = dict(
            kind="unet", in_channels=in_channels, image_size=list(size), base_channels=base_channels,
            channel_mult=list(channel_mult), num_res_blocks=num_res_blocks,
            attention_resolutions=list(attention_resolutions), groups=groups, T=T, **_sigma_cfg(learn_sigma),
            **({} if out_channels is None else {"out_channels": checks.integer("out_channels", out_channels, 1)}),
            **({"dropout": checks.number("dropout", dropout, 0.0, 1.0, hi_open=True)} if dropout else {}),
        )
        self.in_channels, self.image_size, self.T = in_channels, size, T
        emb_dim = 4 * base_channels
        self.time = TimeEmbedding(T, emb_dim)
        self.inp = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        chans = [base_channels * int(m) for m in channel_mult]

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c, res = base_channels, size[0]
        for i, c_out in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(c, c_out, emb_dim, groups, dropout))
                c = c_out
            if res in attention_resolutions:
                blocks.append(Attention(c, groups))
            self.down.append(blocks)
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                res //= 2
        self.mid = ResBlock(c, c, emb_dim, groups, dropout)
        self.mid_attn = Attention(c, groups) if res in attention_resolutions else None

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, c_out in reversed(list(enumerate(chans))):
            blocks = nn.ModuleList()
            blocks.append(ResBlock(c + c_out, c_out, emb_dim, groups, dropout))
            for _ in range(num_res_blocks - 1):
                blocks.append(ResBlock(c_out, c_out, emb_dim, groups, dropout))
            c = c_out
            if res in attention_resolutions:
                blocks.append(Attention(c, groups))
            self.up.append(blocks)
            self.upsample.append(nn.Conv2d(c, chans[i - 1], 3, padding=1) if i > 0 else nn.Identity())
            if i > 0:
                c, res = chans[i - 1], res * 2
        self.out_norm = nn.GroupNorm(_groups(c, groups), c)
        width = out_channels or in_channels * (2 if learn_sigma else 1)  # learn_sigma: ε then v
        self.out = nn.Conv2d(c, width, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _run(blocks: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if xt.dim() != 4 or xt.shape[1] != self.in_channels or tuple(xt.shape[2:]) != self.image_size:
            raise ValueError(
                f"xt must have shape (batch, {self.in_channels}, {self.image_size[0]}, {self.image_size[1]}), "
                f"got {tuple(xt.shape)}."
            )
        t = _check_timesteps(t, xt.shape[0], self.T)
        emb = self.time(t)
        h = self.inp(xt.to(self.inp.weight.dtype))  # fp64/fp16 in: computed in the model's dtype
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            h = self._run(blocks, h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        for blocks, up in zip(self.up, self.upsample):
            h = self._run(blocks, torch.cat([h, skips.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h))).to(xt.dtype)
