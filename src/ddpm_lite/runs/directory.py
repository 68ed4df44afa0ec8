"""Run directories that never lose work: one writer at a time, and only our own files touched.

Three guarantees, each small enough to check by reading:

* **One writer.**  :class:`RunLock` creates ``ddpm_lite.lock`` with ``O_CREAT | O_EXCL`` (the
  one file-system operation that two processes cannot both win) and writes the owner's pid,
  host and start time into it.  A second training run on the same directory is refused by
  name.  A lock whose owner is a dead process on this host is stale: it is reported (a
  warning naming the pid) and taken over.  A lock from another host cannot be judged from
  here and is never taken over; the message says which file to delete once that run is gone.
* **Only our files.**  :class:`Manifest` (``ddpm_lite.manifest.json``) lists the weights files
  this package wrote into the directory.  A save deletes only names listed there, and only
  names of the form ``weights-<digits>.safetensors``: a user's ``weights-final.safetensors``,
  or a path planted in a JSON file (``../victim.txt``, ``/dev/zero``), is never touched.
* **Fail before the budget is spent.**  :func:`check_writable` creates the directory and
  proves a file can be created, synced and removed there before any training starts.

Every file is written by :func:`atomic_write_bytes`: to a temporary name, fsync'ed, renamed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import tempfile
import time
import uuid
import warnings
from pathlib import Path

__all__ = ["LOCK_FILE", "MANIFEST_FILE", "RunDirBusy", "RunLock", "Manifest", "atomic_write_bytes",
           "check_writable", "is_weights_name"]

LOCK_FILE = "ddpm_lite.lock"
MANIFEST_FILE = "ddpm_lite.manifest.json"
_WEIGHTS_NAME = re.compile(r"weights-[0-9]{1,20}\.safetensors")
#: A lock file that cannot be parsed is presumed half-written by a starting owner for this long.
_UNREADABLE_LOCK_GRACE_S = 30.0


class RunDirBusy(ValueError):
    """Another training run holds the run directory."""


def is_weights_name(name: object) -> bool:
    """True for a plain file name of the form ``weights-<digits>.safetensors`` (no directory part)."""
    return isinstance(name, str) and _WEIGHTS_NAME.fullmatch(name) is not None


def _open_exclusive(path: Path) -> int:
    """Create ``path`` for writing; never follows a symlink and never opens an existing file."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)


def _sync_dir(directory: Path) -> None:
    """Make a rename durable where the platform allows syncing a directory."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, tmp: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete.

    The bytes go to a temporary file in the same directory (same file system, so the rename
    is atomic), which is fsync'ed and renamed onto ``path``; on any error it is removed.
    ``tmp`` names the temporary file (a run directory's writer, holding its lock, uses fixed
    names so a crash leaves nothing it cannot recognise); a leftover regular file there is
    replaced, anything else (a symlink, a folder) is refused.  Without ``tmp`` a unique
    name is drawn.
    """
    path = Path(path)
    if tmp is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    else:
        tmp = Path(tmp)
        try:
            fd = _open_exclusive(tmp)
        except FileExistsError:
            if not stat.S_ISREG(os.lstat(tmp).st_mode):
                raise ValueError(f"{str(tmp)!r} is in the way of a checkpoint and is not a regular file; "
                                 "remove it.") from None
            os.unlink(tmp)  # the leftover of a save killed mid-write
            fd = _open_exclusive(tmp)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would (0666 less the
        # umask), so a run directory shared between users or nodes stays readable.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _sync_dir(path.parent)


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
        fd = _open_exclusive(probe)
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


class RunLock:
    """Exclusive ownership of a run directory for one training run (a context manager).

    ``stale`` holds the owner record of a stale lock that was taken over (else None).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex,
                       "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        self.stale: dict | None = None
        self.held = False

    def _owner(self) -> dict | None:
        """The record in the existing lock file, or None if it cannot be read as one."""
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _is_stale(self, owner: dict | None) -> bool:
        if owner is None:  # half-written by a starting owner, or garbage: judge by age
            try:
                return time.time() - os.lstat(self.path).st_mtime > _UNREADABLE_LOCK_GRACE_S
            except FileNotFoundError:
                return True
        pid = owner.get("pid")
        same_host = owner.get("host") == self.record["host"]
        return same_host and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)

    def _busy(self, owner: dict | None) -> RunDirBusy:
        who = (f"pid {owner.get('pid')} on host {owner.get('host')!s}, started {owner.get('started')!s}"
               if owner else "an unreadable lock file")
        return RunDirBusy(
            f"run directory {str(self.directory)!r} is in use by another training run ({who}); wait for it "
            f"to finish or choose another directory. If that run is no longer running, delete {str(self.path)!r}."
        )

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`RunDirBusy` (a ValueError) naming the owner."""
        check_writable(self.directory)
        for attempt in range(2):
            try:
                fd = _open_exclusive(self.path)
            except FileExistsError:
                owner = self._owner()
                if attempt or not self._is_stale(owner):
                    raise self._busy(owner) from None
                self.stale = owner or {}
                warnings.warn(f"taking over a stale lock in {str(self.directory)!r}: its owner "
                              f"(pid {self.stale.get('pid')} on {self.stale.get('host')}) is no longer running.",
                              RuntimeWarning, stacklevel=3)
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            except OSError as exc:
                raise ValueError(f"cannot create the lock {str(self.path)!r}: {exc.strerror or exc}.") from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.record) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return self
        raise self._busy(self._owner())  # pragma: no cover - the loop returns or raises

    def release(self) -> None:
        """Remove the lock file, only if it is still ours (a taken-over lock is left alone)."""
        if not self.held:
            return
        self.held = False
        owner = self._owner()
        if owner is not None and owner.get("token") == self.record["token"]:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Manifest:
    """The weights files this package wrote into a run directory (``ddpm_lite.manifest.json``).

    Names read back are filtered through :func:`is_weights_name`, so an edited manifest
    cannot make a save delete anything outside the directory or anything else inside it.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_FILE
        try:
            listed = json.loads(self.path.read_text()).get("weights", [])
        except (OSError, ValueError, AttributeError):
            listed = []
        self.weights = {name for name in listed if is_weights_name(name)} if isinstance(listed, list) else set()

    def write(self) -> None:
        body = {"written_by": "ddpm_lite", "weights": sorted(self.weights)}
        atomic_write_bytes(self.path, (json.dumps(body, indent=1) + "\n").encode(),
                           tmp=self.directory / f".{MANIFEST_FILE}.tmp")

    def add(self, name: str) -> None:
        """Record ``name`` (before the file is created: a crash then leaves it listed, to be swept)."""
        if not is_weights_name(name):
            raise ValueError(f"{name!r} is not a weights file name this package writes.")
        if name not in self.weights:
            self.weights.add(name)
            self.write()

    def sweep(self, keep: str) -> None:
        """Delete every listed weights file but ``keep`` (and their temporary files); unlist them."""
        for name in sorted(self.weights - {keep}):
            for path in (self.directory / name, self.directory / f".{name}.tmp"):
                try:
                    if stat.S_ISREG(os.lstat(path).st_mode):
                        os.unlink(path)
                except FileNotFoundError:
                    pass
        if self.weights != {keep}:
            self.weights = {keep}
            self.write()
