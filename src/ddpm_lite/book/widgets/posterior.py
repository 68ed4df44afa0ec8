"""Two explorers for the forward-process posterior q(x_{t−1} | x_t, x_0) and the σ_t² choice.

* :func:`posterior_explorer` — a t slider over β_t vs β̃_t, the posterior mean
  coefficients and the ε-parameterization weight of L_{t−1} under σ_t² = β_t or β̃_t.
* :func:`posterior_histogram` — sliders over x_0, t and x_t; the closed-form density
  q(x_{t−1} | x_t, x_0) against an importance-weighted histogram of forward samples.

Rendering: each explorer draws one small ``matplotlib.figure.Figure`` (not managed by
pyplot, so nothing leaks into a notebook's inline backend) with ``FigureCanvasAgg`` to
PNG bytes shown in an ``ipywidgets.Image``.  The built book then shows the picture from
the embedded widget state without a kernel.  A slider move updates the artists in place
and re-renders; nothing is rebuilt.  Each function returns the ``VBox`` with three extra
attributes: ``update(**values)`` (what a slider does, callable from tests), ``figure``
and ``artists`` (name → matplotlib artist, for tests and readers who want to restyle).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ...diffusion import eps_loss_weight
from ...schedule import NoiseSchedule
from ..exact import effective_sample_size, posterior_importance_sample
from ..plotting import png_bytes

__all__ = ["posterior_explorer", "posterior_histogram"]

#: Resolution of the rendered PNGs: small enough that one redraw stays well under 50 ms.
DPI = 80


def posterior_mean_variance(schedule: NoiseSchedule, x0: float, xt: float, t: int) -> tuple[float, float]:
    """μ̃_t(x_t, x_0) and β̃_t of q(x_{t−1} | x_t, x_0) for scalars (eq. ``posterior-mean``, ``posterior-variance``)."""
    mean = schedule.posterior_mean_coef_x0[t] * x0 + schedule.posterior_mean_coef_xt[t] * xt
    return float(mean), float(schedule.posterior_variance[t])


# ---------------------------------------------------------------------- rendering
def _new_figure(width: float, height: float, **margins: float):
    """A Figure with its own Agg canvas and fixed margins (``subplots_adjust`` keywords).

    Fixed margins rather than constrained layout: on log axes one constrained-layout pass
    measures every minor tick label and costs over a second, for the same picture.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**margins)
    return fig


def _assemble(fig, sliders: dict[str, Any], readout, draw: Callable[..., None], artists: dict[str, Any],
              moving: list | None = None):
    """VBox(sliders, readout, picture) with ``update``/``figure``/``artists`` attached.

    ``draw(**slider_values)`` moves the artists; this wires it so that a dragged slider and
    ``box.update(name=value, ...)`` do the same thing: set the sliders, draw once, re-render.

    Speed: if ``moving`` lists the only artists that change (and the
    axes limits never do), everything else is drawn once into a background and a frame
    is just background + those artists ("blitting"); otherwise the figure is redrawn.
    """
    import ipywidgets as W

    image = W.Image(format="png", layout=W.Layout(width="100%", max_width=f"{int(fig.get_figwidth() * DPI)}px"))
    holding = [False]  # while update() sets several sliders, their observers must not each redraw
    for art in moving or []:
        art.set_animated(True)  # left out of full draws, drawn by hand on top of the background
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox) if moving else None

    def refresh(_change: object = None) -> None:
        if holding[0]:
            return
        draw(**{name: sl.value for name, sl in sliders.items()})
        if moving:
            fig.canvas.restore_region(background)
            for art in moving:
                art.axes.draw_artist(art)
        else:
            fig.canvas.draw()
        image.value = png_bytes(fig, draw=False)

    def update(**values: Any) -> None:
        unknown = set(values) - set(sliders)
        if unknown:
            raise ValueError(f"unknown slider(s) {sorted(unknown)}; this explorer has {sorted(sliders)}.")
        holding[0] = True
        try:
            for name, value in values.items():
                sl = sliders[name]
                if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                        or not sl.min <= value <= sl.max):
                    raise ValueError(f"{name} must lie in [{sl.min}, {sl.max}], got {name}={value!r}.")
                sl.value = value
        finally:
            holding[0] = False
        refresh()

    for sl in sliders.values():
        sl.observe(refresh, names="value")
    box = W.VBox([W.HBox(list(sliders.values())), readout, image])
    box.update, box.figure, box.artists, box.image, box.sliders = update, fig, artists, image, sliders
    return box


