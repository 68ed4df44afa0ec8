"""The training loop: AdamW on L_simple, an EMA of the weights, resumable checkpoints.

Per step: pick a batch by index from the dataset (kept on the device), draw t and ε
from one seeded generator, take the loss of :meth:`GaussianDiffusion.training_losses`,
clip the gradient norm, step a fused AdamW, and move the EMA towards the weights with
one ``torch._foreach_lerp_``.  Nothing in the step synchronises with the host except
every ``log_every`` steps, when the running loss is read for the progress bar.

Everything random (batch order, t, ε) comes from one ``torch.Generator`` whose state is
saved in the checkpoint with the data order, so on a CPU 10 steps + resume + 10 steps
gives bit-for-bit the weights of 20 uninterrupted steps.

Under ``torchrun`` (a process group initialised, see :mod:`ddpm_lite.distributed`) the
same loop runs on every rank with the model wrapped in DistributedDataParallel: each rank
draws the global batch's indices, t and ε from the shared seed and keeps its own slice,
so the run does not depend on the number of processes; rank 0 alone logs and writes
checkpoints.  A plain single process never touches that code path.
"""

from __future__ import annotations

import copy
import hashlib
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, config_mismatches, has_checkpoint, load_checkpoint, save_checkpoint
from . import distributed
from .diffusion import GaussianDiffusion
from .sampling import randn

__all__ = ["train", "TrainResult", "resolve_device", "diffusion_config", "ema_decay_at"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, then Apple MPS, then CPU; otherwise ``torch.device(device)``.

    Raises ValueError for an unknown device string or a device this machine lacks.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(dev)!r} was requested but CUDA is not available here; use device='auto' or 'cpu'.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={str(dev)!r} was requested but MPS is not available here; use device='auto' or 'cpu'.")
    return dev


def diffusion_config(diffusion: GaussianDiffusion) -> dict:
    """What identifies a diffusion process: schedule name, T, a hash of the β's, σ² choice, K."""
    betas = np.ascontiguousarray(diffusion.schedule.betas, dtype=np.float64)
    return {
        "schedule": diffusion.schedule.name,
        "T": int(diffusion.T),
        "betas_sha256": hashlib.sha256(betas.tobytes()).hexdigest()[:16],
        "variance": getattr(diffusion, "variance", "beta"),
        "num_levels": getattr(diffusion, "num_levels", None),
    }


def ema_decay_at(step: int, ema_decay: float) -> float:
    """EMA decay used after optimizer step ``step`` (1-based): min(ema_decay, (1 + step)/(10 + step)).

    The warm-up keeps the average from being dominated by the random initial weights in
    short CPU runs: after 100 steps it averages over roughly the last 10 % of them.
    """
    return min(ema_decay, (1.0 + step) / (10.0 + step))


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


class _StopFlag:
    """Turns the first Ctrl-C (SIGINT) into a flag the loop checks between steps.

    A KeyboardInterrupt raised in the middle of ``optimizer.step()`` could leave the
    weights updated but the EMA not; stopping at a step boundary keeps the saved state
    exactly that of an uninterrupted run.  A second Ctrl-C interrupts at once.

    ``sigterm=True`` (used under torchrun) treats SIGTERM the same way: when Ctrl-C reaches
    the torchrun launcher it passes SIGTERM on to the workers, which should then save too.
    """

    def __init__(self, sigterm: bool = False) -> None:
        self.stop = False
        self._signals = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)
        self._previous: dict = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _check_positive(name: str, value: object, integer: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok or not math.isfinite(float(value)) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}, got {name}={value!r}.")


