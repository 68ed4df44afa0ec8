"""``sample``'s two outputs, ``x.png`` and ``x.npy``, written as one pair.

Two ``sample`` processes with one ``--out`` used to interleave their renames (the ``.png``
of one, the ``.npy`` of the other), and a full disk could replace the ``.npy`` and then fail
on the ``.png``.  :func:`write_pair` writes both files completely under temporary names
first (a failure there replaces nothing), then renames both while holding an exclusive
``flock`` on the output folder, so writers take turns and the last one leaves its own
pair.  :func:`read_pair` takes the same lock shared, so it never sees one writer's ``.png``
beside another's ``.npy``.  A reader that takes no lock can still check a pair: the PNG
carries the SHA-256 of its ``.npy`` in a ``tEXt`` chunk (:func:`pair_matches`).

:func:`check_pair_writable` runs before sampling, so an unwritable folder fails in a
second, not after the samples were drawn.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["check_pair_writable", "write_pair", "read_pair", "pair_matches", "NPY_HASH_KEY"]

NPY_HASH_KEY = b"ddpm_lite npy sha256"


def check_pair_writable(png: str | os.PathLike, npy: str | os.PathLike, *, flag: str = "--out") -> None:
    """Refuse before any work when the pair cannot be written (folder missing, unwritable,
    or a folder in the way of either file); the message names ``flag``."""
    from .directory import check_writable

    png, npy = Path(png), Path(npy)
    if not png.parent.is_dir():
        raise ValueError(f"the folder of {flag}, {str(png.parent)!r}, does not exist.")
    for path in (png, npy):
        if path.is_dir():
            raise ValueError(f"{flag} would write {str(path)!r}, which is a folder; name a file such as samples.png.")
    check_writable(png.parent, f"the folder of {flag}")


@contextlib.contextmanager
def _folder_lock(folder: Path, exclusive: bool) -> Iterator[None]:
    """``flock`` on the folder itself (no lock file left behind); a no-op where unsupported."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: renames are still each atomic
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:  # some network file systems lock only files: fall back to unlocked renames
            pass
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _with_npy_hash(png: bytes, npy: bytes) -> bytes:
    """``png`` with a ``tEXt`` chunk holding the SHA-256 of ``npy``, placed after IHDR."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not PNG data")
    end_ihdr = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    body = b"tEXt" + NPY_HASH_KEY + b"\x00" + hashlib.sha256(npy).hexdigest().encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return png[:end_ihdr] + chunk + png[end_ihdr:]


def _npy_hash_in(png: bytes) -> str | None:
    """The SHA-256 recorded by :func:`_with_npy_hash`, or None."""
    pos = 8
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I", png[pos:pos + 4])[0], png[pos + 4:pos + 8]
        if kind == b"tEXt":
            key, _, value = png[pos + 8:pos + 8 + length].partition(b"\x00")
            if key == NPY_HASH_KEY:
                return value.decode("ascii", "replace")
        if kind == b"IDAT":
            return None
        pos += 12 + length
    return None


def pair_matches(png: bytes, npy: bytes) -> bool:
    """True when ``png`` was written together with ``npy`` by :func:`write_pair`."""
    return _npy_hash_in(png) == hashlib.sha256(npy).hexdigest()


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would hide samples from other users
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def write_pair(png_path: str | os.PathLike, png: bytes, npy_path: str | os.PathLike, npy: bytes) -> None:
    """Write ``png`` and ``npy`` so that a reader finds both old files or both new ones.

    Both must be in one folder.  On any error (full disk, ...) both temporary files are
    removed and neither target is touched.
    """
    png_path, npy_path = Path(png_path), Path(npy_path)
    folder = png_path.parent
    if npy_path.parent.resolve() != folder.resolve():
        raise ValueError("the .png and .npy of a pair must be in one folder")
    temps: list[Path] = []
    try:
        temps.append(_write_temp(folder, npy_path.name, npy))
        temps.append(_write_temp(folder, png_path.name, _with_npy_hash(png, npy)))
        with _folder_lock(folder, exclusive=True):
            os.replace(temps[0], npy_path)
            os.replace(temps[1], png_path)
            temps.clear()
            with contextlib.suppress(OSError):
                dfd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def read_pair(png_path: str | os.PathLike, npy_path: str | os.PathLike) -> tuple[bytes, bytes]:
    """Both files' bytes, read under the writers' lock (shared), so they belong together."""
    png_path, npy_path = Path(png_path), Path(npy_path)
    with _folder_lock(png_path.parent, exclusive=False):
        return png_path.read_bytes(), npy_path.read_bytes()
