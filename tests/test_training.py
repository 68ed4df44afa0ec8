"""The training loop and its checkpoints: learning, exact resume, Ctrl-C, corruption."""

import json
import os
import signal

import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.runs.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from ddpm_lite.data import swiss_roll
from ddpm_lite.nets import MLPDenoiser
from ddpm_lite.plumbing import resolve_device
from ddpm_lite.training import train
from ddpm_lite.training.state import ema_decay_at

T = 100
# benchmarks/gpu_check.py reruns the device-aware tests with DDPM_LITE_TEST_DEVICE=cuda.
DEVICE = os.environ.get("DDPM_LITE_TEST_DEVICE", "cpu")


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(NoiseSchedule.linear(T, 1e-3, 0.2), num_levels=None)


@pytest.fixture(scope="module")
def points():
    return swiss_roll(500, seed=0)


def fresh_model(**kw):
    torch.manual_seed(0)
    return MLPDenoiser(hidden=32, depth=2, T=T, **kw)


def run(diffusion, points, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    kw.setdefault("batch_size", 64)
    kw.setdefault("log_every", 5)
    return train(kw.pop("model", None) or fresh_model(), diffusion, points, **kw)


def fixed_loss(model, diffusion, points):
    """L_simple on a fixed batch with fixed t and ε, so two models are compared fairly."""
    g = torch.Generator().manual_seed(123)
    t = torch.randint(1, T + 1, (points.shape[0],), generator=g)
    noise = torch.randn(points.shape, generator=g)
    with torch.no_grad():
        return float(diffusion.loss_simple(model, points, t=t, noise=noise).mean())


def test_training_reduces_the_loss(diffusion, points):
    before = fixed_loss(fresh_model(), diffusion, points)
    result = run(diffusion, points, steps=150, lr=3e-3, device=DEVICE)
    assert result.steps == 150 and not result.interrupted
    assert result.device.type == torch.device(DEVICE).type
    after = fixed_loss(result.ema_model.cpu(), diffusion, points)
    # An untrained model predicts ε = 0, i.e. loss ≈ E‖ε‖²/d = 1; learning must cut it well down.
    assert before == pytest.approx(1.0, abs=0.1)
    assert after < 0.75 * before
    assert [s for s, _ in result.losses] == list(range(5, 151, 5))


def test_resume_gives_identical_weights(diffusion, points, tmp_path):
    whole = run(diffusion, points, steps=20)
    run(diffusion, points, steps=10, checkpoint_dir=tmp_path)
    assert load_checkpoint(tmp_path)["step"] == 10
    resumed = run(diffusion, points, steps=20, checkpoint_dir=tmp_path)
    assert resumed.steps == 20
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.ema_model.state_dict().values(), resumed.ema_model.state_dict().values()):
        assert torch.equal(a, b)
    # Only the newest weights file is kept, and no temporary file is left behind.
    assert sorted(os.listdir(tmp_path)) == ["ddpm_lite.manifest.json", "state.json", "weights-00000020.safetensors"]
    # Files get the mode open() would give them (not mkstemp's private 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert {(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {0o666 & ~umask}


def test_resume_across_a_pass_boundary(diffusion, points, tmp_path):
    """Batch 64 on 500 points: a pass ends inside step 8, so the data order is resumed mid-pass."""
    whole = run(diffusion, points, steps=12)
    run(diffusion, points, steps=8, checkpoint_dir=tmp_path, checkpoint_every=3)
    resumed = run(diffusion, points, steps=12, checkpoint_dir=tmp_path)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


class InterruptingMLP(MLPDenoiser):
    """Sends itself SIGINT (as Ctrl-C would) during its 5th forward pass."""

    calls = 0

    def forward(self, xt, t):
        type(self).calls += 1
        if type(self).calls == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return super().forward(xt, t)


def test_ctrl_c_saves_a_resumable_checkpoint(diffusion, points, tmp_path):
    torch.manual_seed(0)
    model = InterruptingMLP(hidden=32, depth=2, T=T)
    InterruptingMLP.calls = 0
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when make test runs as a background job
    result = run(diffusion, points, model=model, steps=20, checkpoint_dir=tmp_path)
    assert result.interrupted and result.steps == 5
    assert load_checkpoint(tmp_path)["step"] == 5
    resumed = run(diffusion, points, steps=20, checkpoint_dir=tmp_path)
    whole = run(diffusion, points, steps=20)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert signal.getsignal(signal.SIGINT) is before  # exactly the handler that was there before


