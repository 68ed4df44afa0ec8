"""Run directories that never lose work: one writer at a time, and only our own files touched.

Three guarantees, each small enough to check by reading:

* **One writer.**  :class:`RunLock` (:mod:`ddpm_lite.runs.lock`) is an operating-system lock
  on ``ddpm_lite.lock``, held for the life of the process and gone when it dies; the pid,
  host and start time written into the file are only information for the refusal message.
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
import stat
import tempfile
from pathlib import Path

from .files import UnsafeFileError, check_writable, open_exclusive, read_json
from .lock import LOCK_FILE, RunDirBusy, RunLock

__all__ = ["LOCK_FILE", "MANIFEST_FILE", "RunDirBusy", "RunLock", "Manifest", "atomic_write_bytes",
           "check_writable", "is_weights_name"]

MANIFEST_FILE = "ddpm_lite.manifest.json"
_WEIGHTS_NAME = re.compile(r"weights-[0-9]{1,20}\.safetensors")
#: A manifest lists a few file names; anything larger is not one of ours.
MANIFEST_LIMIT = 1 << 20


def is_weights_name(name: object) -> bool:
    """True for a plain file name of the form ``weights-<digits>.safetensors`` (no directory part)."""
    return isinstance(name, str) and _WEIGHTS_NAME.fullmatch(name) is not None


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
            fd = open_exclusive(tmp)
        except FileExistsError:
            if not stat.S_ISREG(os.lstat(tmp).st_mode):
                raise ValueError(f"{str(tmp)!r} is in the way of a checkpoint and is not a regular file; "
                                 "remove it.") from None
            os.unlink(tmp)  # the leftover of a save killed mid-write
            fd = open_exclusive(tmp)
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


class Manifest:
    """The weights files this package wrote into a run directory (``ddpm_lite.manifest.json``).

    Names read back are filtered through :func:`is_weights_name`, so an edited manifest
    cannot make a save delete anything outside the directory or anything else inside it.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST_FILE
        try:
            body = read_json(self.path, limit=MANIFEST_LIMIT, max_depth=4, what="run manifest")
        except FileNotFoundError:
            body = {}
        except UnsafeFileError as exc:  # a FIFO, a link, a huge or deep file: never trusted
            raise ValueError(str(exc)) from None
        body = body if isinstance(body, dict) else {}
        listed = body.get("weights", [])
        self.weights = {name for name in listed if is_weights_name(name)} if isinstance(listed, list) else set()
        #: The newest checkpoint format saved here: a state.json of an older format is a downgrade.
        fmt = body.get("state_format")
        self.state_format = fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else None

    def write(self) -> None:
        body = {"written_by": "ddpm_lite", "weights": sorted(self.weights)}
        if self.state_format is not None:
            body["state_format"] = self.state_format
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
