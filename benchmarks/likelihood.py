"""Bits/dim of the digits test split under the full variational bound, next to simple baselines.

Trains the recipe for ``--seconds`` and prints one JSON line with ``bpd`` (300 test digits),
the held-out curve and ``baselines`` (uniform, independent per-pixel categorical, raster-order
logistic-regression autoregressive, and a gated PixelCNN trained for the same ``--seconds`` with
the same seed, split, early stopping and split of the budget; see likelihood_baselines.py).

The recipe (``RECIPE``/``TIME_RECIPE``, chosen on held-out training digits, benchmarks/README.md,
"Likelihood"): **continuous time** (ddpm_lite.continuous, Kingma et al. 2021): the bound
L_T + L_0 + ½ E[γ′(t)‖ε − ε̂‖²] with t from the low-discrepancy draw, the level posterior of γ as
the denoiser, γ linear from γ_min = −9 to γ_max = 5 with both ends learned, L_0 estimated from 16
rows of each batch, dropout 0.3, and ``--members`` (3) networks trained for an equal share of the
time each, then used as one denoiser (their mean ε̂).  Each network trains in ``--eval-every``
segments with early stopping on the last 300 training digits (the test digits are never looked
at).  ``bpd`` is the T → ∞ bound estimated with ``--draws`` stratified t per test digit, and
``bpd_T`` the bound of the same model at ``--eval-T`` steps, every step evaluated.

``--time discrete`` trains chapter 13's recipe instead (the level-posterior U-Net with a learned
Σ_θ on L_vlb with importance-sampled t, T = 1000, every t evaluated).

    python benchmarks/likelihood.py --seconds 600 --seed 0                  # the recipe (~22 min)
    python benchmarks/likelihood.py --seconds 600 --seed 0 --time discrete  # chapter 13's recipe
    python benchmarks/likelihood.py --seconds 120 --denoiser eps --dropout 0 --holdout 0 \
        --time discrete --variance beta --loss simple --no-importance    # the book's L_simple model
    python benchmarks/likelihood.py --run runs/bench/digits300             # score a digits.py checkpoint

Every ingredient is a flag, so the ablation in the README is one command per row.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time

from _common import THREADS, emit, save_npy, setup
from likelihood_baselines import baselines

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddpm_lite import GaussianDiffusion, NoiseSchedule  # noqa: E402
from ddpm_lite.continuous import ContinuousDiffusion  # noqa: E402
from ddpm_lite.logsnr import GAMMA_MAX, GAMMA_MIN  # noqa: E402
from ddpm_lite.nets.continuous import continuous_model, ensemble_model  # noqa: E402
from ddpm_lite.runs.checkpoint import has_checkpoint  # noqa: E402
from ddpm_lite.cli import load_run  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, digits  # noqa: E402
from ddpm_lite.nets.levels import LevelPosteriorDenoiser  # noqa: E402
from ddpm_lite.nets import UNet  # noqa: E402
from ddpm_lite.training.timesteps import ImportanceSampler  # noqa: E402
from ddpm_lite.training import train  # noqa: E402

#: The recipe the flags default to (chosen on held-out training digits, benchmarks/README.md,
#: "Likelihood"): continuous time; ``--time discrete`` gives chapter 13's recipe, TIME_RECIPE's other row.
RECIPE = {"time": "continuous", "denoiser": "levels", "variance": None, "loss": "vb", "schedule": "linear",
          "importance": None, "base_channels": 16, "T": 1000, "lr": 2e-3, "batch_size": 128, "weight_decay": 0.0,
          "dropout": None, "ema_decay": None, "lr_decay": None,
          "members": None, "holdout": 300, "eval_every": 60.0}
#: The defaults that differ between the two times (a flag given on the command line wins).
TIME_RECIPE = {
    "continuous": {"variance": "posterior", "importance": False, "dropout": 0.3, "ema_decay": 0.999,
                   "learn_ends": True, "gamma_min": -9.0, "recon_rows": 16, "lr_decay": "none",
                   "members": 3},
    "discrete": {"variance": "learned", "importance": True, "dropout": 0.3, "ema_decay": 0.999,
                 "learn_ends": False, "gamma_min": GAMMA_MIN, "recon_rows": None, "lr_decay": "none",
                 "members": 1},
}


def per_t_summary(vb: torch.Tensor) -> dict:
    """Where the bits are: L_0, the first 10 terms, and their share of Σ L_{t−1}."""
    total = float(vb.sum())
    return {"L_0": round(float(vb[0]), 4), "first10": round(float(vb[:10].sum()), 4),
            "first10_share": round(float(vb[:10].sum()) / total, 3) if total > 0 else None,
            "t_le_100": round(float(vb[:100].sum()), 4), "t_gt_100": round(float(vb[100:].sum()), 4)}


def build_recipe(args: argparse.Namespace) -> tuple[torch.nn.Module, GaussianDiffusion]:
    """The untrained model and the diffusion the flags describe."""
    if args.time == "continuous":
        torch.manual_seed(args.seed)
        model = continuous_model((1, 1, 8, 8), num_levels=DIGITS_LEVELS if args.denoiser == "levels" else None,
                                 learn_ends=args.learn_ends, shape=args.shape, base_channels=args.base_channels,
                                 gamma_min=args.gamma_min, gamma_max=args.gamma_max,
                                 dropout=args.dropout)
        return model, ContinuousDiffusion(DIGITS_LEVELS, recon_rows=args.recon_rows)
    extra = {"max_beta": args.max_beta} if args.max_beta is not None else {}
    schedule = NoiseSchedule.from_name(args.schedule, args.T, **extra)
    diffusion = GaussianDiffusion(schedule, variance=args.variance, num_levels=DIGITS_LEVELS)
    torch.manual_seed(args.seed)
    kw = {"learn_sigma": args.variance == "learned", "base_channels": args.base_channels, "dropout": args.dropout}
    if args.denoiser == "levels":
        return LevelPosteriorDenoiser(schedule, DIGITS_LEVELS, **kw), diffusion
    return UNet(T=args.T, **kw), diffusion


def score(model: torch.nn.Module, diffusion, x: torch.Tensor, args: argparse.Namespace, seed: int = 1) -> dict:
    """The bound on ``x``: every t of the chain, or (continuous time) ``--draws`` stratified t per image."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(diffusion, ContinuousDiffusion):
        return diffusion.bits_per_dim(model, x, draws=args.draws, generator=gen)
    return diffusion.bits_per_dim(model, x, batch_size=4096, generator=gen)


