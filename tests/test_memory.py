"""Sizes known before work (issue 23, item 3): estimates on the meta device, refusals with numbers."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpm_lite.nets.memory import MemoryEstimateError, check_fits, forward_bytes, meta_copy, sampling_bytes, training_bytes
from ddpm_lite.nets import default_model

SRC = Path(__file__).resolve().parents[1] / "src"


def test_estimating_a_huge_batch_allocates_nothing_and_is_quick() -> None:
    with torch.device("meta"):
        model = default_model((4, 3, 1024, 1024))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    need = training_bytes(model, (128, 3, 1024, 1024))
    assert time.monotonic() - t0 < 30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing real
    assert need["activations"] > 1e12  # attention over 256x256 positions: terabytes
    with pytest.raises(MemoryEstimateError,
                       match=r"needs about .* GB \(activations .*, model .*\), but cpu has 16 GB free; "
                       r"lower --image-size"):
        check_fits(need, torch.device("cpu"), what="training", fix="lower --image-size", available=16 * 10**9)


def test_small_work_fits() -> None:
    model = meta_copy(default_model((4, 1, 8, 8)))
    need = training_bytes(model, (128, 1, 8, 8))
    check_fits(need, torch.device("cpu"), what="training", fix="-", available=10**9)
    assert 1e6 < need["total"] < 1e8


def test_sampling_peak_is_below_the_training_sum() -> None:
    model = meta_copy(default_model((4, 3, 32, 32)))
    assert sampling_bytes(model, (64, 3, 32, 32))["total"] < training_bytes(model, (64, 3, 32, 32))["total"]


MEASURE = """
import sys, torch
from ddpm_lite.nets import default_model

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

c, h, b = map(int, sys.argv[1:4])
torch.manual_seed(0)
m = default_model((4, c, h, h))
opt = torch.optim.Adam(m.parameters())
x, t = torch.randn(b, c, h, h), torch.randint(1, 1000, (b,))
# The peak so far (imports) may exceed the step's: reset the high-water mark, then take the
# step's peak above what is resident now.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
r0 = status("VmRSS:")
((m(x, t) - x) ** 2).mean().backward()
opt.step()
print(status("VmHWM:") - r0)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc to measure a peak")
def test_the_training_estimate_tracks_the_measured_peak() -> None:
    """Within a factor 2.5 of the resident-memory growth of one real step (fresh process)."""
    c, h, b = 3, 32, 32
    out = subprocess.run([sys.executable, "-c", MEASURE, str(c), str(h), str(b)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    measured = int(out.stdout.strip().splitlines()[-1])
    est = training_bytes(meta_copy(default_model((4, c, h, h))), (b, c, h, h))["total"]
    assert measured / 2.5 < est < measured * 2.5, (est, measured)


def test_forward_bytes_counts_a_known_layer() -> None:
    with torch.device("meta"):
        lin = torch.nn.Linear(10, 7)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = lin

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    total, largest = forward_bytes(Net(), (5, 10))
    assert largest == 5 * 7 * 4 and total >= largest  # one (5, 7) float32 output


def test_every_tensor_of_a_level_model_copy_is_on_the_meta_device() -> None:
    """The level model's ᾱ_t tables are built with torch.from_numpy, which ignores the default
    device: a copy that left them on the CPU failed its estimate with a device mismatch."""
    from ddpm_lite import LevelPosteriorDenoiser, NoiseSchedule

    model = LevelPosteriorDenoiser(NoiseSchedule.linear(T=10), 17, image_size=8, base_channels=8)
    copy = meta_copy(model)
    assert {t.device.type for t in [*copy.parameters(), *copy.buffers()]} == {"meta"}
    activations, _ = forward_bytes(copy, (4, 1, 8, 8))
    assert activations > 0
