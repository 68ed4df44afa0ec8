"""Two explorers of the forward-process posterior q(x_{t−1} | x_t, x_0) and the σ_t² choice.

* :class:`PosteriorExplorer` (:func:`posterior_explorer`) — a t slider over β_t vs β̃_t, the
  posterior mean coefficients and the ε-parameterization weight of L_{t−1} under σ_t² = β_t
  or β̃_t.
* :class:`PosteriorHistogram` (:func:`posterior_histogram`) — sliders over x_0, t and x_t; the
  closed-form density q(x_{t−1} | x_t, x_0) against an importance-weighted histogram of
  forward samples.

Both are :class:`~ddpm_lite.book.widgets.base.Explorer` subclasses: ``update(**values)``
does what the sliders do, ``sliders`` names the controls, ``artists`` the matplotlib artists
(for tests and for readers who want to restyle), and the rendered book shows frames
precomputed at build time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import checks
from ...diffusion import eps_loss_weight
from ...schedule import NoiseSchedule
from ..exact import effective_sample_size, posterior_importance_sample
from .base import MAX_EXPLORER_T, Explorer

__all__ = ["PosteriorExplorer", "posterior_explorer", "PosteriorHistogram", "posterior_histogram"]


def _check_schedule(schedule: NoiseSchedule | None, T: int) -> NoiseSchedule:
    if schedule is None:
        checks.integer("T", T, 1, MAX_EXPLORER_T, hint="Longer chains do not fit an explorer's t slider.")
        return NoiseSchedule.linear(T)
    if not isinstance(schedule, NoiseSchedule):
        raise ValueError(f"schedule must be a ddpm_lite.NoiseSchedule or None, got {type(schedule).__name__}.")
    if schedule.T > MAX_EXPLORER_T:
        raise ValueError(f"schedule has T={schedule.T}, too long for an explorer's t slider; use T ≤ {MAX_EXPLORER_T}.")
    return schedule


def _t_values(T: int) -> list[int]:
    """Timesteps precomputed for a static t slider: every t up to 10, then about 12 per decade."""
    return sorted({t for t in range(1, min(T, 10) + 1)} | {int(round(v)) for v in np.geomspace(10, T, 37)} | {T})


class PosteriorExplorer(Explorer):
    """A t slider over three panels: β_t vs β̃_t and the weight w_t side by side, the posterior mean
    coefficients below.

    The β̃ curves start at t = 2: β̃_1 = 0 cannot sit on a log axis, and the β̃ weight is
    infinite there.  The readout states both facts when the slider is at t = 1.
    """

    def __init__(self, schedule: NoiseSchedule | None = None, T: int = 1000, t: int = 1) -> None:
        import ipywidgets as W

        s = self.schedule = _check_schedule(schedule, T)
        if s.T < 2:
            raise ValueError(f"the explorer needs T ≥ 2 (β̃_t starts at t = 2), got T={s.T}.")
        self.w_beta, self.w_tilde = eps_loss_weight(s, "beta"), eps_loss_weight(s, "beta_tilde")
        # Two rows (the variances and the weights side by side, the mean's coefficients below) so
        # that the picture stays legible when a phone shrinks it to its width.
        figure = self._figure(6.6, 5.2, left=0.1, right=0.98, bottom=0.09, top=0.94, wspace=0.32, hspace=0.45)
        a = self.artists = self._plot(figure)
        self.sliders = {"t": W.IntSlider(value=1, min=1, max=s.T, description="t", layout=W.Layout(width="420px"))}
        moving = [a[k] for k in ("var_marker", "coef_marker", "w_marker", "var_line", "coef_line", "w_line")]
        self._assemble(figure, self.sliders, dynamic=moving, values={"t": t})

    def _plot(self, figure: Any) -> dict[str, Any]:
        s, ts = self.schedule, np.arange(1, self.schedule.T + 1)
        grid = figure.add_gridspec(2, 2)
        ax_var, ax_w, ax_coef = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1]), figure.add_subplot(grid[1, :])
        a: dict[str, Any] = {}
        a["beta"], = ax_var.plot(ts, s.betas[1:], label=r"$\beta_t$")
        a["beta_tilde"], = ax_var.plot(ts[1:], s.posterior_variance[2:], "--", label=r"$\tilde\beta_t$ ($t\geq2$)")
        a["var_marker"], = ax_var.plot([], [], "ko", ms=4)
        ax_var.set(yscale="log", xlabel="t", title="variance of one step")
        a["coef_x0"], = ax_coef.plot(ts, s.posterior_mean_coef_x0[1:], label=r"coef. of $x_0$")
        a["coef_xt"], = ax_coef.plot(ts, s.posterior_mean_coef_xt[1:], label=r"coef. of $x_t$")
        a["coef_marker"], = ax_coef.plot([], [], "ko", ms=4)
        ax_coef.set(xlabel="t", title=r"posterior mean $\tilde\mu_t$")
        a["w_beta"], = ax_w.plot(ts, self.w_beta[1:], label=r"$\sigma_t^2=\beta_t$")
        a["w_beta_tilde"], = ax_w.plot(ts[1:], self.w_tilde[2:], "--", label=r"$\sigma_t^2=\tilde\beta_t$ ($t\geq2$)")
        a["w_marker"], = ax_w.plot([], [], "ko", ms=4)
        ax_w.set(yscale="log", xlabel="t", title=r"weight $w_t$ of $\|\varepsilon-\varepsilon_\theta\|^2$")
        for ax, key in ((ax_var, "var_line"), (ax_coef, "coef_line"), (ax_w, "w_line")):
            ax.set_xscale("log")  # everything that separates β from β̃ happens in the first few steps
            ax.minorticks_off()
            a[key] = ax.axvline(1, color="0.6", lw=0.8)
            ax.legend(fontsize=8, loc="best")
            ax.tick_params(labelsize=9)
        return a

    def draw(self, t: int) -> str:
        """Markers at t (β̃ markers at max(t, 2)); the readout of β_t, β̃_t, w_t and μ̃_t."""
        s, a, w_beta, w_tilde = self.schedule, self.artists, self.w_beta, self.w_tilde
        t_tilde = max(t, 2)  # where β̃ is drawn; at t = 1 the marker sits on t = 2 and the text says so
        a["var_marker"].set_data([t, t_tilde], [s.betas[t], s.posterior_variance[t_tilde]])
        a["coef_marker"].set_data([t, t], [s.posterior_mean_coef_x0[t], s.posterior_mean_coef_xt[t]])
        a["w_marker"].set_data([t, t_tilde], [w_beta[t], w_tilde[t_tilde]])
        for key in ("var_line", "coef_line", "w_line"):
            a[key].set_xdata([t, t])
        if t == 1:
            tilde_text = "β̃<sub>1</sub> = 0 and w<sub>1</sub>(β̃) = ∞ (not drawn; markers at t = 2)"
        else:
            tilde_text = (f"β̃<sub>t</sub> = {s.posterior_variance[t]:.4g}, "
                          f"β̃<sub>t</sub>/β<sub>t</sub> = {s.posterior_variance[t] / s.betas[t]:.4f}, "
                          f"w<sub>t</sub>(β̃)/w<sub>t</sub>(β) = {w_tilde[t] / w_beta[t]:.4f}")
        return (f"t = {t}: β<sub>t</sub> = {s.betas[t]:.4g}, {tilde_text}; "
                f"μ̃<sub>t</sub> = {s.posterior_mean_coef_x0[t]:.4f}·x<sub>0</sub> + "
                f"{s.posterior_mean_coef_xt[t]:.4f}·x<sub>t</sub>")

    def static_grid(self) -> dict[str, list[int]]:
        return {"t": _t_values(self.schedule.T)}


def posterior_explorer(schedule: NoiseSchedule | None = None, T: int = 1000, t: int = 1) -> PosteriorExplorer:
    """A t slider over β_t vs β̃_t, the posterior mean coefficients and the weight w_t.

    Parameters
    ----------
    schedule: the schedule to show; ``None`` builds ``NoiseSchedule.linear(T)``.
    T:        chain length used only when ``schedule`` is None.
    t:        the timestep the slider starts at (1..T).
    """
    return PosteriorExplorer(schedule, T=T, t=t)


class PosteriorHistogram(Explorer):
    """Closed-form q(x_{t−1} | x_t, x_0) against an importance-weighted histogram of forward samples.

    See :func:`posterior_histogram` for the parameters.  ``state`` holds the numbers of the
    last draw (μ̃_t, β̃_t, the weighted moments, the effective sample size).
    """

    def __init__(self, schedule: NoiseSchedule | None = None, x0: float = 0.5, t: int = 10, n: int = 20000,
                 seed: int = 0, T: int = 1000, xt_offset: float = 0.0, bins: int = 60) -> None:
        import ipywidgets as W

        s = self.schedule = _check_schedule(schedule, T)
        n = checks.integer("n", n, 100, what="an integer ≥ 100 samples for a histogram")
        self.bins = checks.integer("bins", bins, 1)
        self.noise = np.random.default_rng(checks.integer("seed", seed)).standard_normal(n)
        figure = self._figure(6.0, 3.0, left=0.03, right=0.97, bottom=0.18, top=0.97)
        self.ax = figure.subplots()
        a = self.artists = {}
        # The limits move with every slider step, so the whole axes is redrawn each frame; text is
        # what costs, hence no legend (the readout names the artists), no y tick labels (the two
        # shapes are what matters), and few x ticks.
        a["hist"] = self.ax.stairs(np.zeros(self.bins), np.linspace(-1, 1, self.bins + 1), fill=True, alpha=0.45)
        a["density"], = self.ax.plot([], [], "k-", lw=1.5)
        a["mean_line"] = self.ax.axvline(0.0, color="k", lw=0.8, ls=":")
        self.ax.set_xlabel(r"$x_{t-1}$", fontsize=10)
        from matplotlib.ticker import MaxNLocator

        self.ax.xaxis.set_major_locator(MaxNLocator(5))
        self.ax.tick_params(labelsize=9, left=False, labelleft=False)
        self.sliders = {
            "x0": W.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.05, description="x₀"),
            "t": W.IntSlider(value=1, min=1, max=s.T, description="t"),
            "xt_offset": W.FloatSlider(value=0.0, min=-2.0, max=2.0, step=0.1, description="x<sub>t</sub> (sd)",
                                       description_allow_html=True, readout_format=".1f"),
        }
        self.state: dict[str, float] = {}
        self._assemble(figure, self.sliders, values={"x0": x0, "t": t, "xt_offset": xt_offset})

    def draw(self, x0: float, t: int, xt_offset: float) -> str:
        """Histogram and density for x_t = √ᾱ_t x_0 + ``xt_offset``·√(1 − ᾱ_t); the readout."""
        s, a, bins = self.schedule, self.artists, self.bins
        xt = math.sqrt(s.alpha_bars[t]) * x0 + xt_offset * math.sqrt(s.one_minus_alpha_bars[t])
        mean = float(s.posterior_mean_coef_x0[t] * x0 + s.posterior_mean_coef_xt[t] * xt)
        var = float(s.posterior_variance[t])
        x_prev, w = posterior_importance_sample(s, x0, xt, t, noise=self.noise)
        if var > 0:
            sd = math.sqrt(var)
            edges = np.linspace(mean - 4 * sd, mean + 4 * sd, bins + 1)
            grid = np.linspace(edges[0], edges[-1], 200)
            pdf = np.exp(-0.5 * ((grid - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            peak = pdf.max()
        else:
            # t = 1: a point mass at x_0.  One bin of width 2·10⁻³ around it holds all the weight.
            edges = np.linspace(x0 - 1e-3 * bins, x0 + 1e-3 * bins, bins + 1)
            peak = 1.0 / (edges[1] - edges[0])
            grid, pdf = np.array([x0, x0]), np.array([0.0, peak])
        heights, _ = np.histogram(x_prev, bins=edges, weights=w)
        heights = heights / np.diff(edges)  # weights sum to 1 over all samples: a density estimate
        a["hist"].set_data(heights, edges)
        a["density"].set_data(grid, pdf)
        a["mean_line"].set_xdata([mean, mean])
        self.ax.set_xlim(edges[0], edges[-1])
        self.ax.set_ylim(0, 1.25 * max(peak, heights.max()))
        ess = effective_sample_size(w)
        w_mean = float(np.sum(w * x_prev))
        w_var = float(np.sum(w * (x_prev - w_mean) ** 2))
        se_mean = math.sqrt(w_var / ess) if ess > 1 else float("nan")
        self.state.update(t=t, x0=x0, xt=xt, mean=mean, var=var, weighted_mean=w_mean, weighted_var=w_var, ess=ess)
        x_prev_name = "x<sub>t−1</sub>"
        return (f"<small>Bars: samples {x_prev_name} ~ q({x_prev_name} | x<sub>0</sub>) weighted by "
                f"q(x<sub>t</sub> | {x_prev_name}); black curve: q({x_prev_name} | x<sub>t</sub>, x<sub>0</sub>) "
                f"= N(μ̃<sub>t</sub>, β̃<sub>t</sub>); dotted line: μ̃<sub>t</sub>.</small><br>"
                f"t = {t}, x<sub>0</sub> = {x0:+.2f}, x<sub>t</sub> = {xt:+.4f}: μ̃<sub>t</sub> = {mean:+.5f}, "
                f"weighted mean = {w_mean:+.5f} (± {se_mean:.1e}); β̃<sub>t</sub> = {var:.4e}, "
                f"weighted variance = {w_var:.4e}; effective samples ≈ {ess:.0f} of {len(w)}")

    def static_grid(self) -> dict[str, list[float]]:
        ts = [t for t in (1, 2, 5, 10, 50, 100, 500, 1000) if t <= self.schedule.T]
        return {"x0": [-1.0, 0.0, 1.0], "t": ts, "xt_offset": [-2.0, 0.0, 2.0]}


def posterior_histogram(schedule: NoiseSchedule | None = None, x0: float = 0.5, t: int = 10, n: int = 20000,
                        seed: int = 0, T: int = 1000, xt_offset: float = 0.0, bins: int = 60) -> PosteriorHistogram:
    """Closed-form q(x_{t−1} | x_t, x_0) against an importance-weighted histogram of forward samples.

    Parameters
    ----------
    schedule:  the schedule; ``None`` builds ``NoiseSchedule.linear(T)``.
    x0:        clean value in [−1, 1] (slider).
    t:         timestep in 1..T (slider).
    n:         number of forward samples x_{t−1} ~ q(x_{t−1} | x_0); drawn once (``seed``) and
               reused for every slider position so the picture moves smoothly.
    seed:      seed of those samples.
    T:         chain length, used only when ``schedule`` is None.
    xt_offset: where x_t sits, in standard deviations of q(x_t | x_0) from its mean (slider);
               0 puts x_t at the mean √ᾱ_t x_0.
    bins:      number of histogram bins over μ̃_t ± 4√β̃_t.

    The readout reports the weighted mean and variance with their Monte-Carlo standard errors
    next to μ̃_t and β̃_t, and the effective sample size of the weights.  At t = 1 the
    posterior is the point mass at x_0 (β̃_1 = 0): every sample equals x_0, and the figure shows
    a single spike instead of a density.
    """
    return PosteriorHistogram(schedule, x0=x0, t=t, n=n, seed=seed, T=T, xt_offset=xt_offset, bins=bins)
