"""Digits U-Net forward passes per CPU-second: what would make the bound's evaluation cheaper.

Chapters 8, 11 and 13 spend most of their time in ``bits_per_dim``: one U-Net call per
(digit, t) pair, T = 1000 pairs per digit, hundreds of digits (98 % of that is the model).
This script times the forward pass (no_grad, one thread) in ways that leave the numbers
unchanged up to float rounding, interleaved in rounds so that a change of load hits every
variant alike, and prints rows per CPU-second and each variant's ratio to the plain model::

    python benchmarks/unet_eval.py --rounds 3

Variants: ``plain``; ``batch-20000`` (one call of 20 000 rows, as chapter 8's by-hand
check makes); ``channels-last`` (weights and input in NHWC); ``torchscript-frozen``
(``torch.jit.freeze(torch.jit.trace(...))``); ``no-mkldnn`` (the native convolution);
``inference-mode``; with ``--compile`` also ``inductor`` (``torch.compile``, one fixed shape),
whose compile time is printed cold (an empty inductor cache) and warm (the cache a second
compile of the same graph finds).  ``max |Δ|`` is the largest difference from the plain
model's output.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
import warnings

import _common  # noqa: F401  (puts ../src on the path)
import torch

from ddpm_lite.nets import UNet


def rows_per_cpu_second(fn, rows: int, seconds: float) -> float:
    fn()
    start, n = time.process_time(), 0
    while time.process_time() - start < seconds:
        fn()
        n += rows
    return n / (time.process_time() - start)


def compile_twice(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor):
    """(compiled model, [wall s of the first call cold, warm]): compiled twice, the second from cache."""
    # An empty cache of our own, so "cold" is what a fresh machine pays; the process removes
    # it when it exits (the compiled kernels are loaded by then).
    cache = tempfile.mkdtemp(prefix="inductor-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    times = []
    for _ in range(2):
        torch._dynamo.reset()
        compiled = torch.compile(model, dynamic=False)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x, t)
        times.append(time.perf_counter() - start)
    return compiled, times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="per variant and round")
    ap.add_argument("--batch", type=int, default=4096, help="rows per call (bits_per_dim's default)")
    ap.add_argument("--compile", action="store_true",
                    help="add torch.compile (needs a C++ compiler); its cold compile uses an empty cache")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNet(T=1000).eval()
    with torch.no_grad():  # the zero-initialised output layers would hide any difference
        for p in model.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.05)
    x, t = torch.randn(20_000, 1, 8, 8), torch.randint(1, 1001, (20_000,))
    xb, tb = x[: args.batch], t[: args.batch]
    cl = UNet(T=1000).eval()
    cl.load_state_dict(model.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on the timestep checks
        frozen = torch.jit.freeze(torch.jit.trace(model, (xb[:64], tb[:64]), check_trace=False))

    def no_mkldnn():
        with torch.backends.mkldnn.flags(enabled=False):
            return model(xb, tb)

    def inference():
        with torch.inference_mode():
            return model(xb, tb)

    variants = {
        "plain": (lambda: model(xb, tb), args.batch),
        "batch-20000": (lambda: model(x, t), len(x)),
        "channels-last": (lambda: cl(xb.contiguous(memory_format=torch.channels_last), tb), args.batch),
        "torchscript-frozen": (lambda: frozen(xb, tb), args.batch),
        "no-mkldnn": (no_mkldnn, args.batch),
        "inference-mode": (inference, args.batch),
    }
    if args.compile:
        compiled, times = compile_twice(model, xb, tb)
        print(f"torch.compile: first call {times[0]:.1f} s with an empty cache, "
              f"{times[1]:.1f} s when the cache holds the graph")
        variants["inductor"] = (lambda: compiled(xb, tb), args.batch)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    with torch.no_grad():
        ref = model(xb, tb)
        gaps = {k: float((fn()[: args.batch] - ref).abs().max()) for k, (fn, _) in variants.items()}
        for _ in range(args.rounds):
            for name, (fn, rows) in variants.items():
                rates[name].append(rows_per_cpu_second(fn, rows, args.seconds))
    base = sum(rates["plain"])
    for name, r in rates.items():
        print(f"{name:19s} {' '.join(f'{v:6.0f}' for v in r)} rows/CPU-s   ratio {sum(r) / base:4.2f}"
              f"   max |Δ| {gaps[name]:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
