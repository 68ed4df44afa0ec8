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

from .checks import check_image_size, check_training_fits, sample_shape
from .args import MAX_SAMPLES, TOY_DATA, build_parser  # noqa: F401 (build_parser: public here too)


def load_dataset(name: str, image_size: int | None = None, mode: str = "L", split: str = "train"):
    """(tensor, metadata) for a --data value; ``split="test"`` gives held-out data."""
    from .. import data

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
    if image_size is not None and path.is_dir():
        check_image_size(path, image_size, mode)
    images = data.image_folder(path, size=image_size, mode=mode)
    return images, {"data": str(path.resolve()), "image_size": image_size, "mode": mode, "num_levels": 256}


def load_run(run: Path, device: str = "auto"):
    """(EMA model in eval mode, diffusion, checkpoint state, device) of a run directory."""
    from ..runs.checkpoint import load_checkpoint
    from ..nets.build import build_model
    from ..plumbing import resolve_device
    from .continuous import diffusion_from_config

    dev = resolve_device(device)
    state = load_checkpoint(run)
    import torch

    if not all(bool(torch.isfinite(v).all()) for v in state["ema"].values() if v.is_floating_point()):
        # Written before every save was checked: refuse rather than draw black images or NaN bounds.
        raise ValueError(f"the weights in run {str(run)!r} are NaN or inf (the run diverged); retrain with a lower --lr.")
    # Every size in state.json is checked against the weights on the meta device (nothing is
    # allocated) before the model is built: an edited hidden=10**7 would otherwise take 80 GB.
    unfit = ValueError(f"the weights in run {str(run)!r} do not fit the model its state.json describes "
                       f"({str(state['config']['model'])[:300]}); the run is damaged.")
    with torch.device("meta"):
        shell = build_model(state["config"]["model"])
    if {k: tuple(v.shape) for k, v in shell.state_dict().items()} != {k: tuple(v.shape) for k, v in state["ema"].items()}:
        raise unfit
    model = build_model(state["config"]["model"])
    try:
        model.load_state_dict(state["ema"])
    except RuntimeError:  # a format-1 state.json edited by hand (format 2 is checksummed)
        raise unfit from None
    return model.to(dev).eval(), diffusion_from_config(state["config"]["diffusion"]), state, dev


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
    from ..training import distributed

    if args.seconds is None and args.steps is None:
        raise ValueError("give a budget: --seconds S and/or --steps N.")
    world = distributed.env_world_size()
    if args.batch_size % world:
        raise ValueError(f"--batch-size must be divisible by the number of processes WORLD_SIZE={world}, "
                         f"got --batch-size {args.batch_size}.")
    ddp = distributed.init_from_env()
    try:
        return _train(args, ddp)
    except (RuntimeError, ValueError) as exc:
        if not ddp.enabled or not _is_collective_failure(exc):
            raise
        from ..training.rendezvous import explain_failure

        raise ValueError(explain_failure(exc)) from None  # one line naming the rank, not a gloo traceback
    finally:
        distributed.shutdown()


