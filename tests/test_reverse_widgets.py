"""Tests for the reverse-chain viewer: recorded states, slider behaviour, redraws and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.book.exact import LinearEps, optimal_eps_coef
from ddpm_lite.book.plotting import image_grid
from ddpm_lite.book.widgets import (
    ReverseChainViewer,
    record_reverse_chain,
    reverse_chain_viewer,
)

pytest.importorskip("ipywidgets")

T = 40


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(NoiseSchedule.linear(T, 1e-3, 0.2), num_levels=None)


def _eps(diffusion):
    return LinearEps(optimal_eps_coef(diffusion.schedule, 0.3))


def test_record_keeps_bounded_states_from_noise_to_data(diffusion):
    states = record_reverse_chain(diffusion, _eps(diffusion), (50, 2), every=10, seed=0)
    assert sorted(states) == [0, 10, 20, 30, 40]
    final = diffusion.sample(_eps(diffusion), (50, 2), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(states[0], final)                    # same seed ⇒ same chain
    with pytest.raises(ValueError, match="every"):
        record_reverse_chain(diffusion, _eps(diffusion), (5, 2), every=0)


def test_viewer_slider_and_update(diffusion):
    eps = _eps(diffusion)
    images = {t: x.view(4, 1, 2, 2) for t, x in record_reverse_chain(diffusion, eps, (4, 4), every=8).items()}
    points = record_reverse_chain(diffusion, eps, (100, 2), every=8)
    v = ReverseChainViewer(points, images)
    assert v.steps == [40, 32, 24, 16, 8, 0] and v.shown_t == 40
    first = v.image.value
    v.update(t=17)                                                  # nearest recorded step
    assert v.slider.value == 16 and v.shown_t == 16
    np.testing.assert_array_equal(v.scatter.get_offsets(), points[16].numpy())
    np.testing.assert_array_equal(np.asarray(v.im.get_array()), image_grid(images[16]))
    assert v.image.value != first and v.image.value[:4] == b"\x89PNG"
    v.slider.value = 0                                              # a slider drag redraws too
    assert v.shown_t == 0


def test_viewer_helper_and_errors(diffusion):
    v = reverse_chain_viewer(diffusion, point_model=_eps(diffusion), n_points=30, every=20)
    assert v.steps == [40, 20, 0] and v.im is None
    with pytest.raises(ValueError, match="at least one"):
        ReverseChainViewer()
    other = GaussianDiffusion(NoiseSchedule.linear(30), num_levels=None)
    with pytest.raises(ValueError, match="same T"):
        reverse_chain_viewer(diffusion, _eps(diffusion), _eps(other), image_diffusion=other)


def test_image_grid_layout_and_range():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0]).view(4, 1, 1, 1)
    grid = image_grid(x, ncols=2, pad=1)
    assert grid.shape == (3, 3)
    np.testing.assert_array_equal(grid[[0, 0, 2, 2], [0, 2, 0, 2]], [0.0, 0.0, 0.5, 1.0])  # clipped, scaled
    assert grid[1, 1] == 1.0                                        # white padding
    with pytest.raises(ValueError, match="shape"):
        image_grid(torch.zeros(2, 8, 8))
