"""Guards of a training run that keep it from destroying work (issue 10).

* :func:`lock_run_dir` — one writer per run directory (see :mod:`ddpm_lite.runs.directory`), agreed
  on by every rank under torchrun;
* :func:`check_finite` — the weights are checked before every save, so a step that
  produced NaN or inf never replaces the last good checkpoint;
* :func:`divergence_hint`, :func:`kept` — what the error then says: what to change, and
  which checkpoint was left untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import distributed
from ..runs import directory
from .state import TrainState

__all__ = ["lock_run_dir", "check_finite", "divergence_hint", "kept", "check_data_range"]


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
