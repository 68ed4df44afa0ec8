"""The level-posterior denoiser (ddpm_lite.nets.levels): Bayes over the data's grid, as an ε-model."""

from __future__ import annotations

import math

import pytest
import torch

from ddpm_lite import GaussianDiffusion, LevelPosteriorDenoiser, NoiseSchedule
from ddpm_lite.runs.checkpoint import load_checkpoint
from ddpm_lite.cli import load_run
from ddpm_lite.data import DIGITS_LEVELS, digits
from ddpm_lite.nets.levels import level_values
from ddpm_lite.nets import build_model, default_model
from ddpm_lite.training import train

T = 100


def schedule(T: int = T) -> NoiseSchedule:
    return NoiseSchedule.linear(T, beta_T=0.02 * 1000 / T)


def _randomised(model: LevelPosteriorDenoiser, seed: int = 0, scale: float = 0.5) -> LevelPosteriorDenoiser:
    """Give the zero-initialised head and prior random values, so the network's logits matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (model.net.out.weight, model.net.out.bias, model.prior_logits):
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def test_posterior_is_bayes_rule_with_the_forward_likelihood():
    """softmax(logits + log-likelihood) against Bayes' rule written out in float64 with Gaussian densities."""
    s = schedule()
    m = _randomised(LevelPosteriorDenoiser(s, 5, base_channels=8))
    x0 = level_values(5)[torch.randint(0, 5, (6, 1, 8, 8), generator=torch.Generator().manual_seed(1))].float()
    t = torch.tensor([1, 5, 20, 50, 80, 100])
    d = GaussianDiffusion(s, num_levels=5)
    xt = d.q_sample(x0, t, generator=torch.Generator().manual_seed(2))
    logits = m.net(xt, t).reshape(6, 1, 5, 8, 8)
    post = torch.softmax(m.level_log_posterior(xt, t, logits).double(), dim=2)
    # Bayes from definitions: prior ∝ exp(logits + prior_logits), likelihood N(x_t; √ᾱ_t c_k, 1 − ᾱ_t).
    ab = torch.tensor(list(s.alpha_bars), dtype=torch.float64)[t].view(-1, 1, 1, 1, 1)
    c = level_values(5).view(1, 1, -1, 1, 1)
    prior = torch.softmax((logits + m.prior_logits).double(), dim=2)
    lik = torch.exp(-(xt.double().unsqueeze(2) - ab.sqrt() * c) ** 2 / (2 * (1 - ab))) / torch.sqrt(2 * math.pi * (1 - ab))
    bayes = prior * lik / (prior * lik).sum(2, keepdim=True)
    assert torch.allclose(post, bayes, atol=1e-5)
    # and x̂_0 is that posterior's mean, turned into ε by x_t = √ᾱ_t x̂_0 + √(1 − ᾱ_t) ε
    x0_hat = (bayes * c).sum(2)
    eps_want = (xt.double() - ab.view(-1, 1, 1, 1).sqrt() * x0_hat) / (1 - ab.view(-1, 1, 1, 1)).sqrt()
    assert torch.allclose(m(xt, t).double(), eps_want, atol=2e-4)
    # A mutation: dropping the likelihood (prior alone) is not the same posterior.
    assert not torch.allclose(prior, bayes, atol=1e-2)


