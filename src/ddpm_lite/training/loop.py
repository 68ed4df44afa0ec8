"""The training loop: AdamW on L_simple, an EMA of the weights, resumable checkpoints.

The loop is Algorithm 1 of Ho et al. plus bookkeeping, in parts a reader can hold:

* :class:`TrainState` — everything that changes while training (weights, EMA, optimizer,
  the one seeded generator, the data order) and how it is saved and restored;
* :func:`_make_step` — one optimizer step: draw a batch, take the loss of
  :meth:`GaussianDiffusion.training_losses`, clip the gradient, step a fused AdamW;
* :func:`_loop` — repeat until the budget is spent, move the EMA, report, checkpoint.

Nothing in a step synchronises with the host except every ``log_every`` steps, when the
running loss is read.  Everything random (batch order, t, ε) comes from one
``torch.Generator`` whose state is saved with the data order, so on a CPU 10 steps +
resume + 10 steps gives bit-for-bit the weights of 20 uninterrupted steps.

Under ``torchrun`` (:mod:`ddpm_lite.training.distributed`) every rank runs this loop with the
model wrapped in DistributedDataParallel, draws the global batch's indices, t and ε from the
shared seed and keeps its slice (the run does not depend on the number of processes); rank 0
alone logs and writes checkpoints.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, get_args

import torch
from torch import nn

from .. import checks
from ..diffusion import LOSS_KINDS, GaussianDiffusion, LossKind
from ..plumbing import resolve_device
from ..runs.checkpoint import has_checkpoint
from . import distributed
from . import run as guards  # af0b31a renamed guards.py to run.py (issue 20 in progress)
from .progress import Progress
from .state import TrainState, data_fingerprint, ema_decay_at
from .timesteps import ImportanceSampler

__all__ = ["train", "TrainResult", "TrainState", "ema_decay_at", "AmpKind", "AMP_KINDS", "diffusion_config"]

MAX_BATCH_SIZE = 2**20  #: largest batch accepted (10¹² would build 10¹² indices, i.e. hang, first)

#: Mixed-precision choices for :func:`train` (used on CUDA only).
AmpKind = Literal["bf16", "fp16"]
AMP_KINDS: tuple[str, ...] = get_args(AmpKind)


def diffusion_config(diffusion: GaussianDiffusion) -> dict:
    """Deprecated since 0.2.0: use ``diffusion.config()`` (which also stores the betas)."""
    warnings.warn("training.diffusion_config is deprecated; use GaussianDiffusion.config().", DeprecationWarning, 2)
    return diffusion.config()


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model`` is the trained network (in train mode); ``ema_model`` the exponential moving
    average of its weights (eval mode) — sample from that one.  ``losses`` holds
    (step, mean loss over the last ``log_every`` steps) pairs.
    """

    model: nn.Module
    ema_model: nn.Module
    steps: int
    seconds: float
    steps_per_second: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    interrupted: bool = False
    checkpoint_dir: Path | None = None
    device: torch.device = torch.device("cpu")
    stop_signal: int | None = None


