"""One owner per run directory, by construction: an operating-system lock held for life.

:class:`RunLock` opens ``ddpm_lite.lock`` and takes an exclusive ``flock`` on it (on
Windows, ``msvcrt.locking``).  The kernel grants that lock to one open file at a time and
drops it when its owner exits, however it exits (``kill -9`` included), so there is no
"is the owner still alive?" test and no stale lock to take over: a lock nobody holds is
simply free.  That judgement does not depend on pids, so it holds across PID namespaces
(containers started with one ``--hostname``) and on NFS, where Linux maps ``flock`` to
POSIX byte-range locks that the server arbitrates between clients.

The owner writes its pid, host and start time into the file.  That record is only
information for the message a second run prints; nothing is decided from it.  On release
the owner deletes the file while still holding the lock; an acquirer that finds, after
locking, that the name no longer points to the file it locked starts again, so the
delete cannot hand the directory to two owners.  A record left by an owner that died
(it had no chance to delete it) is reported as a ``RuntimeWarning`` when the next run
takes the lock.

Limits: a process that ``fork()``\\ s without ``exec`` shares the lock with its child (an
inherited descriptor); the package never does so while training.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import uuid
import warnings
from pathlib import Path

from .files import KIND_NAMES, check_writable, json_depth

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = ["LOCK_FILE", "RunDirBusy", "RunLock"]

LOCK_FILE = "ddpm_lite.lock"
#: The owner record is a few hundred bytes; reading more than this is never needed.
_RECORD_LIMIT = 4096
_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
          | getattr(os, "O_CLOEXEC", 0))


class RunDirBusy(ValueError):
    """Another training run holds the run directory."""


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False if another open file holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows: lock the first byte
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError:  # pragma: no cover - msvcrt reports a held lock as EACCES/EDEADLOCK
        if fcntl is None:
            return False
        raise
    return True


def _record(fd: int) -> dict | None:
    """The owner record in the lock file (at most 4 KiB read), or None if there is none."""
    raw = os.pread(fd, _RECORD_LIMIT, 0) if hasattr(os, "pread") else b""
    if not raw.strip():
        return None
    try:
        if json_depth(raw) > 4:  # a record is one flat object; never recurse into anything else
            return {}
        rec = json.loads(raw.decode("utf-8"))
    except ValueError:  # half-written, or not ours
        return {}
    return rec if isinstance(rec, dict) else {}


def _describe(rec: dict | None) -> str:
    """The owner as the message shows it; every value is shown, never interpreted."""
    if not rec:
        return "its owner wrote no readable record"
    return (f"pid {str(rec.get('pid'))[:24]} on host {str(rec.get('host'))[:64]}, "
            f"started {str(rec.get('started'))[:40]}")


class RunLock:
    """Exclusive ownership of a run directory for one process (a context manager).

    ``stale`` holds the record left by an owner that ended without releasing the lock
    (``{}`` if unreadable), else None.  ``held`` says whether this object holds it.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex,
                       "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        self.stale: dict | None = None
        self.held = False
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            fd = os.open(self.path, _FLAGS, 0o666)
        except OSError as exc:
            if os.path.islink(self.path):
                raise RunDirBusy(f"the lock file {str(self.path)!r} is a symbolic link, which is never followed; "
                                 "delete it.") from None
            raise ValueError(f"cannot create the lock {str(self.path)!r}: {exc.strerror or exc}; "
                             "choose another directory.") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise RunDirBusy(f"the lock file {str(self.path)!r} is {KIND_NAMES.get(stat.S_IFMT(mode), 'not a file')},"
                             " not a regular file; delete it.")
        return fd

    def _same_file(self, fd: int) -> bool:
        """Does the name still point to the file ``fd`` has open (an owner deletes it on release)?"""
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`RunDirBusy` (a ValueError) naming the owner's record."""
        check_writable(self.directory)
        for _ in range(100):  # each retry means an owner released between our open and lock
            fd = self._open()
            try:
                if not _try_lock(fd):
                    raise RunDirBusy(
                        f"run directory {str(self.directory)!r} is in use by another training run "
                        f"({_describe(_record(fd))}, holding {str(self.path)!r}); wait for it to finish or choose "
                        "another directory. The lock is the operating system's: it ends with that process.")
                if not self._same_file(fd):
                    os.close(fd)
                    continue
                left = _record(fd)
                if left is not None:
                    self.stale = left
                    warnings.warn(f"a stale lock in {str(self.directory)!r}: a previous run ended without releasing "
                                  f"it ({_describe(left)}); it no longer holds it, so this run takes over.",
                                  RuntimeWarning, stacklevel=2)
                body = (json.dumps(self.record) + "\n").encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, body, 0) if hasattr(os, "pwrite") else os.write(fd, body)
                os.fsync(fd)
            except BaseException:
                if fd != self._fd:
                    os.close(fd)
                raise
            self._fd, self.held = fd, True
            return self
        raise RunDirBusy(f"run directory {str(self.directory)!r}: its lock changed hands 100 times while this run "
                         "tried to take it; try again.")  # pragma: no cover

    def release(self) -> None:
        """Delete the lock file (while still holding it), then let the lock go."""
        if not self.held or self._fd is None:
            return
        fd, self._fd, self.held = self._fd, None, False
        try:
            if self._same_file(fd):
                os.unlink(self.path)
        except OSError:
            pass  # a read-only remount or Windows: the file stays, the lock still ends below
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
