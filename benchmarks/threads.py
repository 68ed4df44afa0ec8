"""Torch threads under contention: which setting keeps training fast on a busy machine.

The book build trains digits U-Nets on the reader's cores.  With two OpenMP threads per
process, each thread waits for the other at every parallel region; when the OS deschedules
one of them (another program wants the core), the other spins until its time slice ends.
This script measures digits U-Net training steps/s (batch 128, T = 1000, 17 levels) for

* ``2``          — two threads, the OpenMP default wait policy (spin, then sleep);
* ``2-passive``  — two threads with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep);
* ``1``          — one thread;
* ``1x2``        — two processes of one thread each (two chapters at once), summed,

each on an otherwise idle machine and with ``--busy`` processes spinning
(``python -c "while True: pass"``), and prints one line per case::

    python benchmarks/threads.py --seconds 20          # idle and with 2 busy loops

Every case runs in a fresh process (the wait policy is read when OpenMP starts).  The
machine's load average before each case is printed with it: "idle" means no busy loops of
ours, not an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

WORKER = r"""
import json, sys, torch
from ddpm_lite import GaussianDiffusion, NoiseSchedule, UNet, train
seconds = float(sys.argv[1])
torch.manual_seed(0)
diffusion = GaussianDiffusion(NoiseSchedule.linear(1000), num_levels=17)
data = torch.rand(1497, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
kw = dict(batch_size=128, lr=2e-3, progress=False, device="cpu", log_every=1000)
train(UNet(T=1000), diffusion, data, steps=5, **kw)  # warm-up: allocations, first calls
run = train(UNet(T=1000), diffusion, data, steps=10**9, seconds=seconds, **kw)
print(json.dumps({"steps": run.steps, "seconds": run.seconds,
                  "threads": torch.get_num_threads()}))
"""

CASES = {  # name: (processes, OMP_NUM_THREADS, OMP_WAIT_POLICY or None)
    "2": (1, 2, None),
    "2-passive": (1, 2, "PASSIVE"),
    "1": (1, 1, None),
    "1x2": (2, 1, None),
}


def _run_case(processes: int, threads: int, policy: str | None, seconds: float) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": SRC}
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(seconds)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"worker failed with exit code {p.returncode}")
        rec = json.loads(out.strip().splitlines()[-1])
        total += rec["steps"] / rec["seconds"]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="timed training per case")
    ap.add_argument("--busy", type=int, default=2, help="spinning processes in the busy runs")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if unknown := [c for c in cases if c not in CASES]:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    print(f"digits U-Net training, steps/s over {args.seconds:.0f} s per case, "
          f"{os.cpu_count()} CPUs")
    for busy in (0, args.busy):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(busy)]
        try:
            time.sleep(1.0 if busy else 0.0)
            for name in cases:
                load = os.getloadavg()[0]
                rate = _run_case(*CASES[name], args.seconds)
                print(f"busy loops {busy}  threads {name:10s} {rate:6.1f} steps/s"
                      f"   (load average before: {load:.1f})", flush=True)
        finally:
            for s in spinners:
                s.kill()
                s.wait()


if __name__ == "__main__":
    main()
