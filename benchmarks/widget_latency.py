"""Per-update latency of the book's explorers in a live kernel, and what their static form costs.

Simulates drags as sequences of small steps and times ``update`` (recompute, move artists,
blit or redraw, PNG-encode): the schedule explorer over t, then T, then β_T (the target is a
median ≤ 30 ms on a 2-core machine), and a t drag of every other explorer.  Then times
``static_html`` (the frames written into the rendered book) and reports its size.  Prints
one JSON line.

    .venv/bin/python benchmarks/widget_latency.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from ddpm_lite import GaussianDiffusion, NoiseSchedule
from ddpm_lite.data import digits
from ddpm_lite.book.widgets import forward_chain_viewer, posterior_explorer, posterior_histogram, schedule_explorer


def time_updates(explorer, name: str, values) -> list[float]:
    out = []
    for v in values:
        t0 = time.perf_counter()
        explorer.update(**{name: v})
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def summary(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="slider positions per drag (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    schedule = NoiseSchedule.linear(1000)
    report: dict = {"benchmark": "widget_latency", "threads": args.threads, "target_median_ms": 30}

    e = schedule_explorer()
    time_updates(e, "t", [10, 20, 30])  # warm-up: first draws build caches
    drags = {
        "t": [int(v) for v in np.linspace(1, 1000, args.steps)],
        "T": [int(v) for v in np.linspace(1000, 100, args.steps)],
        "beta_T": list(np.geomspace(0.02, 0.2, args.steps)),
    }
    for name, values in drags.items():
        s = summary(time_updates(e, name, values))
        report[f"{name}_median_ms"], report[f"{name}_p90_ms"] = s["median_ms"], s["p90_ms"]

    t_drag = [int(v) for v in np.geomspace(1, 1000, args.steps)]
    others = {
        "forward_chain": forward_chain_viewer(digits("test")[:16], GaussianDiffusion(schedule), every=10),
        "posterior_explorer": posterior_explorer(schedule, t=2),
        "posterior_histogram": posterior_histogram(schedule, x0=0.7, t=10),
    }
    for name, w in others.items():
        time_updates(w, "t", t_drag[:3])
        report[f"{name}_t"] = summary(time_updates(w, "t", t_drag))
    for name, w in {"schedule_explorer": e, **others}.items():
        t0 = time.perf_counter()
        html = w.static_html()
        report[f"{name}_static"] = {"seconds": round(time.perf_counter() - t0, 2), "bytes": len(html.encode())}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
