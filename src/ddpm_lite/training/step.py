"""The train step: Algorithm 1's lines 2–5 for one batch, compiled with ``torch.compile`` or not.

One step, for every loss: the loop draws the batch, t (uniform, or from the importance
sampler) and ε from the run's one generator, the diffusion's :meth:`~ddpm_lite.GaussianDiffusion.loss_terms`
gives the per-sample loss, the optimizer takes the step, and the loop then feeds the bound's
terms to the importance sampler.  The draws stay eager and in a fixed order (batch, t, ε), so
a compiled run sees the same numbers as an eager one, and checkpoints, resumes and seeds mean
the same thing.

``compile=True`` compiles the loss (forward *and* backward: AOTAutograd traces both) and the
clipping plus optimizer update: on a CPU the 2-D MLP's step is ~60 small operations, each
10–50 µs of dispatch around a few µs of arithmetic, and fused kernels make it a few calls.
If compiling fails (no C++ compiler, an unsupported platform), the step warns once and runs
eagerly from then on: a missing toolchain never stops training.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ..diffusion import GaussianDiffusion
from ..plumbing import randn
from . import distributed
from .config import AmpKind, TrainConfig
from .state import TrainState

__all__ = ["make_step", "compile_available"]


def compile_available() -> bool:
    """Whether this torch has ``torch.compile`` at all (the C++ toolchain is found only when used)."""
    return hasattr(torch, "compile") and hasattr(torch, "_dynamo")


def _draws(state: TrainState, diffusion: GaussianDiffusion, x0: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(t, weights 1/(T p_t) or None, ε) of a global batch: t first, then ε, from the run's generator."""
    sampler = state.t_sampler
    if sampler is None:
        t, noise = diffusion.draw_t_and_noise(x0.shape, state.generator, x0.device, x0.dtype)
        return t, None, noise
    t, weight = sampler.draw(x0.shape[0], state.generator, x0.device)
    return t, weight, randn(x0.shape, state.generator, x0.device, x0.dtype)


class _Compiled:
    """``fn`` compiled on first use, and ``fn`` itself from the first compiler failure on."""

    def __init__(self, fn: Callable, enabled: bool) -> None:
        self.fn, self.compiled = fn, None
        if enabled and not compile_available():
            warnings.warn("torch.compile is not available in this torch; training with the eager step.", stacklevel=3)
        elif enabled:
            self.compiled = torch.compile(fn, dynamic=False)

    def fail(self, err: Exception) -> None:
        self.compiled = None
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); training with the eager step.",
                      stacklevel=3)


def make_step(state: TrainState, diffusion: GaussianDiffusion, data: torch.Tensor, config: TrainConfig, *,
              amp: AmpKind | None = None, compile: bool = False) -> Callable[[], torch.Tensor]:
    """One optimizer step as a closure ``step() -> loss`` (a 0-d tensor on the device, not synchronised).

    Under torchrun (a process group of more than one) every rank draws the global batch's
    indices, t and ε and keeps its slice, so sample i of a step gets the same numbers at any
    world size; the model is wrapped in DistributedDataParallel.
    """
    ddp, dev = distributed.current(), data.device
    model, rank_slice = state.model, slice(None)
    if ddp.enabled:
        distributed.check_same_step(state.step, dev)
        model = distributed.wrap(state.model, dev)
        share = config.batch_size // ddp.world_size
        rank_slice = slice(ddp.rank * share, (ddp.rank + 1) * share)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    opt, params, grad_clip = state.optimizer, state.params, config.grad_clip

    def loss_of(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, weight: torch.Tensor | None):
        with torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = diffusion.loss_terms(model, x0, t, noise, config.loss_kind)
            loss = out["loss"] if weight is None else out["loss"] * weight
            return loss.float().mean(), out.get("vb")

    def update() -> None:
        if scaler is not None:
            scaler.unscale_(opt)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    # Compiling the fp16 scaler's bookkeeping gains nothing; the loss is still compiled.
    loss_fn, update_fn = _Compiled(loss_of, compile), _Compiled(update, compile and scaler is None)

    def run(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, weight: torch.Tensor | None):
        opt.zero_grad(set_to_none=True)
        loss, vb = (loss_fn.compiled or loss_fn.fn)(x0, t, noise, weight)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        (update_fn.compiled or update_fn.fn)()
        return loss, vb

    def step() -> torch.Tensor:
        x0 = data[state.next_indices(config.batch_size)]
        t, weight, noise = _draws(state, diffusion, x0)
        x0, t, noise = x0[rank_slice], t[rank_slice], noise[rank_slice]
        weight = None if weight is None else weight[rank_slice]
        try:
            loss, vb = run(x0, t, noise, weight)
        except Exception as err:  # noqa: BLE001 — a compiler failure: fall back, do not stop training
            if not (loss_fn.compiled or update_fn.compiled) or _stepped(state):
                raise  # not the compiler's, or the update went through: a rerun would apply it twice
            loss_fn.fail(err)
            update_fn.compiled = None
            loss, vb = run(x0, t, noise, weight)
        if state.t_sampler is not None:  # the loop, not the loss, keeps the sampler's history
            state.t_sampler.update(t, vb.detach() / diffusion.T)
        return loss.detach()

    return step


def _stepped(state: TrainState) -> bool:
    """Whether the optimizer has taken more steps than the run has counted (an update went through)."""
    steps = [s["step"] for s in state.optimizer.state.values() if "step" in s]
    return bool(steps) and int(steps[0]) > state.step
