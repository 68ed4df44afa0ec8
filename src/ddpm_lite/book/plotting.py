"""Matplotlib figures the chapters show and the widgets redraw, in one look.

Figures are built as ``matplotlib.figure.Figure`` objects (not through pyplot's
global state) so a widget can keep one, change its artists and re-render it
without touching any other figure.

The look is set once per chapter by :func:`use_book_style` (in the set-up cell): a
figure is :data:`COLUMN_WIDTH` inches wide at 100 dpi, which is the width of the
book's text column in CSS pixels, so it is shown at 1:1 and a 9-point label is 12.5 px
tall on the page; images are rendered at twice that resolution for sharp screens.
Digit grids are drawn by :func:`show_digits`, always on the data's full gray range.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data.png import image_grid
from ..schedule import NoiseSchedule

__all__ = [
    "COLUMN_WIDTH",
    "BOOK_STYLE",
    "use_book_style",
    "show_digits",
    "show_points",
    "new_figure",
    "png_bytes",
    "image_grid",
    "forward_chain_figure",
    "schedule_curves_figure",
    "forward_reverse_diagram",
    "roadmap_figure",
    "POINT_LIMITS",
]

#: Axis limits for standardized 2-D points (a swiss roll fits, with a margin).
POINT_LIMITS = (-3.2, 3.2)

#: Width of the book's text column in inches at 100 dpi: 688 CSS px in a 1280 px window.
COLUMN_WIDTH = 6.88

#: The book's figure look (matplotlib rcParams).  Sizes are in points at 100 dpi, so
#: 1 pt = 1.39 px on the page; the smallest text (ticks, legends) is 9 pt = 12.5 px.
BOOK_STYLE = {
    "figure.figsize": (COLUMN_WIDTH, 3.0),
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "figure.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.framealpha": 0.85,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "image.interpolation": "nearest",
    "savefig.bbox": "standard",
}
#: Between the tiles of a digit grid: a colour no gray level can take.
GRID_GAP_COLOR = "#46648c"


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` and, in IPython, show inline figures at double resolution.

    Call it once in a chapter's set-up cell, after ``%matplotlib inline``.  "retina"
    output renders each figure at 200 dpi and tells the page to show it at half that
    size, so it is sharp on high-density screens and its labels keep their size.
    """
    mpl.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: nothing is shown inline
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def show_digits(ax, images: torch.Tensor | np.ndarray, ncols: int | None = None, title: str = "") -> None:
    """Draw model-range images (N, 1, H, W) as one grid on ``ax``, black = −1, white = +1.

    Every grid in the book uses this, so samples and real digits always share one
    scale and one gray range; the gaps between tiles get :data:`GRID_GAP_COLOR`.
    """
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    grid = image_grid(x, ncols=ncols)
    gaps = image_grid(torch.full_like(x, -1.0), ncols=ncols) > 0.5
    cmap = mpl.colormaps["gray"].with_extremes(bad=GRID_GAP_COLOR)
    ax.imshow(np.ma.masked_array(grid, gaps), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)


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


def show_points(ax, points: torch.Tensor | np.ndarray, title: str = "", size: float = 1.0) -> None:
    """Scatter standardized 2-D points on ``ax`` in the book's fixed window (:data:`POINT_LIMITS`).

    Every point cloud in the book uses this, so data, samples and chain states share one
    scale; the panel gets a full, light frame and no ticks.
    """
    x = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    ax.scatter(x[:, 0], x[:, 1], s=size, alpha=0.4, color="tab:blue", rasterized=True, linewidths=0)
    ax.set_xlim(*POINT_LIMITS)
    ax.set_ylim(*POINT_LIMITS)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set(visible=True, color="0.75")
    if title:
        ax.set_title(title)


def _draw_state(ax, x: torch.Tensor) -> None:
    """One state of a chain: a scatter for 2-D points, a 4-wide grid for images."""
    x = x.detach().cpu()
    if x.dim() == 2:
        show_points(ax, x)
    else:
        show_digits(ax, x[:16], ncols=4)


def forward_chain_figure(chains: Sequence[Mapping[int, torch.Tensor]] | Mapping[int, torch.Tensor],
                         labels: Sequence[str] = ()) -> Figure:
    """One row per chain, one column per kept step t (the same steps in every chain).

    ``chains``: mappings t → state, where a state is (N, 2) points (drawn as a scatter)
    or (N, 1, H, W) images (the first 16, as a grid); ``labels`` name the rows.
    """
    chains = [chains] if isinstance(chains, Mapping) else list(chains)
    ts = sorted(chains[0])
    fig = new_figure(COLUMN_WIDTH, 0.3 + 1.35 * len(chains))
    axes = np.atleast_2d(fig.subplots(len(chains), len(ts), squeeze=False))
    for i, chain in enumerate(chains):
        for j, t in enumerate(ts):
            _draw_state(axes[i, j], chain[t])
        if i < len(labels):
            axes[i, 0].set_ylabel(labels[i])
    for j, t in enumerate(ts):
        axes[0, j].set_title(f"t = {t}")
    return fig


