"""Drive the posterior explorers without a browser: what the artists show must be the
NoiseSchedule's numbers, at every slider extreme, with no NaN anywhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddpm_lite import NoiseSchedule
from ddpm_lite.diffusion import eps_loss_weight
from ddpm_lite.book.widgets import posterior_explorer, posterior_histogram
from ddpm_lite.book.exact import posterior_importance_sample

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(1000)


@pytest.fixture(scope="module")
def explorer(schedule):
    return posterior_explorer(schedule)


@pytest.fixture(scope="module")
def histogram(schedule):
    return posterior_histogram(schedule, n=4000)


def xy(line) -> tuple[np.ndarray, np.ndarray]:
    x, y = line.get_data()
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


# ---------------------------------------------------------------------- explorer
@pytest.mark.parametrize("t", [1, 2, 3, 500, 1000])
def test_explorer_artists_hold_the_schedule(explorer, schedule, t):
    s, a = schedule, explorer.artists
    explorer.update(t=t)
    assert explorer.sliders["t"].value == t
    # Curves: the full schedule arrays, β̃ and its weight from t = 2 (β̃_1 = 0 is off a log axis).
    x, y = xy(a["beta"])
    np.testing.assert_array_equal(x, np.arange(1, s.T + 1))
    np.testing.assert_array_equal(y, s.betas[1:])
    x, y = xy(a["beta_tilde"])
    np.testing.assert_array_equal(x, np.arange(2, s.T + 1))
    np.testing.assert_array_equal(y, s.posterior_variance[2:])
    np.testing.assert_array_equal(xy(a["coef_x0"])[1], s.posterior_mean_coef_x0[1:])
    np.testing.assert_array_equal(xy(a["coef_xt"])[1], s.posterior_mean_coef_xt[1:])
    np.testing.assert_array_equal(xy(a["w_beta_tilde"])[1], eps_loss_weight(s, "beta_tilde")[2:])
    # Markers: at t, with the β̃ markers at max(t, 2).
    tt = max(t, 2)
    np.testing.assert_array_equal(xy(a["var_marker"])[0], [t, tt])
    np.testing.assert_array_equal(xy(a["var_marker"])[1], [s.betas[t], s.posterior_variance[tt]])
    np.testing.assert_array_equal(xy(a["coef_marker"])[1], [s.posterior_mean_coef_x0[t], s.posterior_mean_coef_xt[t]])
    np.testing.assert_array_equal(
        xy(a["w_marker"])[1], [eps_loss_weight(s, "beta")[t], eps_loss_weight(s, "beta_tilde")[tt]]
    )
    for key in ("var_line", "coef_line", "w_line"):
        np.testing.assert_array_equal(xy(a[key])[0], [t, t])
    for line in a.values():
        assert np.all(np.isfinite(xy(line)[1]))
    assert explorer.image.value[:8] == PNG_MAGIC
    assert ("β̃<sub>1</sub> = 0" in explorer.readout.value) == (t == 1)


def test_explorer_slider_drag_redraws(explorer):
    explorer.update(t=7)
    before = explorer.image.value
    explorer.sliders["t"].value = 800  # what a browser drag does
    assert xy(explorer.artists["var_marker"])[0][0] == 800
    assert bytes(explorer.image.value) != bytes(before)


def test_explorer_rejects_bad_values(explorer, schedule):
    with pytest.raises(ValueError, match=r"t must be an integer in 1\.\.T \(T=1000\), got t=0"):
        explorer.update(t=0)
    with pytest.raises(ValueError, match="unknown control"):
        explorer.update(x0=0.3)
    with pytest.raises(ValueError, match="T ≥ 2"):
        posterior_explorer(NoiseSchedule.linear(1))
    with pytest.raises(ValueError, match="schedule must be"):
        posterior_explorer(schedule=[0.1, 0.2])


# ---------------------------------------------------------------------- histogram
@pytest.mark.parametrize("t", [1, 2, 1000])
@pytest.mark.parametrize("x0", [-1.0, 1.0])
@pytest.mark.parametrize("offset", [-2.0, 0.0, 2.0])
def test_histogram_density_is_the_posterior(histogram, schedule, t, x0, offset):
    s, a = schedule, histogram.artists
    histogram.update(t=t, x0=x0, xt_offset=offset)
    xt = math.sqrt(s.alpha_bars[t]) * x0 + offset * math.sqrt(s.one_minus_alpha_bars[t])
    mean = s.posterior_mean_coef_x0[t] * x0 + s.posterior_mean_coef_xt[t] * xt
    var = s.posterior_variance[t]
    assert histogram.state["mean"] == pytest.approx(mean, abs=1e-15)
    assert histogram.state["var"] == var
    assert xy(a["mean_line"])[0][0] == pytest.approx(mean, abs=1e-15)
    data = a["hist"].get_data()
    heights, edges = np.asarray(data.values), np.asarray(data.edges)
    assert np.all(np.isfinite(heights)) and np.all(np.isfinite(edges))
    assert np.sum(heights * np.diff(edges)) == pytest.approx(1.0, abs=1e-3)  # (almost) all weight inside ±4 sd
    x, y = xy(a["density"])
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    if t == 1:  # the posterior is the point mass at x_0: every sample sits there
        assert var == 0.0 and np.all(x == x0) and mean == pytest.approx(x0, abs=1e-15)
        assert heights.max() * np.diff(edges)[0] == pytest.approx(1.0)
    else:
        expected = np.exp(-0.5 * (x - mean) ** 2 / var) / math.sqrt(2 * math.pi * var)
        np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert histogram.image.value[:8] == PNG_MAGIC


@pytest.mark.parametrize("t,x0,offset,seed", [(2, 0.5, 0.0, 1), (10, -0.3, 1.5, 2), (300, 0.9, -1.0, 3), (1000, -1.0, 2.0, 4)])
def test_importance_weights_recover_the_posterior_moments(schedule, t, x0, offset, seed):
    """Weighted mean and variance within 5 standard errors of μ̃_t and β̃_t.

    Standard errors use Kish's effective sample size n_eff = 1/Σw²: SE(mean) = √(β̃/n_eff),
    SE(var) = β̃ √(2/n_eff) (Gaussian fourth moment).
    """
    s = schedule
    xt = math.sqrt(s.alpha_bars[t]) * x0 + offset * math.sqrt(s.one_minus_alpha_bars[t])
    x_prev, w = posterior_importance_sample(s, x0, xt, t, n=50000, seed=seed)
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    n_eff = 1.0 / np.sum(w * w)
    assert n_eff > 1000  # otherwise the tolerance below would be meaningless
    mean = s.posterior_mean_coef_x0[t] * x0 + s.posterior_mean_coef_xt[t] * xt
    var = s.posterior_variance[t]
    w_mean = np.sum(w * x_prev)
    w_var = np.sum(w * (x_prev - w_mean) ** 2)
    assert abs(w_mean - mean) < 5 * math.sqrt(var / n_eff)
    assert abs(w_var - var) < 5 * var * math.sqrt(2 / n_eff)


def test_histogram_rejects_bad_values(histogram):
    with pytest.raises(ValueError, match=r"x0 must be a number in \[-1, 1\], got x0=1.5"):
        histogram.update(x0=1.5)
    with pytest.raises(ValueError, match=r"x0 must be a number in \[-1, 1\], got x0=-2.0"):
        posterior_histogram(x0=-2.0)
    with pytest.raises(ValueError, match=r"t must be an integer in 1\.\.T \(T=1000\), got t=0"):
        posterior_histogram(t=0)
