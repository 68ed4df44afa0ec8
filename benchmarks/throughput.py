"""Speed on a CPU: training steps/s of the 2-D MLP, and wall time of the samplers.

    python benchmarks/throughput.py [--quality-seconds 30]

Measures (2 torch threads):
  * the full training loop of ddpm_lite.training.train (AdamW, EMA, clipping, batch 128) on
    the 3×128 2-D MLP: steps/s after a warm-up (target ≥ 600);
  * 5000 points × 1000 ancestral steps (target ≤ 3 s);
  * 300 digits × 1000 ancestral steps with the default U-Net and with the flattened MLP
    (target ≤ 10 s);
  * DDIM with 50 steps vs 1000 ancestral steps on a swiss-roll model trained for
    --quality-seconds: SW2 ratio (target ≤ 1.2).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import time

from _common import THREADS, emit, setup

import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, digits  # noqa: E402
from ddpm_lite.metrics import sliced_wasserstein2, swiss_roll_benchmark_data, swiss_roll_sw2_floor  # noqa: E402
from ddpm_lite.models import MLPDenoiser, UNet  # noqa: E402
from ddpm_lite.training import train  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-steps", type=int, default=2000)
    p.add_argument("--quality-seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    threads = setup(args.threads)
    T = 1000
    points_diff = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)
    digits_diff = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=DIGITS_LEVELS)
    train_pts, test_pts = swiss_roll_benchmark_data()
    out = {"benchmark": "throughput", "threads": threads}

    # Training loop speed: a short warm-up run, then the measured one (same code path).
    torch.manual_seed(0)
    train(MLPDenoiser(T=T), points_diff, train_pts, steps=100, device="cpu", progress=False)
    torch.manual_seed(0)
    r = train(MLPDenoiser(T=T), points_diff, train_pts, steps=args.train_steps, device="cpu", progress=False)
    out["mlp_train_steps_per_s"] = round(r.steps_per_second, 1)

    gen = torch.Generator().manual_seed(0)
    mlp = r.ema_model
    out["points_5000x1000_s"] = round(timed(lambda: points_diff.sample(mlp, (5000, 2), generator=gen)), 2)
    torch.manual_seed(0)
    unet = UNet(T=T).eval()
    out["digits_unet_300x1000_s"] = round(timed(lambda: digits_diff.sample(unet, (300, 1, 8, 8), generator=gen)), 2)
    flat = MLPDenoiser(dim=64, hidden=256, T=T, data_shape=(1, 8, 8)).eval()
    out["digits_mlp_300x1000_s"] = round(timed(lambda: digits_diff.sample(flat, (300, 1, 8, 8), generator=gen)), 2)

    # DDIM-50 vs ancestral-1000 on one trained swiss-roll model.
    torch.manual_seed(0)
    q = train(MLPDenoiser(T=T), points_diff, train_pts, seconds=args.quality_seconds, lr=2e-3, device="cpu",
              progress=False)
    with torch.no_grad():
        anc = points_diff.sample(q.ema_model, (5000, 2), generator=torch.Generator().manual_seed(1))
        ddim_s = timed(lambda: None)
        t0 = time.perf_counter()
        ddim = points_diff.ddim_sample(q.ema_model, (5000, 2), steps=50, generator=torch.Generator().manual_seed(1))
        ddim_s = time.perf_counter() - t0
    floor = swiss_roll_sw2_floor()
    sw_anc, sw_ddim = sliced_wasserstein2(anc, test_pts), sliced_wasserstein2(ddim, test_pts)
    out.update({"quality_train_steps": q.steps, "sw2_ancestral_1000": round(sw_anc, 4), "sw2_ddim_50": round(sw_ddim, 4),
                "ddim_50_s": round(ddim_s, 2), "sw2_floor": round(floor, 4), "ddim_over_ancestral": round(sw_ddim / sw_anc, 3)})
    emit(out)


if __name__ == "__main__":
    main()
