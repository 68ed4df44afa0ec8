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

from ddpm_lite.runs.checkpoint import has_checkpoint, load_checkpoint
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
        leftovers = sorted(set(os.listdir(out)) - {"state.json", "ddpm_lite.manifest.json", state["weights_file"]})
        log.append(f"kill {kills}: reported step {step_seen}, checkpoint {state['step']}, leftovers {leftovers}")
    print("\n".join(log))
    assert kills >= 2, f"only {kills} kills landed during training; the test did not exercise much"
    # Resume to the end: the killed-and-resumed run equals the uninterrupted one exactly.
    final = subprocess.run([sys.executable, "-m", "ddpm_lite", *ARGS, "--out", str(out)],
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert final.returncode == 0, final.stderr
    assert_same_weights(load_checkpoint(out), reference)
    # Files a kill left behind mid-save are swept up by the next save.
    assert sorted(os.listdir(out)) == ["ddpm_lite.manifest.json", "state.json", f"weights-{STEPS:08d}.safetensors"]


def interrupt_run(out, sig: int, code: int) -> tuple[int, str, str]:
    """Start a run in ``out``, send ``sig`` once it reports progress; check the exit ``code``.

    Returns the step the run says it reached, its last stdout line (the JSON summary) and
    its stderr."""
    proc = launch(out)
    head = wait_for_progress(proc)
    assert any(ln.startswith("step ") for ln in head), "".join(head)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    summary = stdout.strip().splitlines()[-1]
    return int(re.search(r'"steps": (\d+)', summary).group(1)), summary, stderr


def test_ctrl_c_saves_the_step_reached_and_resumes_exactly(tmp_path, reference):
    out = tmp_path / "run"
    step, summary, stderr = interrupt_run(out, signal.SIGINT, 130)
    assert '"interrupted": true' in summary and 0 < step < STEPS
    assert "interrupted: checkpoint saved" in stderr
    state = load_checkpoint(out)
    assert state["step"] == step  # the step reached, not the last periodic checkpoint
    # Resuming (in this process, one thread as in the subprocess) finishes the same run.
    _train_in_process(out)
    assert_same_weights(load_checkpoint(out), reference)


# ---------------------------------------------------------------------------- issue 10: runs never destroy work
from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.data import swiss_roll  # noqa: E402
from ddpm_lite.nets import MLPDenoiser  # noqa: E402
from ddpm_lite.training import train  # noqa: E402


class NaNFromCall(MLPDenoiser):
    """Returns NaN from its ``at``-th forward pass on, as a diverging step does (one pass per step)."""

    at, calls = 8, 0

    def forward(self, xt, t):
        type(self).calls += 1
        out = super().forward(xt, t)
        return out * float("nan") if type(self).calls >= self.at else out


def _nan_run(out, **kw):
    torch.manual_seed(0)
    NaNFromCall.calls = 0
    kw = {"steps": 40, "batch_size": 32, "checkpoint_every": 5, "log_every": 50, **kw}
    return train(NaNFromCall(hidden=16, depth=1, T=50), GaussianDiffusion(NoiseSchedule.linear(50), num_levels=None),
                 swiss_roll(256), checkpoint_dir=out, progress=False, device="cpu", **kw)


def test_nan_between_saves_keeps_the_last_good_checkpoint(tmp_path):
    """NaN at step 8, saves every 5 steps and the loss read only every 50: the save at step 10 is refused."""
    with pytest.raises(FloatingPointError, match=r"step 10.*last good checkpoint \(step 5\).*already clipped"):
        _nan_run(tmp_path)
    state = load_checkpoint(tmp_path)
    assert state["step"] == 5
    assert all(bool(torch.isfinite(v).all()) for part in ("model", "ema") for v in state[part].values())


def test_nan_before_the_final_save_saves_nothing(tmp_path):
    """The end-of-budget save is checked too: NaN at step 8, budget 12 steps, saves every 100."""
    with pytest.raises(FloatingPointError, match="nothing was saved"):
        _nan_run(tmp_path, steps=12, checkpoint_every=100)
    assert not has_checkpoint(tmp_path)


def test_divergence_hint_names_grad_clip_only_when_it_is_off(tmp_path):
    with pytest.raises(FloatingPointError, match=r"grad_clip=1\.0"):
        _nan_run(tmp_path, grad_clip=None)


def test_cli_diverging_run_exits_nonzero_and_saves_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--data", "digits", "--steps", "30", "--T", "50", "--lr", "1e30", "--log-every", "1000",
               "--checkpoint-every", "5", "--no-progress", "--device", "cpu", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc != 0
    assert "NaN" not in captured.out  # no summary with an invalid NaN literal
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "NaN or inf" in last and "lower lr" in last
    assert "enable grad_clip" not in last  # clipping is on by default: the hint must not say otherwise
    assert not has_checkpoint(out)


def test_cli_json_has_no_nan_literal(capsys):
    import json

    from ddpm_lite.cli.main import _print_json

    _print_json({"final_loss": float("nan"), "bounds": [1.0, float("inf")], "nested": {"x": -float("inf")}})
    line = capsys.readouterr().out
    assert json.loads(line) == {"final_loss": None, "bounds": [1.0, None], "nested": {"x": None}}


def test_second_writer_is_refused_and_the_first_run_is_intact(tmp_path, capsys):
    """Two writers on one directory: the second (another dataset) is refused by name, the first finishes."""
    out = tmp_path / "run"
    first = launch(out)
    head = wait_for_progress(first)
    assert any(ln.startswith("step ") for ln in head), "".join(head)
    rc = main(["train", "--data", "moons", "--steps", "20", "--no-progress", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    first_out, first_err = first.communicate(timeout=300)
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert "in use by another training run" in last and f"pid {first.pid}" in last and "ddpm_lite.lock" in last
    assert first.returncode == 0, first_err
    state = load_checkpoint(out)
    assert state["step"] == STEPS and state["metadata"]["data"] == "swiss_roll"
    assert not (out / "ddpm_lite.lock").exists()  # released at the end of the run


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _tiny_train(out, **kw):
    torch.manual_seed(0)
    kw = {"steps": 6, "batch_size": 16, "checkpoint_every": 2, **kw}
    return train(MLPDenoiser(dim=2, hidden=8, depth=1, T=10), GaussianDiffusion(NoiseSchedule.linear(10), num_levels=None),
                 swiss_roll(64), checkpoint_dir=out, progress=False, device="cpu", **kw)


def test_stale_lock_of_a_dead_process_is_reported_and_taken_over(tmp_path):
    import json
    import socket

    tmp_path.joinpath("ddpm_lite.lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with pytest.warns(RuntimeWarning, match="stale lock"):
        assert _tiny_train(tmp_path).steps == 6
    assert load_checkpoint(tmp_path)["step"] == 6 and not (tmp_path / "ddpm_lite.lock").exists()


def test_lock_held_under_another_host_name_is_never_taken_over(tmp_path):
    """The record is information only: a held lock is refused whatever it says, a free one is free."""
    import json

    from ddpm_lite.runs.directory import RunDirBusy, RunLock

    held = RunLock(tmp_path).acquire()  # a live owner; its record claims another node (NFS, clones)
    (tmp_path / "ddpm_lite.lock").write_text(json.dumps({"pid": _dead_pid(), "host": "some-other-node",
                                                         "started": "earlier"}))
    with pytest.raises(RunDirBusy, match="some-other-node.*ddpm_lite.lock"):
        _tiny_train(tmp_path)
    assert not has_checkpoint(tmp_path)
    held.release()
    assert _tiny_train(tmp_path).steps == 6


def test_planted_foreign_files_survive_every_save(tmp_path):
    planted = {"weights-final.safetensors": b"a user's own weights", "notes.txt": b"keep me",
               "weights-best.safetensors": b"also mine", ".hidden": b"x"}
    for name, blob in planted.items():
        (tmp_path / name).write_bytes(blob)
    _tiny_train(tmp_path)  # saves at steps 2, 4, 6, each deleting the previous weights
    _tiny_train(tmp_path, steps=8)  # resume, two more saves
    for name, blob in planted.items():
        assert (tmp_path / name).read_bytes() == blob, name
    ours = sorted(set(os.listdir(tmp_path)) - set(planted))
    assert ours == ["ddpm_lite.manifest.json", "state.json", "weights-00000008.safetensors"]


def test_foreign_file_under_our_name_is_not_overwritten(tmp_path):
    from ddpm_lite.runs.checkpoint import CheckpointError

    (tmp_path / "weights-00000002.safetensors").write_bytes(b"not ours")
    with pytest.raises(CheckpointError, match="was not written by"):
        _tiny_train(tmp_path)
    assert (tmp_path / "weights-00000002.safetensors").read_bytes() == b"not ours"


@pytest.mark.parametrize("resume", [True, False])
def test_hostile_weights_file_is_never_followed_or_deleted(tmp_path, resume):
    import json

    from ddpm_lite.runs.checkpoint import CheckpointError

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"format_version": 1, "weights_file": "../victim.txt"}))
    (run / "ddpm_lite.manifest.json").write_text(json.dumps({"weights": ["../victim.txt", "/etc/hostname"]}))
    if resume:
        with pytest.raises(CheckpointError, match="weights_file"):
            _tiny_train(run)
    else:  # a fresh run never replaces a state.json it did not write (issue 23)
        planted = (run / "state.json").read_text()
        with pytest.raises(CheckpointError, match="not written by"):
            _tiny_train(run, resume=False)
        assert (run / "state.json").read_text() == planted
    assert victim.read_text() == "precious"


def test_sigterm_saves_the_step_reached_and_exits_143(tmp_path):
    """``timeout``, Slurm and ``docker stop`` send SIGTERM: a single process saves like on Ctrl-C."""
    out = tmp_path / "run"
    step, _, _ = interrupt_run(out, signal.SIGTERM, 143)
    assert 0 < step < STEPS and load_checkpoint(out)["step"] == step


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    rc = main(["train", "--data", "swiss_roll", "--seconds", "30", "--device", "cpu", "--out", "/proc/ddpm_lite_run"])
    err = capsys.readouterr().err
    assert rc == 2 and "not writable" in err.strip().splitlines()[-1] and "training " not in err


def test_refusal_recommends_fresh_and_fresh_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--data", "swiss_roll", "--steps", "4", "--T", "20", "--no-progress", "--device", "cpu",
            "--out", str(out)]
    assert main(base) == 0
    assert main([*base[:-2], "--batch-size", "32", "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "different configuration" in last and "--fresh" in last and "resume=False" not in last
    assert main([*base[:-2], "--batch-size", "32", "--fresh", "--out", str(out)]) == 0
    assert load_checkpoint(out)["config"]["train"]["batch_size"] == 32
