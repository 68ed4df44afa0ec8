"""Per-update latency of the schedule explorer (a dragged slider must feel fluid).

Simulates drags: t over its range, then T, then β_T, as a sequence of small steps,
and times ``ScheduleExplorer.update`` (recompute, move artists, blit, PNG-encode).
Prints one JSON line; the target is a median ≤ 30 ms on a 2-core machine.

    .venv/bin/python benchmarks/widget_latency.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from ddpm_lite.book.widgets import schedule_explorer


def time_updates(explorer, name: str, values) -> list[float]:
    out = []
    for v in values:
        t0 = time.perf_counter()
        explorer.update(**{name: v})
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="slider positions per drag (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    e = schedule_explorer()
    time_updates(e, "t", [10, 20, 30])  # warm-up: first draws build caches
    drags = {
        "t": [int(v) for v in np.linspace(1, 1000, args.steps)],
        "T": [int(v) for v in np.linspace(1000, 100, args.steps)],
        "beta_T": list(np.geomspace(0.02, 0.2, args.steps)),
    }
    report = {"benchmark": "widget_latency", "threads": args.threads, "target_median_ms": 30}
    for name, values in drags.items():
        ms = time_updates(e, name, values)
        report[f"{name}_median_ms"] = round(statistics.median(ms), 2)
        report[f"{name}_p90_ms"] = round(float(np.percentile(ms, 90)), 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