#: Longest chain the posterior widgets draw: their curves have one point per step and their
#: t slider one position per step, so a T = 10⁶ schedule would make a figure of millions of
#: points and a slider no one can place; such schedules are refused.
MAX_WIDGET_T = 10_000


def _check_schedule(schedule: NoiseSchedule | None, T: int) -> NoiseSchedule:
    if schedule is None:
        if isinstance(T, (int, np.integer)) and not isinstance(T, bool) and T > MAX_WIDGET_T:
            raise ValueError(f"T={T} is too long for the widget's slider; use T ≤ {MAX_WIDGET_T}.")
        return NoiseSchedule.linear(T)
    if not isinstance(schedule, NoiseSchedule):
        raise ValueError(f"schedule must be a ddpm_lite.NoiseSchedule or None, got {type(schedule).__name__}.")
    if schedule.T > MAX_WIDGET_T:
        raise ValueError(f"schedule has T={schedule.T}, too long for the widget's slider; use T ≤ {MAX_WIDGET_T}.")
    return schedule


# ---------------------------------------------------------------------- explorer (a)
def posterior_explorer(schedule: NoiseSchedule | None = None, T: int = 1000, t: int = 1):
    """A t slider over three panels: β_t vs β̃_t, the posterior mean coefficients, and w_t.

    Parameters
    ----------
    schedule: the schedule to show; ``None`` builds ``NoiseSchedule.linear(T)``.
    T:        chain length used only when ``schedule`` is None.
    t:        the timestep the slider starts at (1..T).

    The β̃ curves start at t = 2: β̃_1 = 0 cannot sit on a log axis, and the β̃ weight is
    infinite there.  The readout states both facts when the slider is at t = 1.
    Returns the widget; ``widget.update(t=...)`` moves the slider's effect without a browser.
    """
    import ipywidgets as W

    s = _check_schedule(schedule, T)
    if s.T < 2:
        raise ValueError(f"the explorer needs T ≥ 2 (β̃_t starts at t = 2), got T={s.T}.")
    s.check_t(np.array([t]))
    ts = np.arange(1, s.T + 1)
    w_beta, w_tilde = eps_loss_weight(s, "beta"), eps_loss_weight(s, "beta_tilde")

    fig = _new_figure(9.6, 2.9, left=0.06, right=0.99, bottom=0.16, top=0.9, wspace=0.28)
    ax_var, ax_coef, ax_w = fig.subplots(1, 3)
    a: dict[str, Any] = {}
    a["beta"], = ax_var.plot(ts, s.betas[1:], label=r"$\beta_t$")
    a["beta_tilde"], = ax_var.plot(ts[1:], s.posterior_variance[2:], "--", label=r"$\tilde\beta_t$ ($t\geq2$)")
    a["var_marker"], = ax_var.plot([t, t], [s.betas[t], s.posterior_variance[max(t, 2)]], "ko", ms=4)
    ax_var.set(yscale="log", xlabel="t", title="variance of one step")
    a["coef_x0"], = ax_coef.plot(ts, s.posterior_mean_coef_x0[1:], label=r"coef. of $x_0$")
    a["coef_xt"], = ax_coef.plot(ts, s.posterior_mean_coef_xt[1:], label=r"coef. of $x_t$")
    a["coef_marker"], = ax_coef.plot([t, t], [s.posterior_mean_coef_x0[t], s.posterior_mean_coef_xt[t]], "ko", ms=4)
    ax_coef.set(xlabel="t", title=r"posterior mean $\tilde\mu_t$")
    a["w_beta"], = ax_w.plot(ts, w_beta[1:], label=r"$\sigma_t^2=\beta_t$")
    a["w_beta_tilde"], = ax_w.plot(ts[1:], w_tilde[2:], "--", label=r"$\sigma_t^2=\tilde\beta_t$ ($t\geq2$)")
    a["w_marker"], = ax_w.plot([t, t], [w_beta[t], w_tilde[max(t, 2)]], "ko", ms=4)
    ax_w.set(yscale="log", xlabel="t", title=r"weight $w_t$ of $\|\epsilon-\epsilon_\theta\|^2$")
    for ax, key in ((ax_var, "var_line"), (ax_coef, "coef_line"), (ax_w, "w_line")):
        ax.set_xscale("log")  # everything that separates β from β̃ happens in the first few steps
        ax.minorticks_off()
        a[key] = ax.axvline(t, color="0.6", lw=0.8)
        ax.legend(fontsize=7, loc="best")
        ax.tick_params(labelsize=7)

    slider = W.IntSlider(value=t, min=1, max=s.T, description="t", continuous_update=True,
                         layout=W.Layout(width="420px"))
    readout = W.HTML()

    def draw(t: int) -> None:
        t_tilde = max(t, 2)  # where β̃ is drawn; at t = 1 the marker sits on t = 2 and the text says so
        a["var_marker"].set_data([t, t_tilde], [s.betas[t], s.posterior_variance[t_tilde]])
        a["coef_marker"].set_data([t, t], [s.posterior_mean_coef_x0[t], s.posterior_mean_coef_xt[t]])
        a["w_marker"].set_data([t, t_tilde], [w_beta[t], w_tilde[t_tilde]])
        for key in ("var_line", "coef_line", "w_line"):
            a[key].set_xdata([t, t])
        if t == 1:
            tilde_text = "β̃_1 = 0 and w_1(β̃) = ∞ (not drawn; markers at t = 2)"
        else:
            tilde_text = (f"β̃_t = {s.posterior_variance[t]:.4g}, β̃_t/β_t = {s.posterior_variance[t] / s.betas[t]:.4f}, "
                          f"w_t(β̃)/w_t(β) = {w_tilde[t] / w_beta[t]:.4f}")
        readout.value = (f"<code>t = {t}: β_t = {s.betas[t]:.4g}, {tilde_text}; "
                         f"μ̃_t = {s.posterior_mean_coef_x0[t]:.4f}·x₀ + {s.posterior_mean_coef_xt[t]:.4f}·x_t</code>")

    moving = [a[k] for k in ("var_marker", "coef_marker", "w_marker", "var_line", "coef_line", "w_line")]
    box = _assemble(fig, {"t": slider}, readout, draw, a, moving=moving)
    box.update()
    return box