def _check_args(model: object, diffusion: object, data: object, **kw: object) -> None:
    """The argument checks of :func:`train`, each naming the argument."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a ddpm_lite.GaussianDiffusion, got {type(diffusion).__name__}.")
    if hasattr(model, "check_schedule"):  # a model with ᾱ_t built in (ddpm_lite.nets.levels) must share the diffusion's
        model.check_schedule(diffusion.schedule)
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.dim() < 2 or data.shape[0] < 1:
        desc = f"shape {tuple(data.shape)}, dtype {data.dtype}" if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a non-empty float tensor of shape (N, ...), got {desc}.")
    if kw["steps"] is None and kw["seconds"] is None:
        raise ValueError("give a budget: steps=N and/or seconds=S (both None now).")
    checks.integer("steps", kw["steps"], 1, allow_none=True)
    checks.number("seconds", kw["seconds"], 0.0, lo_open=True, allow_none=True)
    for name in ("checkpoint_every", "log_every"):
        checks.integer(name, kw[name], 1)
    checks.integer("batch_size", kw["batch_size"], 1, MAX_BATCH_SIZE, hint="(split a larger batch over steps)")
    checks.integer("seed", kw["seed"], 0, 2**63 - 1)
    checks.number("lr", kw["lr"], 0.0, lo_open=True)
    checks.number("grad_clip", kw["grad_clip"], 0.0, lo_open=True, allow_none=True)
    checks.number("ema_decay", kw["ema_decay"], 0.0, 1.0, hi_open=True)
    checks.number("weight_decay", kw["weight_decay"], 0.0)
    checks.choice("amp", kw["amp"], (*AMP_KINDS, None))
    checks.choice("loss_kind", kw["loss_kind"], LOSS_KINDS)
    if kw["callback"] is not None and not callable(kw["callback"]):
        raise ValueError(f"callback must be callable as callback(event, step, info) or None, got {kw['callback']!r}.")
    if kw["checkpoint_dir"] is not None and not isinstance(getattr(model, "config", None), dict):
        raise ValueError("checkpoints need model.config (a dict describing the model); ddpm_lite.nets provide it.")


def train(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    data: torch.Tensor,
    *,
    steps: int | None = None,
    seconds: float | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    ema_decay: float = 0.999,
    grad_clip: float | None = 1.0,
    device: str | torch.device = "auto",
    amp: AmpKind | None = None,
    compile: bool = False,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 100,
    loss_kind: LossKind = "simple",
    t_sampler: ImportanceSampler | None = None,
    metadata: dict | None = None,
    callback: Callable[[str, int, dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` (an ε_θ) on ``data`` for a budget of ``steps`` and/or ``seconds``.

    Parameters
    ----------
    model:
        Any ``nn.Module`` following the ``eps_model`` protocol.  It must carry a ``config``
        dict (every :mod:`ddpm_lite.nets` model does) when checkpoints are written.
    diffusion:
        The :class:`GaussianDiffusion` whose loss is minimised.
    data:
        Training set, a float tensor (N, ...) in the model's range; moved to the device
        once, and batches are taken from it by index.
    steps, seconds:
        Budget; at least one is required.  ``steps`` counts *total* optimizer steps,
        including those of a resumed checkpoint; ``seconds`` counts wall time of this call.
        Training stops at whichever comes first.
    batch_size:
        Samples per step (default 128).  Batches run through shuffled passes over the data
        (one seeded permutation per pass).
    lr, weight_decay:
        AdamW learning rate (constant, default 1e-3) and decoupled weight decay (default 0).
    ema_decay:
        Decay of the weight EMA (default 0.999), warmed up as in :func:`ema_decay_at`.
    grad_clip:
        Maximum global gradient norm (default 1.0), or None for no clipping.
    device:
        ``"auto"`` (default: CUDA → MPS → CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    amp:
        ``None`` (default, full precision), ``"bf16"`` or ``"fp16"``: autocast on CUDA only (fp16
        with a gradient scaler).  Elsewhere a warning is issued and full precision used.
    compile:
        Compile the step with ``torch.compile`` (default False): for L_simple in full precision
        on one process the whole step, forward, backward and AdamW (:mod:`ddpm_lite.training.step`,
        with an eager fallback), otherwise the forward pass only.
    checkpoint_dir:
        Where to write checkpoints (see :mod:`ddpm_lite.runs.checkpoint`); None (default) writes none.
        With ``resume=True`` an existing checkpoint there is loaded and training continues
        from it; its configuration must match or a ``CheckpointError`` is raised.
    checkpoint_every:
        Save every this many steps (default 1000), and always at the end and on Ctrl-C.
    resume:
        Continue from a checkpoint found in ``checkpoint_dir`` (default True).
    seed:
        Seeds the one generator that draws batch order, t and ε (default 0).
    progress:
        Show progress (default True): a tqdm bar in a terminal or notebook, else (CI, log
        files) about ten plain lines on stderr (see :mod:`ddpm_lite.training.progress`).
    log_every:
        Read the running loss (a host sync) every this many steps (default 100).
    loss_kind:
        ``"simple"`` (default), ``"vb"`` or ``"hybrid"`` (see :meth:`GaussianDiffusion.training_losses`).
    t_sampler:
        An :class:`ddpm_lite.training.timesteps.ImportanceSampler` to draw t for ``"vb"``/``"hybrid"``
        (default None: uniform t).  Its history is not checkpointed: a resumed run restarts
        it (uniform until it has warmed up again).
    metadata:
        Free-form JSON-able dict stored in the checkpoint (e.g. the dataset name).
    callback:
        Called as ``callback(event, step, info)`` on rank 0: ``("log", step, {"loss": mean})``
        every ``log_every`` steps and ``("checkpoint", step, {"dir": path})`` right after a
        checkpoint is complete on disk (so a reported checkpoint survives any later crash).

    Ctrl-C (SIGINT) or SIGTERM stops after the current step, saves a checkpoint (if
    ``checkpoint_dir``) and returns with ``interrupted=True``; the signal handlers that were
    installed before are put back exactly.  While training, this process holds the lock of
    ``checkpoint_dir`` (see :mod:`ddpm_lite.runs.directory`): a second run on it is refused.

    Data parallel: when a ``torch.distributed`` process group of more than one process is
    initialised (``python -m ddpm_lite train`` under torchrun does it), ``batch_size`` is the
    *global* batch and must be divisible by the world size; ``device="auto"``/``"cuda"``
    mean ``cuda:LOCAL_RANK``.  The budget and Ctrl-C (or SIGTERM) are then agreed on by all
    ranks every ``log_every`` steps, so a rank never leaves while the others wait for it.
    """
    _check_args(model, diffusion, data, steps=steps, seconds=seconds, batch_size=batch_size, lr=lr,
                weight_decay=weight_decay, ema_decay=ema_decay, grad_clip=grad_clip, amp=amp, loss_kind=loss_kind,
                checkpoint_every=checkpoint_every, log_every=log_every, callback=callback,
                checkpoint_dir=checkpoint_dir, seed=seed)
    ddp = distributed.current()
    dev = distributed.training_device(device, ddp)
    if ddp.enabled and batch_size % ddp.world_size:
        raise ValueError(f"batch_size must be divisible by the world size {ddp.world_size} under "
                         f"torchrun, got batch_size={batch_size}.")
    if amp is not None and dev.type != "cuda":
        warnings.warn(f"amp={amp!r} is only used on CUDA; training in full precision on {dev}.", stacklevel=2)
        amp = None
    model = model.to(dev).train()
    data = data.to(dev, torch.float32)
    # Check the whole dataset once, so the step can skip the per-batch checks (each a host sync).
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contains NaN or inf; clean or drop those samples first.")
    guards.check_data_range(data, diffusion.num_levels)
    if loss_kind != "simple":
        diffusion.check_on_grid(data)  # the decoder term needs data on the K-level grid
    config = {
        "model": getattr(model, "config", None),
        "diffusion": diffusion.config(),
        "train": {"batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "ema_decay": ema_decay,
                  "grad_clip": grad_clip, "loss_kind": loss_kind, "seed": int(seed)},
        "data": data_fingerprint(data),
    }
    state = TrainState(model, data.shape[0], lr=lr, weight_decay=weight_decay, seed=seed, device=dev)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None and ckpt_dir.exists() and not ckpt_dir.is_dir():
        raise ValueError(f"checkpoint_dir {str(ckpt_dir)!r} is a file, not a directory.")
    lock = guards.lock_run_dir(ckpt_dir, ddp, dev)
    try:
        return _train_locked(state, model, diffusion, data, ckpt_dir, resume, config, metadata, ddp, dev, steps=steps,
                             seconds=seconds, batch_size=batch_size, lr=lr, ema_decay=ema_decay, grad_clip=grad_clip,
                             amp=amp, compile=compile, checkpoint_every=checkpoint_every, progress=progress,
                             log_every=log_every, loss_kind=loss_kind, callback=callback, t_sampler=t_sampler)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(state: TrainState, model: nn.Module, diffusion: GaussianDiffusion, data: torch.Tensor,
                  ckpt_dir: Path | None, resume: bool, config: dict, metadata: dict | None,
                  ddp: distributed.DistInfo, dev: torch.device, *, steps: int | None, seconds: float | None,
                  batch_size: int, lr: float, ema_decay: float, grad_clip: float | None, amp: AmpKind | None,
                  compile: bool, checkpoint_every: int, progress: bool, log_every: int, loss_kind: LossKind,
                  callback: Callable | None, t_sampler: ImportanceSampler | None) -> TrainResult:
    """The part of :func:`train` that runs while this process owns the run directory."""
    resumed = ckpt_dir is not None and resume and has_checkpoint(ckpt_dir)
    if resumed:
        metadata = {**state.restore(ckpt_dir, config), **(metadata or {})}
    if t_sampler is not None and (ddp.enabled or loss_kind == "simple"):
        raise ValueError("importance-sampled t (t_sampler=, --importance) needs loss_kind 'vb' or 'hybrid' (--loss vb|hybrid), one process.")
    step_fn = _make_step(state, diffusion, data, batch_size=batch_size, loss_kind=loss_kind, amp=amp,
                         compile=compile, grad_clip=grad_clip, ddp=ddp, t_sampler=t_sampler)

    last_good = [state.step if resumed else None]  # step of the newest checkpoint on disk

    def save() -> None:
        # Every save (periodic, end of budget, Ctrl-C/SIGTERM) and the end of a run without
        # checkpoints checks the weights first: a NaN step must never replace a good checkpoint.
        # Every rank holds the same weights, so every rank raises together under torchrun.
        guards.check_finite(state, lr=lr, grad_clip=grad_clip, ckpt_dir=ckpt_dir, last_good=last_good[0])
        if ckpt_dir is None:
            return
        if ddp.is_main:  # every rank holds the same state; one writer
            state.save(ckpt_dir, config, metadata)
            if callback is not None:
                callback("checkpoint", state.step, {"dir": ckpt_dir})
        last_good[0] = state.step
        distributed.barrier(ddp, dev)  # no rank runs ahead (or exits) while rank 0 writes

    progress = progress and ddp.is_main
    return _loop(state, step_fn, save, steps=steps, seconds=seconds, ema_decay=ema_decay, log_every=log_every,
                 checkpoint_every=checkpoint_every, saved_step=state.step if resumed else -1, lr=lr, grad_clip=grad_clip,
                 progress=progress, callback=callback if ddp.is_main else None, ddp=ddp, dev=dev,
                 ckpt_dir=ckpt_dir)


