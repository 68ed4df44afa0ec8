"""Swiss-roll quality at a fixed CPU budget: train S seconds on 20 000 points (seed 0), draw
5000 samples with 1000 ancestral steps, report sliced W2 (256 projections) against 5000 test
points (seed 1, scaled with the train statistics) and the floor (5000 train points vs test).

    python benchmarks/swiss_roll.py --seconds 30 --seed 0 --out runs/bench/roll_s0.npy
"""

from __future__ import annotations

import argparse
import time

from _common import THREADS, emit, save_npy, setup

import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.data.metrics import sliced_wasserstein2, swiss_roll_benchmark_data, swiss_roll_sw2_floor  # noqa: E402
from ddpm_lite.nets import MLPDenoiser, count_parameters  # noqa: E402
from ddpm_lite.training import train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--out", default=None, help=".npy for the 5000 samples (N, 2)")
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    threads = setup(args.threads)

    train_pts, test_pts = swiss_roll_benchmark_data()
    T = 1000
    diffusion = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)
    torch.manual_seed(args.seed)
    model = MLPDenoiser(hidden=args.hidden, depth=args.depth, T=T)
    result = train(model, diffusion, train_pts, seconds=args.seconds, lr=args.lr, device="cpu", seed=args.seed,
                   progress=False)
    gen = torch.Generator().manual_seed(1000 + args.seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        x = diffusion.sample(result.ema_model, (5000, 2), generator=gen, device="cpu")
    sample_s = time.perf_counter() - t0
    save_npy(args.out, x.numpy())
    sw, floor = sliced_wasserstein2(x, test_pts), swiss_roll_sw2_floor()
    emit({"benchmark": "swiss_roll", "params": count_parameters(model), "threads": threads,
          "seconds": args.seconds, "seed": args.seed, "steps": result.steps,
          "steps_per_s": round(result.steps_per_second, 1), "sampling_s": round(sample_s, 2),
          "sw2": round(sw, 4), "floor": round(floor, 4), "ratio": round(sw / floor, 3)})


if __name__ == "__main__":
    main()
