"""Digits quality at a fixed CPU budget: train S seconds, draw 300 samples with 1000 ancestral
steps (or ``--sample-steps K`` < 1000 calls of DPM-Solver++(2M), ``ddpm_lite.sampling``), report the Fréchet distance (ddpm_lite.data.metrics.digits_fd) against the 300 test images
and the data's own noise floor (300 train vs 300 test).

    python benchmarks/digits.py --seconds 60 --seed 0 --out runs/bench/digits_s0.npy

Prints one JSON line: params, steps, steps/s, sampling seconds, FD, floor, ratio.
"""

from __future__ import annotations

import argparse
import time

from _common import THREADS, emit, save_npy, setup

import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, digits  # noqa: E402
from ddpm_lite.data.metrics import digits_fd, digits_fd_floor  # noqa: E402
from ddpm_lite.nets import MLPDenoiser, UNet, count_parameters  # noqa: E402
from ddpm_lite.sampling import SamplerConfig  # noqa: E402
from ddpm_lite.training import train  # noqa: E402

MODELS = {
    "unet": lambda T: UNet(in_channels=1, image_size=8, T=T),
    "mlp": lambda T: MLPDenoiser(dim=64, hidden=256, depth=3, T=T, data_shape=(1, 8, 8)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", choices=sorted(MODELS), default="unet")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--sample-steps", type=int, default=1000,
                   help="1000: ancestral (Algorithm 2); K < 1000: DPM-Solver++(2M) with K model calls")
    p.add_argument("--out", default=None, help=".npy for the samples (N, 8, 8) in [-1, 1]")
    p.add_argument("--run", default=None, help="also keep a checkpoint here (for likelihood.py)")
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    threads = setup(args.threads)

    T = 1000
    diffusion = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=DIGITS_LEVELS)
    torch.manual_seed(args.seed)
    model = MODELS[args.model](T)
    result = train(model, diffusion, digits("train"), seconds=args.seconds, batch_size=args.batch_size, lr=args.lr,
                   device="cpu", seed=args.seed, progress=False, checkpoint_dir=args.run,
                   checkpoint_every=10**9, metadata={"data": "digits", "num_levels": DIGITS_LEVELS})
    gen = torch.Generator().manual_seed(1000 + args.seed)
    t0 = time.perf_counter()
    how = SamplerConfig("ancestral") if args.sample_steps >= T else SamplerConfig("dpm++", args.sample_steps)
    with torch.no_grad():
        x = diffusion.sample(result.ema_model, (args.samples, 1, 8, 8), generator=gen, device="cpu", sampler=how)
    sample_s = time.perf_counter() - t0
    save_npy(args.out, x[:, 0].numpy())
    fd, floor, floor4 = digits_fd(x), digits_fd_floor(), digits_fd_floor(subsets=4)
    emit({"benchmark": "digits", "model": args.model, "params": count_parameters(model), "threads": threads,
          "seconds": args.seconds, "seed": args.seed, "steps": result.steps,
          "steps_per_s": round(result.steps_per_second, 1), "final_loss": round(result.losses[-1][1], 4),
          "samples": args.samples, "sample_steps": min(args.sample_steps, T), "sampling_s": round(sample_s, 2), "fd": round(fd, 3),
          "floor": round(floor, 3), "ratio": round(fd / floor, 3),
          "floor_mean4": round(floor4, 3), "ratio_mean4": round(fd / floor4, 3)})


if __name__ == "__main__":
    main()
