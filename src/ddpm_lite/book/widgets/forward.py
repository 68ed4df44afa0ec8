"""Explorers of the forward process: the β-schedule explorer and a forward-chain viewer.

Both are :class:`~ddpm_lite.book.widgets.base.Explorer` subclasses.  In the rendered book the
schedule explorer becomes the kernel-free JavaScript explorer (``book/_static/
schedule_explorer.js``), which recomputes the schedule and the forward samples in the
browser; the chain viewer shows frames precomputed at build time.
"""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any

import numpy as np
import torch

from ... import checks
from ...data.datasets import digits, swiss_roll
from ...diffusion import GaussianDiffusion
from ...gaussian import LN2
from ...schedule import SCHEDULE_KINDS, NoiseSchedule
from ..plotting import POINT_LIMITS, image_grid
from .base import CHAIN_FRAMES, MAX_EXPLORER_T, MAX_KEPT_STATES, Explorer, kept_steps, thin

__all__ = ["ScheduleExplorer", "schedule_explorer", "ForwardChainViewer", "forward_chain_viewer",
           "schedule_explorer_html", "MAX_EXPLORER_T", "MAX_KEPT_STATES"]

#: The ranges of the β sliders, here and in the in-browser explorer (which reads them from the page).
BETA_1_RANGE = (1e-6, 0.1)
BETA_T_RANGE = (1e-4, 0.5)

class ScheduleExplorer(Explorer):
    """Controls for the schedule (kind, T, β₁, β_T) and a timestep t.

    Shows β_t, ᾱ_t and log-SNR(t) with a marker at t, forward samples x_t of the swiss
    roll and of a few digits (with the noise held fixed, so dragging t shows one chain
    evolving), and readouts of ᾱ_T and L_T in bits/dim on the digits test split.
    """

    def __init__(self, kind: str = "linear", T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02,
                 t: int = 100, seed: int = 0) -> None:
        import ipywidgets as W

        g = torch.Generator().manual_seed(checks.integer("seed", seed))
        self.points = swiss_roll(1500, seed=seed).double()
        self.points_noise = torch.randn(self.points.shape, generator=g, dtype=torch.float64)
        test = digits("test").double()
        self.digits = test[:8]
        self.digits_noise = torch.randn(self.digits.shape, generator=g, dtype=torch.float64)
        self.mean_square = float((test**2).mean())

        self.kind = W.Dropdown(options=SCHEDULE_KINDS, description="schedule")
        self.T = W.IntSlider(value=1000, min=1, max=MAX_EXPLORER_T, description="T")
        self.beta_1 = W.FloatLogSlider(value=1e-4, base=10, min=math.log10(BETA_1_RANGE[0]),
                                       max=math.log10(BETA_1_RANGE[1]), step=0.05, description="β₁",
                                       readout_format=".2e")
        self.beta_T = W.FloatLogSlider(value=0.02, base=10, min=math.log10(BETA_T_RANGE[0]),
                                       max=math.log10(BETA_T_RANGE[1]), step=0.05, description="β<sub>T</sub>",
                                       description_allow_html=True, readout_format=".2e")
        self.t = W.IntSlider(value=1, min=1, max=1000, description="t")
        self._drawn_schedule: tuple | None = None
        controls = {"kind": self.kind, "T": self.T, "beta_1": self.beta_1, "beta_T": self.beta_T, "t": self.t}
        self._assemble(self._build_figure(), controls, dynamic=self._dynamic,
                       rows=[["kind", "T", "t"], ["beta_1", "beta_T"]],
                       values=dict(kind=kind, T=T, beta_1=beta_1, beta_T=beta_T, t=t))

    def _build_figure(self) -> Any:
        figure = self._figure(8.2, 4.6)
        gs = figure.add_gridspec(2, 3)
        self.ax_beta, self.ax_abar, self.ax_snr = (figure.add_subplot(gs[0, i]) for i in range(3))
        self.ax_pts = figure.add_subplot(gs[1, 0])
        self.ax_img = figure.add_subplot(gs[1, 1:])
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
        self._dynamic = [self.line_beta, self.line_abar, self.line_snr, *self.markers, self.scatter, self.im,
                         self.ax_pts.title, self.ax_img.title]
        return figure

    def _control_changed(self, name: str) -> None:
        if name == "T":
            self.t.max = self.T.value  # ipywidgets clamps t into the new range itself

    def _range(self, name: str, pending: dict[str, Any]) -> tuple[Any, Any]:
        if name == "t":
            return 1, pending.get("T", self.T.value)
        return {"beta_1": BETA_1_RANGE, "beta_T": BETA_T_RANGE}.get(name) or super()._range(name, pending)

    def schedule(self) -> NoiseSchedule:
        """The schedule the current controls describe (β_1 ≥ β_T is allowed: a decreasing ramp)."""
        return _schedule(self.kind.value, self.T.value, self.beta_1.value, self.beta_T.value)

    def draw(self, kind: str, T: int, beta_1: float, beta_T: float, t: int) -> str:
        """Curves for the schedule, marker and samples at t; the readout of ᾱ_T and L_T."""
        key = (kind, T, beta_1, beta_T)
        if key != self._drawn_schedule:
            self._schedule = _schedule(*key)
            self._drawn_schedule = key
            u = np.arange(1, T + 1) / T
            self.line_beta.set_data(u, self._schedule.betas[1:])
            self.line_abar.set_data(u, self._schedule.alpha_bars[1:])
            self.line_snr.set_data(u, self._schedule.log_snr[1:])
        s, t = self._schedule, min(t, T)
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
        return (f"ᾱ<sub>T</sub> = {s.alpha_bars[T]:.4g}, L<sub>T</sub> = {lt_bits:.4g} bits/dim (digits); "
                f"ᾱ<sub>t</sub> = {s.alpha_bars[t]:.4g} at t = {t}")

    def static_html(self, grid: Any = None) -> str:
        """The in-browser explorer, started at the current settings, with the same points and noise.

        Nothing is precomputed: the page carries x_0 and the fixed noise (float32), and the
        browser computes the schedule and x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for any setting.
        """
        samples = {
            "points": _float32_b64(self.points), "points_noise": _float32_b64(self.points_noise),
            "digits": _float32_b64(self.digits), "digits_noise": _float32_b64(self.digits_noise),
            "digit_shape": list(self.digits.shape),
        }
        return _explorer_markup(self.mean_square, self.control_values(), samples)


