"""Shared set-up for the benchmark scripts: threads, the package path, JSON output, atomic saves."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

# Run from a checkout without installing: put ../src first on the path.
sys.path.insert(0, os.environ.get("DDPM_LITE_SRC", str(Path(__file__).resolve().parents[1] / "src")))

import numpy as np  # noqa: E402
import torch  # noqa: E402

THREADS = 2


def setup(threads: int = THREADS) -> int:
    """Pin torch to ``threads`` intra-op threads (the protocol's 2) and return the count."""
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def emit(record: dict) -> None:
    """Print the one JSON line a benchmark reports."""
    print(json.dumps(record), flush=True)


def save_npy(path: str | os.PathLike | None, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically (no half-written .npy if interrupted)."""
    if path is None:
        return
    from ddpm_lite.runs.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, array)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
