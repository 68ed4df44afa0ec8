"""The training path: one typed configuration, what checkpoints store, and resumes that continue bit for bit.

``fixtures/run_v0_2_0`` is a run directory written by ddpm_lite 0.2.0 (``make_fixture.py`` there,
run against that version) together with the weights that version reached when it resumed the run
for two more steps: the current code must load that checkpoint and reach the same weights.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from ddpm_lite import GaussianDiffusion, ImportanceSampler, MLPDenoiser, NoiseSchedule, TrainConfig, train

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_v0_2_0"


def _learned_run(steps: int, run: Path, **kw) -> object:
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = MLPDenoiser(dim=2, hidden=8, depth=1, T=10, learn_sigma=True)
    diffusion = GaussianDiffusion(NoiseSchedule.linear(10), variance="learned", num_levels=None)
    return train(model, diffusion, data, steps=steps, batch_size=16, loss_kind="hybrid", progress=False,
                 device="cpu", checkpoint_dir=run, **kw)


def test_a_checkpoint_of_version_0_2_0_resumes_to_the_weights_that_version_reached(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run)
    result = _learned_run(4, run)
    assert result.steps == 4
    for name, want in (("ema_model", "resumed_ema.pt"), ("model", "resumed_model.pt")):
        expected = torch.load(FIXTURE / want, weights_only=True)
        got = getattr(result, name).state_dict()
        assert sorted(got) == sorted(expected)
        for key, value in got.items():
            assert torch.equal(value, expected[key]), (name, key)


def _importance_run(steps: int, run: Path) -> tuple[object, ImportanceSampler]:
    sampler = ImportanceSampler(10, history=2)
    return _learned_run(steps, run, t_sampler=sampler), sampler


def test_an_importance_sampled_run_resumes_bit_for_bit(tmp_path):
    straight, s_straight = _importance_run(8, tmp_path / "straight")
    _, s_first = _importance_run(3, tmp_path / "split")
    assert s_first.warmed_up  # the history matters by the time of the resume
    resumed, s_resumed = _importance_run(8, tmp_path / "split")
    assert resumed.steps == 8
    assert torch.equal(torch.as_tensor(s_resumed.probabilities()), torch.as_tensor(s_straight.probabilities()))
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    # Without its history the resumed run draws other t: the test above could tell.
    fresh = ImportanceSampler(10, history=2)
    assert not torch.equal(torch.as_tensor(fresh.probabilities()), torch.as_tensor(s_straight.probabilities()))


def test_an_old_importance_checkpoint_resumes_with_a_warning_and_a_fresh_history(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run)  # 0.2.0 stored neither the importance flag nor its history
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _learned_run(3, run, t_sampler=ImportanceSampler(10, history=2))
    assert result.steps == 3
    assert any("no importance-sampler history" in str(w.message) for w in caught)


def test_learned_variance_with_l_simple_is_refused_with_the_fix(tmp_path):
    d = GaussianDiffusion(NoiseSchedule.linear(10), variance="learned", num_levels=None)
    model = MLPDenoiser(dim=2, hidden=8, depth=1, T=10, learn_sigma=True)
    with pytest.raises(ValueError, match=r"loss_kind='hybrid' \(--loss hybrid\)"):
        train(model, d, torch.randn(32, 2), steps=1, progress=False, device="cpu")


def test_the_config_validates_and_is_what_the_checkpoint_stores(tmp_path):
    import json

    cfg = TrainConfig(batch_size=16, lr=2e-3, loss_kind="vb", importance=True, seed=3)
    assert cfg.stored() == {"batch_size": 16, "lr": 2e-3, "weight_decay": 0.0, "ema_decay": 0.999, "grad_clip": 1.0,
                            "loss_kind": "vb", "seed": 3, "importance": True}
    assert "importance" not in TrainConfig().stored()  # so configs of older runs still match
    d = GaussianDiffusion(NoiseSchedule.linear(10), num_levels=None)
    torch.manual_seed(0)
    train(MLPDenoiser(dim=2, hidden=8, depth=1, T=10), d, torch.randn(32, 2), TrainConfig(batch_size=8, seed=3),
          steps=2, progress=False, device="cpu", checkpoint_dir=tmp_path / "r")
    stored = json.loads((tmp_path / "r" / "state.json").read_text())["config"]["train"]
    assert stored == TrainConfig(batch_size=8, seed=3).stored()
    for bad, word in (({"batch_size": 0}, "batch_size"), ({"loss_kind": "l2"}, "loss_kind"),
                      ({"importance": True}, "importance")):
        with pytest.raises(ValueError, match=word):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="not both"):
        train(MLPDenoiser(dim=2, hidden=8, depth=1, T=10), d, torch.randn(8, 2), TrainConfig(), lr=1.0, steps=1)
    with pytest.raises(TypeError, match="loss"):
        train(MLPDenoiser(dim=2, hidden=8, depth=1, T=10), d, torch.randn(8, 2), steps=1, loss="vb")