def test_small_t_recovers_x0_exactly_against_a_random_network():
    """Noise far below the level spacing: the likelihood decides, ε_θ is the true noise (no mean error in L_{t−1})."""
    s = NoiseSchedule.linear(1000)
    m = _randomised(LevelPosteriorDenoiser(s, DIGITS_LEVELS, learn_sigma=True), seed=3, scale=0.1)
    x0 = digits("test")[:64]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    d = GaussianDiffusion(s, variance="learned", num_levels=DIGITS_LEVELS)
    for t_val, share in ((1, 1.0), (2, 0.998), (3, 0.97)):
        t = torch.full((64,), t_val)
        xt = d.q_sample(x0, t, noise)
        exact = ((m(xt, t)[:, :1] - noise).abs() < 1e-2).double().mean()
        assert exact >= share, (t_val, float(exact))  # misses: 3σ draws near a level boundary
    # At t = 200 the noise (std 0.5) spans several levels: the network's logits now change ε.
    t = torch.full((64,), 200)
    xt = d.q_sample(x0, t, noise)
    zero = LevelPosteriorDenoiser(s, DIGITS_LEVELS, learn_sigma=True)
    assert (m(xt, t)[:, :1] - zero(xt, t)[:, :1]).abs().mean() > 1e-2


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_shapes_rgb_and_the_eps_model_protocol(learn_sigma):
    s = schedule()
    m = LevelPosteriorDenoiser(s, 4, learn_sigma=learn_sigma, in_channels=3, image_size=8, base_channels=8)
    xt = torch.randn(5, 3, 8, 8)
    out = m(xt, torch.arange(1, 6))
    assert out.shape == (5, 6 if learn_sigma else 3, 8, 8) and torch.isfinite(out).all()
    d = GaussianDiffusion(s, variance="learned" if learn_sigma else "beta", num_levels=4)
    x0 = level_values(4)[torch.randint(0, 4, (5, 3, 8, 8))].float()
    assert torch.isfinite(d.bits_per_dim(m, x0)["per_sample"]).all()
    assert d.sample(m, (2, 3, 8, 8)).shape == (2, 3, 8, 8)


def test_model_refuses_another_schedule_and_bad_arguments():
    m = LevelPosteriorDenoiser(schedule(), DIGITS_LEVELS, base_channels=8)
    other = GaussianDiffusion(NoiseSchedule.cosine(T), num_levels=DIGITS_LEVELS)
    x0 = digits("test")[:4]
    with pytest.raises(ValueError, match="another noise schedule"):
        other.bits_per_dim(m, x0)
    with pytest.raises(ValueError, match="another noise schedule"):
        train(m, other, x0, steps=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="NoiseSchedule"):
        LevelPosteriorDenoiser([0.1, 0.2], DIGITS_LEVELS)
    with pytest.raises(ValueError, match="num_levels"):
        LevelPosteriorDenoiser(schedule(), 1)
    with pytest.raises(ValueError, match="for images"):
        default_model((10, 2), T=T, levels=(schedule(), 17))


def test_config_round_trip_and_checkpoint_resumes_bitwise(tmp_path):
    s = schedule()
    d = GaussianDiffusion(s, variance="learned", num_levels=DIGITS_LEVELS)
    data = digits("train")[:200]

    def run(steps, ckpt=None):
        torch.manual_seed(0)
        m = LevelPosteriorDenoiser(s, DIGITS_LEVELS, learn_sigma=True, base_channels=8)
        return train(m, d, data, steps=steps, batch_size=32, device="cpu", progress=False, loss_kind="vb",
                     checkpoint_dir=ckpt)

    whole = run(8)
    run(4, tmp_path)
    resumed = run(8, tmp_path)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    rebuilt = build_model(load_checkpoint(tmp_path)["config"]["model"])
    assert isinstance(rebuilt, LevelPosteriorDenoiser) and rebuilt.config == resumed.model.config
    model, diffusion, _, _ = load_run(tmp_path, "cpu")
    x = digits("test")[:8]
    g = torch.Generator
    assert diffusion.bits_per_dim(model, x, generator=g().manual_seed(0))["total"] == \
        d.bits_per_dim(resumed.ema_model, x, generator=g().manual_seed(0))["total"]
    with pytest.raises(ValueError, match="betas"):
        cfg = dict(model.config)
        del cfg["betas"]
        build_model(cfg)


def test_cli_trains_samples_and_scores_a_level_model(tmp_path, capsys):
    from ddpm_lite.cli import main

    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--steps", "3", "--T", "50", "--denoiser", "levels", "--variance",
                 "learned", "--loss", "vb", "--out", str(run), "--no-progress"]) == 0
    assert load_checkpoint(run)["config"]["model"]["kind"] == "level_posterior"
    assert main(["sample", "--run", str(run), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["bpd", "--run", str(run), "--n", "10"]) == 0
    assert main(["train", "--data", "moons", "--steps", "1", "--denoiser", "levels", "--out", str(tmp_path / "m"),
                 "--no-progress"]) == 2
    assert "for images" in capsys.readouterr().err