def _adamw(params: list[torch.Tensor], lr: float, weight_decay: float, dev: torch.device) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where torch has one for this device (one call per step
    instead of a dozen per parameter), else the multi-tensor ``foreach`` version."""
    if dev.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch: no fused kernel on this device
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


def _data_fingerprint(data: torch.Tensor) -> dict:
    h = hashlib.sha256(data.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return {"shape": list(data.shape), "sha256": h}


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
    amp: str | None = None,
    compile: bool = False,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    resume: bool = True,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 100,
    loss_kind: str = "simple",
    metadata: dict | None = None,
    callback: Callable[[str, int, dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` (an ε_θ) on ``data`` for a budget of ``steps`` and/or ``seconds``.

    Parameters
    ----------
    model:
        Any ``nn.Module`` following the ``eps_model`` protocol.  It must carry a ``config``
        dict (every :mod:`ddpm_lite.models` model does) when checkpoints are written.
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
        Samples per step.  Batches run through shuffled passes over the data (one seeded
        permutation per pass).
    lr, weight_decay:
        AdamW learning rate (constant) and decoupled weight decay.
    ema_decay:
        Decay of the weight EMA, warmed up as in :func:`ema_decay_at`.
    grad_clip:
        Maximum global gradient norm, or None for no clipping.
    device:
        ``"auto"`` (CUDA → MPS → CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    amp:
        ``None`` (full precision), ``"bf16"`` or ``"fp16"``: autocast on CUDA only (fp16 with a
        gradient scaler).  Elsewhere a warning is issued and full precision used.
    compile:
        Run the training forward pass through ``torch.compile``.
    checkpoint_dir:
        Where to write checkpoints (see :mod:`ddpm_lite.checkpoint`); None writes none.
        With ``resume=True`` an existing checkpoint there is loaded and training continues
        from it; its configuration must match or a ``CheckpointError`` is raised.
    checkpoint_every:
        Save every this many steps (and always at the end and on Ctrl-C).
    seed:
        Seeds the one generator that draws batch order, t and ε.
    progress:
        Show a tqdm bar (``tqdm.auto``: a widget in notebooks, text in a terminal).
    log_every:
        Read the running loss (a host sync) every this many steps.
    loss_kind:
        ``"simple"``, ``"vb"`` or ``"hybrid"`` (see :meth:`GaussianDiffusion.training_losses`).
    metadata:
        Free-form JSON-able dict stored in the checkpoint (e.g. the dataset name).
    callback:
        Called as ``callback(event, step, info)`` on rank 0: ``("log", step, {"loss": mean})``
        every ``log_every`` steps and ``("checkpoint", step, {"dir": path})`` right after a
        checkpoint is complete on disk (so a reported checkpoint survives any later crash).

    Ctrl-C stops after the current step, saves a checkpoint (if ``checkpoint_dir``) and
    returns with ``interrupted=True``.

    Data parallel: when a ``torch.distributed`` process group of more than one process is
    initialised (``python -m ddpm_lite train`` under torchrun does it), ``batch_size`` is the
    *global* batch and must be divisible by the world size; ``device="auto"``/``"cuda"``
    mean ``cuda:LOCAL_RANK``.  The budget and Ctrl-C (or SIGTERM) are then agreed on by all
    ranks every ``log_every`` steps, so a rank never leaves while the others wait for it.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(diffusion, GaussianDiffusion):
        raise ValueError(f"diffusion must be a ddpm_lite.GaussianDiffusion, got {type(diffusion).__name__}.")
    if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.dim() < 2 or data.shape[0] < 1:
        desc = f"shape {tuple(data.shape)}, dtype {data.dtype}" if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a non-empty float tensor of shape (N, ...), got {desc}.")
    if steps is None and seconds is None:
        raise ValueError("give a budget: steps=N and/or seconds=S (both None now).")
    _check_positive("steps", steps, integer=True, allow_none=True)
    _check_positive("seconds", seconds, allow_none=True)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("lr", lr)
    _check_positive("checkpoint_every", checkpoint_every, integer=True)
    _check_positive("log_every", log_every, integer=True)
    if grad_clip is not None:
        _check_positive("grad_clip", grad_clip)
    if not (isinstance(ema_decay, (int, float)) and 0.0 <= ema_decay < 1.0):
        raise ValueError(f"ema_decay must lie in [0, 1), got ema_decay={ema_decay!r}.")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a number >= 0, got weight_decay={weight_decay!r}.")
    if amp not in (None, "bf16", "fp16"):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got amp={amp!r}.")
    if loss_kind not in ("simple", "vb", "hybrid"):
        raise ValueError(f"loss_kind must be 'simple', 'vb' or 'hybrid', got loss_kind={loss_kind!r}.")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(event, step, info) or None, got {callback!r}.")
    if checkpoint_dir is not None and not isinstance(getattr(model, "config", None), dict):
        raise ValueError("checkpoints need model.config (a dict describing the model); ddpm_lite.models provide it.")

    ddp = distributed.current()
    parallel = ddp.enabled  # a plain bool: tested in the per-step code
    if parallel:
        if batch_size % ddp.world_size:
            raise ValueError(f"batch_size must be divisible by the world size {ddp.world_size} under "
                             f"torchrun, got batch_size={batch_size}.")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = resolve_device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", ddp.local_rank)
        if progress and not ddp.is_main:
            progress = False
    else:
        dev = resolve_device(device)
    if amp is not None and dev.type != "cuda":
        warnings.warn(f"amp={amp!r} is only used on CUDA; training in full precision on {dev}.", stacklevel=2)
        amp = None
    model = model.to(dev)
    model.train()
    data = data.to(dev, torch.float32)
    # Check the whole dataset once, so the step can skip the per-batch checks (each a host sync).
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data contains NaN or inf; clean or drop those samples first.")
    if loss_kind != "simple" and hasattr(diffusion, "_check_on_grid"):
        diffusion._check_on_grid(data)  # the decoder term needs data on the K-level grid
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _adamw(params, lr, weight_decay, dev)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    ema_params = [p for p, q in zip(ema.parameters(), model.parameters()) if q.requires_grad]
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    n = data.shape[0]
    order = torch.randperm(n, generator=gen, device=dev)
    cursor, step = 0, 0

    config = {
        "model": getattr(model, "config", None),
        "diffusion": diffusion_config(diffusion),
        "train": {"batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "ema_decay": ema_decay,
                  "grad_clip": grad_clip, "loss_kind": loss_kind, "seed": int(seed)},
        "data": _data_fingerprint(data),
    }
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None and ckpt_dir.exists() and not ckpt_dir.is_dir():
        raise ValueError(f"checkpoint_dir {str(ckpt_dir)!r} is a file, not a directory.")
    if ckpt_dir is not None and resume and has_checkpoint(ckpt_dir):
        state = load_checkpoint(ckpt_dir)
        diffs = config_mismatches(state["config"], config)
        if diffs:
            raise CheckpointError(
                f"the checkpoint in {str(ckpt_dir)!r} was made with a different configuration ("
                + "; ".join(diffs[:5]) + "). Use a new directory, or resume=False to start over."
            )
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        order = state["data_order"].to(dev)
        cursor, step = state["data_cursor"], state["step"]
        metadata = {**state.get("metadata", {}), **(metadata or {})}

    saved_step = step if ckpt_dir is not None and resume and has_checkpoint(ckpt_dir) else -1

    def save() -> None:
        nonlocal saved_step
        if ckpt_dir is None or saved_step == step:  # e.g. the final save right after a periodic one
            return
        saved_step = step
        if ddp.is_main:  # every rank holds the same state; one writer
            save_checkpoint(ckpt_dir, model=model, ema=ema, optimizer=opt, step=step, config=config, generator=gen,
                            data_order=order, data_cursor=cursor, metadata=metadata)
            if callback is not None:
                callback("checkpoint", step, {"dir": ckpt_dir})
        if parallel:
            # No rank runs ahead (or exits) while rank 0 writes; a failed write fails everyone here.
            torch.distributed.barrier(device_ids=[dev.index] if dev.type == "cuda" else None)

    if parallel:
        from torch.nn.parallel import DistributedDataParallel

        # Every rank must start from the same step (e.g. nodes without a shared --out would not).
        steps_seen = torch.tensor([step, -step], device=dev)
        torch.distributed.all_reduce(steps_seen, op=torch.distributed.ReduceOp.MAX)
        if int(steps_seen[0]) != -int(steps_seen[1]):
            raise CheckpointError(f"the ranks resumed from different steps ({-int(steps_seen[1])}..{int(steps_seen[0])}); "
                                  "checkpoint_dir must be one directory that every node can read.")

        # DDP broadcasts rank 0's weights now (all ranks loaded the same checkpoint anyway)
        # and averages the gradients during backward.
        wrapped = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        forward = torch.compile(wrapped) if compile else wrapped
        rank_slice = slice(ddp.rank * (batch_size // ddp.world_size), (ddp.rank + 1) * (batch_size // ddp.world_size))
    else:
        forward = torch.compile(model) if compile else model
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    def one_step() -> torch.Tensor:
        nonlocal order, cursor
        if cursor + batch_size > order.numel():
            # Finish this pass with what is left and start the next seeded permutation.
            order = torch.cat([order[cursor:], torch.randperm(n, generator=gen, device=dev)])
            cursor = 0
            while order.numel() < batch_size:  # datasets smaller than one batch
                order = torch.cat([order, torch.randperm(n, generator=gen, device=dev)])
        x0 = data[order[cursor:cursor + batch_size]]
        cursor += batch_size
        if parallel:
            # The global batch's t and ε, drawn in the order training_losses draws them, then
            # this rank's slice: sample i of a step gets the same numbers at any world size.
            t = diffusion._random_t(batch_size, dev, gen)
            noise = randn(x0.shape, gen, dev, x0.dtype)
            x0, t, noise = x0[rank_slice], t[rank_slice], noise[rank_slice]
        else:
            t = noise = None
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = diffusion.training_losses(forward, x0, kind=loss_kind, t=t, noise=noise, generator=gen,
                                               check_inputs=False)["loss"].float().mean()
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

    target = steps if steps is not None else None
    from tqdm.auto import tqdm

    bar = tqdm(total=target, initial=step if target else 0, disable=not progress, unit="step",
               desc="training", dynamic_ncols=True, leave=True)
    losses: list[tuple[int, float]] = []
    running = torch.zeros((), device=dev)
    since_log, start_step = 0, step
    t_start = time.perf_counter()
    deadline = t_start + seconds if seconds is not None else math.inf
    interrupted = False
    stop_all = False  # under torchrun: all ranks agreed to stop (budget or signal)
    try:
        with _StopFlag(sigterm=parallel) as flag:
            while (target is None or step < target) and (parallel or time.perf_counter() < deadline):
                running += one_step()
                step += 1
                with torch.no_grad():
                    torch._foreach_lerp_(ema_params, params, 1.0 - ema_decay_at(step, ema_decay))
                since_log += 1
                if since_log == log_every or step == target:
                    if parallel:
                        # One collective: the summed loss, who was signalled, who ran out of time.
                        votes = torch.tensor([float(flag.stop), float(time.perf_counter() >= deadline)], device=dev)
                        buf = torch.cat([running.reshape(1), votes])
                        torch.distributed.all_reduce(buf)
                        mean_loss = float(buf[0]) / (since_log * ddp.world_size)
                        flag.stop = flag.stop or bool(buf[1] > 0)
                        stop_all = bool(buf[1] > 0) or bool(buf[2] > 0)
                    else:
                        mean_loss = float(running) / since_log  # the one host sync
                    if not math.isfinite(mean_loss):
                        # No save here: it would replace the last good checkpoint with NaN weights.
                        raise FloatingPointError(
                            f"the loss became {mean_loss} at step {step}; lower lr (now {lr}) or enable grad_clip."
                        )
                    losses.append((step, mean_loss))
                    bar.update(since_log)
                    bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                    running.zero_()
                    since_log = 0
                    if callback is not None and ddp.is_main:
                        callback("log", step, {"loss": mean_loss})
                if ckpt_dir is not None and step % checkpoint_every == 0:
                    save()
                if parallel:
                    if stop_all:
                        interrupted = flag.stop
                        break
                elif flag.stop:
                    interrupted = True
                    break
            if since_log:
                losses.append((step, float(running) / since_log))
                bar.update(since_log)
            save()
    finally:
        bar.close()
    elapsed = time.perf_counter() - t_start
    done = step - start_step
    return TrainResult(model=model, ema_model=ema, steps=step, seconds=elapsed,
                       steps_per_second=done / elapsed if elapsed > 0 else float("nan"), losses=losses,
                       interrupted=interrupted, checkpoint_dir=ckpt_dir, device=dev)
