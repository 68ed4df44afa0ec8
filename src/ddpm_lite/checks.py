"""Argument checks shared by every public entry point of the library.

Each helper either returns the value in a canonical type or raises ``ValueError`` with a
message that names the argument, shows the value it got, and says what is allowed, so a
user of the package sees our sentence instead of a traceback from inside torch or numpy.
``bool`` is refused wherever a number is expected: ``True`` is an ``int`` to Python but
never a sensible step count.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence, TypeVar

__all__ = ["integer", "number", "choice"]

C = TypeVar("C")


def _describe(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, noun: str) -> str:
    if lo is not None and hi is not None:
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        if noun == "integer":
            return f"an integer in {lo}..{hi}"
        return f"a number in {left}{lo:g}, {hi:g}{right}"
    if lo is not None:
        if noun == "integer" and lo == 1:
            return "a positive integer"
        if noun == "number" and lo == 0 and lo_open:
            return "a positive number"
        return f"{'an integer' if noun == 'integer' else 'a number'} {'>' if lo_open else '≥'} {lo:g}"
    if hi is not None:
        return f"{'an integer' if noun == 'integer' else 'a number'} {'<' if hi_open else '≤'} {hi:g}"
    return "an integer" if noun == "integer" else "a finite number"


def integer(name: str, value: object, lo: int | None = None, hi: int | None = None, *,
            allow_none: bool = False, what: str = "", hint: str = "") -> int | None:
    """``value`` as an ``int`` if it is an integer (Python or numpy) in ``lo..hi`` (inclusive).

    ``allow_none`` lets ``None`` through unchanged (an optional argument left unset).
    ``what`` replaces the generated description of the allowed values (e.g. "an integer in
    1..T (T=10)"); ``hint`` is appended to the message, e.g. what to use instead.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        v = int(value)  # type: ignore[arg-type]
        ok = (lo is None or v >= lo) and (hi is None or v <= hi)
    if not ok:
        what = what or _describe(lo, hi, False, False, "integer")
        raise ValueError(f"{name} must be {what}, got {name}={value!r}.{' ' + hint if hint else ''}")
    return v


def number(name: str, value: object, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, allow_none: bool = False, what: str = "",
           hint: str = "") -> float | None:
    """``value`` as a finite ``float`` within the given bounds (closed unless ``*_open``); ``what``
    and ``hint`` as for :func:`integer`."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(v)
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
    if not ok:
        what = what or _describe(lo, hi, lo_open, hi_open, "number")
        raise ValueError(f"{name} must be {what}, got {name}={value!r}.{' ' + hint if hint else ''}")
    return v


def choice(name: str, value: Any, options: Sequence[C]) -> C:
    """``value`` if it is one of ``options`` (usually the ``get_args`` of a ``Literal``)."""
    try:
        ok = value in options
    except (TypeError, ValueError):  # an unhashable value, or an array (ambiguous truth value)
        ok = False
    if not ok or isinstance(value, bool):
        allowed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {allowed}, got {name}={value!r}.")
    return value