# ---------------------------------------------------------------------- histogram (b)
def posterior_histogram(schedule: NoiseSchedule | None = None, x0: float = 0.5, t: int = 10,
                        n: int = 20000, seed: int = 0, T: int = 1000, xt_offset: float = 0.0, bins: int = 60):
    """Closed-form q(x_{t−1} | x_t, x_0) against an importance-weighted histogram of forward samples.

    Parameters
    ----------
    schedule:  the schedule; ``None`` builds ``NoiseSchedule.linear(T)``.
    x0:        clean value in [−1, 1] (slider).
    t:         timestep in 1..T (slider).
    n:         number of forward samples x_{t−1} ~ q(x_{t−1} | x_0); drawn once (``seed``) and
               reused for every slider position so the picture moves smoothly.
    T:         chain length, used only when ``schedule`` is None.
    xt_offset: where x_t sits, in standard deviations of q(x_t | x_0) from its mean (slider);
               0 puts x_t at the mean √ᾱ_t x_0.
    bins:      number of histogram bins over μ̃_t ± 4√β̃_t.

    The readout reports the weighted mean and variance with their Monte-Carlo standard errors
    next to μ̃_t and β̃_t, and the effective sample size of the weights.  At t = 1 the
    posterior is the point mass at x_0 (β̃_1 = 0): every sample equals x_0, and the figure shows
    a single spike instead of a density.
    """
    import ipywidgets as W

    from matplotlib.ticker import MaxNLocator

    s = _check_schedule(schedule, T)
    s.check_t(np.array([t]))
    if isinstance(x0, bool) or not isinstance(x0, (int, float, np.number)) or not -1.0 <= x0 <= 1.0:
        raise ValueError(f"x0 must lie in [-1, 1] (data scaled to the model range), got x0={x0!r}.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 100:
        raise ValueError(f"n must be an integer ≥ 100 samples for a histogram, got n={n!r}.")
    if isinstance(xt_offset, bool) or not isinstance(xt_offset, (int, float, np.number)) or not -2.0 <= xt_offset <= 2.0:
        raise ValueError(f"xt_offset must be a number in [-2, 2] (the slider's range), got xt_offset={xt_offset!r}.")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got bins={bins!r}.")
    noise = np.random.default_rng(seed).standard_normal(int(n))

    fig = _new_figure(6.0, 3.0, left=0.03, right=0.98, bottom=0.16, top=0.97)
    ax = fig.subplots()
    a: dict[str, Any] = {}
    # The limits move with every slider step, so the whole axes is redrawn each frame; text is
    # what costs, hence no legend (the readout names the artists), no y tick labels (the two
    # shapes are what matters), and few x ticks.
    a["hist"] = ax.stairs(np.zeros(bins), np.linspace(-1, 1, bins + 1), fill=True, alpha=0.45)
    a["density"], = ax.plot([], [], "k-", lw=1.5)
    a["mean_line"] = ax.axvline(0.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel(r"$x_{t-1}$", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.tick_params(labelsize=7, left=False, labelleft=False)

    x0_slider = W.FloatSlider(value=float(x0), min=-1.0, max=1.0, step=0.05, description="x₀")
    t_slider = W.IntSlider(value=int(t), min=1, max=s.T, description="t")
    off_slider = W.FloatSlider(value=float(xt_offset), min=-2.0, max=2.0, step=0.1, description="x_t (sd)")
    readout = W.HTML()
    state: dict[str, float] = {}

    def draw(x0: float, t: int, xt_offset: float) -> None:
        k = float(xt_offset)
        xt = math.sqrt(s.alpha_bars[t]) * x0 + k * math.sqrt(s.one_minus_alpha_bars[t])
        mean, var = posterior_mean_variance(s, x0, xt, t)
        x_prev, w = posterior_importance_sample(s, x0, xt, t, noise=noise)
        if var > 0:
            sd = math.sqrt(var)
            edges = np.linspace(mean - 4 * sd, mean + 4 * sd, bins + 1)
            grid = np.linspace(edges[0], edges[-1], 200)
            pdf = np.exp(-0.5 * ((grid - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            peak = pdf.max()
        else:
            # t = 1: a point mass at x_0.  One bin of width 2·10⁻³ around it holds all the weight.
            edges = np.linspace(x0 - 1e-3 * bins, x0 + 1e-3 * bins, bins + 1)
            grid, pdf, peak = np.array([x0, x0]), np.array([0.0, 1.0 / (edges[1] - edges[0])]), 1.0 / (edges[1] - edges[0])
        heights, _ = np.histogram(x_prev, bins=edges, weights=w)
        heights = heights / np.diff(edges)  # weights sum to 1 over all samples: a density estimate
        a["hist"].set_data(heights, edges)
        a["density"].set_data(grid, pdf)
        a["mean_line"].set_xdata([mean, mean])
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, 1.25 * max(peak, heights.max()))
        ess = effective_sample_size(w)
        w_mean = float(np.sum(w * x_prev))
        w_var = float(np.sum(w * (x_prev - w_mean) ** 2))
        se_mean = math.sqrt(w_var / ess) if ess > 1 else float("nan")
        state.update(t=t, x0=x0, xt=xt, mean=mean, var=var, weighted_mean=w_mean, weighted_var=w_var, ess=ess)
        readout.value = (f"<small>Bars: samples x_{{t−1}} ~ q(x_{{t−1}}|x₀) weighted by q(x_t|x_{{t−1}}); "
                         f"black curve: q(x_{{t−1}}|x_t,x₀) = N(μ̃_t, β̃_t); dotted: μ̃_t.</small><br>"
                         f"<code>t = {t}, x₀ = {x0:+.2f}, x_t = {xt:+.4f}: μ̃_t = {mean:+.5f}, weighted mean = {w_mean:+.5f} (± {se_mean:.1e}); "
                         f"β̃_t = {var:.4e}, weighted variance = {w_var:.4e}; effective samples ≈ {ess:.0f} of {len(w)}</code>")

    box = _assemble(fig, {"x0": x0_slider, "t": t_slider, "xt_offset": off_slider}, readout, draw, a)
    box.state = state  # the numbers of the last draw (μ̃_t, β̃_t, weighted moments, ESS) for tests
    box.update()
    return box
