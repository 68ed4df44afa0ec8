"""Data-parallel training: two gloo processes under torchrun match one process on the same batch.

Each rank draws the global batch's indices, t and ε from the shared seed and keeps its
half, and DDP averages the two half-batch gradients.  That average equals the
single-process gradient of the whole batch except for the order of the float additions
(sum of two half-means / 2 versus one mean), a relative difference of order 1e-7 per
gradient entry.  AdamW then moves each weight by at most about ``lr`` per step whatever
the gradient's size, so a rounding-level gradient difference on a near-zero entry can
change that entry's update by a sizeable fraction of ``lr``, but the weights can never
drift apart by more than a small fraction of the total movement ``lr * steps``.  The
tolerance is |a − b| ≤ 1e-5·|b| + 1e-3·lr·steps (1e-3 of the largest possible movement).
Measured on this machine (printed by the test): 6.6e-7 after 12 steps and 6.7e-7 after
20 (resumed at 12), with lr = 2e-3, i.e. about 3e-5 of ``lr * steps``.  A wrong sharding
(both ranks training on the same half, tried by hand) gives 3.2e-2 after 12 steps,
more than a thousand times the bound.

Only CPU processes with gloo are tested here; NCCL on GPUs is not.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpm_lite.runs.checkpoint import load_checkpoint
from ddpm_lite.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
LR, BATCH = 2e-3, 64
ARGS = ["train", "--data", "swiss_roll", "--T", "50", "--batch-size", str(BATCH), "--lr", str(LR),
        "--checkpoint-every", "6", "--log-every", "3", "--no-progress", "--device", "cpu"]

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is needed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out: Path, steps: int, nproc: int = 2, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "ddpm_lite", *ARGS, "--steps", str(steps), "--out", str(out)]
    if not wait:  # its own session, so a Ctrl-C can go to the launcher and the workers together
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


def single(out: Path, steps: int) -> dict:
    assert main([*ARGS, "--steps", str(steps), "--out", str(out)]) == 0
    return load_checkpoint(out)


def max_excess(a: dict, b: dict, atol: float, rtol: float = 1e-5) -> tuple[float, float]:
    """(max |a − b| over all model and EMA weights, max of |a − b| − (atol + rtol|b|))."""
    worst_diff, worst_excess = 0.0, -float("inf")
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            d = (a[part][name] - b[part][name]).abs()
            worst_diff = max(worst_diff, float(d.max()))
            worst_excess = max(worst_excess, float((d - atol - rtol * b[part][name].abs()).max()))
    return worst_diff, worst_excess


def test_two_gloo_processes_match_one_process_resume_and_stop_on_ctrl_c(tmp_path, capsys):
    ddp_dir = tmp_path / "ddp"
    first = torchrun(ddp_dir, steps=12)
    assert first.returncode == 0, first.stderr[-3000:]
    # Rank 0 alone reports: one summary line, each checkpoint announced once.
    summaries = [ln for ln in first.stdout.splitlines() if ln.startswith("{")]
    assert len(summaries) == 1 and json.loads(summaries[0])["steps"] == 12
    assert first.stderr.count("checkpoint: step 6 saved") == 1
    assert first.stderr.count("checkpoint: step 12 saved") == 1
    assert "in 2 processes" in first.stderr

    ddp_12 = load_checkpoint(ddp_dir)
    one_12 = single(tmp_path / "one12", steps=12)
    assert ddp_12["step"] == 12 and ddp_12["data_cursor"] == one_12["data_cursor"]
    assert torch.equal(ddp_12["rng"], one_12["rng"])  # same random numbers consumed
    atol = 1e-3 * LR * 12
    diff, excess = max_excess(ddp_12, one_12, atol)
    print(f"\n12 steps: max |w_ddp - w_single| = {diff:.3g} (atol {atol:.3g})")
    assert excess <= 0

    # Resume the 2-process run towards step 100000 and press Ctrl-C (SIGINT to the whole
    # process group, as a terminal does): the workers agree to stop at a log step, rank 0
    # saves, and the result still matches a single process trained for as many steps.
    proc = torchrun(ddp_dir, steps=100_000, wait=False)
    while (line := proc.stderr.readline()) and not line.startswith("step "):
        pass
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    summaries = [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["interrupted"], stderr[-3000:]
    reached = summaries[0]["steps"]
    ddp_n = load_checkpoint(ddp_dir)
    assert ddp_n["step"] == reached > 12 and reached % 3 == 0  # stops at a log step
    one_n = single(tmp_path / "one_n", steps=reached)
    atol = 1e-3 * LR * reached
    diff, excess = max_excess(ddp_n, one_n, atol)
    print(f"{reached} steps (resumed at 12, stopped by Ctrl-C): max |w_ddp - w_single| = {diff:.3g} (atol {atol:.3g})")
    assert excess <= 0
    # A wrong answer is far away: the single run after 12 steps is not within the bound.
    assert max_excess(ddp_n, one_12, atol)[1] > 0
    # A 2-process checkpoint resumes in a plain single process (world size is not part of it).
    shutil.copytree(ddp_dir, tmp_path / "ddp_then_one")
    resumed = single(tmp_path / "ddp_then_one", steps=reached + 6)
    one_more = single(tmp_path / "one_more", steps=reached + 6)
    assert resumed["step"] == reached + 6
    assert max_excess(resumed, one_more, 1e-3 * LR * (reached + 6))[1] <= 0


def test_batch_not_divisible_by_world_size_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main([*ARGS, "--steps", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--batch-size" in err and "WORLD_SIZE=3" in err
    assert not (tmp_path / "r").exists()


def test_environment_is_read_and_checked(monkeypatch):
    from ddpm_lite.training import distributed

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() == distributed.DistInfo()  # no torchrun: nothing to join
    assert not distributed.current().enabled
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE.*'two'"):
        distributed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="RANK or LOCAL_RANK"):
        distributed.init_from_env()
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="RANK must lie in .*0..1, got RANK=5"):
        distributed.init_from_env()
