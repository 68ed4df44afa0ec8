"""ipywidgets explorers for the forward process.

Each explorer builds its matplotlib figure once and, on every slider event,
changes the artists' data and re-renders that one figure into an
``ipywidgets.Image``.  Rendering to PNG (rather than through an interactive
backend) is what lets the rendered book show the widget statically: the image
bytes are part of the embedded widget state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...data import digits, swiss_roll
from ...diffusion import GaussianDiffusion
from ...gaussian import LN2
from ...schedule import SCHEDULE_KINDS, NoiseSchedule
from ..plotting import POINT_LIMITS, image_grid, new_figure
from .base import PNGWidget

#: Longest chain the schedule explorer's T slider offers; larger T are refused at construction
#: (the slider would clamp them silently) and clamped by ``update(T=...)`` like a drag would be.
MAX_EXPLORER_T = 4000

#: Most states a :class:`ForwardChainViewer` keeps: memory is this many copies of x_0.
MAX_KEPT_STATES = 1001

__all__ = ["ScheduleExplorer", "schedule_explorer", "ForwardChainViewer", "forward_chain_viewer", "schedule_explorer_html"]



class ScheduleExplorer(PNGWidget):
    """Sliders for the schedule (kind, T, β_1, β_T) and a timestep t.

    Shows β_t, ᾱ_t and log-SNR(t) with a marker at t, forward samples x_t of the swiss
    roll and of a few digits (with the noise held fixed, so dragging t shows one chain
    evolving), and readouts of ᾱ_T and L_T in bits/dim on the digits test split.
    """

    def __init__(self, kind: str = "linear", T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02,
                 t: int = 100, seed: int = 0) -> None:
        import ipywidgets as W

        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SCHEDULE_KINDS)}, got kind={kind!r}.")
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or not 2 <= T <= MAX_EXPLORER_T:
            raise ValueError(f"T must be an integer in 2..{MAX_EXPLORER_T} (the slider's range), got T={T!r}.")
        for name, value, lo, hi in (("beta_1", beta_1, 1e-6, 0.1), ("beta_T", beta_T, 1e-4, 0.5)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}] (the slider's range), got {name}={value!r}.")
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= T:
            raise ValueError(f"t must be an integer in 1..T (T={T}), got t={t!r}.")
        g = torch.Generator().manual_seed(seed)
        self.points = swiss_roll(1500, seed=seed).double()
        self.points_noise = torch.randn(self.points.shape, generator=g, dtype=torch.float64)
        test = digits("test").double()
        self.digits = test[:8]
        self.digits_noise = torch.randn(self.digits.shape, generator=g, dtype=torch.float64)
        self.mean_square = float((test**2).mean())

        self.kind = W.Dropdown(options=SCHEDULE_KINDS, value=kind, description="schedule")
        self.T = W.IntSlider(value=T, min=2, max=4000, step=1, description="T", continuous_update=True)
        self.beta_1 = W.FloatLogSlider(value=beta_1, base=10, min=-6, max=-1, step=0.05, description="β₁",
                                       readout_format=".2e")
        self.beta_T = W.FloatLogSlider(value=beta_T, base=10, min=-4, max=math.log10(0.5), step=0.05,
                                       description="β_T", readout_format=".2e")
        self.t = W.IntSlider(value=min(t, T), min=1, max=T, step=1, description="t")
        self.readout = W.HTML()
        self.image = W.Image(format="png")
        self._build_figure()
        for w in (self.kind, self.T, self.beta_1, self.beta_T, self.t):
            w.observe(self._on_change, names="value")
        controls = W.HBox([W.VBox([self.kind, self.T, self.t]), W.VBox([self.beta_1, self.beta_T, self.readout])])
        self.widget = W.VBox([controls, self.image])
        self.update()

    def _build_figure(self) -> None:
        self.figure = new_figure(8.2, 4.6, dpi=72)
        gs = self.figure.add_gridspec(2, 3)
        self.ax_beta = self.figure.add_subplot(gs[0, 0])
        self.ax_abar = self.figure.add_subplot(gs[0, 1])
        self.ax_snr = self.figure.add_subplot(gs[0, 2])
        self.ax_pts = self.figure.add_subplot(gs[1, 0])
        self.ax_img = self.figure.add_subplot(gs[1, 1:])
        (self.line_beta,) = self.ax_beta.plot([], [], lw=1.5)
        (self.line_abar,) = self.ax_abar.plot([], [], lw=1.5)
        (self.line_snr,) = self.ax_snr.plot([], [], lw=1.5)
        self.markers = [ax.axvline(0, color="tab:red", lw=1) for ax in (self.ax_beta, self.ax_abar, self.ax_snr)]
        # Fixed axes (x is t/T, y ranges cover every slider setting): the frames and
        # ticks never change, so every update only redraws curves over a cached background.
        self.ax_beta.set_yscale("log")
        self.ax_beta.set_ylim(1e-6, 1.0)
        self.ax_abar.set_ylim(-0.02, 1.02)
        self.ax_snr.set_ylim(-25, 16)
        for ax, title in ((self.ax_beta, r"$\beta_t$"), (self.ax_abar, r"$\bar\alpha_t$"),
                          (self.ax_snr, r"log-SNR$(t)$")):
            ax.set_xlim(0, 1)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("t / T", fontsize=9)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
        self.scatter = self.ax_pts.scatter(self.points[:, 0], self.points[:, 1], s=1, alpha=0.5)
        self.ax_pts.set_xlim(*POINT_LIMITS)
        self.ax_pts.set_ylim(*POINT_LIMITS)
        self.ax_pts.set_aspect("equal")
        self.im = self.ax_img.imshow(image_grid(self.digits, ncols=4), cmap="gray", vmin=0, vmax=1,
                                     interpolation="nearest")
        for ax in (self.ax_pts, self.ax_img):
            ax.set_xticks([])
            ax.set_yticks([])
        self.dynamic = [self.line_beta, self.line_abar, self.line_snr, *self.markers, self.scatter, self.im,
                        self.ax_pts.title, self.ax_img.title]
        self._drawn_schedule: tuple | None = None

    def _on_change(self, change: dict) -> None:
        if change["owner"] is self.T:
            self.t.max = self.T.value  # ipywidgets clamps t into the new range itself
        self.update()

    def schedule(self) -> NoiseSchedule:
        """The schedule the current slider values describe (β_1 ≥ β_T is allowed: a decreasing ramp)."""
        if self.kind.value == "cosine":
            return NoiseSchedule.cosine(self.T.value)
        return NoiseSchedule.from_name(self.kind.value, self.T.value, beta_1=self.beta_1.value,
                                       beta_T=self.beta_T.value)

    def update(self, **values: Any) -> None:
        """Set any of kind, T, beta_1, beta_T, t (as a slider drag would) and redraw."""
        if values:
            for name, value in values.items():
                if name not in ("kind", "T", "beta_1", "beta_T", "t"):
                    raise ValueError(f"unknown control {name!r}; use kind, T, beta_1, beta_T or t.")
                if name == "kind" and value not in SCHEDULE_KINDS:
                    raise ValueError(f"kind must be one of {', '.join(SCHEDULE_KINDS)}, got kind={value!r}.")
                if name != "kind" and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                                       or not math.isfinite(value)):
                    raise ValueError(f"{name} must be a finite number, got {name}={value!r}; "
                                     "out-of-range values are clamped to the slider's range.")
            controls = (self.kind, self.T, self.beta_1, self.beta_T, self.t)
            for w in controls:
                w.unobserve(self._on_change, names="value")
            try:
                if "T" in values:  # widen t's range first so a new t is not clamped to the old T
                    self.T.value = values["T"]
                    self.t.max = self.T.value
                for name, value in values.items():
                    getattr(self, name).value = value
            finally:
                for w in controls:
                    w.observe(self._on_change, names="value")
        key = (self.kind.value, self.T.value, self.beta_1.value, self.beta_T.value)
        if key != self._drawn_schedule:
            self._schedule = self.schedule()
            self._drawn_schedule = key
            self._set_curves(self._schedule)
        s = self._schedule
        T, t = s.T, min(self.t.value, s.T)
        for m in self.markers:
            m.set_xdata([t / T, t / T])
        a, sd = math.sqrt(s.alpha_bars[t]), math.sqrt(s.one_minus_alpha_bars[t])
        self.scatter.set_offsets((a * self.points + sd * self.points_noise).numpy())
        self.im.set_data(image_grid(a * self.digits + sd * self.digits_noise, ncols=4))
        # Plain-text titles: mathtext would be parsed again on every frame.
        self.ax_pts.set_title(f"swiss roll at t = {t}", fontsize=10)
        self.ax_img.set_title(f"digits at t = {t}", fontsize=10)
        lt_bits = float(s.prior_kl_per_dim(self.mean_square)) / LN2
        self.values = {"alpha_bar_T": float(s.alpha_bars[T]), "L_T_bits_per_dim": lt_bits, "t": t, "T": T}
        self.readout.value = (f"<b>ᾱ<sub>T</sub></b> = {s.alpha_bars[T]:.4g}<br>"
                              f"<b>L<sub>T</sub></b> = {lt_bits:.4g} bits/dim (digits)<br>"
                              f"<b>ᾱ<sub>t</sub></b> at t = {t}: {s.alpha_bars[t]:.4g}")
        self._render(full=False)

    def _set_curves(self, s: NoiseSchedule) -> None:
        u = np.arange(1, s.T + 1) / s.T
        self.line_beta.set_data(u, s.betas[1:])
        self.line_abar.set_data(u, s.alpha_bars[1:])
        self.line_snr.set_data(u, s.log_snr[1:])


def schedule_explorer(**defaults: Any) -> ScheduleExplorer:
    """The β-schedule explorer of chapter 1; keyword arguments set the initial sliders."""
    return ScheduleExplorer(**defaults)


class ForwardChainViewer(PNGWidget):
    """A t slider over one recorded forward chain x_0 → x_T (2-D points or images).

    The chain is simulated once, one transition at a time, keeping every ``every``-th
    state, so memory is bounded by T/every copies of the data.
    """

    def __init__(self, x0: torch.Tensor, diffusion: GaussianDiffusion | None = None, every: int = 10,
                 seed: int = 0) -> None:
        import ipywidgets as W

        if diffusion is None:
            diffusion = GaussianDiffusion(NoiseSchedule.linear())
        if not isinstance(diffusion, GaussianDiffusion):
            raise ValueError(f"diffusion must be a ddpm_lite.GaussianDiffusion or None, got {type(diffusion).__name__}.")
        if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() not in (2, 4) or x0.shape[0] < 1:
            got = f"shape {tuple(x0.shape)}, dtype {x0.dtype}" if isinstance(x0, torch.Tensor) else type(x0).__name__
            raise ValueError(f"x0 must be a non-empty float tensor of points (N, 2) or images (N, C, H, W), got {got}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer number of steps, got {every!r}.")
        T = diffusion.T
        if T // every + 2 > MAX_KEPT_STATES:
            raise ValueError(f"every={every} would keep {T // every + 2} states of a T={T} chain (at most {MAX_KEPT_STATES}); "
                             f"use every ≥ {math.ceil(T / (MAX_KEPT_STATES - 2))}.")
        keep = sorted(set(range(0, T + 1, every)) | {T})
        g = torch.Generator(device=x0.device).manual_seed(seed)
        self.states = diffusion.q_sample_iterative(x0, T, keep=keep, generator=g)
        self.kept = keep
        self.slider = W.SelectionSlider(options=keep, value=min(keep, key=lambda k: abs(k - T // 10)),
                                        description="t",
                                        continuous_update=True)
        self.image = W.Image(format="png")
        self.figure = new_figure(3.6, 3.4, dpi=72)
        self.ax = self.figure.add_subplot()
        first = self.states[keep[0]].detach().cpu()
        if first.dim() == 2:
            self.artist = self.ax.scatter(first[:, 0], first[:, 1], s=1, alpha=0.5)
            self.ax.set_xlim(*POINT_LIMITS)
            self.ax.set_ylim(*POINT_LIMITS)
            self.ax.set_aspect("equal")
        else:
            self.artist = self.ax.imshow(image_grid(first[:16], ncols=4), cmap="gray", vmin=0, vmax=1,
                                         interpolation="nearest")
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.dynamic = [self.artist, self.ax.title]
        self.slider.observe(lambda change: self.update(), names="value")
        self.widget = W.VBox([self.slider, self.image])
        self.update()

    def update(self, t: int | None = None) -> None:
        """Show the kept state nearest to ``t`` (default: the slider's value)."""
        if t is not None:
            self.slider.value = min(self.kept, key=lambda k: abs(k - t))
            return  # the slider's observer redraws
        x = self.states[self.slider.value].detach().cpu()
        if x.dim() == 2:
            self.artist.set_offsets(x.numpy())
        else:
            self.artist.set_data(image_grid(x[:16], ncols=4))
        self.ax.set_title(f"forward chain, t = {self.slider.value}", fontsize=10)
        self._render(full=False)


def forward_chain_viewer(x0: torch.Tensor, diffusion: GaussianDiffusion | None = None, every: int = 10,
                         seed: int = 0) -> ForwardChainViewer:
    """A t slider over a forward chain started at ``x0`` (points (N, 2) or images (N, C, H, W))."""
    return ForwardChainViewer(x0, diffusion, every=every, seed=seed)


def schedule_explorer_html(mean_square: float | None = None) -> Any:
    """The placeholder the book's kernel-free JavaScript explorer fills in.

    In the rendered book ``_static/schedule_explorer.js`` turns this div into sliders
    and curves computed in the browser with the formulas of :class:`NoiseSchedule`;
    ``mean_square`` (default: E[x_0²] over the digits test split) is what L_T needs.
    In Jupyter, where that script is not loaded, the div just says so.
    """
    from IPython.display import HTML

    if mean_square is None:
        mean_square = float((digits("test").double() ** 2).mean())
    return HTML(
        f'<div class="ddpm-schedule-explorer" data-mean-square="{mean_square!r}">'
        "<em>The in-browser schedule explorer appears here in the rendered book; "
        "in Jupyter, use <code>schedule_explorer()</code> above.</em></div>"
    )
