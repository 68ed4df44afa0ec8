"""Time to quality: how many seconds of CPU training until samples sit near the noise floor.

Trains the digits U-Net and the swiss-roll MLP once per seed, pausing at training-time marks
(default 5, 10, 20, 40, 60 s of training alone: checkpoint writes, sampling and scoring are not
counted) to keep a copy of the EMA weights; afterwards samples and scores every mark.

    python benchmarks/time_to_quality.py --seeds 0 1 2
    python benchmarks/time_to_quality.py --datasets roll --marks 5 10 20 --sample-steps 1000
    python benchmarks/time_to_quality.py --seeds 0 --ladder 5 10 15 20 30 50   # samplers vs ancestral

Scores, against *stable* floors (the mean over 4 disjoint train subsets, so the reference is
not one lucky or unlucky draw):
  * digits: FD of 300 samples vs the 300 test images (``ddpm_lite.data.metrics.digits_fd``), floor the
    mean FD of the four disjoint 300-image train subsets;
  * swiss roll: SW2 of 5000 samples vs the 5000 test points, floor the mean SW2 of the four
    disjoint 5000-point train subsets.
Reports, per dataset and seed, the first mark at which the ratio to the floor is ≤ 1.25.

Sampling: ``--sample-steps K`` draws with DPM-Solver++(2M) in K model calls; K = 1000 is the
ancestral sampler.  Default per dataset: digits 20 calls of DPM-Solver++(2M) (which beats
ancestral-1000 on digits FD, see README), swiss roll ancestral-1000 (no few-step sampler matches
it there, so a few-step score would hide how good the model is).  ``--ladder K1 K2 …`` additionally scores, at the last mark,
ancestral-1000 against DPM-Solver++(2M) and DDIM (uniform grid) at each K, from the same weights.

Prints one JSON line per dataset and seed, then one summary line.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from _common import THREADS, emit, setup

import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, DIGITS_TEST, digits  # noqa: E402
from ddpm_lite.data.metrics import digits_fd, digits_fd_floor, sliced_wasserstein2, swiss_roll_benchmark_data  # noqa: E402
from ddpm_lite.nets import MLPDenoiser, UNet  # noqa: E402
from ddpm_lite.sampling import SamplerConfig, SamplerKind  # noqa: E402
from ddpm_lite.training import train  # noqa: E402

T = 1000
TARGET = 1.25


def roll_floor(subsets: int = 4) -> float:
    """Mean SW2 of ``subsets`` disjoint 5000-point train subsets vs the 5000 test points."""
    train_pts, test_pts = swiss_roll_benchmark_data()
    n = test_pts.shape[0]
    return sum(sliced_wasserstein2(train_pts[i * n:(i + 1) * n], test_pts) for i in range(subsets)) / subsets


def setting(name: str):
    """(model factory, diffusion, train data, sample shape, scorer, floor) of one dataset."""
    if name == "digits":
        diffusion = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=DIGITS_LEVELS)
        return (lambda: UNet(in_channels=1, image_size=8, T=T), diffusion, digits("train"), (DIGITS_TEST, 1, 8, 8),
                digits_fd, digits_fd_floor(subsets=4))
    train_pts, test_pts = swiss_roll_benchmark_data()
    diffusion = GaussianDiffusion(NoiseSchedule.linear(T), num_levels=None)
    return (lambda: MLPDenoiser(T=T), diffusion, train_pts, (5000, 2),
            lambda x: sliced_wasserstein2(x, test_pts), roll_floor())


def train_to_marks(make_model, diffusion, data, marks, seed: int, lr: float, fast: bool) -> list[dict]:
    """Train once, stopping at each cumulative training-time mark to copy the EMA weights.

    Each stretch is a :func:`train` call that resumes from the previous one's checkpoint
    (optimizer, EMA, generator and data order included), so the marks lie on one run; only
    the time inside the training loops is summed.
    """
    torch.manual_seed(seed)
    model, snaps, spent = make_model(), [], 0.0
    extra = {"fast": True} if fast else {}
    # Each stretch ends with a checkpoint write inside the timed loop; on tmpfs its fsyncs cost
    # milliseconds instead of the ~1 s they took on this machine's disk.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm) as run_dir:
        for mark in marks:
            r = train(model, diffusion, data, seconds=max(mark - spent, 1e-3), lr=2e-3 if lr is None else lr,
                      device="cpu", seed=seed, progress=False, checkpoint_dir=Path(run_dir),
                      checkpoint_every=10**9, **extra)
            spent += r.seconds
            model = r.model
            snaps.append({"mark_s": mark, "train_s": round(spent, 2), "steps": r.steps, "ema": copy.deepcopy(r.ema_model)})
    return snaps


def draw(diffusion, model, shape, steps: int, seed: int, sampler: SamplerKind = "dpm++") -> tuple[torch.Tensor, float]:
    gen = torch.Generator().manual_seed(1000 + seed)
    t0 = time.perf_counter()
    how = SamplerConfig("ancestral") if steps >= diffusion.T else SamplerConfig(sampler, steps)
    with torch.no_grad():
        x = diffusion.sample(model, shape, generator=gen, device="cpu", sampler=how)
    return (x[:, 0] if x.dim() == 4 else x), time.perf_counter() - t0


def run_one(name: str, seed: int, args) -> dict:
    make_model, diffusion, data, shape, score, floor = setting(name)
    snaps = train_to_marks(make_model, diffusion, data, args.marks, seed, args.lr, args.fast)
    rows, first = [], None
    sample_steps = args.sample_steps or {"digits": 20, "roll": T}[name]
    for s in snaps:
        x, secs = draw(diffusion, s["ema"], shape, sample_steps, seed)
        ratio = score(x) / floor
        rows.append({"mark_s": s["mark_s"], "train_s": s["train_s"], "steps": s["steps"], "ratio": round(ratio, 3),
                     "sampling_s": round(secs, 2)})
        if first is None and ratio <= TARGET:
            first = s["mark_s"]
    out = {"benchmark": "time_to_quality", "dataset": name, "seed": seed, "floor": round(floor, 4),
           "sample_steps": sample_steps, "marks": rows, "first_mark_at_1.25": first}
    if args.ladder:
        out["ladder"] = ladder(diffusion, snaps[-1]["ema"], shape, score, floor, seed, args.ladder)
    return out


def ladder(diffusion, model, shape, score, floor, seed: int, counts) -> dict:
    """Ancestral-1000 vs DPM-Solver++(2M) and DDIM at each step count, from the same weights."""
    x, secs = draw(diffusion, model, shape, T, seed)
    anc = score(x)
    res = {"ancestral_1000": {"ratio_to_floor": round(anc / floor, 3), "sampling_s": round(secs, 2)}}
    for sampler in ("dpm++", "ddim"):
        for k in counts:
            x, secs = draw(diffusion, model, shape, k, seed, sampler)
            q = score(x)
            res[f"{sampler}_{k}"] = {"ratio_to_floor": round(q / floor, 3), "ratio_to_ancestral": round(q / anc, 3),
                                     "sampling_s": round(secs, 3)}
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--datasets", nargs="+", choices=("digits", "roll"), default=["digits", "roll"])
    p.add_argument("--marks", type=float, nargs="+", default=[5, 10, 20, 40, 60])
    p.add_argument("--sample-steps", type=int, default=None,
                   help="K < 1000: DPM-Solver++(2M); 1000: ancestral (default: digits 20, roll 1000)")
    p.add_argument("--ladder", type=int, nargs="*", default=[], help="step counts to compare samplers at")
    p.add_argument("--lr", type=float, default=None, help="default 2e-3")
    p.add_argument("--fast", action="store_true", help="train(fast=True): the compiled training step")
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    threads = setup(args.threads)
    args.marks = sorted(args.marks)
    firsts = {}
    for name in args.datasets:
        for seed in args.seeds:
            rec = run_one(name, seed, args)
            rec["threads"] = threads
            emit(rec)
            firsts.setdefault(name, []).append(rec["first_mark_at_1.25"])
    emit({"benchmark": "time_to_quality_summary", "first_mark_at_1.25": firsts, "seeds": args.seeds})


if __name__ == "__main__":
    main()
