"""Checkpoints that survive a crash: safetensors tensors + a JSON state file.

A checkpoint directory holds

* ``weights-<step>.safetensors``: every tensor of the run — model weights (``model.*``),
  EMA weights (``ema.*``), the optimizer's moment buffers (``optim.<i>.<name>``), the
  random generator's state (``rng``) and the data order (``data.order``);
* ``state.json``: the configuration (model, diffusion, training), the step, the data
  cursor, the optimizer's hyper-parameters, free-form metadata, and the name and
  SHA-256 of the weights file it belongs to.

Each file is written to a temporary name, flushed and fsync'ed, then renamed over the
old one with :func:`os.replace` (atomic on POSIX and Windows).  The weights file goes
first under a new name; only then is ``state.json`` replaced, and only after that is the
previous weights file deleted.  A crash at any moment therefore leaves either the old
or the new checkpoint complete, never a mixture, and never a half-written file under a
real name.  The hash catches a truncated or corrupted weights file on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "atomic_write_bytes", "save_checkpoint", "load_checkpoint", "has_checkpoint",
           "config_mismatches", "STATE_FILE"]

STATE_FILE = "state.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupted or belongs to a different configuration."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete.

    The bytes go to a temporary file in the same directory (same file system, so the
    rename is atomic), which is fsync'ed and then renamed onto ``path``; on any error the
    temporary file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would (0666 less the
        # umask), so a run directory shared between users or nodes stays readable.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # Make the rename itself durable where the platform allows syncing a directory.
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True if ``directory`` holds a ``state.json`` (i.e. something to resume from)."""
    return (Path(directory) / STATE_FILE).is_file()


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state → (tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, st in state_dict["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in rest["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict,
    generator: torch.Generator,
    data_order: torch.Tensor,
    data_cursor: int,
    metadata: dict | None = None,
) -> Path:
    """Write a complete, resumable checkpoint into ``directory``; returns the state file path."""
    from safetensors.torch import save as st_save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt_tensors, opt_rest = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors["rng"] = generator.get_state().cpu()
    tensors["data.order"] = data_order.detach().cpu().contiguous()
    blob = st_save(tensors)
    weights_name = f"weights-{int(step):08d}.safetensors"
    atomic_write_bytes(directory / weights_name, blob)

    old = _read_state(directory) if has_checkpoint(directory) else None
    state = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "config": config,
        "data_cursor": int(data_cursor),
        "generator_device": str(generator.device),
        "optimizer": opt_rest,
        "metadata": metadata or {},
        "weights_file": weights_name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    atomic_write_bytes(directory / STATE_FILE, (json.dumps(state, indent=1) + "\n").encode())
    if old is not None and old.get("weights_file") not in (None, weights_name):
        try:
            (directory / old["weights_file"]).unlink()
        except FileNotFoundError:
            pass
    _remove_leftovers(directory, keep=weights_name)
    return directory / STATE_FILE


def _remove_leftovers(directory: Path, keep: str) -> None:
    """Delete what a process killed in the middle of an earlier save left behind.

    A kill between writing a weights file and replacing ``state.json`` leaves a complete
    but unreferenced ``weights-*.safetensors``; a kill inside :func:`atomic_write_bytes`
    leaves a ``.<name>.*.tmp``.  Neither is ever read, but repeated crashes would pile them
    up.  Only names this module writes are touched, and only after the new ``state.json``
    (which references ``keep``) is in place.
    """
    for path in directory.iterdir():
        name = path.name
        stale_weights = name.startswith("weights-") and name.endswith(".safetensors") and name != keep
        stale_tmp = name.endswith(".tmp") and (name.startswith(".weights-") or name.startswith(f".{STATE_FILE}."))
        if stale_weights or stale_tmp:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _read_state(directory: Path) -> dict:
    path = directory / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint in {str(directory)!r}: {STATE_FILE} is missing.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {str(path)!r} is corrupted (not valid JSON: {exc}).") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is not a ddpm_lite checkpoint of format {FORMAT_VERSION}."
        )
    return state


def load_checkpoint(directory: str | os.PathLike) -> dict:
    """Read and verify a checkpoint; returns ``state.json``'s dict plus ``"tensors"``.

    ``"optimizer"`` is replaced by a state dict ready for ``optimizer.load_state_dict``;
    ``"model"`` and ``"ema"`` hold the two state dicts.  Raises :class:`CheckpointError`
    (a ``ValueError``) when the directory or a file is missing, the JSON is invalid, or the
    weights file is truncated or corrupted (its SHA-256 does not match).
    """
    from safetensors.torch import load as st_load

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"checkpoint path {str(directory)!r} is a file, not a directory; "
                              "give the run directory that holds state.json.")
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {str(directory)!r} does not exist.")
    state = _read_state(directory)
    wpath = directory / str(state.get("weights_file"))
    try:
        blob = wpath.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint weights {str(wpath)!r} cannot be read: {exc.strerror or exc}.") from None
    if hashlib.sha256(blob).hexdigest() != state.get("weights_sha256"):
        raise CheckpointError(
            f"checkpoint weights {str(wpath)!r} are truncated or corrupted (SHA-256 does not match {STATE_FILE}); "
            "delete the run directory or restore it from a backup."
        )
    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"checkpoint weights {str(wpath)!r} cannot be parsed: {exc}.") from None
    state["model"] = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    state["ema"] = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    state["optimizer"] = _unflatten_optimizer(tensors, state["optimizer"])
    state["rng"] = tensors["rng"]
    state["data_order"] = tensors["data.order"]
    return state


def config_mismatches(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Human-readable list of the entries where two (nested) configs differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved:
                out.append(f"{name}: not in the checkpoint, now {current[key]!r}")
            elif key not in current:
                out.append(f"{name}: {saved[key]!r} in the checkpoint, missing now")
            else:
                out.extend(config_mismatches(saved[key], current[key], name))
        return out
    # JSON turns tuples into lists; compare through a JSON round trip.
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(current)):
        return [f"{prefix}: {saved!r} in the checkpoint, {current!r} now"]
    return []
