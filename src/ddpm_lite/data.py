"""Datasets that need no download: 2-D toys and scikit-learn's bundled 8×8 digits.

Every loader returns float32 tensors already in the model's range: 2-D toys are
standardized with their training mean and std, images are scaled from their
integer levels to [−1, 1] (eq. ``data-scaling``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "DIGITS_LEVELS",
    "swiss_roll",
    "digits",
    "to_model_range",
    "from_model_range",
]

#: The bundled digits hold integers 0..16, i.e. 17 intensity levels.
DIGITS_LEVELS = 17
DIGITS_TRAIN, DIGITS_TEST = 1497, 300


def to_model_range(x: np.ndarray | torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    """Map integer levels 0..K−1 linearly onto [−1, 1]: x ↦ 2x/(K−1) − 1."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError("data contains NaN; clean or drop those samples before scaling.")
    if x.numel() and (x.min() < 0 or x.max() > num_levels - 1):
        raise ValueError(
            f"levels must lie in 0..{num_levels - 1} for num_levels={num_levels}, "
            f"found [{x.min().item()}, {x.max().item()}]."
        )
    return (x.to(torch.float32) * (2.0 / (num_levels - 1)) - 1.0)


def from_model_range(x: torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    """Inverse of :func:`to_model_range`: clip to [−1, 1] and round to the nearest level."""
    levels = torch.round((x.clamp(-1.0, 1.0) + 1.0) * ((num_levels - 1) / 2.0))
    return levels.to(torch.uint8 if num_levels <= 256 else torch.int64)


def swiss_roll(n: int = 20000, seed: int = 0, *, noise: float = 0.5, standardize_with: tuple | None = None) -> torch.Tensor:
    """2-D swiss roll: columns 0 and 2 of ``sklearn.datasets.make_swiss_roll``.

    Points are standardized with their own mean and std, or with ``standardize_with``
    = (mean, std) from a training set so a test set is scaled identically.
    """
    from sklearn.datasets import make_swiss_roll

    if int(n) < 1:
        raise ValueError(f"n must be a positive number of points, got {n}.")
    pts, _ = make_swiss_roll(int(n), noise=noise, random_state=seed)
    pts = pts[:, [0, 2]]
    mean, std = standardize_with if standardize_with is not None else (pts.mean(0), pts.std(0))
    return torch.as_tensor((pts - mean) / std, dtype=torch.float32)


def digits(split: str = "train") -> torch.Tensor:
    """scikit-learn's bundled 8×8 digits as (N, 1, 8, 8) float32 in [−1, 1].

    Fixed split: ``load_digits()``, scaled x/8 − 1, permuted with seed 0; the first
    1497 images are ``"train"``, the last 300 ``"test"``; ``"all"`` returns all 1797.
    """
    from sklearn.datasets import load_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    images = load_digits().images  # (1797, 8, 8), integers 0..16
    perm = np.random.default_rng(0).permutation(len(images))
    images = images[perm]
    if split == "train":
        images = images[:DIGITS_TRAIN]
    elif split == "test":
        images = images[-DIGITS_TEST:]
    return to_model_range(images, DIGITS_LEVELS).unsqueeze(1)
