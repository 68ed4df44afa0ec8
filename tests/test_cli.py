"""The command line: happy paths with tiny budgets, and bad arguments (exit 2, one line, no files)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddpm_lite.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args):
    return main([str(a) for a in args])


def test_points_train_sample_bpd(tmp_path, capsys):
    run = tmp_path / "roll"
    assert run_cli("train", "--data", "swiss_roll", "--steps", 30, "--T", 50, "--out", run, "--no-progress") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 30 and not summary["interrupted"]
    assert run_cli("sample", "--run", run, "--n", 100, "--out", tmp_path / "pts.png") == 0
    pts = np.load(tmp_path / "pts.npy")
    assert pts.shape == (100, 2) and np.isfinite(pts).all()
    assert (tmp_path / "pts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert run_cli("bpd", "--run", run, "--n", 20) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 20 and res["split"] == "test" and np.isfinite(res["bits_per_dim"])
    # The parts add up to the whole bound.
    assert res["prior_L_T"] + res["sum_L_t_minus_1"] + res["decoder_L_0"] == pytest.approx(res["bits_per_dim"], rel=1e-9)
    # Training again with a larger budget resumes from step 30.
    assert run_cli("train", "--data", "swiss_roll", "--steps", 40, "--T", 50, "--out", run, "--no-progress") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 40


def test_image_folder_train_and_ddim_sample(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    assert run_cli("train", "--data", folder, "--image-size", 8, "--mode", "RGB", "--steps", 2, "--T", 20,
                   "--batch-size", 4, "--out", run, "--no-progress") == 0
    assert run_cli("sample", "--run", run, "--n", 5, "--sampler", "ddim", "--ddim-steps", 5,
                   "--out", tmp_path / "grid.png") == 0
    x = np.load(tmp_path / "grid.npy")
    assert x.shape == (5, 3, 8, 8)
    with Image.open(tmp_path / "grid.png") as im:
        assert im.mode == "RGB" and im.size[0] >= 3 * 9


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "digits", "--seconds", "-3", "--out", "{tmp}/r"], "positive"),
    (["train", "--data", "digits", "--steps", "ten", "--out", "{tmp}/r"], "positive integer"),
    (["train", "--data", "digits", "--steps", "1", "--out", "{tmp}/r", "--schedule", "zigzag"], "invalid choice"),
    (["train", "--data", "{tmp}/nowhere", "--steps", "1", "--out", "{tmp}/r"], "neither"),
    (["train", "--data", "digits", "--out", "{tmp}/r"], "budget"),
    (["train", "--data", "digits", "--steps", "1", "--out", "{tmp}/r", "--device", "warp9"], "device"),
    (["sample", "--run", "{tmp}/missing", "--out", "{tmp}/s.png"], "does not exist"),
    (["sample", "--run", "{tmp}/missing", "--out", "{tmp}/s.jpg"], ".png"),
    (["bpd", "--run", "{tmp}/missing"], "does not exist"),
    (["fly"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) if needle in ("positive", "positive integer", "invalid choice") else _no_raise():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []  # nothing written, not even the run directory


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_subprocess_help_and_exit_codes(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    ok = subprocess.run([sys.executable, "-m", "ddpm_lite", "--help"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "examples:" in ok.stdout and "sample --run" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ddpm_lite", "train", "--data", "digits", "--steps", "0",
                          "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert not (tmp_path / "r").exists()


def test_no_progress_prints_loss_and_checkpoint_lines(tmp_path, capsys):
    run = tmp_path / "roll"
    assert run_cli("train", "--data", "swiss_roll", "--steps", 12, "--T", 20, "--out", run, "--no-progress",
                   "--log-every", 5, "--checkpoint-every", 6) == 0
    err = capsys.readouterr().err.splitlines()
    assert [ln.split(":")[0] for ln in err if ln.startswith("step ")] == ["step 5", "step 10", "step 12"]
    assert [ln for ln in err if ln.startswith("checkpoint:")] == [
        f"checkpoint: step {s} saved in {run}" for s in (6, 12)]
