"""Learned reverse variance, L_hybrid and importance-sampled t (Nichol & Dhariwal 2021)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.runs.checkpoint import load_checkpoint
from ddpm_lite.cli import load_run
from ddpm_lite.data import DIGITS_LEVELS, digits
from ddpm_lite.nets import MLPDenoiser, UNet
from ddpm_lite.nets import build_model
from ddpm_lite.training.timesteps import ImportanceSampler
from ddpm_lite.training import train

T = 20


def schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T)


@pytest.fixture(scope="module")
def x0() -> torch.Tensor:
    return digits("test")[:12]


class FixedV(nn.Module):
    """An ε-model (an untrained-but-random MLP) with a constant v appended: Σ_θ at a chosen v."""

    def __init__(self, v: float) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.eps = MLPDenoiser(dim=64, hidden=32, depth=1, T=T, data_shape=(1, 8, 8))
        nn.init.normal_(self.eps.out.weight, std=0.1)
        self.v = v

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.eps(xt, t)
        return torch.cat([eps, torch.full_like(eps, self.v)], dim=1)


@pytest.mark.parametrize(("v", "fixed"), [(1.0, "beta"), (0.0, "beta_tilde")])
def test_v_at_its_ends_is_exactly_the_fixed_variance(x0, v, fixed):
    learned = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    plain = GaussianDiffusion(schedule(), variance=fixed, num_levels=DIGITS_LEVELS)
    model = FixedV(v)
    n = x0.shape[0]
    for t_val in (1, 2, T // 2, T):  # the decoder, the first KL, the middle, the last
        t = torch.full((n,), t_val)
        xt = plain.q_sample(x0, t, generator=torch.Generator().manual_seed(t_val))
        a = learned.p_mean_variance(model, xt, t)
        b = plain.p_mean_variance(model.eps, xt, t)
        assert torch.equal(a["mean"], b["mean"])
        assert torch.equal(a["log_variance"], b["log_variance"]), f"log σ² differs at t={t_val}"
        torch.testing.assert_close(a["variance"], b["variance"], rtol=1e-6, atol=0)
        assert torch.equal(learned.vb_terms_bpd(model, x0, xt, t), plain.vb_terms_bpd(model.eps, x0, xt, t))
    gen = torch.Generator
    bpd_a = learned.bits_per_dim(model, x0, generator=gen().manual_seed(0))
    bpd_b = plain.bits_per_dim(model.eps, x0, generator=gen().manual_seed(0))
    assert bpd_a["total"] == bpd_b["total"]
    s_a = learned.sample(model, (4, 1, 8, 8), generator=gen().manual_seed(1))
    s_b = plain.sample(model.eps, (4, 1, 8, 8), generator=gen().manual_seed(1))
    torch.testing.assert_close(s_a, s_b, rtol=1e-5, atol=1e-5)
    # DDIM uses ε only: the v channels must not change it at all.
    d_a = learned.ddim_sample(model, (4, 1, 8, 8), steps=5, eta=1.0, generator=gen().manual_seed(2))
    d_b = plain.ddim_sample(model.eps, (4, 1, 8, 8), steps=5, eta=1.0, generator=gen().manual_seed(2))
    assert torch.equal(d_a, d_b)


def test_v_interpolates_the_log_variance_between_the_ends():
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    t = torch.arange(1, T + 1)
    v = torch.full((T, 1), 0.25, dtype=torch.float64)
    got = d.learned_log_variance(v, t).squeeze(1).numpy()
    s = schedule()
    log_beta = np.log(s.betas[1:])
    log_tilde = np.log(np.r_[s.posterior_variance[2], s.posterior_variance[2:]])  # β̃_1 clipped to β̃_2
    np.testing.assert_allclose(got, 0.25 * log_beta + 0.75 * log_tilde, rtol=1e-12)


@pytest.mark.parametrize("v", [-8.0, -1.0, 0.0, 0.5, 1.0, 3.0])
def test_learned_decoder_is_finite_at_t1(x0, v):
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    t = torch.ones(x0.shape[0], dtype=torch.long)
    xt = d.q_sample(x0, t, generator=torch.Generator().manual_seed(0))
    nll = d.vb_terms_bpd(FixedV(v), x0, xt, t)
    assert torch.isfinite(nll).all() and (nll > 0).all()


def test_learned_variance_refuses_a_model_without_v(x0):
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    with pytest.raises(ValueError, match="learn_sigma=True"):
        d.training_losses(MLPDenoiser(dim=64, T=T, data_shape=(1, 8, 8)), x0, kind="hybrid")
    with pytest.raises(ValueError, match="fixed"):
        from ddpm_lite.reverse import eps_loss_weight

        eps_loss_weight(schedule(), "learned")


class TwoHeads(nn.Module):
    """ε and v from separate parameters, so their gradients can be told apart."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.eps = MLPDenoiser(dim=64, hidden=32, depth=1, T=T, data_shape=(1, 8, 8))
        self.v = MLPDenoiser(dim=64, hidden=32, depth=1, T=T, data_shape=(1, 8, 8))
        for head in (self.eps, self.v):
            nn.init.normal_(head.out.weight, std=0.1)

    def forward(self, xt, t):
        return torch.cat([self.eps(xt, t), self.v(xt, t)], dim=1)


