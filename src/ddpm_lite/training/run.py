"""A training run's directory for the length of one :func:`ddpm_lite.train` call, and its guards.

:class:`Run` is the run directory as one object with a clear lifetime: ``with Run(...) as
run`` takes the lock (one writer, agreed on by every rank under torchrun), ``run.restore``
loads a checkpoint into the training state, ``run.save`` checks that every weight is finite
and only then writes (so a step that produced NaN never replaces the last good checkpoint),
and leaving the ``with`` block releases the lock.  Without a directory the same object only
checks the weights.  :func:`divergence_hint` and :func:`kept` word the error of a diverged
run: what to change, and which checkpoint was left untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..runs import directory
from ..runs.checkpoint import has_checkpoint
from . import distributed
from .state import TrainState

__all__ = ["Run", "lock_run_dir", "check_finite", "divergence_hint", "kept", "check_data_range"]


class Run:
    """The run directory ``path`` (or None: no checkpoints) of one training call.

    ``config`` and ``metadata`` are what every checkpoint stores, ``device`` where the ranks vote; ``callback`` hears
    ``("checkpoint", step, {"dir": path})`` once a checkpoint is complete on disk.
    ``last_good`` is the step of the newest checkpoint on disk (None before the first).
    """

    def __init__(self, path: Path | None, config: dict, metadata: dict | None, device: torch.device,
                 callback: Callable[[str, int, dict], None] | None = None) -> None:
        self.path, self.config, self.metadata, self.callback = path, config, metadata, callback
        self.ddp, self.device = distributed.current(), device
        self.last_good: int | None = None
        self._lock: directory.RunLock | None = None

    def __enter__(self) -> "Run":
        self._lock = lock_run_dir(self.path, self.ddp, self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def restore(self, state: TrainState, resume: bool = True) -> bool:
        """Load the directory's checkpoint into ``state`` if there is one and ``resume``; True if loaded."""
        if self.path is None or not resume or not has_checkpoint(self.path):
            return False
        self.metadata = {**state.restore(self.path, self.config), **(self.metadata or {})}
        self.last_good = state.step
        return True

    def save(self, state: TrainState, lr: float, grad_clip: float | None) -> None:
        """Check the weights, then (rank 0) write a checkpoint; every rank waits for it.

        Every rank holds the same weights, so every rank raises together under torchrun.
        """
        check_finite(state, lr=lr, grad_clip=grad_clip, ckpt_dir=self.path, last_good=self.last_good)
        if self.path is None:
            return
        if self.ddp.is_main:
            state.save(self.path, self.config, self.metadata)
            if self.callback is not None:
                self.callback("checkpoint", state.step, {"dir": self.path})
        self.last_good = state.step
        distributed.barrier(self.ddp, self.device)  # no rank runs ahead (or exits) while rank 0 writes


def lock_run_dir(ckpt_dir: Path | None, ddp: distributed.DistInfo, dev: torch.device) -> directory.RunLock | None:
    """Take the run directory's lock (rank 0 only: the one writer) before reading or writing it.

    This also proves the directory writable before any step is taken.  Under torchrun every
    rank learns whether rank 0 got the lock, so none waits forever for a rank that gave up.
    """
    lock = directory.RunLock(ckpt_dir) if ckpt_dir is not None and ddp.is_main else None
    error: Exception | None = None
    if lock is not None:
        try:
            lock.acquire()
        except ValueError as exc:
            error = exc
    if not distributed.all_ok(error is None, ddp, dev):
        raise error or directory.RunDirBusy(f"rank 0 could not lock the run directory {str(ckpt_dir)!r}; see its error.")
    return lock


def divergence_hint(lr: float, grad_clip: float | None) -> str:
    """What to change when training produced NaN/inf: the step size first (clipping is on by default)."""
    if grad_clip is None:
        return f"lower lr (now {lr}) or turn gradient clipping back on (grad_clip=1.0)."
    return f"lower lr (now {lr}); gradients are already clipped to norm {grad_clip}, so the step size is the likely cause."


def kept(ckpt_dir: Path | None, step: int | None) -> str:
    """The clause of a divergence error that says which checkpoint is left untouched."""
    if ckpt_dir is None:
        return " (no checkpoint_dir: nothing was saved)"
    if step is None or step < 0:
        return f"; nothing was saved in {str(ckpt_dir)!r}"
    return f"; the last good checkpoint (step {step}) in {str(ckpt_dir)!r} is kept"


def check_finite(state: TrainState, *, lr: float, grad_clip: float | None, ckpt_dir: Path | None,
                  last_good: int | None) -> None:
    """Raise FloatingPointError unless every weight and EMA weight is finite (one host sync)."""
    tensors = [*state.params, *state.ema_params]
    if tensors and not bool(torch.stack([torch.isfinite(p).all() for p in tensors]).all()):
        raise FloatingPointError(f"the weights became NaN or inf by step {state.step}, so they were not saved"
                                 f"{kept(ckpt_dir, last_good)}; {divergence_hint(lr, grad_clip)}")


def check_data_range(data: torch.Tensor, num_levels: int | None) -> None:
    """Images (and any data on a level grid) must lie in [−1, 1]; say which scaling fixes it.

    2-D points are standardized (|x| of a few units) and left alone.
    """
    if data.dim() <= 2 and num_levels is None:
        return
    lo, hi = float(data.min()), float(data.max())
    if lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6:
        return
    if lo >= 0 and hi <= 1:
        fix = "x * 2 - 1 (data in [0, 1])"
    elif lo >= 0 and hi <= 255:
        fix = "ddpm_lite.data.to_model_range(x, 256), i.e. x / 127.5 - 1 (8-bit levels 0..255)"
    else:
        fix = "2 * (x - min) / (max - min) - 1"
    raise ValueError(f"image data must lie in [-1, 1], found [{lo:g}, {hi:g}]; scale it first with {fix}.")
