"""Datasets that need no download: 2-D toys and scikit-learn's bundled 8×8 digits.

Every loader returns float32 tensors already in the model's range: 2-D toys are
standardized with their training mean and std, images are scaled from their
integer levels to [−1, 1] (eq. ``data-scaling``).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import checks

__all__ = [
    "DIGITS_LEVELS",
    "swiss_roll",
    "two_moons",
    "gaussian_mixture",
    "digits",
    "to_model_range",
    "from_model_range",
    "TOY_DATASETS",
    "toy_split",
]

#: The bundled digits hold integers 0..16, i.e. 17 intensity levels.
DIGITS_LEVELS = 17
DIGITS_TRAIN, DIGITS_TEST = 1497, 300


def to_model_range(x: np.ndarray | torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    """Map integer levels 0..K−1 linearly onto [−1, 1]: x ↦ 2x/(K−1) − 1."""
    checks.integer("num_levels", num_levels, 2, hint="(256 for 8-bit images)")
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


def _check_noise(noise: object) -> float:
    return checks.number("noise", noise, 0.0)


def _swiss_roll_points(n: int, seed: int, noise: float) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    pts, _ = make_swiss_roll(n, noise=noise, random_state=seed)
    return pts[:, [0, 2]]


def _moons_points(n: int, seed: int, noise: float) -> np.ndarray:
    from sklearn.datasets import make_moons

    pts, _ = make_moons(n, noise=noise, random_state=seed)
    return pts


def _mixture_points(n: int, seed: int, modes: int, radius: float, std: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, modes, size=n)
    angle = 2.0 * np.pi * k / modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2))


def _standardize(pts: np.ndarray, standardize_with: tuple | None) -> torch.Tensor:
    mean, std = standardize_with if standardize_with is not None else (pts.mean(0), pts.std(0))
    return torch.as_tensor((pts - mean) / std, dtype=torch.float32)


def swiss_roll(n: int = 20000, seed: int = 0, *, noise: float = 0.5, standardize_with: tuple | None = None) -> torch.Tensor:
    """2-D swiss roll: columns 0 and 2 of ``sklearn.datasets.make_swiss_roll``.

    Points are standardized with their own mean and std, or with ``standardize_with``
    = (mean, std) from a training set so a test set is scaled identically.
    """
    n = checks.integer("n", n, 1)
    return _standardize(_swiss_roll_points(n, seed, _check_noise(noise)), standardize_with)


def two_moons(n: int = 20000, seed: int = 0, *, noise: float = 0.05, standardize_with: tuple | None = None) -> torch.Tensor:
    """2-D two interleaving half circles (``sklearn.datasets.make_moons``), standardized.

    Standardized like :func:`swiss_roll`: with the points' own mean and std, or with
    ``standardize_with`` = (mean, std) of a training set.
    """
    n = checks.integer("n", n, 1)
    return _standardize(_moons_points(n, seed, _check_noise(noise)), standardize_with)


def gaussian_mixture(
    n: int = 20000, seed: int = 0, *, modes: int = 8, radius: float = 4.0, std: float = 0.3,
    standardize_with: tuple | None = None,
) -> torch.Tensor:
    """2-D mixture of ``modes`` equal-weight Gaussians (std ``std``) on a circle of ``radius``.

    The classic mode-dropping test: a sampler that misses a mode shows it at once.
    Standardized like :func:`swiss_roll`.
    """
    n = checks.integer("n", n, 1)
    modes = checks.integer("modes", modes, 1)
    radius = checks.number("radius", radius, 0.0, lo_open=True)
    std = checks.number("std", std, 0.0, lo_open=True)
    return _standardize(_mixture_points(n, seed, modes, radius, std), standardize_with)


#: The bundled 2-D toys by the names the CLI accepts, with their default noise.
TOY_DATASETS = {
    "swiss_roll": lambda n, seed: _swiss_roll_points(n, seed, 0.5),
    "moons": lambda n, seed: _moons_points(n, seed, 0.05),
    "mixture": lambda n, seed: _mixture_points(n, seed, 8, 4.0, 0.3),
}
TOY_TRAIN_N, TOY_TEST_N = 20000, 5000


def toy_split(name: str, split: str = "train", n_train: int = TOY_TRAIN_N, n_test: int = TOY_TEST_N) -> torch.Tensor:
    """The fixed split of a bundled 2-D toy used by the CLI, the metrics and the benchmarks.

    ``"train"``: ``n_train`` points from seed 0; ``"test"``: ``n_test`` points from seed 1.
    Both are standardized with the *training* points' mean and std, so they share one scale.
    """
    checks.choice("name", name, tuple(TOY_DATASETS))
    checks.choice("split", split, ("train", "test"))
    draw = TOY_DATASETS[name]
    train = draw(checks.integer("n_train", n_train, 1), 0)
    stats = (train.mean(0), train.std(0))
    if split == "train":
        return _standardize(train, stats)
    return _standardize(draw(checks.integer("n_test", n_test, 1), 1), stats)


def digits(split: str = "train") -> torch.Tensor:
    """scikit-learn's bundled 8×8 digits as (N, 1, 8, 8) float32 in [−1, 1].

    Fixed split: ``load_digits()``, scaled x/8 − 1, permuted with seed 0; the first
    1497 images are ``"train"``, the last 300 ``"test"``; ``"all"`` returns all 1797.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    from sklearn.datasets import load_digits  # imported after the check: it takes seconds

    images = load_digits().images  # (1797, 8, 8), integers 0..16
    perm = np.random.default_rng(0).permutation(len(images))
    images = images[perm]
    if split == "train":
        images = images[:DIGITS_TRAIN]
    elif split == "test":
        images = images[-DIGITS_TEST:]
    return to_model_range(images, DIGITS_LEVELS).unsqueeze(1)
