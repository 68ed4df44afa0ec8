"""Choosing the likelihood recipe on held-out training digits: one network by *steps*, or saved ones as an ensemble.

``likelihood.py`` trains for a wall-clock budget, so two runs side by side (or one on a busy
machine) get different numbers of steps and cannot be compared.  This script trains one network of
the recipe for a fixed number of steps, scores its EMA weights on the 300 held-out training digits
every ``--every`` steps (the test digits are never touched) and saves the best; ``--ensemble``
scores saved networks alone and as one denoiser (``ddpm_lite.nets.continuous.ensemble_model``).
Trials can then run side by side, one thread each, and still be compared.

    python benchmarks/likelihood_heldout.py --steps 5000 --seed 0 --save m0.pt --threads 1
    python benchmarks/likelihood_heldout.py --steps 5000 --seed 1 --save m1.pt --threads 1
    python benchmarks/likelihood_heldout.py --ensemble m0.pt m1.pt

Any other flag is ``likelihood.py``'s (the recipe's ingredients) and means the same there; the
saved networks must come from the same flags as the ``--ensemble`` call.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time

from _common import emit, setup

import torch  # noqa: E402

import likelihood as L  # noqa: E402
from ddpm_lite.data import digits  # noqa: E402
from ddpm_lite.nets.continuous import ensemble_model  # noqa: E402
from ddpm_lite.training import train  # noqa: E402


def own_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's flags, and the rest for likelihood.py's parser."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                add_help=False)
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps (default 5000)")
    p.add_argument("--every", type=int, default=500, help="score the held-out digits every this many steps")
    p.add_argument("--save", default=None, help="write the best weights here (a state dict)")
    p.add_argument("--ensemble", nargs="+", default=None, help="score these saved networks and their ensemble")
    own, rest = p.parse_known_args(argv)
    if own.steps < 1 or own.every < 1:
        p.error("--steps and --every must be positive")
    return own, rest


def trial(own: argparse.Namespace, args: argparse.Namespace, held: torch.Tensor) -> dict:
    """Train one network for ``own.steps`` steps; its held-out curve and the best point."""
    model, diffusion = L.build_recipe(args)
    fit = digits("train")[:-args.holdout]
    kw = dict(lr=args.lr, batch_size=args.batch_size, device="cpu", progress=False, seed=args.seed,
              loss_kind=args.loss, weight_decay=args.weight_decay, ema_decay=args.ema_decay)
    curve, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(own.every, own.steps + 1, own.every):
            r = train(model, diffusion, fit, steps=s, checkpoint_dir=tmp,
                      lr_scale=L.lr_scale(args, (s - own.every / 2) / own.steps), **kw)
            h = L.score(r.ema_model, diffusion, held, args)["total"]
            if own.save and (not curve or h < min(c["holdout_bpd"] for c in curve)):
                torch.save(copy.deepcopy(r.ema_model.state_dict()), own.save)
            curve.append({"step": s, "holdout_bpd": h})
            print(f"{s} steps: held-out {h:.4f} bits/dim ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    best = min(curve, key=lambda c: c["holdout_bpd"])
    return {"best_step": best["step"], "holdout_bpd": round(best["holdout_bpd"], 4),
            "curve": [{**c, "holdout_bpd": round(c["holdout_bpd"], 4)} for c in curve]}


def ensemble(files: list[str], args: argparse.Namespace, held: torch.Tensor) -> dict:
    """Each saved network's held-out bound, and their ensemble's."""
    models, diffusion = [], None
    for f in files:
        model, diffusion = L.build_recipe(args)
        model.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
        models.append(model.eval())
    members = [round(L.score(m, diffusion, held, args)["total"], 4) for m in models]
    both = L.score(ensemble_model(models).eval(), diffusion, held, args)["total"]
    return {"members_holdout_bpd": members, "ensemble_holdout_bpd": round(both, 4)}


def main() -> None:
    own, rest = own_flags(sys.argv[1:])
    sys.argv = [sys.argv[0], *rest]
    args = L.parse_args()
    if not args.holdout or args.time != "continuous":
        raise SystemExit("likelihood_heldout.py compares continuous-time recipes on held-out digits: "
                         "keep --time continuous and give --holdout N (default 300).")
    threads = setup(args.threads)
    held = digits("train")[-args.holdout:]
    out = ensemble(own.ensemble, args, held) if own.ensemble else trial(own, args, held)
    emit({"benchmark": "likelihood_heldout", "threads": threads, "seed": args.seed,
          "recipe": {k: getattr(args, k) for k in (*L.RECIPE, "learn_ends", "gamma_min", "recon_rows")}, **out})


if __name__ == "__main__":
    main()