def schedule_curves_figure(schedules: Mapping[str, NoiseSchedule]) -> Figure:
    """β_t, ᾱ_t and log-SNR(t) against t/T for several schedules side by side."""
    fig = new_figure(COLUMN_WIDTH, 2.7)
    ax_b, ax_a, ax_s = fig.subplots(1, 3)
    for label, s in schedules.items():
        u = np.arange(1, s.T + 1) / s.T
        ax_b.plot(u, s.betas[1:], label=label)
        ax_a.plot(u, s.alpha_bars[1:], label=label)
        ax_s.plot(u, s.log_snr[1:], label=label)
    ax_b.set_yscale("log")
    ax_b.set_title(r"$\beta_t$ (log scale)")
    ax_a.set_title(r"$\bar\alpha_t$")
    ax_s.set_title(r"$\log \mathrm{SNR}(t)$")
    for ax in (ax_b, ax_a, ax_s):
        ax.set_xlabel("t / T")
        ax.grid(alpha=0.3)
    ax_a.legend()
    return fig


def forward_reverse_diagram(points: torch.Tensor, digit: torch.Tensor, schedule: NoiseSchedule,
                            ts: Sequence[int] = (0, 100, 250, 500, 1000), seed: int = 0) -> Figure:
    """The two chains of the model, drawn from real forward samples.

    A swiss roll (top) and a digit (bottom) noised by q(x_t | x_0) at the steps ``ts``;
    the caption under the panels names q (left to right, fixed) and p_θ (right to left,
    learned).
    """
    g = torch.Generator().manual_seed(seed)
    fig = new_figure(COLUMN_WIDTH, 3.6)
    axes = fig.subplots(2, len(ts))
    noise_pts = torch.randn(points.shape, generator=g, dtype=points.dtype)
    noise_img = torch.randn(digit.shape, generator=g, dtype=digit.dtype)
    for j, t in enumerate(ts):
        a = float(schedule.alpha_bars[t])
        _draw_state(axes[0, j], np.sqrt(a) * points + np.sqrt(1 - a) * noise_pts)
        show_digits(axes[1, j], (np.sqrt(a) * digit + np.sqrt(1 - a) * noise_img)[None])
        axes[0, j].set_title(f"$x_{{{t}}}$" if t else "$x_0$ (data)")
    fig.supxlabel(r"forward process $q(x_t\mid x_{t-1})$: fixed, adds noise  $\longrightarrow$" "\n"
                  r"$\longleftarrow$  reverse process $p_\theta(x_{t-1}\mid x_t)$: learned, removes noise")
    return fig


def roadmap_figure(terms: Mapping[str, Sequence[str]], whole: Sequence[str], colors: Sequence[str] = ()) -> Figure:
    """The bound's terms as column heads, the chapters that derive and check each below them.

    ``terms``: TeX label of a term → lines naming the chapters about it (one box per
    line, top to bottom); ``whole``: lines about the bound as a whole, drawn in one band
    under all the columns.  Boxes share a colour with their term.
    """
    colors = list(colors) or ["#d9e7f5", "#fbe3c8", "#dcefd9", "#eadcf0"]
    n = len(terms)
    depth = max(len(v) for v in terms.values())
    fig = new_figure(COLUMN_WIDTH, 1.25 + 0.52 * depth + 0.5 * len(whole))
    fig.set_layout_engine("none")  # one axes filling the figure: nothing to lay out
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    height = 1.25 + 0.52 * depth + 0.5 * len(whole)
    ax.set_xlim(0, COLUMN_WIDTH)
    ax.set_ylim(0, height)
    col_w = (COLUMN_WIDTH - 0.15 * (n + 1)) / n
    top = height - 0.2

    def box(x, y, w, h, text, color, size=9, weight="normal"):
        from matplotlib.patches import FancyBboxPatch

        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                    fc=color, ec="0.55", lw=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight,
                wrap=False)

    ax.text(COLUMN_WIDTH / 2, top - 0.12, r"$L \;=\; " + r" \;+\; ".join(terms) + "$", ha="center",
            va="center", fontsize=14)
    for i, (term, lines) in enumerate(terms.items()):
        x = 0.15 + i * (col_w + 0.15)
        color = colors[i % len(colors)]
        box(x, top - 0.85, col_w, 0.42, f"${term}$", color, size=12)
        for k, line in enumerate(lines):
            y = top - 1.4 - 0.52 * k
            ax.annotate("", (x + col_w / 2, y + 0.42), (x + col_w / 2, y + 0.52 + (0.04 if k else 0.02)),
                        arrowprops={"arrowstyle": "-|>", "color": "0.45", "lw": 0.8})
            box(x, y, col_w, 0.42, line, color)
    for k, line in enumerate(whole):
        y = 0.12 + 0.5 * (len(whole) - 1 - k)
        box(0.15, y, COLUMN_WIDTH - 0.3, 0.4, line, colors[n % len(colors)])
    return fig
