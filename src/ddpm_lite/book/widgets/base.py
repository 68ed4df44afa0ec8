"""The base every explorer of the book is built on: a matplotlib figure rendered into an
``ipywidgets.Image`` under some controls.

Rendering to PNG (rather than through an interactive backend) is what lets the rendered
book show a widget without a kernel: the image bytes are part of the embedded widget state.
"""

from __future__ import annotations

from typing import Any

from ..plotting import png_bytes

__all__ = ["PNGWidget"]


class PNGWidget:
    """Shared plumbing: a figure rendered into an Image widget under some controls.

    Subclasses set ``figure`` (from :func:`ddpm_lite.plotting.new_figure`), ``image`` (an
    ``ipywidgets.Image``), ``widget`` (what is displayed) and ``dynamic`` (the artists that
    change from frame to frame), then call :meth:`_render`.
    """

    figure: Any
    image: Any
    widget: Any

    #: Artists that change when only the timestep moves; drawn over a cached background.
    dynamic: list

    def _fix_image_size(self) -> None:
        # Show the PNG at its own pixel size: a stretched bitmap looks blurred.
        w, h = self.figure.canvas.get_width_height()
        self.image.width, self.image.height = str(w), str(h)

    def _render(self, full: bool = True) -> None:
        """Redraw and publish the figure.

        ``full=False`` restores the cached static background and draws only the
        ``dynamic`` artists (blitting): that is what keeps a dragged t slider fluid.
        """
        canvas = self.figure.canvas
        if full or getattr(self, "_background", None) is None:
            if self.figure.get_layout_engine() is not None:
                # Lay out once with the real artists, then freeze the axes positions:
                # constrained layout on every frame costs more than the drawing itself.
                self.figure.canvas.draw()
                self.figure.set_layout_engine("none")
            for a in self.dynamic:
                a.set_animated(True)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.figure.bbox)
            self._fix_image_size()
        else:
            canvas.restore_region(self._background)
        for a in self.dynamic:
            self.figure.draw_artist(a)
        self.image.value = png_bytes(self.figure, draw=False)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
