"""The PixelCNN likelihood baseline (ddpm_lite.data.pixelcnn): causal masks, a normalised likelihood, early stopping."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ddpm_lite.data.pixelcnn import GatedPixelCNN, pixelcnn_bpd


def _model(levels: int = 17, seed: int = 0) -> GatedPixelCNN:
    torch.manual_seed(seed)
    return GatedPixelCNN(levels, channels=8, layers=5).eval()  # the default depth: the reach the baseline has


def test_the_output_at_a_pixel_ignores_that_pixel_and_every_later_one():
    """Raster order i = 8r + c: re-drawing pixels ≥ i leaves the logits at i unchanged (to float rounding)."""
    model = _model().double()
    gen = torch.Generator().manual_seed(1)
    base = torch.randint(17, (8, 8), generator=gen)
    batch = base.repeat(64, 1, 1).view(64, 64)
    for i in range(64):
        batch[i, i:] = torch.randint(17, (64 - i,), generator=gen)
    with torch.no_grad():
        out = model(torch.cat([batch.view(64, 8, 8), base[None]])).flatten(2)  # (65, K, 64)
    ref = out[64]
    for i in range(64):
        # Batched convolutions may differ in the last bits; a real dependence is far above 1e-12 in float64.
        assert (out[i, :, i] - ref[:, i]).abs().max() < 1e-12, f"pixel {i} sees a pixel at or after it"


def test_every_earlier_pixel_reaches_every_later_one():
    """No blind spot: changing pixel j < i changes the logits at i (the two stacks cover all of x_<i)."""
    model = _model().double()  # influence through 6 gated layers can be small: float64 keeps it above rounding
    base = torch.full((8, 8), 8)
    pairs = [(j, i) for i in range(64) for j in range(i)]
    batch = base.flatten().repeat(len(pairs), 1)
    js = torch.tensor([j for j, _ in pairs])
    batch[torch.arange(len(pairs)), js] = 0
    with torch.no_grad():
        out = model(torch.cat([batch.view(-1, 8, 8), base[None]])).flatten(2)
    ref = out[-1]
    blind = [(j, i) for n, (j, i) in enumerate(pairs) if (out[n, :, i] - ref[:, i]).abs().max() < 1e-12]
    assert not blind, f"{len(blind)} (earlier, later) pixel pairs with no influence, e.g. {blind[:5]}"


def test_the_likelihood_sums_to_one_over_every_image():
    """All 3^(2·2) = 81 images of a 3-level 2×2 model: Σ_x 2^(−D·bits(x)) = 1."""
    model = _model(levels=3, seed=2)
    images = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)
    with torch.no_grad():
        bits = model.nll_bits(images)  # per pixel
    total = torch.exp2(-4 * bits.double()).sum()
    assert math.isclose(float(total), 1.0, rel_tol=1e-5)


def test_probabilities_of_the_17_levels_sum_to_one_at_each_pixel():
    model = _model()
    x = torch.randint(17, (4, 8, 8), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        p = model(x).softmax(1).sum(1)
    assert torch.allclose(p, torch.ones_like(p), atol=1e-5)


def test_training_keeps_the_best_held_out_weights_and_reports_test_bits():
    """A short run on toy data: early stopping returns the held-out minimum, the test score is finite and < log2 K."""
    gen = torch.Generator().manual_seed(4)
    data = (torch.rand(120, 8, 8, generator=gen) < 0.3).long() * 2  # levels 0 and 2 of 3: learnable
    res = pixelcnn_bpd(data[:100], data[100:], 3, seconds=3.0, holdout=20, channels=8, layers=1, eval_every=5,
                       lr=1e-2, batch_size=32)
    assert res["steps"] >= 5 and 0 < res["best_step"] <= res["steps"]
    assert res["holdout_bpd"] < math.log2(3) and res["bpd"] < math.log2(3)


def test_the_mixture_is_an_exact_likelihood_never_worse_than_its_members_on_average():
    """mixture_bits against a direct sum of probabilities on a case small enough to enumerate."""
    from ddpm_lite.data.pixelcnn import mixture_bits

    bits = torch.tensor([[1.0, 0.2, 3.0], [1.0, 2.5, 0.5]])  # 2 members, 3 images of D = 4 pixels
    direct = -torch.log2((2.0 ** (-4 * bits.double())).mean(0)) / 4
    assert torch.allclose(mixture_bits(bits, 4), direct, atol=1e-12)
    assert torch.all(mixture_bits(bits, 4) <= bits.double().mean(0) + 1e-12)
    assert mixture_bits(bits[:1], 4).tolist() == pytest.approx(bits[0].tolist())
    # identical members: the mixture is the member
    assert torch.allclose(mixture_bits(torch.stack([bits[0], bits[0]]), 4), bits[0].double(), atol=1e-12)


def test_two_members_train_on_shares_of_the_budget_and_report_the_mixture():
    gen = torch.Generator().manual_seed(4)
    data = (torch.rand(120, 8, 8, generator=gen) < 0.3).long() * 2
    res = pixelcnn_bpd(data[:100], data[100:], 3, seconds=2.0, holdout=20, channels=8, layers=1, eval_every=5,
                       lr=1e-2, batch_size=32, members=2)
    assert len(res["steps"]) == 2 and len(res["holdout_bpd"]) == 2
    assert res["mixture_holdout_bpd"] <= sum(res["holdout_bpd"]) / 2 + 1e-9
    with pytest.raises(ValueError, match="members"):
        pixelcnn_bpd(data[:100], data[100:], 3, seconds=1.0, holdout=20, members=0)