def _make_step(state: TrainState, diffusion: GaussianDiffusion, data: torch.Tensor, *, batch_size: int,
               loss_kind: LossKind, amp: AmpKind | None, compile: bool, grad_clip: float | None,
               ddp: distributed.DistInfo, t_sampler: ImportanceSampler | None = None) -> Callable[[], torch.Tensor]:
    """One optimizer step as a closure: Algorithm 1's lines 2–5 for a batch; returns the loss (on the device)."""
    dev = data.device
    if ddp.enabled:
        distributed.check_same_step(state.step, dev)
        wrapped = distributed.wrap(state.model, dev)
        forward = torch.compile(wrapped) if compile else wrapped
        share = batch_size // ddp.world_size
        rank_slice = slice(ddp.rank * share, (ddp.rank + 1) * share)
    else:
        forward = torch.compile(state.model) if compile else state.model
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    opt, params = state.optimizer, state.params

    def step() -> torch.Tensor:
        x0 = data[state.next_indices(batch_size)]
        t = noise = None
        if ddp.enabled:
            # The global batch's t and ε, then this rank's slice: sample i of a step gets the
            # same numbers at any world size.
            t, noise = diffusion.draw_t_and_noise(x0.shape, state.generator, dev, x0.dtype)
            x0, t, noise = x0[rank_slice], t[rank_slice], noise[rank_slice]
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = diffusion.training_losses(forward, x0, kind=loss_kind, t=t, noise=noise,
                                             generator=state.generator, check_inputs=False,
                                             t_sampler=t_sampler)["loss"].float().mean()
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return loss.detach()

    if compile and not ddp.enabled and autocast_dtype is None and loss_kind == "simple":
        from .step import make_compiled_step  # the whole step compiled: forward, backward, AdamW

        return make_compiled_step(state, diffusion, data, batch_size=batch_size, grad_clip=grad_clip)
    return step