def lr_scale(args: argparse.Namespace, progress: float) -> float:
    """The rate's factor at ``progress`` ∈ (0, 1) of the budget: 1, or ½(1 + cos πp) with ``--lr-decay cosine``.

    One factor per segment (its midpoint), since a segment is one call of ``train``.
    """
    if args.lr_decay == "none":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def train_member(args: argparse.Namespace, seed: int, seconds: float) -> tuple[torch.nn.Module, object, int, list]:
    """Train one model of the recipe for ``seconds`` with ``seed``; returns (EMA model, diffusion, steps, curve).

    With ``--holdout N`` the last N training digits are held out: training runs in segments of
    ``--eval-every`` seconds (resuming its own checkpoint, so nothing restarts), the EMA model's
    full bound on the held-out digits is taken after each, and the best segment's weights are
    kept (early stopping; the test digits are never looked at).  The curve is returned.
    """
    member = argparse.Namespace(**{**vars(args), "seed": seed})
    model, diffusion = build_recipe(member)
    data = digits("train")
    fit, held = (data[:-args.holdout], data[-args.holdout:]) if args.holdout else (data, None)
    sampler = ImportanceSampler(args.T) if args.importance else None  # continuous time refuses it by name
    kw = dict(lr=args.lr, batch_size=args.batch_size, device="cpu", progress=False, seed=seed, loss_kind=args.loss,
              t_sampler=sampler, weight_decay=args.weight_decay, ema_decay=args.ema_decay)
    if held is None:
        r = train(model, diffusion, fit, seconds=seconds, checkpoint_dir=args.run, **kw)
        return r.ema_model, diffusion, r.steps, []
    curve, best, spent = [], (math.inf, None, 0), 0.0
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or tmp
        while spent < seconds - 1e-9:
            seg = min(args.eval_every, seconds - spent)
            r = train(model, diffusion, fit, seconds=seg, checkpoint_dir=run_dir,
                      lr_scale=lr_scale(args, (spent + seg / 2) / seconds), **kw)
            spent += seg
            held_bpd = score(r.ema_model, diffusion, held, args)["total"]
            curve.append({"step": r.steps, "seconds": round(spent, 1), "holdout_bpd": round(held_bpd, 4)})
            if held_bpd < best[0]:
                best = (held_bpd, copy.deepcopy(r.ema_model.state_dict()), r.steps)
    r.ema_model.load_state_dict(best[1])
    return r.ema_model, diffusion, best[2], curve


