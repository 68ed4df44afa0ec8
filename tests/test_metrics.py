"""Sanity of the sample-quality metrics (ddpm_lite.data.metrics)."""

import numpy as np
import pytest
import torch

from ddpm_lite.data import metrics
from ddpm_lite.data import digits


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Shifting by δ adds exactly ‖δ‖² (covariances are unchanged).
    delta = np.array([1.0, -2.0, 0.5])
    assert metrics.frechet_distance(a, a + delta) == pytest.approx(float(delta @ delta), rel=1e-9)
    # Scaling by s: Tr(Σ + s²Σ − 2sΣ) = (1 − s)² Tr Σ.
    cov = np.cov(a, rowvar=False)
    assert metrics.frechet_distance(a, 3.0 * a) == pytest.approx(4.0 * np.trace(cov) + (2 * a.mean(0)) @ (2 * a.mean(0)), rel=1e-9)
    with pytest.raises(ValueError, match="same D"):
        metrics.frechet_distance(a, a[:, :2])


def test_digits_fd_is_zero_on_itself_and_grows_with_noise():
    test = digits("test")
    assert metrics.digits_fd(test) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    noisy = [metrics.digits_fd(test + s * torch.randn(test.shape, generator=g)) for s in (0.1, 0.3, 0.6)]
    floor = metrics.digits_fd_floor()
    assert 0 < floor < noisy[1] < noisy[2]
    assert noisy[0] < noisy[1]
    # The 4-subset floor averages disjoint train subsets; the first of them is the 1-subset floor.
    floor4 = metrics.digits_fd_floor(subsets=4)
    assert 0 < floor4 < noisy[1] and floor4 != floor
    with pytest.raises(ValueError, match="subsets"):
        metrics.digits_fd_floor(subsets=5)


def test_digit_classifier_is_deterministic_and_accurate():
    from sklearn.datasets import load_digits

    net = metrics.digit_classifier()
    labels = load_digits().target[np.random.default_rng(0).permutation(1797)][-300:]
    acc = (net(digits("test")).argmax(1).numpy() == labels).mean()
    assert acc > 0.9
    metrics.digit_classifier.cache_clear()
    again = metrics.digit_classifier()
    for p, q in zip(net.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_sliced_wasserstein2():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 2))
    assert metrics.sliced_wasserstein2(x, x) == 0.0
    assert metrics.sliced_wasserstein2(x, x[::-1]) == 0.0  # order does not matter
    # A shift by δ moves every 1-D projection by ⟨δ, θ⟩: SW2² = mean ⟨δ, θ⟩² ≈ ‖δ‖²/2 in 2-D.
    # With 256 directions the Monte-Carlo error of mean cos² is about 0.35/√256 ≈ 0.022.
    sw = metrics.sliced_wasserstein2(x, x + np.array([3.0, 0.0]))
    assert sw**2 == pytest.approx(9.0 / 2.0, abs=9.0 * 5 * 0.022)
    # Unequal sizes work through the quantile grid, and equal the equal-size value when duplicated.
    y = rng.standard_normal((1000, 2)) + 1.0
    assert metrics.sliced_wasserstein2(x, np.repeat(y, 2, axis=0)) == pytest.approx(
        metrics.sliced_wasserstein2(x, y), rel=1e-2)
    with pytest.raises(ValueError, match="NaN"):
        metrics.sliced_wasserstein2(x, np.full((3, 2), np.nan))


def test_swiss_roll_floor_is_small_but_positive():
    train, test = metrics.swiss_roll_benchmark_data()
    floor = metrics.swiss_roll_sw2_floor()
    assert 0 < floor < 0.1
    assert metrics.sliced_wasserstein2(train[:5000] * 1.2, test) > 3 * floor
