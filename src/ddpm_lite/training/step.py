"""A compiled training step for small models on a CPU, where the step is dispatch-bound.

The 2-D MLP's step is ~60 small operations (gathers, SiLU and its backward, the AdamW
update of every tensor), each 10–50 µs of Python and dispatcher overhead around a few
microseconds of arithmetic.  ``torch.compile`` turns the loss's forward *and* backward
(AOTAutograd traces both) into a handful of fused C++ kernels, and the gradient clipping
plus the optimizer update into one more, so a step costs a few calls instead of dozens.

What stays eager, on purpose: the random draws (batch indices, t, ε) come from the run's
one ``torch.Generator`` in the same order as :meth:`GaussianDiffusion.training_losses`
draws them, so a compiled run sees the same numbers as an eager one and checkpoints,
resumes and seeds mean the same thing.  The optimizer is the run's own AdamW, so its
state is what the checkpoint saves.

If compiling fails (no C++ compiler, an unsupported platform or torch), the step warns
once and falls back to the eager step for the rest of the run: a missing toolchain never
stops training.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ..diffusion import GaussianDiffusion
from .state import TrainState

__all__ = ["make_compiled_step", "compile_available"]


def compile_available() -> bool:
    """Whether this torch has ``torch.compile`` at all (the C++ toolchain is found only when used)."""
    return hasattr(torch, "compile") and hasattr(torch, "_dynamo")


def _loss_fn(model: torch.nn.Module, diffusion: GaussianDiffusion) -> Callable:
    """L_simple of one batch, as a function of (x_0, t, ε) only: what torch.compile traces."""

    def loss(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        xt = diffusion._q_sample(x0, t, noise)
        eps = model(xt, t)
        # Mean over the batch of the per-sample mean over dimensions = the mean of everything.
        return (noise - eps).square().mean()

    return loss


def _update_fn(state: TrainState, grad_clip: float | None) -> Callable[[], None]:
    opt, params = state.optimizer, state.params

    def update() -> None:
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
        opt.step()

    return update


def make_compiled_step(state: TrainState, diffusion: GaussianDiffusion, data: torch.Tensor, *, batch_size: int,
                       grad_clip: float | None) -> Callable[[], torch.Tensor]:
    """One optimizer step (L_simple, clipping, AdamW) with the loss and the update compiled.

    Parameters
    ----------
    state:
        The run's :class:`TrainState` (model, optimizer, generator, data order).
    diffusion, data, batch_size, grad_clip:
        As in :func:`ddpm_lite.training.train`.

    Returns a closure ``step() -> loss`` (a 0-d tensor on the device, not synchronised),
    a drop-in for the eager step of :func:`ddpm_lite.training.train`.  The first call
    compiles (seconds to tens of seconds); from a compilation failure on, the same step
    runs eagerly.
    """
    loss_eager, update_eager = _loss_fn(state.model, diffusion), _update_fn(state, grad_clip)
    failed = not compile_available()
    if failed:
        warnings.warn("torch.compile is not available in this torch; training with the eager step.", stacklevel=2)
    else:
        loss_c = torch.compile(loss_eager, dynamic=False)
        update_c = torch.compile(update_eager, dynamic=False)

    def step() -> torch.Tensor:
        nonlocal failed
        # The draws of training_losses, in its order: the batch, then t, then ε.
        x0 = data[state.next_indices(batch_size)]
        t, noise = diffusion.draw_t_and_noise(x0.shape, state.generator, x0.device, x0.dtype)
        state.optimizer.zero_grad(set_to_none=True)
        if not failed:
            try:
                loss = loss_c(x0, t, noise)
                loss.backward()
                update_c()
                return loss.detach()
            except Exception as err:  # noqa: BLE001 — any compiler failure: fall back, do not stop training
                if _stepped(state):
                    raise  # the update went through: running the step again would apply it twice
                failed = True
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                              "training with the eager step.", stacklevel=2)
                state.optimizer.zero_grad(set_to_none=True)
        loss = loss_eager(x0, t, noise)
        loss.backward()
        update_eager()
        return loss.detach()

    return step


def _stepped(state: TrainState) -> bool:
    """Whether the optimizer has taken more steps than the run has counted (an update went through)."""
    steps = [s["step"] for s in state.optimizer.state.values() if "step" in s]
    return bool(steps) and int(steps[0]) > state.step
