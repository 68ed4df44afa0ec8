"""Crash safety of ``python -m ddpm_lite train``: SIGKILL at random moments, and Ctrl-C.

A real process is killed, because that is the only honest test of the claim that a
checkpoint is never half-written: nothing in the process gets to run after SIGKILL.
The kill moments are drawn from a seeded generator (``DDPM_LITE_CRASH_SEED``, default 0,
to repeat the test with other moments) and counted from the first progress line of each
launch, so they fall inside training rather than inside Python's start-up.

Checked after every kill: the newest checkpoint loads (its SHA-256 matches), it is no
older than the last checkpoint the process reported, and at most ``checkpoint_every``
steps behind the last step it reported.  At the end, the weights of the run that was
killed and resumed equal, bit for bit, those of a run that never stopped.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpm_lite.checkpoint import has_checkpoint, load_checkpoint
from ddpm_lite.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
STEPS, EVERY, LOG = 400, 10, 5
ARGS = ["train", "--data", "swiss_roll", "--T", "50", "--steps", str(STEPS), "--batch-size", "64",
        "--checkpoint-every", str(EVERY), "--log-every", str(LOG), "--no-progress", "--device", "cpu"]
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def launch(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "-m", "ddpm_lite", *ARGS, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_progress(proc: subprocess.Popen, timeout: float = 120.0) -> list[str]:
    """Read stderr until the first 'step N' line (training has started); returns the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:  # the process ended before reporting progress
            break
        lines.append(line)
        if line.startswith("step "):
            return lines
    return lines


def reported(lines: list[str]) -> tuple[int, int]:
    """(last step reported in a 'step N: loss' line, last step reported as checkpointed)."""
    steps = [int(m.group(1)) for ln in lines if (m := re.match(r"step (\d+): loss", ln))]
    ckpts = [int(m.group(1)) for ln in lines if (m := re.match(r"checkpoint: step (\d+) saved", ln))]
    return max(steps, default=0), max(ckpts, default=0)


def _train_in_process(out) -> None:
    """Run (or resume) the CLI training in this process with the subprocesses' single thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*ARGS, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, in this process with the subprocesses' single thread."""
    out = tmp_path_factory.mktemp("reference")
    _train_in_process(out)
    return load_checkpoint(out)


def assert_same_weights(state, reference):
    assert state["step"] == reference["step"] == STEPS
    for part in ("model", "ema"):
        assert state[part].keys() == reference[part].keys()
        for name in reference[part]:
            assert torch.equal(state[part][name], reference[part][name]), f"{part}.{name} differs"


def test_sigkill_at_random_moments_loses_nothing_beyond_a_checkpoint_interval(tmp_path, reference):
    rng = random.Random(int(os.environ.get("DDPM_LITE_CRASH_SEED", "0")))
    out = tmp_path / "run"
    kills, last_ckpt, log = 0, 0, []
    for _attempt in range(3):
        proc = launch(out)
        head = wait_for_progress(proc)
        time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate()[1]
        if proc.returncode == 0:  # finished before the kill landed
            break
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        step_seen, ckpt_seen = reported(head + rest.splitlines(keepends=True))
        assert has_checkpoint(out), f"no checkpoint after kill {kills} (last step reported {step_seen})"
        state = load_checkpoint(out)  # raises CheckpointError if anything is half-written
        assert state["step"] >= max(ckpt_seen, last_ckpt), (state["step"], ckpt_seen, last_ckpt)
        assert state["step"] >= step_seen - EVERY, (state["step"], step_seen)
        assert state["step"] % EVERY == 0
        last_ckpt = state["step"]
        leftovers = sorted(set(os.listdir(out)) - {"state.json", state["weights_file"]})
        log.append(f"kill {kills}: reported step {step_seen}, checkpoint {state['step']}, leftovers {leftovers}")
    print("\n".join(log))
    assert kills >= 2, f"only {kills} kills landed during training; the test did not exercise much"
    # Resume to the end: the killed-and-resumed run equals the uninterrupted one exactly.
    final = subprocess.run([sys.executable, "-m", "ddpm_lite", *ARGS, "--out", str(out)],
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert final.returncode == 0, final.stderr
    assert_same_weights(load_checkpoint(out), reference)
    # Files a kill left behind mid-save are swept up by the next save.
    assert sorted(os.listdir(out)) == ["state.json", f"weights-{STEPS:08d}.safetensors"]


def test_ctrl_c_saves_the_step_reached_and_resumes_exactly(tmp_path, reference):
    out = tmp_path / "run"
    proc = launch(out)
    head = wait_for_progress(proc)
    assert any(ln.startswith("step ") for ln in head), "".join(head)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = stdout.strip().splitlines()[-1]
    step = int(re.search(r'"steps": (\d+)', summary).group(1))
    assert '"interrupted": true' in summary and 0 < step < STEPS
    assert "interrupted: checkpoint saved" in stderr
    state = load_checkpoint(out)
    assert state["step"] == step  # the step reached, not the last periodic checkpoint
    # Resuming (in this process, one thread as in the subprocess) finishes the same run.
    _train_in_process(out)
    assert_same_weights(load_checkpoint(out), reference)
