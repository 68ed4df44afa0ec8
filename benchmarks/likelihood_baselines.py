"""Simple likelihood baselines on the digits test split, in bits/dim, for the diffusion bound to beat.

All three are exact discrete log-likelihoods of the 17-level test digits (the same 300
images, the same levels, that ``GaussianDiffusion.bits_per_dim`` scores), fitted on the
1497 training digits only (definitions in ``ddpm_lite.data.baselines``):

* ``uniform``: every pixel uniform over the 17 levels, log₂ 17 bits/dim;
* ``per_pixel``: an independent 17-way categorical per pixel, add-one smoothed;
* ``autoregressive``: pixels in raster order, each a multinomial logistic regression on the
  levels of all previous pixels (L2 penalty with C = 1, chosen on a fifth of the training
  split held out: 2.12, 2.03, 2.06 bits/dim held out for C = 0.1, 1, 10; ``--choose-C``
  repeats that choice).  scikit-learn's LogisticRegression, fitted pixel by pixel with the
  same C, gives 1.9985 on test: the same model;
* ``pixelcnn`` (with ``--pixelcnn-seconds S``): a gated PixelCNN (``ddpm_lite.data.pixelcnn``:
  masked 7×7 then five gated 3×3 layers in vertical and horizontal stacks, 64 channels, dropout
  0.5, a 17-way softmax per pixel) trained for S seconds with early stopping on the last 300
  training digits (the diffusion recipe's split and protocol), scored on the test digits;
  ``--pixelcnn-members K`` makes it a mixture of K such networks trained S/K seconds each.

    python benchmarks/likelihood_baselines.py            # one JSON line, ~15 s on 2 cores
    python benchmarks/likelihood_baselines.py --pixelcnn-seconds 600 --seed 0   # and the PixelCNN

Prints one JSON line: ``{"uniform": …, "per_pixel": …, "autoregressive": …, …}``.
"""

from __future__ import annotations

import argparse
import time

from _common import THREADS, emit, setup

import torch  # noqa: E402

from ddpm_lite.data.baselines import autoregressive_bpd, per_pixel_bpd, uniform_bpd  # noqa: E402
from ddpm_lite.data.pixelcnn import pixelcnn_bpd  # noqa: E402
from ddpm_lite.data import DIGITS_LEVELS, digits, from_model_range  # noqa: E402

#: The inverse L2 strength of the autoregressive baseline (see the module docstring).
CHOSEN_C = 1.0
#: The PixelCNN's network.  Dropout 0.5 in the residual blocks was chosen on the held-out training
#: digits (best held-out 1.889 bits/dim against 1.903 without; both over-fit within ~700 steps of
#: batch 64; benchmarks/README.md, "Continuous time").
PIXELCNN_NET = {"channels": 64, "layers": 5, "dropout": 0.5}


def levels_of(split: str) -> torch.Tensor:
    """The split's digits as integer levels 0..16, shape (N, 64), raster order."""
    return from_model_range(digits(split), DIGITS_LEVELS).long().flatten(1)


def choose_C(train: torch.Tensor, grid: tuple[float, ...] = (0.1, 1.0, 10.0), seed: int = 0) -> tuple[float, dict]:
    """The C of the grid with the best held-out bits/dim (a fifth of train held out)."""
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    cut = len(train) // 5
    fit, held = train[perm[cut:]], train[perm[:cut]]
    scores = {c: autoregressive_bpd(fit, held, DIGITS_LEVELS, C=c) for c in grid}
    return min(scores, key=scores.get), scores


def baselines(choose: bool = False, seed: int = 0, pixelcnn_seconds: float | None = None,
              holdout: int = 300, pixelcnn_members: int = 1) -> dict:
    """The baselines on the test split (and C's validation scores when ``choose``).

    With ``pixelcnn_seconds`` also the PixelCNN, trained that long with ``seed``, early-stopped on
    the last ``holdout`` training digits (its details under ``pixelcnn_run``); with
    ``pixelcnn_members`` K > 1 a mixture of K of them, each trained for a K-th of the time (the
    same split of the budget as the diffusion recipe's ``--members``).
    """
    train, test = levels_of("train"), levels_of("test")
    C, scores = choose_C(train, seed=seed) if choose else (CHOSEN_C, {})
    out = {"uniform": round(uniform_bpd(DIGITS_LEVELS), 4),
           "per_pixel": round(per_pixel_bpd(train, test, DIGITS_LEVELS), 4),
           "autoregressive": round(autoregressive_bpd(train, test, DIGITS_LEVELS, C=C), 4),
           "autoregressive_C": C}
    if pixelcnn_seconds:
        side = int(round(train.shape[1] ** 0.5))
        run = pixelcnn_bpd(train.view(-1, side, side), test.view(-1, side, side), DIGITS_LEVELS, pixelcnn_seconds,
                           holdout=holdout, seed=seed, members=pixelcnn_members, **PIXELCNN_NET)
        out["pixelcnn"] = round(run["bpd"], 4)
        r4 = lambda v: [r4(u) for u in v] if isinstance(v, list) else round(v, 4) if isinstance(v, float) else v
        out["pixelcnn_run"] = {k: r4(v) for k, v in run.items()}
        out["pixelcnn_run"]["seconds"] = pixelcnn_seconds
    if scores:
        out["autoregressive_validation"] = {str(k): round(v, 4) for k, v in scores.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--choose-C", action="store_true", help="re-choose C on held-out training digits")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split for --choose-C and of the PixelCNN")
    p.add_argument("--pixelcnn-seconds", type=float, default=None, help="also train the PixelCNN for this long")
    p.add_argument("--pixelcnn-members", type=int, default=1,
                   help="a mixture of this many PixelCNNs, each trained for a share of the time (default 1)")
    args = p.parse_args()
    threads = setup(args.threads)
    t0 = time.perf_counter()
    record = {"benchmark": "likelihood_baselines", "threads": threads,
              **baselines(args.choose_C, args.seed, args.pixelcnn_seconds, pixelcnn_members=args.pixelcnn_members),
              "n_train": 1497, "n_test": 300}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    emit(record)


if __name__ == "__main__":
    main()