def _loop(state: TrainState, step_fn: Callable[[], torch.Tensor], save: Callable[[], None], *, steps: int | None,
          seconds: float | None, ema_decay: float, log_every: int, checkpoint_every: int, saved_step: int,
          lr: float, grad_clip: float | None, progress: bool, callback: Callable | None, ddp: distributed.DistInfo, dev: torch.device,
          ckpt_dir: Path | None) -> TrainResult:
    """Repeat ``step_fn`` until the budget is spent or a stop is asked for; report and checkpoint."""
    bar = Progress(total=steps, initial=state.step, enabled=progress, seconds=seconds)
    losses: list[tuple[int, float]] = []
    running = torch.zeros((), device=dev)
    since_log, start_step = 0, state.step
    t_start = time.perf_counter()
    deadline = t_start + seconds if seconds is not None else math.inf
    interrupted = False

    def save_once() -> None:  # e.g. no final save right after a periodic one
        nonlocal saved_step
        if saved_step != state.step:
            saved_step = state.step
            save()

    try:
        with distributed.StopFlag(sigterm=True) as flag:
            while (steps is None or state.step < steps) and (ddp.enabled or time.perf_counter() < deadline):
                running += step_fn()
                state.step += 1
                state.update_ema(ema_decay)
                since_log += 1
                stop_all = False
                if since_log == log_every or state.step == steps:
                    total, stop_all = distributed.agree(running, flag, time.perf_counter() >= deadline, ddp)
                    mean_loss = total / since_log  # the one host sync
                    if not math.isfinite(mean_loss):
                        # No save here: it would replace the last good checkpoint with NaN weights.
                        raise FloatingPointError(f"the loss became {mean_loss} at step {state.step}"
                                                 f"{guards.kept(ckpt_dir, saved_step)}; {guards.divergence_hint(lr, grad_clip)}")
                    losses.append((state.step, mean_loss))
                    bar.update(since_log, mean_loss)
                    running.zero_()
                    since_log = 0
                    if callback is not None:
                        callback("log", state.step, {"loss": mean_loss})
                if state.step % checkpoint_every == 0:
                    save_once()
                if (stop_all if ddp.enabled else flag.stop):
                    interrupted = flag.stop
                    break
            if since_log:
                tail = float(running) / since_log
                if not math.isfinite(tail):
                    raise FloatingPointError(f"the loss became {tail} by step {state.step}"
                                             f"{guards.kept(ckpt_dir, saved_step)}; {guards.divergence_hint(lr, grad_clip)}")
                losses.append((state.step, tail))
                bar.update(since_log)
            save_once()
    finally:
        bar.close()
    elapsed = time.perf_counter() - t_start
    done = state.step - start_step
    return TrainResult(model=state.model, ema_model=state.ema, steps=state.step, seconds=elapsed,
                       steps_per_second=done / elapsed if elapsed > 0 else float("nan"), losses=losses,
                       interrupted=interrupted, checkpoint_dir=ckpt_dir, device=dev,
                       stop_signal=flag.signum if interrupted else None)