def test_ctrl_c_with_sigint_ignored_restores_the_ignore(diffusion, points, tmp_path):
    """A shell runs background jobs with SIGINT ignored; training must leave it ignored."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = run(diffusion, points, steps=3, checkpoint_dir=tmp_path)
        assert result.steps == 3 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, old)


def test_progress_without_a_terminal_is_a_few_plain_lines(diffusion, points, capsys):
    """stderr captured (not a TTY): about ten lines, no carriage returns, instead of a live bar."""
    result = run(diffusion, points, steps=200, log_every=1, progress=True)
    err = capsys.readouterr().err
    assert result.steps == 200 and "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("training: step")]
    assert 5 <= len(lines) <= 11 and lines[-1].startswith("training: step 200/200")


def test_mismatched_config_is_refused(diffusion, points, tmp_path):
    run(diffusion, points, steps=3, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="different configuration.*lr"):
        run(diffusion, points, steps=6, checkpoint_dir=tmp_path, lr=5e-4)
    with pytest.raises(CheckpointError, match="hidden"):
        torch.manual_seed(0)
        run(diffusion, points, model=MLPDenoiser(hidden=16, depth=2, T=T), steps=6, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="data"):
        run(diffusion, points[:400], steps=6, checkpoint_dir=tmp_path)
    # resume=False starts over instead.
    assert run(diffusion, points, steps=2, checkpoint_dir=tmp_path, lr=5e-4, resume=False).steps == 2


def test_truncated_or_corrupted_checkpoint_is_refused(diffusion, points, tmp_path):
    run(diffusion, points, steps=3, checkpoint_dir=tmp_path)
    weights = tmp_path / json.loads((tmp_path / "state.json").read_text())["weights_file"]
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        run(diffusion, points, steps=6, checkpoint_dir=tmp_path)
    flipped = bytearray(blob)
    flipped[-10] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path)
    (tmp_path / "state.json").write_text('{"step": 3, "conf')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new contents")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_bad_arguments(diffusion, points):
    with pytest.raises(ValueError, match="budget"):
        run(diffusion, points)
    with pytest.raises(ValueError, match="steps"):
        run(diffusion, points, steps=-1)
    with pytest.raises(ValueError, match="batch_size"):
        run(diffusion, points, steps=1, batch_size=0)
    with pytest.raises(ValueError, match="amp"):
        run(diffusion, points, steps=1, amp="fp8")
    with pytest.raises(ValueError, match="data"):
        run(diffusion, torch.zeros(0, 2), steps=1)
    with pytest.raises(ValueError, match="callback"):
        run(diffusion, points, steps=1, callback="print")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_ema_warmup():
    assert ema_decay_at(1, 0.999) == pytest.approx(2 / 11)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(1, 0.0) == 0.0


def test_diverging_loss_raises_and_keeps_the_last_good_checkpoint(diffusion, points, tmp_path):
    run(diffusion, points, steps=5, checkpoint_dir=tmp_path)
    good = load_checkpoint(tmp_path)["model"]
    with pytest.raises(FloatingPointError, match="lower lr"):
        # A huge step size with no clipping sends the weights to inf within a few steps.
        run(diffusion, points * 1e30, steps=50, lr=1e30, grad_clip=None, resume=False, checkpoint_dir=tmp_path)
    kept = load_checkpoint(tmp_path)
    assert kept["step"] == 5
    assert all(torch.equal(good[k], kept["model"][k]) for k in good)


def test_non_finite_data_is_refused_up_front(diffusion, points):
    bad = points.clone()
    bad[7, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        run(diffusion, bad, steps=1)


def test_callback_reports_logs_and_completed_checkpoints(diffusion, points, tmp_path):
    events = []

    def callback(event, step, info):
        if event == "checkpoint":
            # Reported only once the checkpoint is complete on disk.
            assert load_checkpoint(info["dir"])["step"] == step
        events.append((event, step))

    run(diffusion, points, steps=12, checkpoint_dir=tmp_path, checkpoint_every=4, log_every=5, callback=callback)
    assert [s for e, s in events if e == "log"] == [5, 10, 12]
    # Every 4 steps and once at the end; step 12 is not saved (or reported) twice.
    assert [s for e, s in events if e == "checkpoint"] == [4, 8, 12]


def test_lr_scale_trains_this_call_at_a_lower_rate_and_resume_keeps_the_stored_lr(diffusion, points, tmp_path):
    """lr_scale·lr from scratch is the same run as lr·lr_scale; on resume the scale replaces the saved rate."""
    a = run(diffusion, points, steps=6, lr=2e-3, lr_scale=0.25, seed=3)
    b = run(diffusion, points, steps=6, lr=5e-4, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    # Three steps at the full rate, then three at half: not the run at the full rate throughout,
    # and the stored configuration (lr = 2e-3) still matches, so the resume is accepted.
    run(diffusion, points, steps=3, lr=2e-3, seed=3, checkpoint_dir=tmp_path / "r")
    halved = run(diffusion, points, steps=6, lr=2e-3, lr_scale=0.5, seed=3, checkpoint_dir=tmp_path / "r")
    full = run(diffusion, points, steps=6, lr=2e-3, seed=3)
    assert halved.steps == 6
    assert not all(torch.equal(p, q) for p, q in zip(halved.model.parameters(), full.model.parameters()))
    run(diffusion, points, steps=3, lr=2e-3, seed=3, checkpoint_dir=tmp_path / "s")
    again = run(diffusion, points, steps=6, lr=2e-3, lr_scale=1.0, seed=3, checkpoint_dir=tmp_path / "s")
    assert all(torch.equal(p, q) for p, q in zip(again.model.parameters(), full.model.parameters()))
    for bad in (0.0, -1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="lr_scale"):
            run(diffusion, points, steps=1, lr_scale=bad)
