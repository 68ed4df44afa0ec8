"""Reading a file that may be hostile: checked before a byte of it is trusted.

Every file the package reads back (``state.json``, the manifest, the lock record, a
weights file) may be something else under the expected name: a FIFO (an ``open`` would
block forever), a link to ``/dev/zero`` (a read would fill memory), a file of gigabytes,
or JSON nested 100 000 levels deep (``json.loads`` recurses until ``RecursionError``).
:func:`read_regular` opens without following a link and without blocking, checks with
``fstat`` on the open descriptor (so nothing can be swapped in between) that it is a
regular file no larger than a limit, and reads at most that limit.  :func:`read_json`
also counts the nesting depth of the text, outside strings, before parsing it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from pathlib import Path

__all__ = ["UnsafeFileError", "read_regular", "json_depth", "read_json", "KIND_NAMES", "open_exclusive",
           "check_writable"]

#: What ``stat`` calls each kind of file, for messages.
KIND_NAMES = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
              stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket",
              stat.S_IFLNK: "a symbolic link"}
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
# A JSON string: a quote, then anything but a quote or backslash, or a backslash and any byte.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class UnsafeFileError(ValueError):
    """A file is not what its name claims (not a regular file, too large, too deeply nested)."""


def _kind(mode: int) -> str:
    return KIND_NAMES.get(stat.S_IFMT(mode), "not a regular file")


def read_regular(path: str | os.PathLike, *, limit: int, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Raises ``FileNotFoundError`` when there is no such file (callers word that case),
    :class:`UnsafeFileError` (a ``ValueError``) naming the file and what it is otherwise:
    a symbolic link (never followed), a FIFO, a device, a directory, or larger than
    ``limit``; ``OSError`` from the system for anything else (no permission, ...).
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise exc from None
        if stat.S_ISLNK(mode):  # O_NOFOLLOW's ELOOP: the name is a link
            raise UnsafeFileError(f"{what} {path!r} is a symbolic link, which is never followed; "
                                  "replace it with the file itself.") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{what} {path!r} is {_kind(st.st_mode)}, not a regular file; refused "
                                  "(move it away).")
        if st.st_size > limit:
            raise UnsafeFileError(f"{what} {path!r} is {st.st_size} bytes, more than the {limit} such a file "
                                  "can hold; it is not one of ours (move it away).")
        chunks, left = [], limit + 1  # one byte past the limit tells a file that grew since fstat
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise UnsafeFileError(f"{what} {path!r} grew past {limit} bytes while it was read; refused.")
    return data


def json_depth(text: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, brackets inside strings not counted.

    Linear in the length and without recursion, so it is safe on any input; an
    unterminated string simply ends the count where it starts.
    """
    import numpy as np

    bare = _JSON_STRING.sub(b"", text)
    cut = bare.find(b'"')  # a quote left over opens a string that never ends: count up to it
    if cut >= 0:
        bare = bare[:cut]
    codes = np.frombuffer(bare, dtype=np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def read_json(path: str | os.PathLike, *, limit: int, max_depth: int = 32, what: str = "file") -> object:
    """Parse ``path`` as JSON after :func:`read_regular` and a depth check (``max_depth``).

    Raises :class:`UnsafeFileError` for every way the file can be bad (the message names
    the file and says what it is), ``FileNotFoundError`` when it does not exist.
    """
    data = read_regular(path, limit=limit, what=what)
    depth = json_depth(data)
    if depth > max_depth:
        raise UnsafeFileError(f"{what} {os.fspath(path)!r} is JSON nested {depth} levels deep, more than the "
                              f"{max_depth} such a file has; it is not one of ours (move it away).")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UnsafeFileError(f"{what} {os.fspath(path)!r} is corrupted (not UTF-8 text).") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a number with thousands of digits
        raise UnsafeFileError(f"{what} {os.fspath(path)!r} is corrupted (not valid JSON: {exc}).") from None


def open_exclusive(path: Path) -> int:
    """Create ``path`` for writing; never follows a symlink and never opens an existing file."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)


def check_writable(directory: str | os.PathLike, what: str = "run directory") -> Path:
    """Create ``directory`` if needed and prove a file can be created, synced and deleted there.

    Raises ``ValueError`` naming the directory and the system's reason (read-only file
    system, no permission, ``/proc``, a path through a file, ...), so a run fails at once
    rather than at its first checkpoint after the whole budget.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{what} {str(directory)!r} is a file, not a directory.")
    probe = directory / f".ddpm_lite.probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = open_exclusive(probe)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} {str(directory)!r} is not writable ({exc.strerror or exc}); "
                         "choose another directory.") from None
    return directory