def _grad_norms(model: TwoHeads, loss: torch.Tensor) -> tuple[float, float]:
    model.zero_grad()
    loss.backward()
    norm = lambda m: sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None)  # noqa: E731
    return norm(model.eps), norm(model.v)


def test_hybrid_vb_term_trains_only_the_variance(x0):
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    model = TwoHeads()
    kw = dict(t=torch.arange(1, 13) % T + 1, noise=torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    hybrid = d.training_losses(model, x0, kind="hybrid", **kw)
    g_eps, g_v = _grad_norms(model, hybrid["vb"].sum())
    assert g_eps == 0.0 and g_v > 0.0  # the stop-gradient: L_vlb reaches v only
    # The control: the plain bound does train the mean, so the test above can fail.
    g_eps_vb, _ = _grad_norms(model, d.training_losses(model, x0, kind="vb", **kw)["loss"].sum())
    assert g_eps_vb > 0.0
    # The loss is L_simple + λ·T·L_{t−1} and its ε-gradient is L_simple's.
    hybrid = d.training_losses(model, x0, kind="hybrid", lambda_vb=0.001, **kw)
    torch.testing.assert_close(hybrid["loss"], hybrid["mse"] + 0.001 * hybrid["vb"])
    g_eps_h, _ = _grad_norms(model, hybrid["loss"].sum())
    g_eps_mse, _ = _grad_norms(model, d.training_losses(model, x0, kind="simple", **kw)["loss"].sum())
    assert g_eps_h == pytest.approx(g_eps_mse, rel=1e-5)


def _warm_sampler(terms: np.ndarray) -> ImportanceSampler:
    s = ImportanceSampler(T, history=3)
    for _ in range(3):
        s.update(torch.arange(1, T + 1), torch.tensor(terms))
    return s


def test_sampler_is_uniform_until_warm_then_follows_the_second_moment():
    s = ImportanceSampler(T, history=3, uniform_mix=0.01)
    s.update(torch.arange(1, T + 1), torch.ones(T))
    np.testing.assert_array_equal(s.probabilities(), np.full(T, 1.0 / T))  # one value per t: not warm
    terms = np.linspace(1.0, 20.0, T)
    s = _warm_sampler(terms)
    p = s.probabilities()
    want = terms / terms.sum() * (1 - s.uniform_mix) + s.uniform_mix / T
    np.testing.assert_allclose(p, want, rtol=1e-12)
    assert p.sum() == pytest.approx(1.0)
    state = s.state_dict()
    fresh = ImportanceSampler(T, history=3)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.probabilities(), p)
    with pytest.raises(ValueError, match="uniform_mix"):
        ImportanceSampler(T, uniform_mix=0.0)


