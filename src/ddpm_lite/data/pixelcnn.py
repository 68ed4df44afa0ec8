"""A small gated PixelCNN: an exact autoregressive likelihood baseline for images of K levels.

p(x) = Π_i p(x_i | x_<i) over pixels in raster order, each a K-way softmax.  The network is
that of van den Oord et al. (2016, "Conditional Image Generation with PixelCNN Decoders") in
small: a masked 7×7 layer, then gated masked 3×3 layers, in two stacks so that no pixel above
or to the left is hidden (the plain PixelCNN's blind spot):

* the vertical stack sees every pixel in the rows at or above (any column within reach); it
  reaches the horizontal stack only shifted down by one row, so there it sees rows above only;
* the horizontal stack sees the pixels to the left in the same row (the first layer strictly
  to the left, "mask A"; later layers the pixel's own features too, "mask B"), plus the shifted
  vertical stack.

Each gated layer is tanh(a)·sigmoid(b) of a convolution with twice the channels; the
horizontal stack is residual.  :func:`pixelcnn_bpd` trains one with early stopping on held-out
training images (the same protocol as the diffusion recipe of benchmarks/likelihood.py).
"""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from .. import checks

__all__ = ["GatedPixelCNN", "mixture_bits", "pixelcnn_bpd"]


class _MaskedConv(nn.Conv2d):
    """A convolution over the allowed part of a k×k window only ('v', 'hA' or 'hB'), by its kernel's shape.

    The same as zeroing a k×k kernel outside the region, without computing the zeros (on a CPU
    the full kernel costs 2–3× the time): 'v' is (k//2 + 1) × k, the rows at or above; 'hB' is
    1 × (k//2 + 1), the row up to the pixel; 'hA' is 1 × k//2, strictly left of it.
    """

    def __init__(self, c_in: int, c_out: int, k: int, kind: str) -> None:
        c = k // 2
        shape = {"v": (c + 1, k), "hB": (1, c + 1), "hA": (1, c)}[kind]
        super().__init__(c_in, c_out, shape)
        # (left, right, top, bottom) padding that puts the window where the mask would be.
        self.pad = {"v": (c, c, c, 0), "hB": (c, 0, 0, 0), "hA": (c, 0, 0, 0)}[kind]
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(F.pad(x, self.pad))
        return out[..., : x.shape[-1]] if self.kind == "hA" else out  # hA: outputs at j see j − c … j − 1


def _gate(h: torch.Tensor) -> torch.Tensor:
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _down(v: torch.Tensor) -> torch.Tensor:
    """Shift down one row (row i gets row i − 1; row 0 gets zeros): rows at or above → strictly above."""
    return F.pad(v, (0, 0, 1, 0))[:, :, :-1]


class GatedPixelCNN(nn.Module):
    """Logits (batch, K, H, W) of p(x_i | x_<i) for one-channel images given as levels 0..K−1."""

    def __init__(self, num_levels: int = 17, channels: int = 64, layers: int = 5, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_levels = checks.integer("num_levels", num_levels, 2)
        c = checks.integer("channels", channels, 1)
        checks.integer("layers", layers, 0)
        self.v_in = _MaskedConv(num_levels, 2 * c, 7, "v")
        self.h_in = _MaskedConv(num_levels, 2 * c, 7, "hA")
        self.v_to_h_in = nn.Conv2d(2 * c, 2 * c, 1)
        self.v = nn.ModuleList(_MaskedConv(c, 2 * c, 3, "v") for _ in range(layers))
        self.h = nn.ModuleList(_MaskedConv(c, 2 * c, 3, "hB") for _ in range(layers))
        self.v_to_h = nn.ModuleList(nn.Conv2d(2 * c, 2 * c, 1) for _ in range(layers))
        self.h_out = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(layers))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, num_levels, 1))

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        """``levels``: long (batch, H, W) in 0..K−1 → logits (batch, K, H, W)."""
        x = F.one_hot(levels, self.num_levels).permute(0, 3, 1, 2).to(self.v_in.weight.dtype)
        v_pre = self.v_in(x)
        v = _gate(v_pre)
        h = _gate(self.h_in(x) + self.v_to_h_in(_down(v_pre)))
        for vc, hc, vh, ho in zip(self.v, self.h, self.v_to_h, self.h_out):
            v_pre = vc(v)
            h = h + self.drop(ho(_gate(hc(h) + vh(_down(v_pre)))))
            v = _gate(v_pre)
        return self.head(h)

    def nll_bits(self, levels: torch.Tensor) -> torch.Tensor:
        """−log₂ p(x) per pixel for each image, shape (batch,): the exact code length in bits/dim."""
        ce = F.cross_entropy(self(levels), levels, reduction="none")
        return ce.flatten(1).mean(1) / math.log(2.0)


