"""Shapes, the eps_model protocol and the time embedding of ddpm_lite.nets."""

import math
import os

import pytest
import torch

from ddpm_lite.nets import MLPDenoiser, UNet, count_parameters, timestep_embedding
from ddpm_lite.nets import build_model

# benchmarks/gpu_check.py reruns the device-aware tests with DDPM_LITE_TEST_DEVICE=cuda.
DEVICE = torch.device(os.environ.get("DDPM_LITE_TEST_DEVICE", "cpu"))


def test_mlp_output_shape_and_zero_init():
    torch.manual_seed(0)
    model = MLPDenoiser(dim=2, T=50).to(DEVICE)
    x = torch.randn(7, 2, device=DEVICE)
    out = model(x, torch.randint(1, 51, (7,), device=DEVICE))
    assert out.shape == x.shape
    # The output layer starts at zero, so an untrained model predicts ε = 0 exactly.
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size,mult", [(8, (1, 2)), (16, (1, 2)), (32, (1, 2, 2))])
def test_unet_output_shape(channels, size, mult):
    torch.manual_seed(0)
    model = UNet(in_channels=channels, image_size=size, base_channels=8, channel_mult=mult,
                 attention_resolutions=(size // 2,), T=100).to(DEVICE)
    # Make the zero-initialised layers live so the checks below can fail.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0.0, 0.1)
    x = torch.randn(3, channels, size, size, device=DEVICE)
    out = model(x, torch.tensor([1, 50, 100], device=DEVICE))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    # The output must depend on t (the time embedding reaches the network).
    out2 = model(x, torch.tensor([100, 50, 1], device=DEVICE))
    assert not torch.allclose(out[0], out2[0])


def test_default_sizes_match_docstrings():
    assert f"{count_parameters(MLPDenoiser()):,}".replace(",", " ") in MLPDenoiser.__doc__
    assert f"{count_parameters(UNet()):,}".replace(",", " ") in UNet.__doc__


def test_unet_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        UNet(image_size=10, channel_mult=(1, 2, 2))
    with pytest.raises(ValueError, match="in_channels"):
        UNet(in_channels=2)
    model = UNet(base_channels=8)
    with pytest.raises(ValueError, match="xt must have shape"):
        model(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="xt must have shape"):
        MLPDenoiser()(torch.randn(2, 3), torch.tensor([1, 2]))


def test_build_model_round_trip():
    for model in (MLPDenoiser(hidden=16, depth=2), UNet(base_channels=8, attention_resolutions=(4,))):
        clone = build_model(model.config)
        assert type(clone) is type(model)
        assert count_parameters(clone) == count_parameters(model)
    with pytest.raises(ValueError, match="kind"):
        build_model({"kind": "transformer"})


def test_timestep_embedding_properties():
    T = 1000
    t = torch.arange(1, T + 1)
    emb = timestep_embedding(t, 64, T)
    assert emb.shape == (T, 64)
    assert emb.abs().max() <= 1.0
    # cos² + sin² = 1 for each frequency pair.
    torch.testing.assert_close(emb[:, :32] ** 2 + emb[:, 32:] ** 2, torch.ones(T, 32))
    # Distinct timesteps get distinct embeddings: the closest pair is well separated.
    d = torch.cdist(emb.double(), emb.double())
    d.fill_diagonal_(math.inf)
    assert d.min() > 1e-3
    # The highest frequency is 1 radian per unit of 1000·t/T, whatever T is.
    e10 = timestep_embedding(torch.tensor([5]), 64, T=10)
    e1000 = timestep_embedding(torch.tensor([500]), 64, T=1000)
    torch.testing.assert_close(e10, e1000)
    assert float(emb[0, 0]) == pytest.approx(math.cos(1.0), abs=1e-6)
    # An odd dimension is padded with one zero column.
    odd = timestep_embedding(t[:5], 7, T)
    assert odd.shape == (5, 7) and torch.equal(odd[:, -1], torch.zeros(5))
    with pytest.raises(ValueError, match="dim"):
        timestep_embedding(t, 1, T)


@pytest.mark.parametrize("make", [lambda: MLPDenoiser(hidden=16, depth=2, T=30),
                                  lambda: UNet(base_channels=8, T=30)])
def test_inference_cache_matches_and_follows_weight_updates(make):
    torch.manual_seed(0)
    model = make()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0.0, 0.1)
    shape = (6, 2) if isinstance(model, MLPDenoiser) else (6, 1, 8, 8)
    x, t = torch.randn(shape), torch.tensor([1, 5, 5, 9, 30, 2])
    reference = model(x, t).detach()  # train mode, gradients on: no cache
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), reference, rtol=1e-5, atol=1e-6)
        # An in-place weight update (as an optimizer step or EMA makes) must invalidate the cache.
        for p in model.parameters():
            p.mul_(1.5)
        updated = model(x, t)
    model.train()
    torch.testing.assert_close(updated, model(x, t).detach(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(updated, reference)
