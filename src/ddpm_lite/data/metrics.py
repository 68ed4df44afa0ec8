"""Sample-quality metrics: a Fréchet distance for 8×8 digits and sliced W2 for 2-D points.

* :func:`digits_fd` — the Fréchet distance (Heusel et al. 2017) between Gaussians fitted
  to the penultimate-layer features of a small digit classifier.  The classifier is
  trained here, deterministically (fixed seed, full-batch Adam, a second or two on a
  CPU), on the digits *train* split only, and kept in memory for the session; nothing is
  downloaded or written to disk.
* :func:`sliced_wasserstein2` — the sliced Wasserstein-2 distance between two point
  clouds: the root mean, over seeded random directions, of the squared 1-D W2 distance
  between the projections.

Both come with a noise floor — the value two independent samples of the *data* reach —
so a model's figure can be read as a ratio: 1.0 means "as close as fresh data".
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from .. import checks

__all__ = [
    "frechet_distance",
    "digit_features",
    "digits_fd",
    "digits_fd_floor",
    "digit_classifier",
    "sliced_wasserstein2",
    "swiss_roll_benchmark_data",
    "swiss_roll_sw2_floor",
]


# ---------------------------------------------------------------------------- Fréchet distance
def frechet_distance(features_a: np.ndarray | torch.Tensor, features_b: np.ndarray | torch.Tensor) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}) between Gaussians fitted to two feature sets.

    Features are (N, D) arrays.  Tr (Σ_a Σ_b)^{1/2} is computed as Σ √λ_i over the eigenvalues
    of the symmetric PSD matrix Σ_a^{1/2} Σ_b Σ_a^{1/2} (same spectrum, no complex roots).
    """
    a = np.asarray(features_a.detach().cpu() if isinstance(features_a, torch.Tensor) else features_a, np.float64)
    b = np.asarray(features_b.detach().cpu() if isinstance(features_b, torch.Tensor) else features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be two (N, D) arrays with the same D, got shapes {a.shape} and {b.shape}.")
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"each feature set needs at least 2 rows to fit a covariance, got {a.shape[0]} and {b.shape[0]}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features contain NaN or inf (did sampling diverge?).")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)
    return max(fd, 0.0)  # round-off can leave −1e−12 for identical sets


class _DigitClassifier(nn.Module):
    """64 → 128 → 32 → 10 MLP with SiLU; the 32 penultimate activations are the features."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.SiLU(), nn.Linear(128, 32), nn.SiLU())
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@functools.lru_cache(maxsize=1)
def digit_classifier() -> nn.Module:
    """The fixed feature network, trained on the digits train split (seed 0), cached in memory.

    Full-batch Adam, 300 steps, on the 1497 train images; test accuracy ≈ 97 %.  The
    global RNG is left untouched.  It runs on one thread: the net is too small to gain
    from more, and on a busy machine OpenMP threads waiting on each other cost ~5×.
    """
    from sklearn.datasets import load_digits

    from .datasets import DIGITS_TRAIN, digits

    target = load_digits().target[np.random.default_rng(0).permutation(1797)][:DIGITS_TRAIN]
    x, y = digits("train"), torch.as_tensor(target)
    # enable_grad: the first call may come from inside a no_grad block (e.g. digit_features).
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.set_num_threads(1)
        try:
            torch.manual_seed(0)
            net = _DigitClassifier()
            opt = torch.optim.Adam(net.parameters(), lr=5e-3, weight_decay=1e-4)
            for _ in range(300):
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()
        finally:
            torch.set_num_threads(threads)
    return net.eval().requires_grad_(False)


def digit_features(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Penultimate features (N, 32), float64, of images (N, 1, 8, 8) or (N, 8, 8) in [−1, 1].

    Images are clamped to [−1, 1] first (the data range), so a sample that overshoots is
    judged like the saturated image it would be saved as.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images.detach().cpu())
    x = x.to(torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"images must have shape (N, 1, 8, 8) or (N, 8, 8), got {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf (did sampling diverge?).")
    with torch.no_grad():
        return digit_classifier().body(x.clamp(-1.0, 1.0)).double().numpy()


def digits_fd(samples: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray | None = None) -> float:
    """FD between ``samples`` and ``reference`` (default: the 300 digits test images)."""
    from .datasets import digits

    ref = digits("test") if reference is None else reference
    return frechet_distance(digit_features(samples), digit_features(ref))


def digits_fd_floor(subsets: int = 1) -> float:
    """The noise floor of :func:`digits_fd`: 300 train images vs the 300 test images.

    ``subsets=1`` (the benchmark protocol) uses the first 300 train images.  With only 300
    images per side the floor is itself noisy — the four disjoint 300-image train subsets
    give 18.0, 7.8, 11.0 and 10.1 — so ``subsets=k`` (1..4) returns the mean over the first
    k disjoint subsets, a steadier reference for ratios.
    """
    from .datasets import DIGITS_TEST, DIGITS_TRAIN, digits

    checks.integer("subsets", subsets, 1, DIGITS_TRAIN // DIGITS_TEST)
    train = digits("train")
    return float(np.mean([digits_fd(train[i * DIGITS_TEST:(i + 1) * DIGITS_TEST]) for i in range(subsets)]))


# ---------------------------------------------------------------------------- sliced W2
def _quantiles(sorted_proj: np.ndarray, m: int) -> np.ndarray:
    """The empirical quantile function of each column at levels (i + ½)/m, i = 0..m−1."""
    n = sorted_proj.shape[0]
    if n == m:
        return sorted_proj
    levels = (np.arange(m) + 0.5) / m * n - 0.5
    idx = np.clip(np.round(levels).astype(int), 0, n - 1)
    return sorted_proj[idx]


def sliced_wasserstein2(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, projections: int = 256,
                        seed: int = 0) -> float:
    """Sliced W2 between point clouds x (N, D) and y (M, D).

    SW2 = ( mean_k W2²(⟨x, θ_k⟩, ⟨y, θ_k⟩) )^{1/2} over ``projections`` directions θ_k drawn
    uniformly on the sphere from ``seed``.  The 1-D W2 between empirical distributions pairs
    sorted projections; for N ≠ M both quantile functions are read at a common grid of
    max(N, M) levels.
    """
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, np.float64)
    b = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 1:
        raise ValueError(f"x and y must be non-empty (N, D) arrays with the same D, got shapes {a.shape} and {b.shape}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("points contain NaN or inf (did sampling diverge?).")
    checks.integer("projections", projections, 1)
    theta = np.random.default_rng(seed).standard_normal((a.shape[1], projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    pa, pb = np.sort(a @ theta, axis=0), np.sort(b @ theta, axis=0)
    m = max(len(a), len(b))
    w2 = ((_quantiles(pa, m) - _quantiles(pb, m)) ** 2).mean(0)
    return float(np.sqrt(w2.mean()))


def swiss_roll_benchmark_data(n_train: int = 20000, n_test: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """The swiss-roll protocol of ``benchmarks/``: :func:`ddpm_lite.data.toy_split`'s train (seed 0)
    and test (seed 1) points, both standardized with the *train* mean and std."""
    from .datasets import toy_split

    return toy_split("swiss_roll", "train", n_train, n_test), toy_split("swiss_roll", "test", n_train, n_test)


def swiss_roll_sw2_floor(n: int = 5000, seed: int = 0) -> float:
    """SW2 noise floor: ``n`` train points (first n of the seed-0 train set) vs the test set."""
    train, test = swiss_roll_benchmark_data()
    return sliced_wasserstein2(train[:n], test, seed=seed)