@torch.no_grad()
def _bpd(model: GatedPixelCNN, levels: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    out = torch.cat([model.nll_bits(levels[i:i + batch]) for i in range(0, len(levels), batch)])
    model.train()
    return out


def _train_one(fit: torch.Tensor, held: torch.Tensor, num_levels: int, seconds: float, seed: int, lr: float,
               batch_size: int, eval_every: int, net: dict) -> tuple[GatedPixelCNN, dict]:
    """One PixelCNN trained for ``seconds``, early-stopped on ``held``: (best model, its record)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = GatedPixelCNN(num_levels, **net)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best = (math.inf, copy.deepcopy(model.state_dict()), 0)
    step, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        idx = torch.randint(len(fit), (batch_size,), generator=gen)
        loss = model.nll_bits(fit[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0:
            t_eval = time.perf_counter()
            held_bpd = float(_bpd(model, held).mean())
            if held_bpd < best[0]:
                best = (held_bpd, copy.deepcopy(model.state_dict()), step)
            deadline += time.perf_counter() - t_eval  # held-out scoring is not training time (as for the diffusion recipe)
    held_bpd = float(_bpd(model, held).mean())
    if held_bpd < best[0]:
        best = (held_bpd, copy.deepcopy(model.state_dict()), step)
    model.load_state_dict(best[1])
    return model, {"steps": step, "best_step": best[2], "holdout_bpd": best[0]}


def mixture_bits(per_member: torch.Tensor, pixels: int) -> torch.Tensor:
    """Bits/dim of the mixture p = mean_k p_k, from each member's bits/dim (K, N) on images of ``pixels`` → (N,).

    b = −(1/D) log₂ mean_k 2^(−D b_k) with D = ``pixels``, as a log-sum-exp in float64; never above
    the members' mean bits (Jensen), equal to it for one member.
    """
    log_p = -per_member.double() * pixels * math.log(2.0)  # nats per image
    mix = torch.logsumexp(log_p, dim=0) - math.log(per_member.shape[0])
    return -mix / (pixels * math.log(2.0))


def pixelcnn_bpd(train: torch.Tensor, test: torch.Tensor, num_levels: int, seconds: float, *, holdout: int = 300,
                 seed: int = 0, lr: float = 1e-3, batch_size: int = 64, eval_every: int = 25, members: int = 1,
                 **net: object) -> dict:
    """Train :class:`GatedPixelCNN` for ``seconds`` and score ``test``: bits/dim, exact.

    ``train`` and ``test`` are long tensors (N, H, W) of levels.  The last ``holdout`` training
    images are held out; every ``eval_every`` steps their bits/dim is taken and the best
    weights are kept (early stopping: the test images are never looked at; the time it takes is
    not counted in ``seconds``, as the diffusion recipe's held-out scoring is not).  With ``members``
    K > 1, K networks train for ``seconds``/K each (seeds ``seed``·K + k) and the model is their
    mixture p(x) = mean_k p_k(x), still an exact likelihood.  Returns ``bpd``, ``stderr`` (over
    test images), ``steps``, ``best_step`` and ``holdout_bpd`` (lists over members when K > 1,
    plus the mixture's ``mixture_holdout_bpd``).  ``net`` goes to :class:`GatedPixelCNN`
    (``channels``, ``layers``, ``dropout``).
    """
    checks.number("seconds", seconds, 0.0, lo_open=True)
    holdout = checks.integer("holdout", holdout, 1, len(train) - 1)
    members = checks.integer("members", members, 1, 64)
    fit, held = train[:-holdout], train[-holdout:]
    runs = [_train_one(fit, held, num_levels, seconds / members, seed * members + k, lr, batch_size, eval_every, net)
            for k in range(members)]
    pixels = test[0].numel()
    per = mixture_bits(torch.stack([_bpd(m, test) for m, _ in runs]), pixels)
    out = {"bpd": float(per.mean()), "stderr": float(per.std() / math.sqrt(len(per)))}
    if members == 1:
        return {**out, **runs[0][1]}
    held_mix = mixture_bits(torch.stack([_bpd(m, held) for m, _ in runs]), pixels)
    return {**out, **{key: [r[key] for _, r in runs] for key in ("steps", "best_step", "holdout_bpd")},
            "mixture_holdout_bpd": float(held_mix.mean())}
