"""Run directories: one writer at a time (lock), only our own files touched (manifest), and
checkpoints written atomically and read back defensively."""

from .checkpoint import CheckpointError, has_checkpoint, load_checkpoint, save_checkpoint
from .directory import RunDirBusy, RunLock, atomic_write_bytes, check_writable

__all__ = ["CheckpointError", "has_checkpoint", "load_checkpoint", "save_checkpoint", "RunDirBusy", "RunLock",
           "atomic_write_bytes", "check_writable"]
