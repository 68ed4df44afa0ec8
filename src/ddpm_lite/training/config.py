"""What a training run is: a typed, validated configuration, and the options of one call.

:class:`TrainConfig` is what a run trains with; its :meth:`~TrainConfig.stored` form goes into
every checkpoint, and a resumed run must match it.  :class:`LoopOptions` say how long this call
trains, where it saves, and how it reports; they may change from one call to the next.
:func:`resolve` turns the keyword arguments of :func:`ddpm_lite.train` into the two.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, TypedDict, get_args

import torch

from .. import checks
from ..diffusion import LOSS_KINDS, GaussianDiffusion, LossKind
from .timesteps import ImportanceSampler

__all__ = ["TrainConfig", "LoopOptions", "TrainOptions", "AmpKind", "AMP_KINDS", "MAX_BATCH_SIZE", "resolve"]

MAX_BATCH_SIZE = 2**20  #: largest batch accepted (10¹² would build 10¹² indices, i.e. hang, first)

#: Mixed-precision choices (used on CUDA only).
AmpKind = Literal["bf16", "fp16"]
AMP_KINDS: tuple[str, ...] = get_args(AmpKind)


@dataclass(frozen=True)
class TrainConfig:
    """The settings that make a run what it is (stored in its checkpoint; a resume must match).

    ``loss_kind`` is ``"simple"``, ``"vb"`` or ``"hybrid"`` (see
    :meth:`GaussianDiffusion.training_losses`); ``importance`` draws t from an
    :class:`~ddpm_lite.training.timesteps.ImportanceSampler` (vb and hybrid only), whose
    history is saved with every checkpoint.
    """

    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float | None = 1.0
    loss_kind: LossKind = "simple"
    seed: int = 0
    importance: bool = False

    def __post_init__(self) -> None:
        checks.integer("batch_size", self.batch_size, 1, MAX_BATCH_SIZE, hint="(split a larger batch over steps)")
        checks.number("lr", self.lr, 0.0, lo_open=True)
        checks.number("weight_decay", self.weight_decay, 0.0)
        checks.number("ema_decay", self.ema_decay, 0.0, 1.0, hi_open=True)
        checks.number("grad_clip", self.grad_clip, 0.0, lo_open=True, allow_none=True)
        checks.choice("loss_kind", self.loss_kind, LOSS_KINDS)
        checks.integer("seed", self.seed, 0, 2**63 - 1)
        if self.importance and self.loss_kind == "simple":
            raise ValueError("importance-sampled t (t_sampler=, --importance) needs loss_kind 'vb' or 'hybrid' "
                             "(--loss vb|hybrid): its probabilities follow L_{t-1}.")

    def check_with(self, diffusion: GaussianDiffusion) -> None:
        """Refuse a loss that cannot train what ``diffusion`` asks the model to learn."""
        if getattr(diffusion, "continuous", False):  # ddpm_lite.continuous names its own fixes
            diffusion.check_train_config(self.loss_kind, self.importance)
            return
        if diffusion.learned_variance and self.loss_kind == "simple":
            raise ValueError("variance='learned' trains v only through the bound, and L_simple gives v no gradient: "
                             "use loss_kind='hybrid' (--loss hybrid) or 'vb', or a fixed variance ('beta').")

    def stored(self) -> dict[str, Any]:
        """The JSON a checkpoint stores (``importance`` only when on, so older checkpoints still match)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "importance"}
        return {**out, "seed": int(self.seed), **({"importance": True} if self.importance else {})}


@dataclass
class LoopOptions:
    """How one call of :func:`ddpm_lite.train` runs: budget, device, run directory, reports."""

    steps: int | None = None
    seconds: float | None = None
    device: str | torch.device = "auto"
    amp: AmpKind | None = None
    compile: bool = False
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 1000
    resume: bool = True
    progress: bool = True
    log_every: int = 100
    metadata: dict | None = None
    callback: Callable[[str, int, dict], None] | None = None
    t_sampler: ImportanceSampler | None = None
    lr_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.steps is None and self.seconds is None:
            raise ValueError("give a budget: steps=N and/or seconds=S (both None now).")
        checks.integer("steps", self.steps, 1, allow_none=True)
        checks.number("seconds", self.seconds, 0.0, lo_open=True, allow_none=True)
        for name in ("checkpoint_every", "log_every"):
            checks.integer(name, getattr(self, name), 1)
        checks.choice("amp", self.amp, (*AMP_KINDS, None))
        checks.number("lr_scale", self.lr_scale, 0.0, 1.0, lo_open=True)
        if self.callback is not None and not callable(self.callback):
            raise ValueError(f"callback must be callable as callback(event, step, info) or None, got {self.callback!r}.")
        if self.t_sampler is not None and not isinstance(self.t_sampler, ImportanceSampler):
            raise ValueError(f"t_sampler must be a ddpm_lite.ImportanceSampler or None, got {type(self.t_sampler).__name__}.")
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
            if self.checkpoint_dir.exists() and not self.checkpoint_dir.is_dir():
                raise ValueError(f"checkpoint_dir {str(self.checkpoint_dir)!r} is a file, not a directory.")


class TrainOptions(TypedDict, total=False):
    """The keyword arguments of :func:`ddpm_lite.train`: the fields of :class:`TrainConfig` and :class:`LoopOptions`."""

    steps: int | None
    seconds: float | None
    batch_size: int
    lr: float
    weight_decay: float
    ema_decay: float
    grad_clip: float | None
    device: str | torch.device
    amp: AmpKind | None
    compile: bool
    checkpoint_dir: str | Path | None
    checkpoint_every: int
    resume: bool
    seed: int
    progress: bool
    log_every: int
    loss_kind: LossKind
    t_sampler: ImportanceSampler | None
    metadata: dict | None
    callback: Callable[[str, int, dict], None] | None
    lr_scale: float


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"importance"}
_LOOP_FIELDS = {f.name for f in dataclasses.fields(LoopOptions)}


def resolve(config: TrainConfig | None, options: dict[str, Any]) -> tuple[TrainConfig, LoopOptions]:
    """Split :func:`ddpm_lite.train`'s keywords into a checked (TrainConfig, LoopOptions).

    With ``config`` given, its fields may not be repeated as keywords (one source for each).
    """
    unknown = sorted(set(options) - _CONFIG_FIELDS - _LOOP_FIELDS)
    if unknown:
        raise TypeError(f"train() got unexpected keyword arguments {unknown}; it takes {sorted(_CONFIG_FIELDS | _LOOP_FIELDS)}.")
    given = {k: v for k, v in options.items() if k in _CONFIG_FIELDS}
    if config is not None and not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a ddpm_lite.training.TrainConfig, got {type(config).__name__}.")
    if config is not None and given:
        raise ValueError(f"give {sorted(given)} either in config or as keywords, not both.")
    loop = LoopOptions(**{k: v for k, v in options.items() if k in _LOOP_FIELDS})
    base = config or TrainConfig()
    return dataclasses.replace(base, **given, importance=base.importance or loop.t_sampler is not None), loop
