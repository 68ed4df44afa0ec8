"""The compiled training step (ddpm_lite.training.step) against the eager step of the same run.

Both draw the same batch, t and ε from the run's generator, so the losses they log and the
weights they reach must agree to float32 round-off (fused kernels reorder sums, nothing more).
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.training.step import compile_available
from ddpm_lite.nets import MLPDenoiser
from ddpm_lite.training import train

needs_compiler = pytest.mark.skipif(
    not compile_available() or shutil.which("gcc") is None and shutil.which("cc") is None,
    reason="torch.compile needs torch ≥ 2 and a C++ compiler (gcc/cc) on the CPU; neither fallback is tested here",
)


def run(compile: bool, steps: int = 12):
    torch.manual_seed(0)
    data = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    d = GaussianDiffusion(NoiseSchedule.linear(100), num_levels=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = train(MLPDenoiser(hidden=32, depth=2, T=100), d, data, steps=steps, lr=1e-2, device="cpu", seed=3,
                  progress=False, log_every=1, compile=compile)
    return r, [str(w.message) for w in caught]


@pytest.mark.slow
@needs_compiler
def test_compiled_step_gives_the_eager_losses_and_weights():
    eager, _ = run(False)
    fast, messages = run(True)
    assert not [m for m in messages if "eager step" in m], messages  # it really compiled, no fallback
    le, lf = torch.tensor([v for _, v in eager.losses]), torch.tensor([v for _, v in fast.losses])
    assert len(le) == 12 and not torch.equal(le[0], le[-1])  # the loss moved: steps were taken
    torch.testing.assert_close(lf, le, rtol=1e-4, atol=1e-5)
    for pe, pf in zip(eager.model.parameters(), fast.model.parameters()):
        torch.testing.assert_close(pf, pe, rtol=1e-3, atol=1e-5)
    for pe, pf in zip(eager.ema_model.parameters(), fast.ema_model.parameters()):
        torch.testing.assert_close(pf, pe, rtol=1e-3, atol=1e-5)


def test_a_failing_compiler_falls_back_to_the_eager_step(monkeypatch):
    def broken(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler here")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    eager, _ = run(False, steps=4)
    fast, messages = run(True, steps=4)
    assert any("torch.compile failed" in m for m in messages)
    torch.testing.assert_close(torch.tensor([v for _, v in fast.losses]), torch.tensor([v for _, v in eager.losses]))