def _is_collective_failure(exc: BaseException) -> bool:
    """A torch.distributed error (a peer closed the connection, a collective timed out)."""
    import torch.distributed as dist

    kinds = tuple(k for k in (getattr(dist, "DistError", None),) if k is not None)
    text = str(exc).lower()
    return isinstance(exc, kinds) or any(w in text for w in ("gloo", "nccl", "connection closed", "timed out",
                                                               "connection reset", "broken pipe"))


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

    from ..runs.checkpoint import CheckpointError
    from ..diffusion import GaussianDiffusion
    from ..nets.embedding import count_parameters
    from ..nets.build import default_model
    from ..plumbing import resolve_device
    from ..training.timesteps import ImportanceSampler
    from ..runs.directory import check_writable
    from ..schedule import NoiseSchedule
    from ..training.state import RESTART_HINT
    from ..training.loop import train
    from .continuous import build_continuous, resolve_train_args

    device = resolve_device(args.device)  # fail before the slow part
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {str(args.out)!r} is a file; it must be a run directory.")
    resolve_train_args(args)  # defaults for --time, and flags that do not apply to it refused
    data, meta = load_dataset(args.data, args.image_size, args.mode)
    if args.time == "continuous":
        model, diffusion = build_continuous(args, data, meta)
    else:
        schedule = NoiseSchedule.from_name(args.schedule, args.T)
        diffusion = GaussianDiffusion(schedule, variance=args.variance, num_levels=meta["num_levels"])
        torch.manual_seed(args.seed)
        levels = (schedule, meta["num_levels"]) if args.denoiser == "levels" else None
        model = _model_for(default_model, data, args.T, learn_sigma=args.variance == "learned", levels=levels)
    check_training_fits(model, data, args.batch_size // ddp.world_size, device)
    if ddp.is_main:  # an unwritable --out must fail now, not at the first save after the budget
        check_writable(args.out, "--out")
    small = data.dim() == 2 or min(data.shape[-2:]) < 16
    lr = args.lr if args.lr is not None else (2e-3 if small else 1e-3)
    if ddp.is_main:
        procs = f" in {ddp.world_size} processes" if ddp.enabled else ""
        print(f"training {type(model).__name__} ({count_parameters(model):,} parameters) on {meta['data']} "
              f"{tuple(data.shape)}, {f'T={args.T} {args.schedule} schedule' if args.T else 'continuous time'}"
              f"{procs}; checkpoints in {args.out}",
              file=sys.stderr)

    def report(event: str, step: int, info: dict) -> None:
        if event == "checkpoint":
            _log_line(f"checkpoint: step {step} saved in {info['dir']}")
        elif args.no_progress:  # otherwise the bar shows the loss
            _log_line(f"step {step}: loss {info['loss']:.4f}")

    try:
        result = train(model, diffusion, data, steps=args.steps, seconds=args.seconds, batch_size=args.batch_size,
                       lr=lr, device=device, amp=args.amp, compile=args.compile, checkpoint_dir=args.out,
                       resume=not args.fresh,
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

    from ..data.png import grid_png, scatter_png
    from ..nets.memory import check_fits, meta_copy, sampling_bytes
    from ..runs.outputs import check_pair_writable, write_pair
    from ..sampling import SamplerConfig
    from .continuous import for_sampling

    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {str(args.out)!r}.")
    npy = args.out.with_suffix(".npy")
    # Before sampling: nothing is drawn when the pair cannot be written.
    check_pair_writable(args.out, npy, flag="--out")
    if args.n > MAX_SAMPLES:
        raise ValueError(f"--n {args.n} is more than {MAX_SAMPLES} samples in one call; run sample several "
                         "times with different --seed values.")
    model, diffusion, state, dev = load_run(args.run, args.device)
    net, (model, diffusion) = model, for_sampling(model, diffusion, args.T)  # continuous time: a grid of T steps
    if args.ddim_steps is not None and args.sampler == "ancestral":
        raise ValueError("--ddim-steps is for --sampler ddim, dpm++ or dpm++sde; the ancestral sampler visits "
                         f"all T={diffusion.T} steps.")
    if args.ddim_steps is not None and args.ddim_steps > diffusion.T:
        raise ValueError(f"--ddim-steps {args.ddim_steps} is more than this run's T={diffusion.T}; "
                         f"use --ddim-steps {diffusion.T} or fewer.")
    how = SamplerConfig(args.sampler, args.ddim_steps, eta=args.eta, spacing=args.spacing)
    shape = sample_shape(state, args.n, net)
    check_fits(sampling_bytes(meta_copy(net), shape), dev, what=f"sampling --n {args.n} of shape {shape[1:]} at once",
               fix="lower --n (and run sample several times with different --seed values)")
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    with torch.no_grad():
        x = diffusion.sample(model, shape, generator=gen, device=dev, sampler=how)
    x = x.float().cpu()
    png = grid_png(x) if x.dim() == 4 else scatter_png(x)
    buf = io.BytesIO()
    np.save(buf, x.numpy())
    write_pair(args.out, png, npy, buf.getvalue())  # both or neither, never one of each writer
    _print_json({"png": str(args.out), "npy": str(npy), "shape": list(x.shape), "sampler": args.sampler})
    return 0


def cmd_bpd(args: argparse.Namespace) -> int:
    import torch

    from .continuous import bound_json

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
    out = bound_json(model, diffusion, held_out[:n].to(dev), args.T, args.draws, gen)
    _print_json({**out, "n": n, "split": split, "data": name, "num_levels": diffusion.num_levels,
                 "steps_trained": state["step"]})
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
