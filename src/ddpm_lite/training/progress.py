"""Progress of a training run: a live bar where someone watches, a few plain lines elsewhere.

On a terminal or in a notebook a ``tqdm.auto`` bar is shown.  When stderr is neither (CI,
``nohup``, a redirect to a log file) a bar would write thousands of carriage-return updates
into one line, so :class:`Progress` prints at most ``lines`` plain lines instead, one each
time another 1/``lines`` of the budget (steps, or seconds when no step budget is given) is
spent, and one at the end.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "interactive"]


def interactive(stream: object = None) -> bool:
    """True when ``stream`` (default stderr) is a terminal or we run inside a Jupyter kernel."""
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "ipykernel" in sys.modules  # a notebook: tqdm.auto draws a widget


class Progress:
    """``update(n, loss)`` after ``n`` more steps; ``close()`` at the end."""

    def __init__(self, *, total: int | None, initial: int, enabled: bool, seconds: float | None = None,
                 lines: int = 10) -> None:
        self.total, self.step, self.seconds, self.lines = total, initial, seconds, lines
        self.start, self.initial = time.perf_counter(), initial
        self.enabled, self.bar, self.printed, self.loss = enabled, None, 0, None
        if enabled and interactive():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial if total else 0, unit="step", desc="training",
                            dynamic_ncols=True, leave=True)

    def _fraction(self) -> float:
        if self.total:
            return (self.step - self.initial) / max(1, self.total - self.initial)
        if self.seconds:
            return (time.perf_counter() - self.start) / self.seconds
        return 0.0

    def _line(self) -> None:
        total = f"/{self.total}" if self.total else ""
        loss = f", loss {self.loss:.4f}" if self.loss is not None else ""
        elapsed = time.perf_counter() - self.start
        print(f"training: step {self.step}{total}{loss}, {elapsed:.0f} s", file=sys.stderr, flush=True)

    def update(self, n: int, loss: float | None = None) -> None:
        self.step += n
        self.loss = loss if loss is not None else self.loss
        if self.bar is not None:
            self.bar.update(n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif self.enabled and self._fraction() * self.lines >= self.printed + 1:
            self.printed = int(self._fraction() * self.lines)
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.printed < self.lines:
            self._line()
            self.printed = self.lines
