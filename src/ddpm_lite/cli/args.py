"""The command line's grammar: the parser of ``python -m ddpm_lite`` and its argument types.

Kept apart from :mod:`ddpm_lite.cli` (what each command does) so that either can be read
alone; ``ddpm_lite.cli.build_parser`` is this module's :func:`build_parser`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["build_parser", "TOY_DATA", "MAX_SAMPLES"]

#: The bundled datasets --data accepts by name (anything else is a folder of images).
TOY_DATA = ("digits", "swiss_roll", "moons", "mixture")

EPILOG = """\
examples:
  # train on the bundled 8x8 digits for one minute, checkpoints in runs/digits
  python -m ddpm_lite train --data digits --seconds 60 --out runs/digits
  # draw 64 samples: writes samples.png (a grid) and samples.npy (the raw values)
  python -m ddpm_lite sample --run runs/digits --n 64 --out samples.png
  # the variational bound on the test split, in bits per dimension (JSON)
  python -m ddpm_lite bpd --run runs/digits
  # a 2-D toy, or a folder of your own images resized to 16x16 grayscale
  python -m ddpm_lite train --data swiss_roll --seconds 30 --out runs/roll
  python -m ddpm_lite train --data ~/my_pictures --image-size 16 --mode L --seconds 600 --out runs/mine

Running train again with the same --out resumes from the last checkpoint (the
settings must match; --fresh starts over). Ctrl-C or SIGTERM saves a checkpoint before
exiting (exit code 130 or 143). One training run at a time per --out (a lock file).

  # data parallel on 4 GPUs (or 4 CPU processes with gloo); --batch-size is the global batch
  torchrun --nproc_per_node=4 -m ddpm_lite train --data digits --steps 20000 --out runs/digits4
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2) instead of two."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (try '{self.prog} --help')\n")


