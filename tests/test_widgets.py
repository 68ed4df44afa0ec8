"""The forward-process widgets, driven without a browser: artists must show the schedule."""

import numpy as np
import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.gaussian import LN2
from ddpm_lite.book.widgets import (
    forward_chain_viewer,
    schedule_explorer,
    schedule_explorer_html,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explorer():
    return schedule_explorer()


@pytest.mark.parametrize(
    "values",
    [
        dict(kind="linear", T=1000, beta_1=1e-4, beta_T=0.02, t=1),
        dict(t=1000),
        dict(T=2, t=2),
        dict(T=4000, t=4000),  # the slider's extreme
        dict(kind="cosine", T=1000, t=1000),  # β clipped at 0.999 at the last step
        dict(kind="quadratic", T=50, beta_1=1e-6, beta_T=0.5, t=25),
        dict(kind="sigmoid", T=3000, beta_1=0.1, beta_T=0.5, t=3000),  # ᾱ_T underflows towards 0
        dict(kind="linear", T=300, beta_1=0.02, beta_T=1e-4, t=7),  # a decreasing ramp is allowed
    ],
)
def test_explorer_artists_show_the_schedule(explorer, values):
    explorer.update(**values)
    kind, T = explorer.kind.value, explorer.T.value
    s = NoiseSchedule.cosine(T) if kind == "cosine" else NoiseSchedule.from_name(
        kind, T, beta_1=explorer.beta_1.value, beta_T=explorer.beta_T.value)
    t = explorer.t.value
    assert t == min(values.get("t", t), T)
    x, y = explorer.line_abar.get_data()
    np.testing.assert_allclose(x, np.arange(1, T + 1) / T)
    np.testing.assert_allclose(y, s.alpha_bars[1:], rtol=1e-12)
    np.testing.assert_allclose(explorer.line_beta.get_ydata(), s.betas[1:], rtol=1e-12)
    np.testing.assert_allclose(explorer.line_snr.get_ydata(), s.log_snr[1:], rtol=1e-12)
    assert np.isfinite(explorer.line_snr.get_ydata()).all()
    assert explorer.markers[0].get_xdata()[0] == pytest.approx(t / T)
    pts = explorer.scatter.get_offsets()
    expected = np.sqrt(s.alpha_bars[t]) * explorer.points.numpy() + np.sqrt(1 - s.alpha_bars[t]) * explorer.points_noise.numpy()
    np.testing.assert_allclose(pts, expected, rtol=1e-9, atol=1e-12)
    assert explorer.values["alpha_bar_T"] == s.alpha_bars[T]
    assert explorer.values["L_T_bits_per_dim"] == pytest.approx(float(s.prior_kl_per_dim(explorer.mean_square)) / LN2, rel=1e-12)
    assert np.isfinite(explorer.values["L_T_bits_per_dim"])
    assert explorer.image.value[:8] == PNG_MAGIC


def test_explorer_follows_slider_events(explorer):
    """A drag arrives as trait changes, not update() calls; the observer must redraw."""
    explorer.update(kind="linear", T=1000, beta_1=1e-4, beta_T=0.02, t=10)
    before = explorer.image.value
    explorer.t.value = 900
    assert explorer.values["t"] == 900 and explorer.image.value != before
    explorer.T.value = 100  # shrinking T clamps t into range
    assert explorer.t.value <= 100 and explorer.values["T"] == 100


def test_explorer_rejects_unknown_controls(explorer):
    with pytest.raises(ValueError, match="unknown control"):
        explorer.update(gamma=3)


def test_forward_chain_viewer_bounded_and_consistent():
    d = GaussianDiffusion(NoiseSchedule.linear(100))
    x0 = torch.randn(50, 2, dtype=torch.float64)
    v = forward_chain_viewer(x0, d, every=25, seed=1)
    assert sorted(v.states) == [0, 25, 50, 75, 100]  # bounded memory: only kept steps
    torch.testing.assert_close(v.states[0], x0)
    v.update(t=60)
    assert v.slider.value == 50
    np.testing.assert_allclose(v.artist.get_offsets(), v.states[50].numpy())
    assert v.image.value[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="every"):
        forward_chain_viewer(x0, d, every=0)


def test_forward_chain_viewer_images():
    d = GaussianDiffusion(NoiseSchedule.linear(20))
    v = forward_chain_viewer(torch.zeros(4, 1, 8, 8), d, every=5)
    v.update(t=20)
    assert v.artist.get_array().shape == (8, 35)  # 4 images tiled 4 across with 1-px gaps


def test_js_placeholder_carries_the_data_moment():
    html = schedule_explorer_html(0.25).data
    assert 'class="ddpm-schedule-explorer"' in html and 'data-mean-square="0.25"' in html