def test_importance_sampled_bound_is_unbiased(x0):
    """Monte Carlo over t ~ p, weighted by 1/(T p_t), against the full sum over every t."""
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    model = FixedV(0.5)
    one = x0[:1]
    noise = torch.randn(one.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        t_all = torch.arange(1, T + 1)
        exact = d.vb_terms_bpd(model, one.expand(T, -1, -1, -1), d.q_sample(one.expand(T, -1, -1, -1), t_all,
                                                                             noise=noise.expand(T, -1, -1, -1)), t_all)
        full_sum = float(exact.sum())  # Σ_t L_{t−1} for this (x_0, ε)
        sampler = _warm_sampler(exact.double().numpy() ** 0.5)  # a deliberately non-optimal, non-uniform p
        assert sampler.probabilities().max() > 2.0 / T
        n = 40000
        out = d.training_losses(model, one.expand(n, -1, -1, -1), kind="vb", noise=noise.expand(n, -1, -1, -1),
                                generator=torch.Generator().manual_seed(0), t_sampler=sampler)
    est = out["loss"].double()
    se = float(est.std() / math.sqrt(n))
    assert abs(float(est.mean()) - full_sum) < 4 * se + 1e-9, (float(est.mean()), full_sum, se)
    # Without the weights the mean is biased towards the heavy t: the test would notice a missing weight.
    biased = float(out["vb"].double().mean())
    assert abs(biased - full_sum) > 10 * se


def test_training_with_the_sampler_changes_t_and_runs(x0):
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    torch.manual_seed(0)
    sampler = ImportanceSampler(T, history=2)
    r = train(UNet(T=T, learn_sigma=True), d, digits("train")[:256], steps=12, batch_size=32, device="cpu",
              progress=False, loss_kind="hybrid", t_sampler=sampler, log_every=4)
    assert sampler.warmed_up and not np.allclose(sampler.probabilities(), 1.0 / T)
    assert all(math.isfinite(loss) for _, loss in r.losses)
    with pytest.raises(ValueError, match="t_sampler"):
        train(UNet(T=T, learn_sigma=True), d, digits("train")[:64], steps=1, device="cpu", progress=False,
              t_sampler=sampler)


def test_learned_variance_checkpoint_round_trips_and_resumes_bitwise(tmp_path):
    d = GaussianDiffusion(schedule(), variance="learned", num_levels=DIGITS_LEVELS)
    data = digits("train")[:200]

    def run(steps, ckpt=None):
        torch.manual_seed(0)
        return train(UNet(T=T, learn_sigma=True, base_channels=8), d, data, steps=steps, batch_size=32,
                     device="cpu", progress=False, loss_kind="hybrid", checkpoint_dir=ckpt)

    whole = run(8)
    run(4, tmp_path)
    resumed = run(8, tmp_path)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    state = load_checkpoint(tmp_path)
    assert GaussianDiffusion.from_config(state["config"]["diffusion"]).variance == "learned"
    assert build_model(state["config"]["model"]).config["learn_sigma"] is True
    model, diffusion, _, _ = load_run(tmp_path, "cpu")
    assert diffusion.learned_variance
    for a, b in zip(model.state_dict().values(), resumed.ema_model.state_dict().values()):
        assert torch.equal(a, b)
    x = digits("test")[:8]
    gen = torch.Generator
    assert diffusion.bits_per_dim(model, x, generator=gen().manual_seed(0))["total"] == pytest.approx(
        d.bits_per_dim(resumed.ema_model, x, generator=gen().manual_seed(0))["total"], rel=0, abs=0)


def test_baselines_order_and_values():
    from ddpm_lite.data.baselines import autoregressive_bpd, per_pixel_bpd, uniform_bpd
    from ddpm_lite.data import from_model_range

    tr = from_model_range(digits("train"), DIGITS_LEVELS).long().flatten(1)
    te = from_model_range(digits("test"), DIGITS_LEVELS).long().flatten(1)
    assert uniform_bpd(17) == pytest.approx(math.log2(17))
    per_pixel = per_pixel_bpd(tr, te, DIGITS_LEVELS)
    # Independent pixels cannot be worse than uniform by more than the add-one cost, and
    # the digits' blank borders make them far better.
    assert per_pixel < uniform_bpd(17) - 1.0
    ar = autoregressive_bpd(tr[:400], te[:100], DIGITS_LEVELS, max_iter=30)
    assert ar < per_pixel_bpd(tr[:400], te[:100], DIGITS_LEVELS)  # neighbours carry information
    # On constant data the per-pixel model is nearly certain: −log₂((N + 1)/(N + K)) per pixel.
    const = torch.zeros(10, 4, dtype=torch.long)
    assert per_pixel_bpd(const, const, 3) == pytest.approx(-math.log2(11 / 13))
    with pytest.raises(ValueError, match="levels outside"):
        per_pixel_bpd(const + 5, const, 3)


def test_cli_trains_samples_and_scores_a_learned_variance_model(tmp_path, capsys):
    import json

    from ddpm_lite.cli import main

    run = tmp_path / "digits"
    args = ["train", "--data", "digits", "--steps", "3", "--T", "20", "--variance", "learned",
            "--loss", "hybrid", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    model, diffusion, _, _ = load_run(run, "cpu")
    assert diffusion.variance == "learned" and model.config["learn_sigma"] is True
    assert main(["sample", "--run", str(run), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["bpd", "--run", str(run), "--n", "5"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert math.isfinite(res["bits_per_dim"]) and res["bits_per_dim"] > 0


def test_cli_importance_sampling_trains_on_the_bound_and_refuses_l_simple(tmp_path, capsys):
    """--importance reaches train() as an ImportanceSampler; with --loss simple it is refused by name."""
    from ddpm_lite.cli import main

    ok = ["train", "--data", "digits", "--steps", "3", "--T", "20", "--variance", "learned",
          "--loss", "vb", "--importance", "--out", str(tmp_path / "vb"), "--no-progress"]
    assert main(ok) == 0
    capsys.readouterr()
    bad = ["train", "--data", "digits", "--steps", "3", "--T", "20", "--importance",
           "--out", str(tmp_path / "simple"), "--no-progress"]
    code = main(bad)
    err = capsys.readouterr().err
    assert code != 0 and "--importance" in err and "--loss vb" in err and "Traceback" not in err
