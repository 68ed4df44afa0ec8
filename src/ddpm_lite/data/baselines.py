"""Simple likelihood baselines for discrete images, in bits per dimension.

A diffusion model's bound is only convincing next to what simpler models of the same data
achieve.  Each baseline here is an exact discrete log-likelihood of integer levels 0..K−1
(the grid that :meth:`ddpm_lite.GaussianDiffusion.bits_per_dim`'s decoder scores), fitted
on a training split and evaluated on a test split:

* :func:`uniform_bpd` — every pixel uniform over K levels: log₂ K;
* :func:`per_pixel_bpd` — an independent K-way categorical per pixel, add-one smoothed;
* :func:`autoregressive_bpd` — pixels in raster order, each a multinomial logistic regression
  (softmax of a linear function) on the levels of all previous pixels, with an L2 penalty
  ½‖W‖²/C on the weights (not the biases), fitted jointly by L-BFGS: one masked linear
  layer, so all pixels train at once.  Every probability is mixed with the add-one mass
  K/(N + K) spread uniformly, so a level a pixel never shows in training stays possible.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .. import checks

__all__ = ["uniform_bpd", "per_pixel_bpd", "autoregressive_bpd"]

LN2 = math.log(2.0)


def _check_levels(name: str, x: object, levels: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must be an integer tensor (N, D) of levels, e.g. "
                         "from_model_range(digits('train'), 17).long().flatten(1).")
    x = x.long()
    if x.min() < 0 or x.max() >= levels:
        raise ValueError(f"{name} holds levels outside 0..{levels - 1}; pass num_levels={int(x.max()) + 1} or more.")
    return x


def uniform_bpd(levels: int) -> float:
    """log₂ K bits per dimension: what knowing nothing about the data costs."""
    return math.log2(checks.integer("levels", levels, 2))


def per_pixel_bpd(train: torch.Tensor, test: torch.Tensor, levels: int) -> float:
    """−log₂ P(test) per pixel under independent per-pixel categoricals with add-one smoothing."""
    levels = checks.integer("levels", levels, 2)
    train, test = _check_levels("train", train, levels), _check_levels("test", test, levels)
    counts = torch.zeros(train.shape[1], levels, dtype=torch.float64)
    counts.scatter_add_(1, train.T, torch.ones(train.T.shape, dtype=torch.float64))
    probs = (counts + 1.0) / (train.shape[0] + levels)
    return float(-torch.log(probs.gather(1, test.T)).mean() / LN2)


def autoregressive_bpd(train: torch.Tensor, test: torch.Tensor, levels: int, C: float = 1.0,
                       max_iter: int = 300) -> float:
    """−log₂ P(test) per pixel under raster-order multinomial logistic regressions.

    Pixel j's logits are W_j · x_{<j}/(K − 1) + b_j (a strictly lower-triangular mask on one
    (D·K × D) weight matrix); the fit minimises Σ_n −log p(x_n) + ‖W‖²/(2C) over the training
    split (``C`` as in scikit-learn's LogisticRegression), in float64 with L-BFGS.
    """
    levels = checks.integer("levels", levels, 2)
    C = checks.number("C", C, 0.0, lo_open=True)
    train, test = _check_levels("train", train, levels), _check_levels("test", test, levels)
    n, d = train.shape
    mask = torch.tril(torch.ones(d, d, dtype=torch.float64), diagonal=-1).repeat_interleave(levels, 0)
    weight = torch.zeros(d * levels, d, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(d * levels, dtype=torch.float64, requires_grad=True)
    mix = levels / (n + levels)  # the add-one mass

    def log_probs(x: torch.Tensor) -> torch.Tensor:
        logits = F.linear(x.double() / (levels - 1), weight * mask, bias).view(-1, d, levels)
        logp = torch.log((1.0 - mix) * logits.softmax(-1) + mix / levels)
        return logp.gather(2, x.unsqueeze(2)).squeeze(2)  # (N, D)

    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = -log_probs(train).sum() + (weight * mask).square().sum() / (2.0 * C)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(-log_probs(test).mean() / LN2)
