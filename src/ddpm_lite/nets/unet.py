"""ε_θ for small images: a U-Net with residual blocks, attention and the timestep embedding.

The sizes are picked for a laptop CPU (2 threads): see ``benchmarks/README.md``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import checks
from .embedding import _check_timesteps, _sigma_cfg, TimeEmbedding

__all__ = ["UNet"]


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
    (default C, or 2C with ``learn_sigma``) for heads such as :mod:`ddpm_lite.nets.levels`.
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
        return self._trunk(xt, self.time(t))

    def _trunk(self, xt: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The network after the time embedding (shared with the continuous-time U-Net of nets.continuous)."""
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
