"""Continuous time through the one training loop, checkpoints and the command line (tiny budgets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ddpm_lite import train
from ddpm_lite.cli import load_run, main
from ddpm_lite.continuous import ContinuousDiffusion
from ddpm_lite.data import DIGITS_LEVELS, digits
from ddpm_lite.nets.continuous import continuous_model


def test_training_moves_the_learned_ends_and_the_checkpoint_restores_them(tmp_path):
    data = digits("train")[:64]
    torch.manual_seed(0)
    model = continuous_model(tuple(data.shape), num_levels=DIGITS_LEVELS, learn_ends=True, shape="learned",
                             base_channels=8)
    before = model.schedule.ends.detach().clone()
    res = train(model, ContinuousDiffusion(DIGITS_LEVELS), data, steps=3, batch_size=16, loss_kind="vb", lr=1e-2,
                device="cpu", progress=False, checkpoint_dir=tmp_path, seed=0)
    assert np.isfinite(res.losses[-1][1])
    after = res.model.schedule.ends.detach()
    assert not torch.equal(after, before) and after.dtype == torch.float64
    loaded, diffusion, state, _ = load_run(tmp_path, "cpu")
    assert isinstance(diffusion, ContinuousDiffusion) and state["step"] == 3
    assert torch.equal(loaded.schedule.ends.detach(), res.ema_model.schedule.ends.detach())
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(loaded.schedule.gamma(t).detach(), res.ema_model.schedule.gamma(t).detach())


def test_the_loop_refuses_importance_and_other_losses_in_continuous_time():
    data = digits("train")[:16]
    model = continuous_model(tuple(data.shape), num_levels=DIGITS_LEVELS, base_channels=8)
    d = ContinuousDiffusion(DIGITS_LEVELS)
    with pytest.raises(ValueError, match="low-discrepancy"):
        from ddpm_lite import ImportanceSampler
        train(model, d, data, steps=1, loss_kind="vb", t_sampler=ImportanceSampler(10), device="cpu", progress=False)
    with pytest.raises(ValueError, match="loss_kind='vb'"):
        train(model, d, data, steps=1, loss_kind="hybrid", device="cpu", progress=False)
    with pytest.raises(ValueError, match="ContinuousModel"):
        train(model.net, d, data, steps=1, loss_kind="vb", device="cpu", progress=False)


def test_cli_trains_scores_and_samples_a_continuous_run(tmp_path, capsys):
    run = tmp_path / "c"
    assert main(["train", "--data", "digits", "--time", "continuous", "--learn-ends", "--steps", "2",
                 "--batch-size", "16", "--out", str(run), "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["bpd", "--run", str(run), "--n", "8", "--draws", "2", "--T", "10", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["time"] == "continuous" and res["n"] == 8
    assert res["prior_L_T"] + res["diffusion_L_inf"] + res["decoder_L_0"] == pytest.approx(res["bits_per_dim"])
    assert np.isfinite(res["bits_per_dim_T10"])
    for sampler in ("ancestral", "dpm++"):
        extra = ["--ddim-steps", "5"] if sampler != "ancestral" else []
        assert main(["sample", "--run", str(run), "--n", "3", "--T", "20", "--sampler", sampler, *extra,
                     "--out", str(tmp_path / f"{sampler}.png"), "--device", "cpu"]) == 0
        x = np.load(tmp_path / f"{sampler}.npy")
        assert x.shape == (3, 1, 8, 8) and np.isfinite(x).all()


@pytest.mark.parametrize("argv, needle", [
    (["--time", "continuous", "--importance"], "drop --importance"),
    (["--time", "continuous", "--T", "100"], "drop --T"),
    (["--time", "continuous", "--variance", "learned"], "drop --variance"),
    (["--time", "continuous", "--loss", "hybrid"], "--loss vb"),
    (["--learn-ends"], "add --time continuous"),
    (["--gamma-shape", "learned"], "add --time continuous"),
])
def test_cli_bad_combinations_name_the_fix(tmp_path, capsys, argv, needle):
    out = tmp_path / "x"
    assert main(["train", "--data", "digits", "--steps", "1", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and not out.exists()


def test_cli_refuses_continuous_time_for_points(tmp_path, capsys):
    assert main(["train", "--data", "swiss_roll", "--time", "continuous", "--steps", "1",
                 "--out", str(tmp_path / "p")]) == 2
    assert "for images" in capsys.readouterr().err
