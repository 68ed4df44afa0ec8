"""The one base class every explorer of the book is built on.

An explorer is a matplotlib figure under a few ipywidgets controls.  It is seen in two ways:

* **Live**, in Jupyter with a kernel: a control change calls :meth:`Explorer.draw` with the
  values of every control; ``draw`` moves the artists and returns the readout text; the
  figure is re-rendered (the moving artists blitted over a cached background, or a full
  redraw) into an ``ipywidgets.Image``.  :meth:`Explorer.update` is the same path for code and
  tests: it checks every value first, sets all of them, and draws once.
* **Static**, in the rendered book, where there is no kernel: :meth:`Explorer.static_html`
  runs the same ``draw``/render path over a grid of control values chosen at build time
  (:meth:`Explorer.static_grid`) and writes the frames into the page, where
  ``book/_static/ddpm_frames.js`` shows one slider per varying control and swaps frames.
  Controls that are not in the grid are not shown there: a static page never offers a
  control that does nothing.

``_repr_mimebundle_`` returns both: Jupyter shows the live widget (its mime type ranks
first there), the book prefers the HTML (``nb_mime_priority_overrides`` in ``_config.yml``).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
from typing import Any, Iterable, Sequence

import numpy as np

from ... import checks
from ..plotting import new_figure

__all__ = ["Explorer", "MAX_EXPLORER_T", "MAX_KEPT_STATES", "MAX_STATIC_FRAMES", "CHAIN_FRAMES", "kept_steps", "thin"]

#: Longest chain an explorer shows: its t slider has one position per step, and its curves
#: one point per step.  Longer schedules are refused rather than drawn unreadably.
MAX_EXPLORER_T = 4000

#: Most recorded states a chain viewer keeps in memory (each one a copy of the batch).
MAX_KEPT_STATES = 1001

#: Most frames one explorer writes into a page of the rendered book (each a few kB).
MAX_STATIC_FRAMES = 400

#: Frames a chain viewer (forward or reverse) writes into a page: recorded steps beyond
#: this many are thinned evenly for the static page (the live slider keeps them all).
CHAIN_FRAMES = 51

#: Colours per precomputed frame: a palette PNG of a line plot is a third of the RGB one's size,
#: and 32 colours keep antialiased lines and 17-level digits looking as they do live.
FRAME_COLOURS = 32


def kept_steps(T: int, every: object) -> list[int]:
    """Timesteps 0, every, 2·every, …, and T: what a chain viewer records (bounded memory)."""
    every = checks.integer("every", every, 1, what="a positive integer number of steps")
    n = T // every + 2
    if n > MAX_KEPT_STATES:
        raise ValueError(f"every={every} would keep {n} states of a T={T} chain (at most {MAX_KEPT_STATES}); "
                         f"use every ≥ {math.ceil(T / (MAX_KEPT_STATES - 2))}.")
    return sorted(set(range(0, T + 1, every)) | {T})


def thin(values: Sequence[Any], most: int) -> list[Any]:
    """At most ``most`` of ``values``, evenly spread, first and last always kept."""
    if len(values) <= most:
        return list(values)
    picks = {round(i * (len(values) - 1) / (most - 1)) for i in range(most)}
    return [values[i] for i in sorted(picks)]


def _widget_types():
    import ipywidgets as W

    return W


class Explorer:
    """A figure, its controls, one render path, one guarded update, and a static form.

    A subclass builds its figure and controls and calls :meth:`_assemble`, then implements
    :meth:`draw` (and, to be live in the rendered book, :meth:`static_grid`).
    """

    figure: Any
    image: Any
    readout: Any
    widget: Any
    #: name → ipywidgets control, in the order values are applied (T before t).
    controls: dict[str, Any]
    #: Artists that change from frame to frame (blitted); ``None`` redraws the whole figure.
    dynamic: list | None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _figure(width: float, height: float, dpi: int = 80, **margins: float):
        """A pyplot-free figure; fixed ``margins`` (``subplots_adjust`` keywords) or, without
        them, constrained layout computed once on the first draw and then frozen."""
        if not margins:
            return new_figure(width, height, dpi=dpi)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(**margins)
        return fig

    def _assemble(self, figure: Any, controls: dict[str, Any], dynamic: list | None = None,
                  rows: Sequence[Sequence[str]] | None = None, values: dict[str, Any] | None = None) -> None:
        """Wire the controls to the figure: VBox(control rows, readout, picture); then set the
        starting ``values`` (checked like :meth:`update`'s) and draw."""
        W = _widget_types()
        self.figure, self.controls, self.dynamic = figure, dict(controls), dynamic
        self.image = W.Image(format="png")
        self.readout = W.HTML()
        self._holding = False
        self._background = None
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        rows = rows or [list(self.controls)]
        boxes = [W.HBox([self.controls[n] for n in row], layout=W.Layout(flex_flow="row wrap")) for row in rows]
        self.widget = W.VBox([*boxes, self.readout, self.image])
        self.update(**(values or {}))

    # ------------------------------------------------------------------ to implement
    def draw(self, **values: Any) -> str:
        """Move the artists to show ``values`` (one per control); return the readout (HTML)."""
        raise NotImplementedError

    def static_grid(self) -> dict[str, Sequence[Any]]:
        """The control values the rendered book precomputes (name → values).

        Controls left out keep their current value and are not shown in the static page.
        The default, no control, is a single frame.
        """
        return {}

    def _control_changed(self, name: str) -> None:
        """Hook: keep dependent controls consistent (e.g. t's range follows T)."""

    def _range(self, name: str, pending: dict[str, Any]) -> tuple[Any, Any]:
        """Allowed (low, high) of a numeric control, given the values about to be set."""
        W = _widget_types()
        control = self.controls[name]
        if isinstance(control, W.FloatLogSlider):  # 12 digits: 10 ** log10(0.5) is not 0.5
            return tuple(float(f"{control.base ** e:.12g}") for e in (control.min, control.max))
        return control.min, control.max

    # ------------------------------------------------------------------ values
    def control_values(self) -> dict[str, Any]:
        """The current value of every control."""
        return {name: control.value for name, control in self.controls.items()}

    def _check(self, name: str, value: Any, pending: dict[str, Any]) -> Any:
        """``value`` for control ``name`` in its canonical type, or a ValueError naming it."""
        W = _widget_types()
        control = self.controls[name]
        if isinstance(control, W.SelectionSlider):  # recorded steps: the nearest one is shown
            options = list(control.options)
            v = checks.number(name, value, min(options), max(options))
            return min(options, key=lambda o: abs(o - v))
        if isinstance(control, W.Dropdown):
            return checks.choice(name, value, tuple(control.options))
        lo, hi = self._range(name, pending)
        if isinstance(control, W.IntSlider):
            what = f"an integer in 1..T (T={hi})" if name == "t" and lo == 1 else ""
            return checks.integer(name, value, lo, hi, what=what)
        return checks.number(name, value, lo, hi)

    def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"unknown control(s) {unknown}; this explorer has {list(self.controls)}.")
        pending: dict[str, Any] = {}
        for name in self.controls:  # in order, so that t is checked against a new T
            if name in values:
                pending[name] = self._check(name, values[name], pending)
        return pending

    def update(self, **values: Any) -> None:
        """Set any controls (as dragging them would) and redraw once.

        Every value is checked before any is set, so a bad one changes nothing.
        """
        pending = self._checked(values)
        self._holding = True  # the controls' observers must not each redraw
        try:
            for name, value in pending.items():
                self.controls[name].value = value
        finally:
            self._holding = False
        self._refresh()

    def _on_change(self, change: dict) -> None:
        name = next(n for n, c in self.controls.items() if c is change["owner"])
        held, self._holding = self._holding, True
        try:
            self._control_changed(name)
        finally:
            self._holding = held
        if not held:
            self._refresh()

    # ------------------------------------------------------------------ rendering
    def _render(self) -> Any:
        """Draw the figure for the artists as they stand; returns the Agg canvas."""
        canvas = self.figure.canvas
        if self._background is None:
            if self.figure.get_layout_engine() is not None:
                # Lay out once with the real artists, then freeze the axes: constrained
                # layout on every frame would cost more than the drawing itself.
                canvas.draw()
                self.figure.set_layout_engine("none")
            for artist in self.dynamic or []:
                artist.set_animated(True)  # left out of full draws, drawn on top by hand
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.figure.bbox)
        if self.dynamic is None:
            canvas.draw()
        else:
            canvas.restore_region(self._background)
            for artist in self.dynamic:
                self.figure.draw_artist(artist)
        return canvas

    def _refresh(self) -> None:
        from ..plotting import png_bytes

        self.readout.value = self.draw(**self.control_values()) or ""
        self._render()
        w, h = self.figure.canvas.get_width_height()
        # Show the PNG at its own pixel size (a stretched bitmap looks blurred), never wider
        # than the output area.
        self.image.width, self.image.height = str(w), str(h)
        self.image.layout.max_width, self.image.layout.height = "100%", "auto"
        self.image.value = png_bytes(self.figure, draw=False)

    # ------------------------------------------------------------------ static form
    def _value_label(self, name: str, value: Any) -> str:
        W = _widget_types()
        control = self.controls[name]
        if isinstance(control, (W.FloatSlider, W.FloatLogSlider)):
            return format(value, control.readout_format)
        return str(value)

    def _static_values(self, grid: dict[str, Iterable[Any]]) -> dict[str, list[Any]]:
        """The grid checked like ``update`` values, with each control's current value added."""
        current = self.control_values()
        out: dict[str, list[Any]] = {}
        for name, values in grid.items():
            if name not in self.controls:
                raise ValueError(f"unknown control {name!r} in the static grid; this explorer has {list(self.controls)}.")
            checked = {self._check(name, v, current) for v in values} | {current[name]}
            order = list(self.controls[name].options) if hasattr(self.controls[name], "options") else None
            out[name] = sorted(checked, key=order.index) if order else sorted(checked)
        n = math.prod(len(v) for v in out.values())
        if n > MAX_STATIC_FRAMES:
            raise ValueError(f"the static grid has {n} frames (at most {MAX_STATIC_FRAMES}); use fewer values.")
        return out

    def static_html(self, grid: dict[str, Iterable[Any]] | None = None) -> str:
        """The explorer for a page without a kernel: precomputed frames and a slider per control.

        ``grid`` (default :meth:`static_grid`) maps control names to the values to precompute;
        the current value of each is always included.  The live widget is not touched.  The
        picture of the current setting is stored whole; every other frame stores only the
        regions where it differs from it (:func:`_patches`), so a slider that moves a marker
        costs a few hundred bytes per position, not a whole figure.
        """
        grid = self._static_values(self.static_grid() if grid is None else grid)
        current = self.control_values()
        names = list(grid)
        pictures, readouts = [], []
        try:
            for combo in itertools.product(*grid.values()):
                readouts.append(self.draw(**{**current, **dict(zip(names, combo))}) or "")
                pictures.append(np.asarray(self._render().buffer_rgba())[..., :3].copy())
        finally:
            self.draw(**current)  # leave the artists as the live widget shows them
            self._render()
        start = [grid[n].index(current[n]) for n in names]
        index = 0
        for n, i in zip(names, start):
            index = index * len(grid[n]) + i
        base = pictures[index]
        shown = _png(base)
        palette = _palette_image(shown)
        frames = [_patches(picture, base, palette) for picture in pictures]
        h, w = base.shape[:2]
        controls = [{"name": n, "label": self.controls[n].description, "index": i,
                     "values": [self._value_label(n, v) for v in grid[n]]} for n, i in zip(names, start)]
        # "</" inside a <script> would end it early; JSON allows the escaped form.
        data = json.dumps({"width": w, "height": h, "controls": controls, "frames": frames, "readouts": readouts},
                          ensure_ascii=False).replace("</", "<\\/")
        # Labels are our own HTML (x<sub>t</sub>), so the note is not escaped.
        what = ", ".join(f"{c['label']}: {len(c['values'])} values" for c in controls) or "this one setting"
        note = (f"Precomputed when the book was built: {len(frames)} frame{'s' * (len(frames) > 1)} "
                f"({what}); in Jupyter every setting is computed live.")
        return (f'<div class="ddpm-frames"><div class="ddpm-frames-picture">'
                f'<img class="ddpm-frames-image" src="data:image/png;base64,{shown}" width="{w}" height="{h}" '
                f'alt="{html.escape(type(self).__name__)} picture"></div>'
                f'<div class="ddpm-frames-readout">{readouts[index]}</div>'
                f'<p class="ddpm-frames-note">{note}</p>'
                f'<script type="application/json" class="ddpm-frames-data">{data}</script>'
                f"</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        if "text/html" not in (exclude or ()):
            bundle["text/html"] = self.static_html()
        return bundle


def _png(pixels: np.ndarray, palette: Any = None) -> str:
    """RGB pixels as a base64 palette PNG (the frames of a plot need few colours); ``palette``
    (a PIL palette image) maps a patch to its base picture's colours, so no seam shows."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if palette is None:
        indexed = image.quantize(FRAME_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    else:
        indexed = image.quantize(palette=palette, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    indexed.save(buf, format="png", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _palette_image(png_b64: str) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(png_b64)))


def _patches(picture: np.ndarray, base: np.ndarray, palette: Any) -> str | list[list]:
    """How to turn ``base`` into ``picture``: ``""`` (nothing to do), one whole PNG, or patches.

    Patches are [x, y, width, height, PNG] rectangles: one per run of changed columns (runs
    closer than 8 px merged), spanning the rows that changed in it.  A frame whose patches
    would cover more than half the picture is stored whole.
    """
    changed = np.any(picture != base, axis=-1)
    if not changed.any():
        return ""
    columns = np.flatnonzero(changed.any(axis=0))
    breaks = np.flatnonzero(np.diff(columns) > 8)
    runs = zip(np.r_[columns[0], columns[breaks + 1]], np.r_[columns[breaks], columns[-1]] + 1)
    patches = []
    for c0, c1 in runs:
        rows = np.flatnonzero(changed[:, c0:c1].any(axis=1))
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        patches.append([int(c0), r0, int(c1 - c0), r1 - r0, picture[r0:r1, c0:c1]])
    if sum(p[2] * p[3] for p in patches) > changed.size / 2:
        return _png(picture)
    return [[x, y, w, h, _png(np.ascontiguousarray(pixels), palette)] for x, y, w, h, pixels in patches]
