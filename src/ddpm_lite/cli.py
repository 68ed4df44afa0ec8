"""``python -m ddpm_lite`` / ``ddpm-lite``: train, sample and score a DDPM from the shell.

Every command either finishes or leaves no half-written file: outputs are written to a
temporary name and renamed.  Bad arguments and unusable inputs give one ``error: ...``
line on stderr and exit code 2; Ctrl-C (SIGTERM) during training saves a checkpoint and
exits 130 (143).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..2**63-1, got {text!r}")
    return value


#: Most samples one ``sample`` call draws (they are all held in memory); run it again with another --seed for more.
MAX_SAMPLES = 100_000


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ddpm-lite`` command (exposed for docs and tests)."""
    from .schedule import SCHEDULE_KINDS

    parser = _Parser(prog="ddpm-lite", description="Train, sample and evaluate a small DDPM (Ho et al. 2020).",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,bpd}", parser_class=_Parser)
    sub.required = True

    tr = sub.add_parser("train", help="train a model (resumes if --out holds a checkpoint)", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--data", required=True, metavar="DATA",
                    help="digits, swiss_roll, moons, mixture, or a folder of images (PNG, JPEG, ...)")
    tr.add_argument("--out", required=True, type=Path, help="run directory for checkpoints (created if missing)")
    tr.add_argument("--seconds", type=_positive_float, help="wall-clock training budget")
    tr.add_argument("--steps", type=_positive_int, help="total optimizer steps (counting resumed ones)")
    tr.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    tr.add_argument("--schedule", default="linear", choices=SCHEDULE_KINDS, help="noise schedule (default linear)")
    tr.add_argument("--variance", default="beta", choices=("beta", "beta_tilde", "learned"),
                    help="reverse variance σ_t² (default beta; learned adds v outputs, train it with --loss hybrid)")
    tr.add_argument("--loss", default="simple", choices=("simple", "vb", "hybrid"), help="objective (default simple)")
    tr.add_argument("--importance", action="store_true", help="importance-sampled t (with --loss vb or hybrid, "
                    "one process; its history is not checkpointed, so a resumed run starts uniform again)")
    tr.add_argument("--T", type=_positive_int, default=1000, help="number of diffusion steps (default 1000)")
    tr.add_argument("--seed", type=_seed, default=0, help="seed of model init, batch order and noise (default 0)")
    tr.add_argument("--batch-size", type=_positive_int, default=128, help="default 128")
    tr.add_argument("--lr", type=_positive_float, default=None, help="AdamW learning rate (default 2e-3 for points and images under 16 px, "
                    "as in benchmarks/; 1e-3 for larger images)")
    tr.add_argument("--image-size", type=_positive_int, help="resize folder images to this square size")
    tr.add_argument("--mode", default="L", choices=("L", "RGB"), help="folder images as grayscale (L) or RGB")
    tr.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision on CUDA")
    tr.add_argument("--checkpoint-every", type=_positive_int, default=1000, help="steps between checkpoints")
    tr.add_argument("--log-every", type=_positive_int, default=100,
                    help="steps between loss reports (default 100); with --no-progress each report is a line on stderr")
    tr.add_argument("--fresh", action="store_true",
                    help="start over even if --out holds a checkpoint (it is replaced at the first save)")
    tr.add_argument("--no-progress", action="store_true",
                    help="no progress bar: plain 'step N: loss L' lines on stderr instead (for logs and batch jobs)")

    sa = sub.add_parser("sample", help="draw samples from a trained run", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sa.add_argument("--run", required=True, type=Path, help="run directory written by 'train'")
    sa.add_argument("--n", type=_positive_int, default=64, help="number of samples (default 64)")
    sa.add_argument("--out", required=True, type=Path,
                    help="PNG to write (grid of images, or scatter plot of points); the raw samples go to the same name with .npy")
    sa.add_argument("--sampler", default="ancestral", choices=("ancestral", "ddim", "dpm++", "dpm++sde"),
                    help="default ancestral (T steps); dpm++ is DPM-Solver++(2M), dpm++sde its stochastic form")
    sa.add_argument("--ddim-steps", type=_positive_int, default=None,
                    help="steps for --sampler ddim, dpm++ or dpm++sde (default 50, or T when the run has fewer)")
    sa.add_argument("--seed", type=_seed, default=0)
    sa.add_argument("--device", default="auto")

    bp = sub.add_parser("bpd", help="variational bound in bits/dim on held-out data (prints JSON)", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    bp.add_argument("--run", required=True, type=Path, help="run directory written by 'train'")
    bp.add_argument("--n", type=_positive_int, help="evaluate on the first N held-out samples (default: all, max 1000)")
    bp.add_argument("--data", help="the data to score (default: the run's own, from its metadata; needed for runs "
                    "trained through the Python API)")
    bp.add_argument("--seed", type=_seed, default=0)
    bp.add_argument("--device", default="auto")
    return parser


# ---------------------------------------------------------------------------- data
def load_dataset(name: str, image_size: int | None = None, mode: str = "L", split: str = "train"):
    """(tensor, metadata) for a --data value; ``split="test"`` gives held-out data."""
    from . import data

    if name.startswith("bundled:"):
        name = name.removeprefix("bundled:")
        if name not in TOY_DATA:
            raise ValueError(f"--data bundled:{name} is not a bundled dataset; choose one of {', '.join(TOY_DATA)}.")
    elif name in TOY_DATA and Path(name).exists():
        # Never shadow a user's folder silently, in either direction: ask which is meant.
        raise ValueError(f"--data {name} names both a bundled dataset and {str(Path(name).resolve())!r} here; "
                         f"write --data ./{name} for the folder or --data bundled:{name} for the bundled data.")
    if name == "digits":
        return data.digits(split), {"data": "digits", "num_levels": data.DIGITS_LEVELS}
    if name in data.TOY_DATASETS:
        return data.toy_split(name, split), {"data": name, "num_levels": None}
    path = Path(name).expanduser()
    if not path.exists():
        raise ValueError(f"--data must be one of {', '.join(TOY_DATA)} or an existing folder of images; "
                         f"{name!r} is neither.")
    images = data.image_folder(path, size=image_size, mode=mode)
    return images, {"data": str(path.resolve()), "image_size": image_size, "mode": mode, "num_levels": 256}


def load_run(run: Path, device: str = "auto"):
    """(EMA model in eval mode, diffusion, checkpoint state, device) of a run directory."""
    from .checkpoint import load_checkpoint
    from .diffusion import GaussianDiffusion
    from .models import build_model
    from .plumbing import resolve_device

    dev = resolve_device(device)
    state = load_checkpoint(run)
    import torch

    if not all(bool(torch.isfinite(v).all()) for v in state["ema"].values() if v.is_floating_point()):
        # Written before every save was checked: refuse rather than draw black images or NaN bounds.
        raise ValueError(f"the weights in run {str(run)!r} are NaN or inf (the run diverged); retrain with a lower --lr.")
    model = build_model(state["config"]["model"])
    try:
        model.load_state_dict(state["ema"])
    except RuntimeError:  # a format-1 state.json edited by hand (format 2 is checksummed)
        raise ValueError(f"the weights in run {str(run)!r} do not fit the model its state.json describes "
                         f"({state['config']['model']}); the run is damaged.") from None
    return model.to(dev).eval(), GaussianDiffusion.from_config(state["config"]["diffusion"]), state, dev


# ---------------------------------------------------------------------------- commands
def _finite_or_none(value: object) -> object:
    """JSON has no NaN or inf: such floats become null (nested dicts and lists included)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _print_json(obj: dict) -> None:
    """One line of strictly valid JSON on stdout (``allow_nan=False`` guards the promise)."""
    print(json.dumps(_finite_or_none(obj), allow_nan=False))


def _log_line(message: str) -> None:
    """One line on stderr, flushed at once (and printed above a tqdm bar, not through it)."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


def cmd_train(args: argparse.Namespace) -> int:
    """``train``; under torchrun (WORLD_SIZE > 1 in the environment) every process runs this."""
    from . import distributed

    if args.seconds is None and args.steps is None:
        raise ValueError("give a budget: --seconds S and/or --steps N.")
    world = distributed.env_world_size()
    if args.batch_size % world:
        raise ValueError(f"--batch-size must be divisible by the number of processes WORLD_SIZE={world}, "
                         f"got --batch-size {args.batch_size}.")
    ddp = distributed.init_from_env()
    try:
        return _train(args, ddp)
    finally:
        distributed.shutdown()


def _model_for(default_model, data, T: int, **kw):  # noqa: ANN001, ANN003, ANN202
    """The CLI's model for ``data``; images the U-Net cannot halve evenly get a size to use."""
    import math

    try:
        return default_model(tuple(data.shape), T=T, **kw)
    except ValueError:
        if data.dim() != 4:
            raise
        h, w = data.shape[-2:]
        factor = 2 if min(h, w) < 32 else 4  # default_model halves once below 32 px, twice above
        size = max(8, math.ceil(max(h, w) / factor) * factor)
        raise ValueError(f"images of {w}x{h} px cannot be halved evenly by the U-Net; resize them with "
                         f"--image-size {size}.") from None


def _train(args: argparse.Namespace, ddp) -> int:  # noqa: ANN001
    import torch

    from .checkpoint import CheckpointError
    from .diffusion import GaussianDiffusion
    from .models import count_parameters, default_model
    from .plumbing import resolve_device
    from .resample import ImportanceSampler
    from .rundir import check_writable
    from .schedule import NoiseSchedule
    from .train_state import RESTART_HINT
    from .training import train

    device = resolve_device(args.device)  # fail before the slow part
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {str(args.out)!r} is a file; it must be a run directory.")
    data, meta = load_dataset(args.data, args.image_size, args.mode)
    schedule = NoiseSchedule.from_name(args.schedule, args.T)
    diffusion = GaussianDiffusion(schedule, variance=args.variance, num_levels=meta["num_levels"])
    torch.manual_seed(args.seed)
    model = _model_for(default_model, data, args.T, learn_sigma=args.variance == "learned")
    if ddp.is_main:  # an unwritable --out must fail now, not at the first save after the budget
        check_writable(args.out, "--out")
    small = data.dim() == 2 or min(data.shape[-2:]) < 16
    lr = args.lr if args.lr is not None else (2e-3 if small else 1e-3)
    if ddp.is_main:
        procs = f" in {ddp.world_size} processes" if ddp.enabled else ""
        print(f"training {type(model).__name__} ({count_parameters(model):,} parameters) on {meta['data']} "
              f"{tuple(data.shape)}, T={args.T} {args.schedule} schedule{procs}; checkpoints in {args.out}",
              file=sys.stderr)

    def report(event: str, step: int, info: dict) -> None:
        if event == "checkpoint":
            _log_line(f"checkpoint: step {step} saved in {info['dir']}")
        elif args.no_progress:  # otherwise the bar shows the loss
            _log_line(f"step {step}: loss {info['loss']:.4f}")

    try:
        result = train(model, diffusion, data, steps=args.steps, seconds=args.seconds, batch_size=args.batch_size,
                       lr=lr, device=device, amp=args.amp, checkpoint_dir=args.out, resume=not args.fresh,
                       checkpoint_every=args.checkpoint_every, seed=args.seed, progress=not args.no_progress,
                       log_every=args.log_every, loss_kind=args.loss, metadata=meta, callback=report,
                       t_sampler=ImportanceSampler(args.T) if args.importance else None)
    except CheckpointError as exc:  # the API's advice, in the command line's words
        raise CheckpointError(str(exc).replace(RESTART_HINT, "--fresh")) from None
    code = 128 + result.stop_signal if result.interrupted and result.stop_signal else (130 if result.interrupted else 0)
    if not ddp.is_main:
        return code
    summary = {"steps": result.steps, "seconds": round(result.seconds, 2),
               "steps_per_second": round(result.steps_per_second, 2),
               "final_loss": result.losses[-1][1] if result.losses else None, "out": str(args.out),
               "interrupted": result.interrupted, "device": str(result.device)}
    _print_json(summary)
    if result.interrupted:
        print(f"interrupted: checkpoint saved in {args.out}; run the same command to resume.", file=sys.stderr)
    return code


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .checkpoint import atomic_write_bytes
    from .data import grid_png, scatter_png

    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {str(args.out)!r}.")
    if not args.out.parent.is_dir():
        raise ValueError(f"the folder of --out, {str(args.out.parent)!r}, does not exist.")
    for path in (args.out, args.out.with_suffix(".npy")):
        if path.is_dir():  # checked before sampling: nothing is written if either cannot be
            raise ValueError(f"--out would write {str(path)!r}, which is a folder; name a file such as samples.png.")
    if args.n > MAX_SAMPLES:
        raise ValueError(f"--n {args.n} is more than {MAX_SAMPLES} samples in one call; run sample several "
                         "times with different --seed values.")
    model, diffusion, state, dev = load_run(args.run, args.device)
    if args.sampler != "ancestral":  # ddim, dpm++, dpm++sde take --ddim-steps
        if args.ddim_steps is not None and args.ddim_steps > diffusion.T:
            raise ValueError(f"--ddim-steps {args.ddim_steps} is more than this run's T={diffusion.T}; "
                             f"use --ddim-steps {diffusion.T} or fewer.")
        args.ddim_steps = args.ddim_steps or min(50, diffusion.T)
    shape = (args.n, *state["config"]["data"]["shape"][1:])
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    with torch.no_grad():
        if args.sampler == "ddim":
            x = diffusion.ddim_sample(model, shape, steps=args.ddim_steps, generator=gen, device=dev)
        elif args.sampler.startswith("dpm++"):
            x = diffusion.dpm_solver_sample(model, shape, steps=args.ddim_steps, stochastic=args.sampler == "dpm++sde",
                                            generator=gen, device=dev)
        else:
            x = diffusion.sample(model, shape, generator=gen, device=dev)
    x = x.float().cpu()
    png = grid_png(x) if x.dim() == 4 else scatter_png(x)
    buf = io.BytesIO()
    np.save(buf, x.numpy())
    npy = args.out.with_suffix(".npy")
    atomic_write_bytes(npy, buf.getvalue())
    atomic_write_bytes(args.out, png)
    _print_json({"png": str(args.out), "npy": str(npy), "shape": list(x.shape), "sampler": args.sampler})
    return 0


def cmd_bpd(args: argparse.Namespace) -> int:
    import torch

    model, diffusion, state, dev = load_run(args.run, args.device)
    meta = state["metadata"]
    name = args.data or meta.get("data")
    if name is None:
        raise ValueError(f"run {str(args.run)!r} does not record its data (trained through the Python API without "
                         "metadata={'data': ...}); name it with --data (digits, swiss_roll, moons, mixture or a folder).")
    if name in TOY_DATA:
        held_out, _ = load_dataset(name, split="test")
        split = "test"
    else:
        # A folder has no held-out split: score the training images themselves.
        held_out, _ = load_dataset(name, meta.get("image_size"), meta.get("mode", "L"))
        split = "train"
    n = min(args.n or 1000, held_out.shape[0])
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    res = diffusion.bits_per_dim(model, held_out[:n].to(dev), generator=gen)
    vb = res["vb"]
    out = {"bits_per_dim": res["total"], "prior_L_T": res["prior"], "sum_L_t_minus_1": float(vb[1:].sum()),
           "decoder_L_0": res["decoder"], "n": n, "split": split, "data": name,
           "num_levels": diffusion.num_levels, "steps_trained": state["step"]}
    if diffusion.num_levels is None:
        out["note"] = "continuous data: a differential bound (can be negative), not a code length"
    _print_json(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ddpm-lite`` and ``python -m ddpm_lite``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": cmd_train, "sample": cmd_sample, "bpd": cmd_bpd}
    try:
        return commands[args.command](args)
    except (ValueError, OSError, FloatingPointError) as exc:  # CheckpointError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside the training loop (which saves and returns by itself)
        print("interrupted", file=sys.stderr)
        return 130