def train_recipe(args: argparse.Namespace) -> tuple[torch.nn.Module, object, list, list]:
    """Train the recipe for ``--seconds``: ``--members`` models, each for an equal share, then their ensemble.

    Member k of seed S trains with seed S·K + k (K members), so no two runs share a seed.  Returns
    (model, diffusion, steps kept per member, [held-out curve per member]); with K > 1 the model
    is :func:`ddpm_lite.nets.continuous.ensemble_model` of the members, and its held-out bound
    is added to the last curve as ``{"ensemble": ...}``.
    """
    k = args.members
    trained = [train_member(args, args.seed * k + i, args.seconds / k) for i in range(k)]
    models, diffusion = [m for m, *_ in trained], trained[0][1]
    steps, curves = [s for _, _, s, _ in trained], [c for *_, c in trained]
    if k == 1:
        return models[0], diffusion, steps, curves
    model = ensemble_model(models)
    if args.holdout:
        held = digits("train")[-args.holdout:]
        curves.append({"ensemble_holdout_bpd": round(score(model, diffusion, held, args)["total"], 4),
                       "members_holdout_bpd": [round(min(p["holdout_bpd"] for p in c), 4) for c in curves]})
    return model, diffusion, steps, curves


def parse_args() -> argparse.Namespace:
    """The flags: the recipe's ingredients, the budget, and what to report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="training budget (default 60)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, batches, t and ε (default 0)")
    p.add_argument("--run", default=None, help="score this checkpoint directory instead (or train into it)")
    p.add_argument("--time", default=RECIPE["time"], choices=("discrete", "continuous"),
                   help="discrete: T steps (ddpm_lite.GaussianDiffusion); continuous: VDM's T → ∞ bound")
    p.add_argument("--denoiser", default=RECIPE["denoiser"], choices=("levels", "eps"),
                   help="levels: the level-posterior U-Net (ddpm_lite.nets.levels); eps: the plain ε U-Net")
    p.add_argument("--variance", default=None, choices=("beta", "beta_tilde", "learned"),
                   help=f"discrete time only (default {RECIPE['variance']})")
    p.add_argument("--loss", default=RECIPE["loss"], choices=("simple", "vb", "hybrid"))
    p.add_argument("--schedule", default=RECIPE["schedule"], choices=("linear", "cosine"))
    p.add_argument("--max-beta", type=float, default=None,
                   help="cosine only: clip β_t here (default 0.999); lower keeps the last step's mean well-conditioned")
    p.add_argument("--importance", action=argparse.BooleanOptionalAction, default=None,
                   help="importance-sampled t (needs --loss vb or hybrid; default on in discrete time)")
    p.add_argument("--learn-ends", action=argparse.BooleanOptionalAction, default=None,
                   help="continuous time: learn γ_min and γ_max (default on)")
    p.add_argument("--shape", default="linear", choices=("linear", "learned"),
                   help="continuous time: γ(t) linear between its ends, or a learned monotone shape")
    p.add_argument("--gamma-min", type=float, default=None,
                   help="continuous time: γ(0), where a learned γ_min starts (default −9: with the level posterior "
                        "the bits below it are ~0, so the t draws go where the bits are; VDM's is −13.3)")
    p.add_argument("--gamma-max", type=float, default=GAMMA_MAX, help="continuous time: γ(1) (default 5)")
    p.add_argument("--recon-rows", type=int, default=None,
                   help="continuous time: L_0 from this many rows of each training batch (default 16; "
                        "0 for all rows, ~3x slower steps)")
    p.add_argument("--draws", type=int, default=64, help="continuous time: stratified t per test digit (default 64)")
    p.add_argument("--eval-T", type=int, default=1000,
                   help="continuous time: also report the bound at this many steps, every step evaluated (0: skip)")
    p.add_argument("--base-channels", type=int, default=RECIPE["base_channels"])
    p.add_argument("--T", type=int, default=RECIPE["T"])
    p.add_argument("--lr", type=float, default=RECIPE["lr"])
    p.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    p.add_argument("--dropout", type=float, default=None, help="dropout in the U-Net's residual blocks (default 0.3)")
    p.add_argument("--ema-decay", type=float, default=None,
                   help="decay of the weights' moving average that is evaluated (default 0.999)")
    p.add_argument("--holdout", type=int, default=RECIPE["holdout"],
                   help="hold out the last N training digits and keep the weights that score best on them (0: off)")
    p.add_argument("--eval-every", type=float, default=RECIPE["eval_every"],
                   help="with --holdout: seconds of training between held-out evaluations")
    p.add_argument("--weight-decay", type=float, default=RECIPE["weight_decay"], help="AdamW weight decay")
    p.add_argument("--members", type=int, default=None,
                   help="continuous time: train this many models, each for --seconds / N, and score their "
                        "ensemble (the mean ε̂; default 3); the PixelCNN baseline gets the same split")
    p.add_argument("--lr-decay", default=None, choices=("none", "cosine"),
                   help="the learning rate over the budget: constant, or a cosine from --lr to ~0, "
                        "one value per --eval-every segment (needs --holdout)")
    p.add_argument("--no-baselines", action="store_true", help="skip the baselines (~10 s, plus the PixelCNN's budget)")
    p.add_argument("--no-pixelcnn", action="store_true", help="skip the PixelCNN baseline (it trains for --seconds)")
    p.add_argument("--per-t", default=None, help="save the per-t terms L_{t-1} (t = 1..T) to this .npy")
    p.add_argument("--threads", type=int, default=THREADS)
    args = p.parse_args()
    continuous = args.time == "continuous"
    if continuous and args.variance is not None:
        p.error("--variance is for discrete time: the continuous-time bound fixes the reverse variance; drop it.")
    for key, value in TIME_RECIPE[args.time].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.members < 1 or (args.members > 1 and (not continuous or args.run)):
        p.error("--members N: N ≥ 1, and N > 1 only in continuous time and without --run (an ensemble is "
                "trained and scored in one go).")
    if args.lr_decay != "none" and not args.holdout:
        p.error("--lr-decay changes the rate between the --eval-every segments of held-out training; "
                "give --holdout N (e.g. 300) or --lr-decay none.")
    if args.recon_rows == 0:
        args.recon_rows = None  # every row
    return args


def evaluate(model: torch.nn.Module, diffusion, test: torch.Tensor, args: argparse.Namespace) -> dict:
    """The test digits' bound (and its parts) for the record."""
    t0 = time.perf_counter()
    res = score(model, diffusion, test, args, seed=0)
    per = res["per_sample"].numpy()
    out = {"bpd": round(res["total"], 4), "stderr": round(float(per.std(ddof=1) / np.sqrt(len(per))), 4),
           "L_T": round(res["prior"], 5)}
    if isinstance(diffusion, ContinuousDiffusion):
        out.update(L_0=round(res["recon"], 5), L_diffusion=round(res["diffusion"], 4), draws=args.draws,
                   gamma_ends=[round(float(g), 3) for g in model.schedule.ends])
        if args.eval_T:
            res = diffusion.bits_per_dim_at(model, test, args.eval_T, generator=torch.Generator().manual_seed(0))
            out.update(bpd_T=round(res["total"], 4), T_eval=args.eval_T)
    if "vb" in res:
        save_npy(args.per_t, res["vb"].numpy())
        out.update(per_t_summary(res["vb"]))
    out["eval_s"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    args = parse_args()
    threads = setup(args.threads)
    test = digits("test")
    if args.run and has_checkpoint(args.run):
        model, diffusion, state, _ = load_run(args.run, "cpu")
        steps, curve = state["step"], []
    else:
        model, diffusion, steps, curve = train_recipe(args)
        if args.members == 1:  # one model: the record keeps its single-run form
            steps, curve = steps[0], curve[0]
    record = {"benchmark": "likelihood", "threads": threads, "seed": args.seed, "seconds": args.seconds,
              "train_steps": steps, "recipe": {k: getattr(args, k) for k in (*RECIPE, "max_beta")},
              **evaluate(model, diffusion, test, args)}
    if args.time == "continuous":
        record["recipe"].update(learn_ends=args.learn_ends, shape=args.shape, recon_rows=args.recon_rows,
                                gamma_min=args.gamma_min, gamma_max=args.gamma_max)
    if curve:
        record["holdout_curve"] = curve
    if not args.no_baselines:
        found = baselines(seed=args.seed, pixelcnn_seconds=None if args.no_pixelcnn else args.seconds,
                          pixelcnn_members=args.members)
        record["baselines"] = {k: v for k, v in found.items()
                               if k in ("uniform", "per_pixel", "autoregressive", "pixelcnn", "pixelcnn_run")}
    emit(record)


if __name__ == "__main__":
    main()