def _parse(text: str, convert, ok, bad_text: str, bad_value: str):  # noqa: ANN001, ANN202
    """``convert(text)`` if that succeeds and ``ok`` accepts it; else argparse's one-line error."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {bad_text}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {bad_value}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _parse(text, int, lambda v: v >= 1, "a positive integer", "a positive integer")


def _positive_float(text: str) -> float:
    return _parse(text, float, lambda v: 0 < v < float("inf"), "a positive number", "a positive finite number")


def _nonnegative_float(text: str) -> float:
    return _parse(text, float, lambda v: 0 <= v < float("inf"), "a number", "a finite number >= 0")


def _seed(text: str) -> int:
    return _parse(text, int, lambda v: 0 <= v < 2**63, "an integer seed", "a seed in 0..2**63-1")


def _nonempty(text: str) -> str:
    # An empty value is a shell accident ("--out $UNSET"), never "here": refuse it, say how to mean "here".
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path or a name, got {text!r} (write . for the current folder)")
    return text


def _path(text: str) -> Path:
    return Path(_nonempty(text))


#: Most samples one ``sample`` call draws (they are all held in memory); run it again with another --seed for more.
MAX_SAMPLES = 100_000


def _add_continuous_flags(tr: argparse.ArgumentParser) -> None:
    """train's --time and the flags of --time continuous (ddpm_lite.cli.continuous refuses them in discrete time)."""
    tr.add_argument("--time", default="discrete", choices=("discrete", "continuous"),
                    help="discrete: a chain of T steps (default); continuous: VDM's T → ∞ bound (images; "
                         "ddpm_lite.continuous)")
    tr.add_argument("--gamma-min", type=float, default=None, help="continuous: γ(0) = −log SNR_max (default −13.3)")
    tr.add_argument("--gamma-max", type=float, default=None, help="continuous: γ(1) = −log SNR_min (default 5)")
    tr.add_argument("--learn-ends", action="store_true", help="continuous: learn γ_min and γ_max with the bound")
    tr.add_argument("--gamma-shape", default=None, choices=("linear", "learned"),
                    help="continuous: γ(t) linear between its ends (default) or a learned monotone shape")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ddpm-lite`` command (exposed for docs and tests)."""
    from ..diffusion import LOSS_KINDS, VARIANCE_KINDS
    from ..nets.build import DENOISER_KINDS
    from ..sampling import SAMPLER_KINDS
    from ..schedule import SCHEDULE_KINDS
    from ..spacing import SPACING_KINDS
    from ..training.config import AMP_KINDS

    parser = _Parser(prog="ddpm-lite", description="Train, sample and evaluate a small DDPM (Ho et al. 2020).",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,bpd}", parser_class=_Parser)
    sub.required = True

    tr = sub.add_parser("train", help="train a model (resumes if --out holds a checkpoint)", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--data", required=True, metavar="DATA", type=_nonempty,
                    help="digits, swiss_roll, moons, mixture, or a folder of images (PNG, JPEG, ...)")
    tr.add_argument("--out", required=True, type=_path, help="run directory for checkpoints (created if missing)")
    tr.add_argument("--seconds", type=_positive_float, help="wall-clock training budget")
    tr.add_argument("--steps", type=_positive_int, help="total optimizer steps (counting resumed ones)")
    tr.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    tr.add_argument("--schedule", default=None, choices=SCHEDULE_KINDS, help="noise schedule (default linear)")
    tr.add_argument("--variance", default=None, choices=VARIANCE_KINDS,
                    help="reverse variance σ_t² (default beta; learned adds v outputs, train it with --loss hybrid)")
    _add_continuous_flags(tr)
    tr.add_argument("--denoiser", default="eps", choices=DENOISER_KINDS, help="eps: the plain ε network (default); "
                    "levels: ε through the posterior over the data's grey levels (ddpm_lite.nets.levels; images only)")
    tr.add_argument("--loss", default=None, choices=LOSS_KINDS,
                    help="objective (default simple; vb with --time continuous)")
    tr.add_argument("--importance", action="store_true", help="importance-sampled t (with --loss vb or hybrid, "
                    "one process; its history is saved with each checkpoint)")
    tr.add_argument("--compile", action="store_true", help="compile the train step with torch.compile "
                    "(falls back to the eager step if compiling fails)")
    tr.add_argument("--T", type=_positive_int, default=None, help="number of diffusion steps (default 1000)")
    tr.add_argument("--seed", type=_seed, default=0, help="seed of model init, batch order and noise (default 0)")
    tr.add_argument("--batch-size", type=_positive_int, default=128, help="default 128")
    tr.add_argument("--lr", type=_positive_float, default=None, help="AdamW learning rate (default 2e-3 for points and images under 16 px, "
                    "as in benchmarks/; 1e-3 for larger images)")
    tr.add_argument("--image-size", type=_positive_int, help="resize folder images to this square size")
    tr.add_argument("--mode", default="L", choices=("L", "RGB"), help="folder images as grayscale (L) or RGB")
    tr.add_argument("--amp", choices=AMP_KINDS, help="mixed precision on CUDA")
    tr.add_argument("--checkpoint-every", type=_positive_int, default=1000, help="steps between checkpoints")
    tr.add_argument("--log-every", type=_positive_int, default=100,
                    help="steps between loss reports (default 100); with --no-progress each report is a line on stderr")
    tr.add_argument("--fresh", action="store_true",
                    help="start over even if --out holds a checkpoint (it is replaced at the first save)")
    tr.add_argument("--no-progress", action="store_true",
                    help="no progress bar: plain 'step N: loss L' lines on stderr instead (for logs and batch jobs)")

    sa = sub.add_parser("sample", help="draw samples from a trained run", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sa.add_argument("--run", required=True, type=_path, help="run directory written by 'train'")
    sa.add_argument("--n", type=_positive_int, default=64, help="number of samples (default 64)")
    sa.add_argument("--out", required=True, type=_path,
                    help="PNG to write (grid of images, or scatter plot of points); the raw samples go to the same name with .npy")
    sa.add_argument("--sampler", default="ancestral", choices=SAMPLER_KINDS,
                    help="default ancestral (T steps); dpm++ is DPM-Solver++(2M), dpm++sde its stochastic form")
    sa.add_argument("--ddim-steps", type=_positive_int, default=None,
                    help="model calls for --sampler ddim (default 50), dpm++ or dpm++sde (default 20); at most T")
    sa.add_argument("--eta", type=_nonnegative_float, default=None, help="DDIM's noise scale η (default 0; ddim only)")
    sa.add_argument("--spacing", choices=SPACING_KINDS, default=None,
                    help="timestep grid of dpm++ and dpm++sde (default logsnr)")
    sa.add_argument("--T", type=_positive_int, default=None,
                    help="continuous-time runs: sample on a grid of T steps of the run's γ (default 1000)")
    sa.add_argument("--seed", type=_seed, default=0)
    sa.add_argument("--device", default="auto")

    bp = sub.add_parser("bpd", help="variational bound in bits/dim on held-out data (prints JSON)", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    bp.add_argument("--run", required=True, type=_path, help="run directory written by 'train'")
    bp.add_argument("--n", type=_positive_int, help="evaluate on the first N held-out samples (default: all, max 1000)")
    bp.add_argument("--data", type=_nonempty, help="the data to score (default: the run's own, from its metadata; needed for runs "
                    "trained through the Python API)")
    bp.add_argument("--T", type=_positive_int, default=None,
                    help="continuous-time runs: also the bound at T steps (default: the T → ∞ bound only)")
    bp.add_argument("--draws", type=_positive_int, default=64,
                    help="continuous-time runs: stratified t per sample for the T → ∞ bound (default 64)")
    bp.add_argument("--seed", type=_seed, default=0)
    bp.add_argument("--device", default="auto")
    return parser


# ---------------------------------------------------------------------------- data
