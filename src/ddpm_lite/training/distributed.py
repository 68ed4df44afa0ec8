"""Data-parallel training under ``torchrun``: process group set-up and the rank helpers.

``torchrun --nproc_per_node=N -m ddpm_lite train ...`` starts N copies of the command
with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their
environment.  :func:`init_from_env` reads them and joins the process group (NCCL when
CUDA is available, gloo otherwise); :func:`ddpm_lite.training.train` notices the group
and switches to DistributedDataParallel.

How the work is split, and why the result does not depend on the number of processes:
every rank holds the same generator (same seed) and draws the *global* batch of indices,
timesteps and noise, exactly as a single process would, then keeps its own contiguous
slice of ``batch_size / world_size`` samples.  The random numbers of sample ``i`` of step
``s`` are therefore a function of ``(seed, s, i)`` only, and DDP's gradient average over
equal slices equals the single-process gradient of the whole batch up to the order of
floating-point additions.  Drawing the whole batch's noise on each rank costs one
``randn`` of the global batch per step, negligible next to the network's forward pass.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..plumbing import resolve_device

__all__ = ["DistInfo", "env_world_size", "init_from_env", "current", "shutdown", "training_device", "StopFlag",
           "agree", "all_ok", "barrier", "check_same_step", "wrap"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and logs; the others stay silent."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {name}={value!r}.") from None


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset, i.e. not started by torchrun)."""
    ws = _env_int("WORLD_SIZE")
    if ws is not None and ws < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be >= 1, got WORLD_SIZE={ws}.")
    return ws or 1


def init_from_env() -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment.

    Returns ``DistInfo()`` (rank 0 of 1, nothing initialised) when ``WORLD_SIZE`` is unset
    or 1, so a plain ``python -m ddpm_lite train`` takes the single-process path untouched.
    The backend is NCCL when CUDA is available (each process then uses ``cuda:LOCAL_RANK``)
    and gloo otherwise.  Joining waits ``DDPM_LITE_JOIN_TIMEOUT`` seconds for every process
    and a collective ``DDPM_LITE_RANK_TIMEOUT`` seconds for a silent rank (see
    :mod:`ddpm_lite.training.rendezvous`); both fail with a message instead of hanging.
    """
    from . import rendezvous

    world = env_world_size()
    if world == 1:
        return DistInfo()
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    if rank is None or local is None:
        raise ValueError("WORLD_SIZE > 1 but RANK or LOCAL_RANK is unset; start multi-process runs with torchrun "
                         "(or unset WORLD_SIZE if this is meant to be one process).")
    if not (0 <= rank < world):
        raise ValueError(f"RANK must lie in 0..WORLD_SIZE-1 = 0..{world - 1}, got RANK={rank}.")
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed; multi-process training is unavailable.")
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        rendezvous.join(rank, world, backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def current() -> DistInfo:
    """The job this process belongs to, if a process group is initialised (else rank 0 of 1)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=_env_int("LOCAL_RANK") or 0)
    return DistInfo()


def shutdown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    from .rendezvous import stop_heartbeat

    stop_heartbeat()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------------- used by the training loop
def training_device(device: torch.device | str, ddp: DistInfo) -> torch.device:
    """The device this process trains on: :func:`ddpm_lite.plumbing.resolve_device`, except that
    under torchrun ``"auto"`` and a bare ``"cuda"`` mean ``cuda:LOCAL_RANK``."""
    if not ddp.enabled:
        return resolve_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", ddp.local_rank)
    return dev


class StopFlag:
    """Turns the first Ctrl-C (SIGINT) into a flag the loop checks between steps.

    A KeyboardInterrupt raised in the middle of ``optimizer.step()`` could leave the
    weights updated but the EMA not; stopping at a step boundary keeps the saved state
    exactly that of an uninterrupted run.  A second Ctrl-C interrupts at once.

    ``sigterm=True`` (what training uses) treats SIGTERM the same way: ``timeout``, Slurm and
    ``docker stop`` send it, and torchrun passes Ctrl-C on to its workers as SIGTERM.
    On leaving, the handlers that were installed before are put back exactly.
    """

    def __init__(self, sigterm: bool = False) -> None:
        self.stop = False
        self.signum: int | None = None  # the signal that asked to stop (SIGINT or SIGTERM)
        self._signals = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)
        self._previous: dict = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        if self.stop:
            raise KeyboardInterrupt
        self.stop, self.signum = True, signum

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def agree(running_loss: torch.Tensor, flag: StopFlag, out_of_time: bool, ddp: DistInfo) -> tuple[float, bool]:
    """(running loss summed over steps, averaged over ranks; whether every rank should stop now).

    One process: the loss as a float (the loop's one host sync) and the stop decision is the
    caller's.  Under torchrun one collective carries the loss, who was signalled and who ran
    out of time, so all ranks leave at the same step; a signal on any rank sets every flag.
    """
    if not ddp.enabled:
        return float(running_loss), False
    votes = torch.tensor([float(flag.stop), float(out_of_time)], device=running_loss.device)
    buf = torch.cat([running_loss.reshape(1), votes])
    dist.all_reduce(buf)
    signalled, timed_out = bool(buf[1] > 0), bool(buf[2] > 0)
    flag.stop = flag.stop or signalled
    return float(buf[0]) / ddp.world_size, signalled or timed_out


def all_ok(ok: bool, ddp: DistInfo, dev: torch.device) -> bool:
    """True when ``ok`` holds on every rank (one collective; just ``ok`` in one process), so a
    failure on one rank (e.g. rank 0 refused the run directory's lock) stops every rank."""
    if not ddp.enabled:
        return ok
    flag = torch.tensor([1.0 if ok else 0.0], device=dev)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


def barrier(ddp: DistInfo, dev: torch.device) -> None:
    """Wait for every rank (a no-op in one process); names the CUDA device under NCCL."""
    if ddp.enabled:
        dist.barrier(device_ids=[dev.index] if dev.type == "cuda" else None)


def check_same_step(step: int, dev: torch.device) -> None:
    """Refuse to train when the ranks resumed from different steps (e.g. nodes without a shared run directory)."""
    from ..runs.checkpoint import CheckpointError

    seen = torch.tensor([step, -step], device=dev)
    dist.all_reduce(seen, op=dist.ReduceOp.MAX)
    if int(seen[0]) != -int(seen[1]):
        raise CheckpointError(f"the ranks resumed from different steps ({-int(seen[1])}..{int(seen[0])}); "
                              "checkpoint_dir must be one directory that every node can read.")


def wrap(model: torch.nn.Module, dev: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model``: broadcasts rank 0's weights now, averages gradients in backward."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
