"""The state of a training run — weights, EMA, optimizer, random generator, data order — and
how it is saved to and restored from a checkpoint, so that a resumed run continues exactly
where an uninterrupted one would be.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from pathlib import Path

import torch
from torch import nn

from ..runs.checkpoint import CheckpointError, adopt_weights, config_mismatches, load_checkpoint, save_checkpoint

__all__ = ["TrainState", "ema_decay_at", "data_fingerprint", "RESTART_HINT"]

#: How the API starts a run over; the command line says ``--fresh`` in its place.
RESTART_HINT = "resume=False"


def ema_decay_at(step: int, ema_decay: float) -> float:
    """EMA decay used after optimizer step ``step`` (1-based): min(ema_decay, (1 + step)/(10 + step)).

    The warm-up keeps the average from being dominated by the random initial weights in
    short CPU runs: after 100 steps it averages over roughly the last 10 % of them.
    """
    return min(ema_decay, (1.0 + step) / (10.0 + step))


def _adamw(params: list[torch.Tensor], lr: float, weight_decay: float, dev: torch.device) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where torch has one for this device (one call per step
    instead of a dozen per parameter), else the multi-tensor ``foreach`` version."""
    if dev.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch: no fused kernel on this device
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


class TrainState:
    """Everything that changes while training, and how it is saved and restored.

    ``order`` is the current seeded permutation of the dataset and ``cursor`` the next
    position in it; ``step`` counts optimizer steps since the run began (resumes included).
    """

    def __init__(self, model: nn.Module, num_data: int, *, lr: float, weight_decay: float, seed: int,
                 device: torch.device) -> None:
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = _adamw(self.params, lr, weight_decay, device)
        self.ema = copy.deepcopy(model).eval().requires_grad_(False)
        self.ema_params = [p for p, q in zip(self.ema.parameters(), model.parameters()) if q.requires_grad]
        self.seed = int(seed)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        self.num_data = num_data
        self.order = torch.randperm(num_data, generator=self.generator, device=device)
        self.cursor = 0
        self.step = 0

    def next_indices(self, batch_size: int) -> torch.Tensor:
        """Indices of the next batch: shuffled passes over the data, one seeded permutation each."""
        if self.cursor + batch_size > self.order.numel():
            # Finish this pass with what is left, then start the next permutation(s).
            parts, have = [self.order[self.cursor:]], self.order.numel() - self.cursor
            while have < batch_size:  # several passes when the dataset is smaller than a batch
                parts.append(torch.randperm(self.num_data, generator=self.generator, device=self.order.device))
                have += self.num_data
            self.order, self.cursor = torch.cat(parts), 0
        idx = self.order[self.cursor:self.cursor + batch_size]
        self.cursor += batch_size
        return idx

    def update_ema(self, ema_decay: float) -> None:
        """Move the EMA weights towards the weights, with the warm-up of :func:`ema_decay_at`."""
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_params, self.params, 1.0 - ema_decay_at(self.step, ema_decay))

    def save(self, directory: Path, config: dict, metadata: dict | None) -> None:
        """Write a checkpoint of this state (see :mod:`ddpm_lite.runs.checkpoint`)."""
        save_checkpoint(directory, model=self.model, ema=self.ema, optimizer=self.optimizer, step=self.step,
                        config=config, generator=self.generator, data_order=self.order,
                        data_cursor=self.cursor, metadata=metadata)

    def restore(self, directory: Path, config: dict) -> dict:
        """Load the checkpoint in ``directory`` into this state; returns its metadata.

        Refuses (``CheckpointError``) a checkpoint made with a different configuration.
        """
        saved = load_checkpoint(directory)
        diffs = config_mismatches(_comparable(saved["config"]), _comparable(config))
        if diffs:
            raise CheckpointError(
                f"the checkpoint in {str(directory)!r} was made with a different configuration ("
                + "; ".join(diffs[:5]) + f"). Use a new directory, or {RESTART_HINT} to start over."
            )
        try:
            self.model.load_state_dict(saved["model"])
            self.ema.load_state_dict(saved["ema"])
            self.optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint in {str(directory)!r} does not fit this model "
                                  f"({str(exc).splitlines()[0]:.200}).") from None
        self._restore_generator(saved, directory)
        order = saved["data_order"]
        if (order.dim() != 1 or order.numel() < self.num_data or order.is_floating_point()
                or not 0 <= saved["data_cursor"] <= order.numel() or int(order.min()) < 0
                or int(order.max()) >= self.num_data):
            raise CheckpointError(f"the checkpoint in {str(directory)!r} has a damaged data order.")
        self.order = order.to(self.order.device)
        self.cursor, self.step = saved["data_cursor"], saved["step"]
        adopt_weights(directory, saved)  # a run from before the manifest: its weights become ours to replace
        return saved.get("metadata", {})

    def _restore_generator(self, saved: dict, directory: Path) -> None:
        """Load the saved generator state; across device types (a GPU run resumed on a CPU)
        the states are incompatible, so the generator is reseeded from (seed, step) instead."""
        saved_type = str(saved.get("generator_device", "cpu")).split(":")[0]
        if saved_type == self.generator.device.type:
            self.generator.set_state(saved["rng"])
            return
        warnings.warn(f"the checkpoint in {str(directory)!r} was trained on {saved_type} and resumes on "
                      f"{self.generator.device.type}: the random stream is reseeded, so the continuation is "
                      "not bit-identical to an uninterrupted run.", RuntimeWarning, stacklevel=4)
        self.generator.manual_seed((self.seed * 1_000_003 + int(saved["step"])) % (2**63))


def _comparable(config: dict) -> dict:
    """A run's config without the betas list: ``betas_sha256`` already identifies the schedule."""
    diffusion = {k: v for k, v in config.get("diffusion", {}).items() if k != "betas"}
    return {**config, "diffusion": diffusion}


def data_fingerprint(data: torch.Tensor) -> dict:
    """Shape and a short SHA-256 of a dataset: a resumed run must see the same data."""
    h = hashlib.sha256(data.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return {"shape": list(data.shape), "sha256": h}
