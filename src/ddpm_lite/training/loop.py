"""The training loop: Algorithm 1 of Ho et al., an EMA of the weights, resumable checkpoints.

In parts a reader can hold:

* :class:`~ddpm_lite.training.config.TrainConfig` — what a run is (stored in its checkpoints);
* :class:`~ddpm_lite.training.state.TrainState` — everything that changes while training
  (weights, EMA, optimizer, the one seeded generator, the data order, the t-sampler's history);
* :class:`~ddpm_lite.training.run.Run` — the run directory: lock, restore, finite check, save;
* :func:`~ddpm_lite.training.step.make_step` — one optimizer step, compiled or not;
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
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from ..diffusion import GaussianDiffusion
from . import distributed
from .config import AMP_KINDS, AmpKind, LoopOptions, TrainConfig, resolve
from .progress import Progress
from .run import Run, check_data_range, divergence_hint, kept
from .state import TrainState, data_fingerprint, ema_decay_at
from .step import make_step
from .timesteps import ImportanceSampler

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import TrainOptions

__all__ = ["train", "TrainResult", "TrainConfig", "TrainState", "ema_decay_at", "AmpKind", "AMP_KINDS",
           "diffusion_config"]


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


def _check_inputs(model: object, diffusion: object, data: object, options: LoopOptions) -> None:
    """The checks of :func:`train` on its three positional arguments, each naming the argument."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if getattr(diffusion, "continuous", False):  # ddpm_lite.continuous: the model carries the schedule
        diffusion._check_model(model)
    elif not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a ddpm_lite.GaussianDiffusion or ContinuousDiffusion, "
                         f"got {type(diffusion).__name__}.")
    if hasattr(model, "check_schedule"):  # a model with ᾱ_t built in (ddpm_lite.nets.levels) must share the diffusion's
        model.check_schedule(diffusion.schedule)
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.dim() < 2 or data.shape[0] < 1:
        desc = f"shape {tuple(data.shape)}, dtype {data.dtype}" if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a non-empty float tensor of shape (N, ...), got {desc}.")
    if options.checkpoint_dir is not None and not isinstance(getattr(model, "config", None), dict):
        raise ValueError("checkpoints need model.config (a dict describing the model); ddpm_lite.nets provide it.")


def _prepare_data(data: torch.Tensor, diffusion: GaussianDiffusion, config: TrainConfig, dev: torch.device
                  ) -> torch.Tensor:
    """The dataset on the device, checked once, so the step can skip per-batch checks (each a host sync)."""
    data = data.to(dev, torch.float32)
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contains NaN or inf; clean or drop those samples first.")
    check_data_range(data, diffusion.num_levels)
    if config.loss_kind != "simple":
        diffusion.check_on_grid(data)  # the decoder term needs data on the K-level grid
    return data


