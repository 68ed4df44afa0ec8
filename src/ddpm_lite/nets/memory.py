"""Sizes known before work: the memory a batch and a model need, estimated without allocating.

A folder of 1024×1024 photos with no ``--image-size`` asks the U-Net for attention over
65 536 positions per image; at batch 128 that is terabytes, and torch finds out only when
it tries to allocate them.  :func:`forward_bytes` runs the model once on torch's ``meta``
device (shapes only, nothing allocated, well under a second) and adds up the size of every
new tensor each operation returns (views and in-place results excluded).  For a training
step this tracks the real peak: estimate (activations + 5× the parameters: weights,
gradients, two Adam moments, EMA) against the growth of ``ru_maxrss`` over one step on CPU,
default U-Net: 8×8 gray, batch 128: 0.024 / 0.037 GB; 32×32 RGB, batch 32: 0.45 / 0.41 GB;
64×64 RGB, batch 8: 0.46 / 0.40 GB (``tests/test_memory.py`` re-measures one of them).
Sampling keeps no graph, so its peak is a few of the largest
single outputs rather than their sum.

:func:`check_fits` compares the estimate with the memory the device has free and refuses
with the numbers and the setting to change.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["MemoryEstimateError", "forward_bytes", "meta_copy", "training_bytes", "sampling_bytes",
           "available_bytes", "check_fits", "gb"]


class MemoryEstimateError(ValueError):
    """The work asked for needs more memory than the device has."""


def gb(n: float) -> str:
    """Bytes as a short human figure (GB with two significant digits, or MB)."""
    if n >= 1e10:
        return f"{n / 1e9:,.0f} GB"
    return f"{n / 1e9:.2g} GB" if n >= 1e8 else f"{n / 1e6:.2g} MB"


def meta_copy(model: nn.Module) -> nn.Module:
    """The same architecture on the ``meta`` device (no memory), rebuilt from ``model.config``."""
    from .build import build_model

    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"{type(model).__name__} has no config dict to rebuild it from")
    with torch.device("meta"):
        model = build_model(config)
    # torch.from_numpy ignores the default device, so a buffer made from a numpy table (the
    # level model's ᾱ_t) would stay on the CPU; .to() moves those few numbers too.
    return model.to("meta")


def forward_bytes(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> tuple[int, int]:
    """(sum, largest) of the bytes every operation returns in one forward pass at ``shape``.

    ``model`` must live on the meta device (see :func:`meta_copy`); the input is a meta
    tensor of ``shape`` and the timesteps a meta tensor of ``shape[0]`` longs.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    sizes: list[int] = []

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None):  # noqa: ANN204
            out = func(*args, **(kwargs or {}))
            # A view or an in-place result (its schema says it aliases an input) takes no new memory.
            if any(r.alias_info is not None for r in func._schema.returns):
                return out
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(o, torch.Tensor):
                    sizes.append(o.numel() * o.element_size())
            return out

    x = torch.empty(shape, dtype=dtype, device="meta")
    # A continuous-time model (ddpm_lite.continuous.ContinuousModel) takes γ as floats, not steps.
    t = torch.ones(shape[0], dtype=dtype if getattr(model, "takes_gamma", False) else torch.long, device="meta")
    with torch.no_grad(), _Count():
        model(x, t)
    return sum(sizes), max(sizes, default=0)


def _param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def training_bytes(model: nn.Module, batch_shape: tuple[int, ...], data_bytes: int = 0) -> dict[str, int]:
    """Estimated bytes of one training step: activations, model state (×5: weights, gradients,
    two Adam moments, EMA) and the data set held in memory; ``total`` adds them up."""
    acts, _ = forward_bytes(model, batch_shape)
    state = 5 * _param_bytes(model)
    return {"activations": acts, "model": state, "data": int(data_bytes), "total": acts + state + int(data_bytes)}


def sampling_bytes(model: nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    """Estimated peak bytes of sampling ``shape`` at once (no graph kept): the state, the noise
    and the output (4 copies of ``shape``), plus the largest operation's output 3 times over."""
    _, largest = forward_bytes(model, shape)
    n = 1
    for s in shape:
        n *= int(s)
    acts = 3 * largest + 4 * 4 * n
    return {"activations": acts, "model": _param_bytes(model), "data": 0, "total": acts + _param_bytes(model)}


def available_bytes(device: torch.device) -> int | None:
    """Memory free for this process on ``device`` now (None if the platform does not say)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        return int(recommended()) if recommended is not None else None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(need: dict[str, int], device: torch.device, *, what: str, fix: str,
               available: int | None = None) -> None:
    """Raise :class:`MemoryEstimateError` when ``need["total"]`` exceeds the free memory.

    ``what`` describes the work ("training on 4 images of 3x1024x1024 at --batch-size 128"),
    ``fix`` says which setting to change; the message carries the estimate's parts.
    """
    free = available_bytes(device) if available is None else available
    if free is None or need["total"] <= free:
        return
    parts = ", ".join(f"{k} {gb(v)}" for k, v in need.items() if k != "total" and v)
    raise MemoryEstimateError(f"{what} needs about {gb(need['total'])} ({parts}), but {device} has "
                              f"{gb(free)} free; {fix}.")
