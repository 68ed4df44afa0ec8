"""Bits/dim of the digits test split under the full variational bound, split into
L_T + Σ_{t≥2} L_{t−1} + L_0 (17-level discretized decoder), next to a baseline that
models every pixel as an independent 17-way categorical fitted on the train split with
add-one smoothing.

    python benchmarks/digits.py --seconds 300 --run runs/bench/digits300   # the model
    python benchmarks/likelihood.py --run runs/bench/digits300

Without --run (or if it holds no checkpoint) a model is trained here for --seconds first.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import math
import time

from _common import THREADS, emit, setup

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.checkpoint import has_checkpoint  # noqa: E402
from ddpm_lite.cli import load_run  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, digits, from_model_range  # noqa: E402
from ddpm_lite.models import UNet  # noqa: E402
from ddpm_lite.training import train  # noqa: E402


def categorical_baseline_bpd(train_x: torch.Tensor, test_x: torch.Tensor, levels: int = DIGITS_LEVELS) -> float:
    """−log₂ P(test) per pixel under independent per-pixel categoricals with add-one smoothing."""
    tr = from_model_range(train_x, levels).long().flatten(1)  # (N, D) integer levels
    te = from_model_range(test_x, levels).long().flatten(1)
    counts = torch.zeros(tr.shape[1], levels, dtype=torch.float64)
    counts.scatter_add_(1, tr.T, torch.ones(tr.T.shape, dtype=torch.float64))
    probs = (counts + 1.0) / (tr.shape[0] + levels)
    logp = torch.log(probs.gather(1, te.T))  # (D, N_test)
    return float(-logp.mean() / math.log(2.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="checkpoint directory written by digits.py --run")
    p.add_argument("--seconds", type=float, default=60.0, help="training budget when no --run checkpoint exists")
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    threads = setup(args.threads)
    test = digits("test")
    if args.run and has_checkpoint(args.run):
        model, diffusion, state, _ = load_run(args.run, "cpu")
        steps, trained_s = state["step"], None
    else:
        diffusion = GaussianDiffusion(NoiseSchedule.linear(1000), num_levels=DIGITS_LEVELS)
        torch.manual_seed(0)
        r = train(UNet(T=1000), diffusion, digits("train"), seconds=args.seconds, lr=2e-3, device="cpu",
                  progress=False, checkpoint_dir=args.run)
        model, steps, trained_s = r.ema_model, r.steps, args.seconds
    t0 = time.perf_counter()
    res = diffusion.bits_per_dim(model, test, batch_size=4096, generator=torch.Generator().manual_seed(0))
    eval_s = time.perf_counter() - t0
    per = res["per_sample"].numpy()
    emit({"benchmark": "likelihood", "threads": threads, "train_steps": steps, "trained_seconds": trained_s,
          "bits_per_dim": round(res["total"], 4), "stderr": round(float(per.std(ddof=1) / np.sqrt(len(per))), 4),
          "L_T": round(res["prior"], 5), "sum_L_t_minus_1": round(float(res["vb"][1:].sum()), 4),
          "L_0": round(res["decoder"], 4), "categorical_baseline_bpd": round(categorical_baseline_bpd(digits("train"), test), 4),
          "eval_s": round(eval_s, 1)})


if __name__ == "__main__":
    main()