def train(model: nn.Module, diffusion: GaussianDiffusion, data: torch.Tensor, config: TrainConfig | None = None,
          /, **options: Unpack[TrainOptions]) -> TrainResult:
    """Train ``model`` (an ε_θ) on ``data`` for a budget of ``steps`` and/or ``seconds``.

    The run's settings come as keywords (below) or as one :class:`TrainConfig` (``config``:
    batch_size, lr, weight_decay, ema_decay, grad_clip, loss_kind, seed, importance), which
    is what every checkpoint stores.  ``variance="learned"`` needs loss_kind "hybrid" or
    "vb" (L_simple gives v no gradient) and is refused otherwise.

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
        AdamW learning rate (constant within a call, default 1e-3) and decoupled weight decay (default 0).
    lr_scale:
        This call trains at ``lr_scale · lr`` (default 1; in (0, 1]).  The stored ``lr`` stays the
        run's, so a run trained in several calls may lower its rate from call to call, e.g. a
        cosine decay over the segments of a time budget (benchmarks/likelihood.py, ``--lr-decay``).
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
        Compile the train step with ``torch.compile`` (default False), for every loss: the
        loss's forward and backward and the AdamW update (:mod:`ddpm_lite.training.step`,
        with an eager fallback if compiling fails).
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
        An :class:`ddpm_lite.ImportanceSampler` to draw t for ``"vb"``/``"hybrid"`` (default
        None: uniform t; one process).  The loop draws t from it, weighs each sample's loss
        by 1/(T p_t) and feeds it the bound's terms; its history is saved with every
        checkpoint, so a resumed run continues as an uninterrupted one would.
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
    config, opts = resolve(config, options)
    _check_inputs(model, diffusion, data, opts)
    config.check_with(diffusion)
    ddp = distributed.current()
    dev = distributed.training_device(opts.device, ddp)
    if ddp.enabled and (config.batch_size % ddp.world_size or config.importance):
        raise ValueError(f"under torchrun batch_size must be divisible by the world size {ddp.world_size} (got "
                         f"{config.batch_size}) and t uniform (importance sampling needs one process).")
    if opts.amp is not None and dev.type != "cuda":
        warnings.warn(f"amp={opts.amp!r} is only used on CUDA; training in full precision on {dev}.", stacklevel=2)
        opts.amp = None
    model = model.to(dev).train()
    data = _prepare_data(data, diffusion, config, dev)
    stored = {"model": getattr(model, "config", None), "diffusion": diffusion.config(), "train": config.stored(),
              "data": data_fingerprint(data)}
    sampler = opts.t_sampler or (ImportanceSampler(diffusion.T) if config.importance else None)
    state = TrainState(model, data.shape[0], lr=config.lr, weight_decay=config.weight_decay, seed=config.seed,
                       device=dev, t_sampler=sampler)
    with Run(opts.checkpoint_dir, stored, opts.metadata, dev, opts.callback if ddp.is_main else None) as run:
        resumed = run.restore(state, opts.resume)
        for group in state.optimizer.param_groups:  # after restore: a checkpoint carries the last call's rate
            group["lr"] = config.lr * opts.lr_scale
        step_fn = make_step(state, diffusion, data, config, amp=opts.amp, compile=opts.compile)
        return _loop(state, step_fn, run, config, opts, saved_step=state.step if resumed else -1)


def _loop(state: TrainState, step_fn: Callable[[], torch.Tensor], run: Run, config: TrainConfig, opts: LoopOptions,
          saved_step: int) -> TrainResult:
    """Repeat ``step_fn`` until the budget is spent or a stop is asked for; report and checkpoint."""
    ddp, dev, steps = run.ddp, run.device, opts.steps
    callback = opts.callback if ddp.is_main else None
    bar = Progress(total=steps, initial=state.step, enabled=opts.progress and ddp.is_main, seconds=opts.seconds)
    losses: list[tuple[int, float]] = []
    running = torch.zeros((), device=dev)
    since_log, start_step = 0, state.step
    t_start = time.perf_counter()
    deadline = t_start + opts.seconds if opts.seconds is not None else math.inf
    interrupted = False

    def diverged(what: str) -> FloatingPointError:
        # No save here: it would replace the last good checkpoint with NaN weights.
        return FloatingPointError(f"the loss became {what} at step {state.step}{kept(run.path, saved_step)}; "
                                  f"{divergence_hint(config.lr, config.grad_clip)}")

    def save_once() -> None:  # e.g. no final save right after a periodic one
        nonlocal saved_step
        if saved_step != state.step:
            saved_step = state.step
            run.save(state, config.lr, config.grad_clip)

    try:
        with distributed.StopFlag(sigterm=True) as flag:
            while (steps is None or state.step < steps) and (ddp.enabled or time.perf_counter() < deadline):
                running += step_fn()
                state.step += 1
                state.update_ema(config.ema_decay)
                since_log += 1
                stop_all = False
                if since_log == opts.log_every or state.step == steps:
                    total, stop_all = distributed.agree(running, flag, time.perf_counter() >= deadline, ddp)
                    mean_loss = total / since_log  # the one host sync
                    if not math.isfinite(mean_loss):
                        raise diverged(str(mean_loss))
                    losses.append((state.step, mean_loss))
                    bar.update(since_log, mean_loss)
                    running.zero_()
                    since_log = 0
                    if callback is not None:
                        callback("log", state.step, {"loss": mean_loss})
                if state.step % opts.checkpoint_every == 0:
                    save_once()
                if (stop_all if ddp.enabled else flag.stop):
                    interrupted = flag.stop
                    break
            if since_log:
                tail = float(running) / since_log
                if not math.isfinite(tail):
                    raise diverged(str(tail))
                losses.append((state.step, tail))
                bar.update(since_log)
            save_once()
    finally:
        bar.close()
    elapsed = time.perf_counter() - t_start
    done = state.step - start_step
    return TrainResult(model=state.model, ema_model=state.ema, steps=state.step, seconds=elapsed,
                       steps_per_second=done / elapsed if elapsed > 0 else float("nan"), losses=losses,
                       interrupted=interrupted, checkpoint_dir=run.path, device=dev,
                       stop_signal=flag.signum if interrupted else None)
