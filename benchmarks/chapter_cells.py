"""Where a chapter's execution time goes: each code cell's wall time, slowest first.

The book build prints every chapter's own time (book/_ext/execution.py); this script looks
inside one chapter.  It executes the notebook in a fresh kernel with nbclient (as the build
does), records each cell's start and end, and prints the slowest cells and the total::

    OMP_NUM_THREADS=1 python benchmarks/chapter_cells.py notebooks/08_bits_per_dim.ipynb
    # cold: a fresh model store, so the chapter trains what it needs
    python benchmarks/chapter_cells.py notebooks/13_using_the_grid.ipynb --store /tmp/s13

The kernel imports this checkout's ``src/`` first.  Times are wall-clock: on a shared
machine compare cells of one run with each other (ratios), and report the load average
printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _seconds(cell) -> float | None:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--store", help="model store folder (DDPM_LITE_STORE); a fresh one = cold")
    ap.add_argument("--top", type=int, default=10, help="cells to list (default 10)")
    ap.add_argument("--timeout", type=int, default=3600, help="per-cell limit in seconds")
    args = ap.parse_args(argv)
    if not args.notebook.is_file():
        ap.error(f"{args.notebook} is not a notebook file")
    import nbclient
    import nbformat

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    if args.store:
        os.environ["DDPM_LITE_STORE"] = str(Path(args.store).resolve())
    nb = nbformat.read(args.notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=args.timeout, kernel_name="python3", record_timing=True,
                                     resources={"metadata": {"path": str(args.notebook.resolve().parent)}})
    load = os.getloadavg()[0]
    start = time.perf_counter()
    client.execute()
    total = time.perf_counter() - start
    rows = [(s, i, cell.source.splitlines()[0] if cell.source else "")
            for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and (s := _seconds(cell)) is not None]
    print(f"{args.notebook.name}: {total:.1f} s in all (load average {load:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    for s, i, first in sorted(rows, reverse=True)[: args.top]:
        print(f"  {s:7.1f} s  {s / total:4.0%}  cell {i:2d}  {first[:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
