"""Run every chapter notebook several times and report what differs between runs.

The book promises that a rerun gives the same page.  This executes each notebook
``--runs`` times in fresh kernels (as nbval and the book build do) and compares,
cell by cell:

* text outputs (stream, text/plain, text/html, text/latex, markdown) exactly;
* images (image/png) by the SHA-256 of their bytes, which is stricter than
  comparing the numbers behind a figure: any changed number moves a pixel;
* the pictures inside embedded widget state (ipywidgets Image buffers), also by
  hash; widget model IDs are random UUIDs by design and are ignored.

Prints one JSON line with a per-notebook summary (and the differing cells).

    .venv/bin/python benchmarks/reproducibility.py --runs 3
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TEXT_MIMES = ("text/plain", "text/html", "text/latex", "text/markdown")
# Not data: widget UUIDs and object addresses in reprs, the kernel's temporary file names in
# warnings, and wall-clock timings ("1500 steps in 6.7 s (225 steps/s)"), which chapters print
# on purpose so a reader sees the cost.  They are masked before comparing.
VOLATILE = re.compile(
    r"(model_id[\"']?: ?[\"'][0-9a-f]{32}[\"']|0x[0-9a-f]{6,16}|/tmp/ipykernel_\d+/\d+\.py"
    r"|\d+(\.\d+)? ?(s|ms|seconds)\b|\d+(\.\d+)? steps/s)")


def _digest(data: str | bytes) -> str:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def fingerprint(nb: nbformat.NotebookNode) -> dict:
    """What a reader sees, per code cell, in comparable form."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        out = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                # One print may arrive as several stream messages: join them per stream.
                text = VOLATILE.sub("<v>", o.text)
                if out and out[-1][:2] == ("stream", o.name):
                    out[-1] = ("stream", o.name, out[-1][2] + text)
                else:
                    out.append(("stream", o.name, text))
            elif o.output_type in ("display_data", "execute_result"):
                for mime, value in sorted(o.get("data", {}).items()):
                    if mime == "image/png":
                        out.append((mime, _digest(value)))
                    elif mime in TEXT_MIMES:
                        text = value if isinstance(value, str) else "".join(value)
                        out.append((mime, VOLATILE.sub("<v>", text)))
            elif o.output_type == "error":
                out.append(("error", o.ename, o.evalue))
        cells.append(out)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    widget_images = sorted(_digest(b["data"]) for m in state.values() for b in m.get("buffers", []))
    return {"cells": cells, "widget_images": widget_images}


def execute(path: Path, timeout: int) -> tuple[dict, float]:
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   store_widget_state=True).execute()
    return fingerprint(nb), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="executions per notebook (default 3)")
    parser.add_argument("--glob", default="notebooks/*.ipynb", help="which notebooks (default notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds (default 600)")
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2 to compare anything")
    summary = {"benchmark": "reproducibility", "runs": args.runs, "notebooks": {}}
    for path in sorted(ROOT.glob(args.glob)):
        prints, seconds = zip(*(execute(path, args.timeout) for _ in range(args.runs)))
        first = prints[0]
        differing = [i for i, cell in enumerate(first["cells"]) if any(p["cells"][i] != cell for p in prints[1:])]
        summary["notebooks"][path.name] = {
            "code_cells": len(first["cells"]),
            "identical_cells": len(first["cells"]) - len(differing),
            "differing_cells": differing,
            "widget_images_identical": all(p["widget_images"] == first["widget_images"] for p in prints[1:]),
            "seconds": [round(s, 1) for s in seconds],
        }
    summary["all_identical"] = all(not v["differing_cells"] and v["widget_images_identical"]
                                   for v in summary["notebooks"].values())
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
