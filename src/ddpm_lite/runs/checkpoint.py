"""Checkpoints that survive a crash: safetensors tensors + a JSON state file.

A checkpoint directory holds

* ``weights-<step>.safetensors``: every tensor of the run — model weights (``model.*``),
  EMA weights (``ema.*``), the optimizer's moment buffers (``optim.<i>.<name>``), the
  random generator's state (``rng``), the data order (``data.order``) and the run's other
  tensors (``extra.*``, e.g. the importance sampler's history);
* ``state.json``: the configuration (model, diffusion, training), the step, the data
  cursor, the optimizer's hyper-parameters, free-form metadata, the name and SHA-256 of
  the weights file it belongs to, and (format 2) the SHA-256 of all of that;
* ``ddpm_lite.manifest.json``: the weights files this package wrote (see
  :mod:`ddpm_lite.runs.directory`); a save deletes only files listed there.

Each file is written to a temporary name, flushed and fsync'ed, then renamed over the
old one with :func:`os.replace` (atomic on POSIX and Windows).  The weights file goes
first under a new name; only then is ``state.json`` replaced, and only after that is the
previous weights file deleted.  A crash at any moment therefore leaves either the old
or the new checkpoint complete, never a mixture, and never a half-written file under a
real name.  The hashes catch a truncated or corrupted weights file and an edited or
damaged ``state.json`` on load; ``weights_file`` must be a plain ``weights-<step>.safetensors``
name and a regular file, so no path in the JSON can reach outside the run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .directory import Manifest, atomic_write_bytes, is_weights_name
from .files import UnsafeFileError, read_json, read_regular
from .verify import CheckpointError, check_weights_agree, config_mismatches, downgraded

__all__ = ["CheckpointError", "atomic_write_bytes", "save_checkpoint", "load_checkpoint", "has_checkpoint",
           "config_mismatches", "adopt_weights", "state_digest", "STATE_FILE"]

STATE_FILE = "state.json"
#: Format 2 adds ``state_sha256`` (the JSON itself is checksummed); format 1 is still read.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
#: Largest ``state.json`` read (a level-posterior model stores its T betas: ~20 MB at T = 10⁶).
STATE_LIMIT = 64 << 20
STATE_MAX_DEPTH = 32
#: Largest weights file read (a regular file only; its SHA-256 is checked before parsing).
WEIGHTS_LIMIT = 64 << 30
#: ``state.json`` entries and the JSON types they must have (bool is refused where int is meant).
_SCHEMA = {"step": int, "config": dict, "data_cursor": int, "optimizer": dict, "weights_file": str,
           "weights_sha256": str}


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True if ``directory`` holds a ``state.json`` (i.e. something to resume from)."""
    # Anything under that name counts (a FIFO, a link): loading it then says what it is, rather
    # than a run silently starting over beside it.
    return os.path.lexists(Path(directory) / STATE_FILE)


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
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a complete, resumable checkpoint into ``directory``; returns the state file path.

    ``extra`` holds more tensors of the run (e.g. the importance sampler's history), stored as
    ``extra.<name>`` and returned by :func:`load_checkpoint` under ``"extra"``.
    """
    from safetensors.torch import save as st_save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt_tensors, opt_rest = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors["rng"] = generator.get_state().cpu()
    tensors["data.order"] = data_order.detach().cpu().contiguous()
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    # The format and step also live inside the checksummed weights: a state.json relabelled
    # to an older format, or with its step edited, no longer matches them.
    blob = st_save(tensors, metadata={"ddpm_lite_format": str(FORMAT_VERSION), "step": str(int(step))})
    weights_name = f"weights-{int(step):08d}.safetensors"
    # Only names in the manifest are ever deleted; list the new file before it exists, so a
    # kill at any moment below leaves nothing unlisted behind.
    manifest = Manifest(directory)
    if weights_name not in manifest.weights and os.path.lexists(directory / weights_name):
        raise CheckpointError(f"{str(directory / weights_name)!r} exists but was not written by this run directory's "
                              "checkpoints; move it away (it is left untouched) or choose another directory.")
    state_path = directory / STATE_FILE
    if manifest.state_format is None and os.path.lexists(state_path) and not _verifies(directory):
        # A first save here (resume=False / --fresh) must not replace a user's own state.json.
        raise CheckpointError(f"{str(state_path)!r} exists but was not written by this package's checkpoints; move "
                              "it away (it is left untouched) or choose another directory.")
    older = (manifest.state_format or 0) < FORMAT_VERSION
    manifest.state_format = max(manifest.state_format or 0, FORMAT_VERSION)
    if weights_name not in manifest.weights:
        manifest.add(weights_name)  # writes the format record too
    elif older:
        manifest.write()
    atomic_write_bytes(directory / weights_name, blob, tmp=directory / f".{weights_name}.tmp")
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
    state["state_sha256"] = state_digest(state)
    atomic_write_bytes(directory / STATE_FILE, (json.dumps(state, indent=1) + "\n").encode(),
                       tmp=directory / f".{STATE_FILE}.tmp")
    manifest.sweep(keep=weights_name)  # the previous checkpoint's weights, and any a crash left
    return directory / STATE_FILE


def _verifies(directory: Path) -> bool:
    """True when ``directory`` holds a complete checkpoint whose hashes match (so it is ours)."""
    try:
        load_checkpoint(directory)
    except CheckpointError:
        return False
    return True


def state_digest(state: dict) -> str:
    """SHA-256 of ``state.json``'s content without its own ``state_sha256`` (keys sorted, compact).

    It covers ``weights_sha256``, so one hash vouches for the JSON and the weights together.
    """
    body = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def adopt_weights(directory: str | os.PathLike, state: dict) -> None:
    """List a verified checkpoint's weights file in the manifest, so the next save replaces it.

    For run directories written before the manifest existed; ``state`` must come from
    :func:`load_checkpoint` (its weights matched their SHA-256, so the file is ours).
    """
    manifest = Manifest(directory)
    if state["weights_file"] not in manifest.weights:
        manifest.add(state["weights_file"])


def _check_schema(state: dict, path: Path) -> None:
    """Refuse a state.json whose entries are missing or of the wrong type, naming the entry."""
    for key, kind in _SCHEMA.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise CheckpointError(f"checkpoint file {str(path)!r} is damaged: entry {key!r} should be "
                                  f"{'a non-negative integer' if kind is int else 'a ' + kind.__name__}, "
                                  f"got {value!r:.80}.")
    for key in ("model", "diffusion"):
        if not isinstance(state["config"].get(key), dict):
            raise CheckpointError(f"checkpoint file {str(path)!r} is damaged: config.{key} is missing.")
    opt = state["optimizer"]
    if not isinstance(opt.get("param_groups"), list) or not isinstance(opt.get("scalars"), dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} is damaged: the optimizer entry is incomplete.")
    if not isinstance(state.setdefault("metadata", {}), dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} is damaged: 'metadata' should be a dict.")
    if not is_weights_name(state["weights_file"]):
        # Never follow a path from the JSON: '../victim.txt', '/dev/zero', 'sub/dir/file'.
        raise CheckpointError(f"checkpoint file {str(path)!r} names weights_file {state['weights_file']!r:.80}, "
                              "which is not a weights-<step>.safetensors file in the run directory; refused.")


def _read_state(directory: Path) -> dict:
    path = directory / STATE_FILE
    try:
        state = read_json(path, limit=STATE_LIMIT, max_depth=STATE_MAX_DEPTH, what="checkpoint file")
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint in {str(directory)!r}: {STATE_FILE} is missing.") from None
    except UnsafeFileError as exc:  # FIFO, link, device, huge, deeply nested, not JSON
        raise CheckpointError(str(exc)) from None
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_FORMATS:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is not a ddpm_lite checkpoint of format "
            f"{' or '.join(map(str, READABLE_FORMATS))}."
        )
    # The checksum first: nothing else in the file is looked at before it is verified.
    if state["format_version"] >= 2 and state.get("state_sha256") != state_digest(state):
        raise CheckpointError(f"checkpoint file {str(path)!r} was edited or corrupted (its SHA-256 does not match "
                              "its content); restore it from a backup or start over.")
    try:
        newest = Manifest(directory).state_format
    except ValueError:
        newest = None  # the manifest's own problems are reported by the next save
    if newest is not None and state["format_version"] < newest:
        raise CheckpointError(downgraded(path, state["format_version"], newest))
    _check_schema(state, path)
    return state


def _read_weights(wpath: Path) -> bytes:
    """The weights file's bytes; only a regular file (no symlink, device or FIFO) is read."""
    try:
        return read_regular(wpath, limit=WEIGHTS_LIMIT, what="checkpoint weights")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint weights {str(wpath)!r} cannot be read: it is missing.") from None
    except UnsafeFileError as exc:
        raise CheckpointError(f"{exc} It cannot be read.") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint weights {str(wpath)!r} cannot be read: {exc.strerror or exc}.") from None


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
    wpath = directory / state["weights_file"]
    try:
        blob = _read_weights(wpath)
    except CheckpointError:
        # A writer may have replaced the checkpoint between our two reads: read it once more.
        state = _read_state(directory)
        wpath = directory / state["weights_file"]
        blob = _read_weights(wpath)
    if hashlib.sha256(blob).hexdigest() != state.get("weights_sha256"):
        raise CheckpointError(
            f"checkpoint weights {str(wpath)!r} are truncated or corrupted (SHA-256 does not match {STATE_FILE}); "
            "delete the run directory or restore it from a backup."
        )
    check_weights_agree(state, blob, wpath, directory)
    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"checkpoint weights {str(wpath)!r} cannot be parsed: {exc}.") from None
    state["model"] = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    state["ema"] = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    try:
        state["optimizer"] = _unflatten_optimizer(tensors, state["optimizer"])
    except (KeyError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {str(directory)!r} has a damaged optimizer state ({exc!r}).") from None
    missing = [k for k in ("rng", "data.order") if k not in tensors]
    if missing:
        raise CheckpointError(f"checkpoint weights {str(wpath)!r} lack the tensors {missing}; the run is damaged.")
    state["rng"] = tensors["rng"]
    state["data_order"] = tensors["data.order"]
    state["extra"] = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return state

