"""The reverse-chain viewer: a slider over recorded sampling steps, noise → data.

An :class:`~ddpm_lite.book.widgets.base.Explorer` like the others: one figure whose artists
move on each slider event (blitted over a cached background); in the rendered book, frames of
the recorded steps precomputed at build time.

The trajectories come from :meth:`GaussianDiffusion.sample` with ``trajectory_every=k``:
memory holds T/k + 2 copies of each batch, never the whole chain.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ... import checks
from ...diffusion import GaussianDiffusion
from ..plotting import POINT_LIMITS, image_grid
from .base import CHAIN_FRAMES, Explorer, kept_steps, thin

__all__ = ["record_reverse_chain", "ReverseChainViewer", "reverse_chain_viewer"]


def record_reverse_chain(diffusion: GaussianDiffusion, eps_model: Any, shape: tuple[int, ...], every: int = 10,
                         seed: int = 0) -> dict[int, torch.Tensor]:
    """Run Algorithm 2 once and keep x_t for t = T, every multiple of ``every``, and 0.

    Returns {t: x_t} (CPU tensors).  Bounded memory: about T/every + 2 states.
    """
    kept_steps(diffusion.T, every)  # refuses an `every` that would keep too many states
    g = torch.Generator().manual_seed(checks.integer("seed", seed))
    _, trajectory = diffusion.sample(eps_model, shape, generator=g, trajectory_every=int(every))
    return {int(t): x.detach().cpu() for t, x in trajectory}


class ReverseChainViewer(Explorer):
    """A t slider over recorded reverse chains of 2-D points and/or images.

    ``points``/``images``: {t: x_t} as returned by :func:`record_reverse_chain` (either may
    be None, not both).  The slider runs from T down to 0, as sampling does; ``update(t=...)``
    moves it to the recorded step nearest to t and redraws (tests drive it this way).
    """

    def __init__(self, points: dict[int, torch.Tensor] | None = None, images: dict[int, torch.Tensor] | None = None,
                 reference_points: torch.Tensor | None = None, t: int | None = None, max_images: int = 16) -> None:
        import ipywidgets as W

        chains = [c for c in (points, images) if c is not None]
        if not chains:
            raise ValueError("give at least one recorded chain: points={t: x_t} or images={t: x_t}.")
        steps = sorted(set.intersection(*(set(c) for c in chains)), reverse=True)
        if not steps:
            raise ValueError("the recorded chains share no timestep; record them with the same T and `every`.")
        self.points, self.images, self.steps = points, images, steps
        self.max_images = checks.integer("max_images", max_images, 1)
        self.slider = W.SelectionSlider(options=steps, description="t")
        panels = int(points is not None) + int(images is not None)
        figure = self._figure(3.3 * panels, 3.5)
        axes = list(np.atleast_1d(figure.subplots(1, panels)))
        dynamic: list = []
        self.scatter = self.im = None
        if points is not None:
            ax = axes.pop(0)
            if reference_points is not None:
                ref = reference_points.detach().cpu()
                ax.scatter(ref[:, 0], ref[:, 1], s=1, color="0.8", rasterized=True, label="data")
            first = points[steps[0]]
            self.scatter = ax.scatter(first[:, 0], first[:, 1], s=1, alpha=0.5, color="tab:blue")
            ax.set_xlim(*POINT_LIMITS)
            ax.set_ylim(*POINT_LIMITS)
            ax.set_aspect("equal")
            self.ax_pts = ax
            dynamic += [self.scatter, ax.title]
        if images is not None:
            ax = axes.pop(0)
            self.im = ax.imshow(image_grid(images[steps[0]][: self.max_images]), cmap="gray", vmin=0, vmax=1,
                                interpolation="nearest")
            self.ax_img = ax
            dynamic += [self.im, ax.title]
        for ax in figure.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        self._assemble(figure, {"t": self.slider}, dynamic=dynamic, values={"t": steps[0] if t is None else t})

    def draw(self, t: int) -> str:
        """Show the recorded step x_t."""
        if self.scatter is not None:
            self.scatter.set_offsets(self.points[t].numpy())
            self.ax_pts.set_title(f"2-D points at t = {t}", fontsize=10)
        if self.im is not None:
            self.im.set_data(image_grid(self.images[t][: self.max_images]))
            self.ax_img.set_title(f"digits at t = {t}", fontsize=10)
        self.shown_t = t
        return ""

    def static_grid(self) -> dict[str, list[int]]:
        return {"t": thin(self.steps, CHAIN_FRAMES)}


def reverse_chain_viewer(diffusion: GaussianDiffusion, point_model: Any = None, image_model: Any = None, *,
                         image_diffusion: GaussianDiffusion | None = None, n_points: int = 1000, n_images: int = 16,
                         image_shape: Sequence[int] = (1, 8, 8), every: int = 10, seed: int = 0,
                         reference_points: torch.Tensor | None = None) -> ReverseChainViewer:
    """Sample once with each given model, recording every ``every``-th step, and return the viewer.

    ``diffusion`` drives the point model; ``image_diffusion`` (default: ``diffusion``) the
    image model.  Both chains must have the same T so the slider can show them together.
    """
    img_diff = image_diffusion or diffusion
    if point_model is not None and image_model is not None and img_diff.T != diffusion.T:
        raise ValueError(f"both chains need the same T to share a slider, got T={diffusion.T} and T={img_diff.T}.")
    points = record_reverse_chain(diffusion, point_model, (n_points, 2), every, seed) if point_model is not None else None
    images = (record_reverse_chain(img_diff, image_model, (n_images, *image_shape), every, seed)
              if image_model is not None else None)
    return ReverseChainViewer(points, images, reference_points=reference_points)
