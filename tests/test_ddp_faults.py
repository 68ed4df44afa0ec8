"""Distributed faults as one clear line (issue 23, item 4), with real gloo processes on CPU.

* ``WORLD_SIZE=2 RANK=0`` left in the environment, no peer: exit 2 within the join timeout,
  naming the variables (it used to wait 600 s in silence).
* A rank killed with SIGKILL: the other ends within seconds with one line naming it.
* A frozen rank (SIGSTOP): the other ends after ``DDPM_LITE_RANK_TIMEOUT`` seconds, naming it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TRAIN = [sys.executable, "-m", "ddpm_lite", "train", "--data", "swiss_roll", "--T", "10", "--batch-size", "16",
         "--seconds", "120", "--no-progress", "--log-every", "1", "--device", "cpu"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int, world: int, port: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHELASTIC", "DDPM_LITE_"))}
    env.update(PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", WORLD_SIZE=str(world), RANK=str(rank),
               LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **extra)
    return env


def _last_line(err: str) -> str:
    lines = err.strip().splitlines()
    return lines[-1] if lines else ""


def test_stray_world_size_without_a_peer_fails_naming_the_variables(tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = subprocess.run([*TRAIN, "--out", str(tmp_path / "r")], env=_env(0, 2, _port(), DDPM_LITE_JOIN_TIMEOUT="3"),
                       capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    last = _last_line(p.stderr)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    for word in ("only 1 of WORLD_SIZE=2 processes joined within 3 s", "RANK=0", "MASTER_PORT", "unset WORLD_SIZE"):
        assert word in last, (word, last)
    assert elapsed < 60  # import + 3 s, not the old 600 s


def _pair(tmp_path: Path, **extra: str) -> list[subprocess.Popen]:
    port = _port()
    return [subprocess.Popen([*TRAIN, "--out", str(tmp_path / "r")], env=_env(r, 2, port, **extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]


def _wait_for_steps(p: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if line.startswith("step "):
            return
        if not line and p.poll() is not None:
            break
    pytest.fail(f"rank 0 never trained: {p.stderr.read()[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_a_dead_or_frozen_rank_ends_the_other_with_one_line_naming_it(tmp_path: Path, fault: str) -> None:
    procs = _pair(tmp_path, DDPM_LITE_RANK_TIMEOUT="5")
    try:
        _wait_for_steps(procs[0])
        t0 = time.monotonic()
        procs[1].send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        _, err = procs[0].communicate(timeout=90)
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()
    last = _last_line(err)
    assert procs[0].returncode == 2 and "Traceback" not in err, err[-3000:]
    assert last.startswith("error: rank 0: rank 1 stopped"), last
    if fault == "frozen":
        assert "after 5 s without an answer (DDPM_LITE_RANK_TIMEOUT)" in last, last
    assert elapsed < (30 if fault == "killed" else 40), elapsed
