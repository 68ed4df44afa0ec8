"""Tests for ddpm_lite.book.experiments: the baseline code length against a direct count, the
schedule and model helpers, and the experiment runner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.book.experiments import (
    code_excerpt,
    confident_share,
    code_of,
    digits_eps_model,
    pixel_categorical_bpd,
    scaled_linear_schedule,
    train_and_evaluate,
)


def test_scaled_linear_rejects_short_chains():
    with pytest.raises(ValueError, match="T must be an integer ≥ 21"):
        scaled_linear_schedule(10)


def test_scaled_linear_schedule_is_the_paper_schedule_at_1000():
    np.testing.assert_array_equal(scaled_linear_schedule(1000).betas, NoiseSchedule.linear(1000).betas)
    assert scaled_linear_schedule(100).alpha_bars[-1] < 1e-3


def test_pixel_categorical_bpd():
    rng = np.random.default_rng(0)
    train = torch.as_tensor(rng.integers(0, 5, (200, 3)))
    test = torch.as_tensor(rng.integers(0, 5, (50, 3)))
    expected = 0.0
    for i in range(3):
        counts = np.bincount(train[:, i].numpy(), minlength=5) + 1.0
        p = counts / counts.sum()
        expected += -np.log2(p[test[:, i].numpy()]).sum()
    assert abs(pixel_categorical_bpd(train, test, 5) - expected / test.numel()) < 1e-12
    # with no data at all the smoothed model is uniform
    assert abs(pixel_categorical_bpd(train[:0], test, 5) - math.log2(5)) < 1e-12
    with pytest.raises(ValueError, match="test_levels"):
        pixel_categorical_bpd(train, test + 5, 5)


def test_training_on_the_bound_has_finite_decoder_gradients_at_the_outer_levels():
    """Chapter 9 trains on the true bound, whose L_0 has open bins at −1 and 1: gradients must stay finite."""
    d = GaussianDiffusion(NoiseSchedule.linear(20), num_levels=17)
    x0 = torch.linspace(-1, 1, 17).repeat(3)
    mean = (x0 + 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    for log_var in (math.log(1e-4), math.log(0.05)):
        ll = d.decoder_log_likelihood(x0, mean, torch.full_like(x0, log_var))
        (grad,) = torch.autograd.grad(ll.sum(), mean)
        assert torch.isfinite(ll).all() and torch.isfinite(grad).all()
    levels = torch.linspace(-1, 1, 17)
    p = d.decoder_log_likelihood(levels, torch.full_like(levels, 0.3), torch.full_like(levels, math.log(0.1))).exp()
    assert abs(p.sum().item() - 1) < 1e-5


def test_code_of_strips_the_docstring():
    src = code_of(GaussianDiffusion.q_sample)
    assert src.lstrip().startswith("def q_sample")
    assert '"""' not in src and "return" in src
    with pytest.raises(ValueError):
        code_of(42)


def test_code_excerpt_is_the_marked_lines_of_the_source():
    import inspect

    from ddpm_lite import sampling

    text = code_excerpt(sampling.run_plan, "for i, st in enumerate(steps)", "x.add_(noise()")
    head, *body = text.splitlines()
    lines, first = inspect.getsourcelines(sampling.run_plan)
    lo, hi = (int(n) for n in head.rsplit("lines ", 1)[1].split("-"))
    # The excerpt is exactly those file lines, dedented, and starts and stops at the markers.
    assert [b.strip() for b in body] == [line.strip() for line in lines[lo - first:hi - first + 1]]
    assert body[0].startswith("for i, st in enumerate(steps)") and "x.add_(noise()" in body[-1]
    assert "NoiseBuffer" not in text  # the set-up before the loop is left out
    with pytest.raises(ValueError, match="update the excerpt markers"):
        code_excerpt(sampling.run_plan, "no such line", "x")


def test_confident_share_separates_digits_from_noise():
    from ddpm_lite.data import digits

    real = confident_share(digits("test"))
    noise = confident_share(torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    # The classifier is ≈ 97 % accurate on test digits, so most of them must be confident;
    # for unstructured noise a confident vote would be a broken classifier.
    assert real > 0.85 and noise < 0.5 * real
    assert confident_share(digits("test"), level=0.0) == 1.0
    with pytest.raises(ValueError, match="shape"):
        confident_share(torch.zeros(3, 8, 8))


def test_digits_mlp_keeps_image_shape():
    m = digits_eps_model(10, "mlp")
    x = torch.randn(3, 1, 8, 8)
    assert m(x, torch.tensor([1, 5, 10])).shape == x.shape


def test_train_and_evaluate_is_deterministic():
    from ddpm_lite.data import digits

    torch.set_num_threads(1)
    d = GaussianDiffusion(scaled_linear_schedule(25), num_levels=17)
    tr, te = digits("train")[:256], digits("test")[:40]
    runs = [train_and_evaluate("x", d, tr, te, steps=5, batch_size=32, n_samples=40, bound_images=4, seed=3)
            for _ in range(2)]
    assert runs[0].fd == runs[1].fd and runs[0].bpd == runs[1].bpd
    assert math.isfinite(runs[0].fd) and math.isfinite(runs[0].bpd) and runs[0].details["bpd_se"] > 0
    vb = train_and_evaluate("vb", d, tr, te, steps=5, batch_size=32, n_samples=40, bound_images=4, seed=3,
                            loss_kind="vb")
    assert all(math.isfinite(loss) for _, loss in vb.losses)