def _schedule(kind: str, T: int, beta_1: float, beta_T: float) -> NoiseSchedule:
    if kind == "cosine":
        return NoiseSchedule.cosine(T)
    return NoiseSchedule.from_name(kind, T, beta_1=beta_1, beta_T=beta_T)


def _float32_b64(x: torch.Tensor) -> str:
    return base64.b64encode(x.detach().cpu().to(torch.float32).contiguous().numpy().tobytes()).decode("ascii")


def schedule_explorer(**defaults: Any) -> ScheduleExplorer:
    """The β-schedule explorer of chapter 1; keyword arguments set the initial controls."""
    return ScheduleExplorer(**defaults)


class ForwardChainViewer(Explorer):
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
        T = diffusion.T
        keep = kept_steps(T, every)
        g = torch.Generator(device=x0.device).manual_seed(checks.integer("seed", seed))
        self.states = diffusion.q_sample_iterative(x0, T, keep=keep, generator=g)
        self.kept = keep
        self.slider = W.SelectionSlider(options=keep, description="t")
        figure = self._figure(3.6, 3.4)
        self.ax = figure.add_subplot()
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
        self._assemble(figure, {"t": self.slider}, dynamic=[self.artist, self.ax.title], values={"t": T // 10})

    def draw(self, t: int) -> str:
        """Show the kept state x_t."""
        x = self.states[t].detach().cpu()
        if x.dim() == 2:
            self.artist.set_offsets(x.numpy())
        else:
            self.artist.set_data(image_grid(x[:16], ncols=4))
        self.ax.set_title(f"forward chain, t = {t}", fontsize=10)
        return ""

    def static_grid(self) -> dict[str, list[int]]:
        return {"t": thin(self.kept, CHAIN_FRAMES)}


def forward_chain_viewer(x0: torch.Tensor, diffusion: GaussianDiffusion | None = None, every: int = 10,
                         seed: int = 0) -> ForwardChainViewer:
    """A t slider over a forward chain started at ``x0`` (points (N, 2) or images (N, C, H, W))."""
    return ForwardChainViewer(x0, diffusion, every=every, seed=seed)


def _explorer_markup(mean_square: float, settings: dict[str, Any], samples: dict[str, Any] | None) -> str:
    """The div ``schedule_explorer.js`` turns into the explorer; the page carries its starting
    values, the slider ranges (defined once, here) and, optionally, x_0 and the noise."""
    attrs = {
        "data-mean-square": repr(float(mean_square)), "data-kind": settings["kind"], "data-T": settings["T"],
        "data-beta-1": repr(float(settings["beta_1"])), "data-beta-T": repr(float(settings["beta_T"])),
        "data-timestep": settings["t"], "data-max-T": MAX_EXPLORER_T,  # "data-t" is "data-T": names ignore case
        "data-beta-1-range": " ".join(map(repr, BETA_1_RANGE)), "data-beta-T-range": " ".join(map(repr, BETA_T_RANGE)),
    }
    body = ("<em>The in-browser schedule explorer appears here in the rendered book; "
            "in Jupyter, use <code>schedule_explorer()</code>.</em>")
    if samples is not None:
        body += f'<script type="application/json" class="dse-samples">{json.dumps(samples)}</script>'
    attr_text = " ".join(f'{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    return f'<div class="ddpm-schedule-explorer" {attr_text}>{body}</div>'


def schedule_explorer_html(mean_square: float | None = None) -> Any:
    """The placeholder the book's kernel-free JavaScript explorer fills in (curves and readouts).

    In the rendered book ``_static/schedule_explorer.js`` turns this div into controls and
    curves computed in the browser with the formulas of :class:`NoiseSchedule`;
    ``mean_square`` (default: E[x_0²] over the digits test split) is what L_T needs.  A
    :class:`ScheduleExplorer` shows the same explorer, with samples, in the book.  In
    Jupyter, where the script is not loaded, the div just says so.
    """
    from IPython.display import HTML

    if mean_square is None:
        mean_square = float((digits("test").double() ** 2).mean())
    mean_square = checks.number("mean_square", mean_square, 0.0)
    start = {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02, "t": 100}
    return HTML(_explorer_markup(mean_square, start, None))
