"""Checks that tie ``state.json`` to its weights: the format and step stored inside the weights.

Format 1 has no checksum, so a format-2 file relabelled "format 1" with its step edited
would otherwise be accepted.  Since issue 23 every save stores ``ddpm_lite_format`` and
``step`` in the safetensors header's metadata, covered by ``weights_sha256``; a state.json
that disagrees with its verified weights is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .files import json_depth

__all__ = ["CheckpointError", "config_mismatches", "downgraded", "weights_metadata", "check_weights_agree"]

STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupted or belongs to a different configuration."""


def _error(message: str) -> Exception:
    return CheckpointError(message)


def downgraded(path: Path, found: int, written: int) -> str:
    """The refusal of a state.json whose format is older than one written in its directory."""
    return (f"checkpoint file {str(path)!r} says format {found}, but format {written} was written in this run "
            "directory: it was relabelled (an older format is not checksummed); refused. Restore it from a "
            "backup or start over.")


def weights_metadata(blob: bytes) -> dict:
    """The ``__metadata__`` of a safetensors blob (its header is JSON after an 8-byte length)."""
    if len(blob) < 8:
        return {}
    n = int.from_bytes(blob[:8], "little")
    header = blob[8:8 + n] if n <= len(blob) - 8 else b""
    try:
        meta = json.loads(header).get("__metadata__") if json_depth(header) <= 4 else None
    except (ValueError, AttributeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def check_weights_agree(state: dict, blob: bytes, wpath: Path, directory: Path) -> None:
    """The format and step recorded inside the (verified) weights must match state.json's."""
    meta = weights_metadata(blob)
    fmt, step = meta.get("ddpm_lite_format"), meta.get("step")
    if fmt is not None and fmt.isdigit() and state["format_version"] < int(fmt):
        raise _error(downgraded(directory / STATE_FILE, state["format_version"], int(fmt)))
    if step is not None and step != str(state["step"]):
        raise _error(f"checkpoint file {str(directory / STATE_FILE)!r} says step {state['step']}, but its "
                              f"weights {str(wpath)!r} were saved at step {step}; the file was edited. Restore it "
                              "from a backup or start over.")


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
