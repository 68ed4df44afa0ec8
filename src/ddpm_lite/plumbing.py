"""Torch plumbing every other module needs: devices, dtypes, seeded noise, the ε-model protocol.

This is the bottom floor of the library: it imports torch and nothing of ours.

The ε-model protocol used throughout::

    eps_model(xt: Tensor(batch, ...), t: LongTensor(batch,)) -> Tensor shaped like xt

where ``t`` holds the paper's timesteps 1..T.  A model with a learned variance returns
twice the channels (see :mod:`ddpm_lite.diffusion`); the diffusion splits them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["EpsModel", "resolve_device", "resolve_dtype", "first_param", "randn", "NoiseBuffer", "check_eps_model",
           "check_generator", "check_model_output"]

#: ``eps_model(xt, t) -> ε̂`` with t the paper's timesteps 1..T, shape (batch,).
EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Device types we can run on; others (meta, xpu, ipu, …) are refused by name.
_SUPPORTED_DEVICE_TYPES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def first_param(module: object) -> torch.Tensor | None:
    """The first floating-point parameter of ``module`` (None for a plain function)."""
    if isinstance(module, torch.nn.Module):
        for p in module.parameters():
            if p.is_floating_point():
                return p
    return None


def resolve_device(device: torch.device | str | None = "auto", model: object = None) -> torch.device:
    """Turn a device request into a ``torch.device`` this machine has.

    * ``None`` → the device of ``model``'s first parameter (CPU for a plain function);
    * ``"auto"`` → CUDA if available, then Apple MPS, then CPU;
    * anything else → ``torch.device(device)``, refused with a ValueError when it names a
      device type we do not support or one this machine lacks (e.g. ``"cuda"`` without CUDA).
    """
    if device is None:
        param = first_param(model)
        return param.device if param is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got device={device!r}.") from None
    if dev.type not in _SUPPORTED_DEVICE_TYPES:
        raise ValueError(f"device={str(dev)!r} is not supported; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(dev)!r} was requested but CUDA is not available here; use device='auto' or 'cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={str(dev)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device={str(dev)!r} was requested but MPS is not available here; use device='auto' or 'cpu'.")
    return dev


def resolve_dtype(dtype: torch.dtype | None, model: object = None) -> torch.dtype:
    """``None`` → the dtype of ``model``'s first parameter (torch's default for a plain function)."""
    if dtype is None:
        param = first_param(model)
        return param.dtype if param is not None else torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float32, got dtype={dtype!r}.")
    return dtype


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str,
          dtype: torch.dtype) -> torch.Tensor:
    """Standard normal noise from ``generator``, drawn on the generator's own device.

    A CPU generator can thus drive sampling on a GPU (the draw is copied over), and a
    seed gives the same numbers whatever device the computation runs on.
    """
    if generator is None or generator.device == torch.device(device):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)


class NoiseBuffer:
    """Fills one reused buffer with N(0, I) per call; copies across devices when the generator lives elsewhere."""

    def __init__(self, like: torch.Tensor, generator: torch.Generator | None) -> None:
        self.generator = generator
        self.same_device = generator is None or generator.device == like.device
        self.buf = torch.empty_like(like)

    def __call__(self) -> torch.Tensor:
        if self.same_device:
            return self.buf.normal_(generator=self.generator)
        return randn(self.buf.shape, self.generator, self.buf.device, self.buf.dtype)


def check_eps_model(eps_model: object) -> None:
    """Raise ValueError unless ``eps_model`` can be called as ``eps_model(xt, t)``."""
    if not callable(eps_model):
        raise ValueError(f"eps_model must be callable as eps_model(xt, t), got {type(eps_model).__name__}.")


def check_generator(generator: object) -> None:
    """Raise ValueError unless ``generator`` is a ``torch.Generator`` or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")


def check_model_output(out: object, xt: torch.Tensor) -> None:
    """Raise ValueError unless ``eps_model(xt, t)`` returned a tensor shaped like ``xt``."""
    if not isinstance(out, torch.Tensor) or out.shape != xt.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"eps_model(xt, t) must return a tensor shaped like xt {tuple(xt.shape)}, got {got}.")
