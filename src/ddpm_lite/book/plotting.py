"""Matplotlib figures the chapters show and the widgets redraw.

Figures are built as ``matplotlib.figure.Figure`` objects (not through pyplot's
global state) so a widget can keep one, change its artists and re-render it
without touching any other figure.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data import image_grid
from ..schedule import NoiseSchedule

__all__ = [
    "new_figure",
    "png_bytes",
    "image_grid",
    "forward_chain_figure",
    "schedule_curves_figure",
    "forward_reverse_diagram",
    "POINT_LIMITS",
]

#: Axis limits for standardized 2-D points (a swiss roll fits, with a margin).
POINT_LIMITS = (-3.2, 3.2)


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """A pyplot-free figure with an Agg canvas attached, ready for :func:`png_bytes`."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, compress_level: int = 1, *, draw: bool = True) -> bytes:
    """Render ``fig`` to PNG bytes.

    With ``draw=False`` the canvas is encoded as it stands, which is how a widget
    that blits only its changing artists avoids a full redraw.  Light compression:
    an update is dominated by drawing, and the images are small anyway.
    """
    from PIL import Image

    if draw:
        fig.canvas.draw()
    canvas = fig.canvas
    buf = io.BytesIO()
    # Figures are opaque: dropping alpha makes the PNG encoder's work (the bulk of an
    # update once blitting is in place) about 40 % smaller.
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    rgba.convert("RGB").save(buf, format="png", compress_level=compress_level)
    return buf.getvalue()


def forward_chain_figure(states: Mapping[int, torch.Tensor], title: str = "") -> Figure:
    """One panel per kept step t of a forward chain: a scatter for 2-D points, a grid for images."""
    ts = sorted(states)
    fig = new_figure(1.9 * len(ts), 2.1)
    axes = fig.subplots(1, len(ts))
    for ax, t in zip(np.atleast_1d(axes), ts):
        x = states[t].detach().cpu()
        if x.dim() == 2:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4, color="tab:blue", rasterized=True)
            ax.set_xlim(*POINT_LIMITS)
            ax.set_ylim(*POINT_LIMITS)
            ax.set_aspect("equal")
        else:
            ax.imshow(image_grid(x[:16], ncols=4), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"t = {t}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def schedule_curves_figure(schedules: Mapping[str, NoiseSchedule]) -> Figure:
    """β_t, ᾱ_t and log-SNR(t) against t/T for several schedules side by side."""
    fig = new_figure(9.5, 2.8)
    ax_b, ax_a, ax_s = fig.subplots(1, 3)
    for label, s in schedules.items():
        u = np.arange(1, s.T + 1) / s.T
        ax_b.plot(u, s.betas[1:], label=label)
        ax_a.plot(u, s.alpha_bars[1:], label=label)
        ax_s.plot(u, s.log_snr[1:], label=label)
    ax_b.set_yscale("log")
    ax_b.set_title(r"$\beta_t$", fontsize=10)
    ax_a.set_title(r"$\bar\alpha_t$", fontsize=10)
    ax_s.set_title(r"$\log \mathrm{SNR}(t) = \log\bar\alpha_t - \log(1-\bar\alpha_t)$", fontsize=10)
    for ax in (ax_b, ax_a, ax_s):
        ax.set_xlabel("t / T")
        ax.grid(alpha=0.3)
    ax_a.legend(fontsize=8)
    return fig


def forward_reverse_diagram(points: torch.Tensor, digit: torch.Tensor, schedule: NoiseSchedule,
                            ts: Sequence[int] = (0, 100, 250, 500, 1000), seed: int = 0) -> Figure:
    """The two chains of the model, drawn from real forward samples.

    Top row: a swiss roll and a digit noised by q(x_t | x_0) at the steps ``ts``; arrows
    mark q (left to right, fixed) and p_θ (right to left, learned).
    """
    g = torch.Generator().manual_seed(seed)
    fig = new_figure(2.0 * len(ts), 4.3)
    axes = fig.subplots(2, len(ts))
    noise_pts = torch.randn(points.shape, generator=g, dtype=points.dtype)
    noise_img = torch.randn(digit.shape, generator=g, dtype=digit.dtype)
    for j, t in enumerate(ts):
        a = float(schedule.alpha_bars[t])
        xp = np.sqrt(a) * points + np.sqrt(1 - a) * noise_pts
        xi = np.sqrt(a) * digit + np.sqrt(1 - a) * noise_img
        axes[0, j].scatter(xp[:, 0], xp[:, 1], s=1, alpha=0.4, rasterized=True)
        axes[0, j].set_xlim(*POINT_LIMITS)
        axes[0, j].set_ylim(*POINT_LIMITS)
        axes[0, j].set_aspect("equal")
        axes[1, j].imshow(image_grid(xi[None]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"$x_{{{t}}}$" if t else "$x_0$ (data)", fontsize=10)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.supxlabel(r"forward process $q(x_t\mid x_{t-1})$: fixed, adds noise  $\longrightarrow$" "\n"
                  r"$\longleftarrow$  reverse process $p_\theta(x_{t-1}\mid x_t)$: learned, removes noise", fontsize=10)
    return fig
