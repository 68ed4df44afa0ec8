"""Executing the chapters: a failed chapter fails every build, threads fit the machine's load.

Jupyter Book executes a notebook only when Sphinx re-reads its page, and Sphinx re-reads a
page only when its source changed.  A chapter that raised or timed out left no entry in the
execution cache (jupyter-cache stores clean runs only) but reported its failure once: the next
build re-read nothing, warned about nothing and exited 0 with the broken page in place.

Here the execution cache *is* the record of success: a chapter counts as built when
``_build/.jupyter_cache`` holds a clean execution of its current code.  This extension

* marks every chapter without one as outdated, so each build executes it again
  (``env-get-outdated``), however Sphinx remembers it;
* after the build, checks every chapter of ``_toc.yml`` once more and, for each one without a
  clean execution, logs an error naming the chapter and its error log under
  ``_build/html/reports/`` — so the build exits non-zero until the chapter executes;
* prints every chapter's own execution time, slowest first, from the cache's records;
* applies ``$DDPM_CELL_TIMEOUT`` (seconds per cell) over ``_config.yml``'s value.

``book/_ext/build.py`` (what ``make book`` runs) executes the outdated chapters in parallel
into the same cache before Sphinx starts; this extension is what keeps a plain
``jupyter-book build`` honest too.

Threads.  With two OpenMP threads per process, a thread that finishes its share of a
parallel region spins waiting for the other; when another program holds a core, training
collapses (``benchmarks/threads.py``: 0.1–0.4 digits U-Net steps/s against 2–14 for one
thread on the same busy machine; 29.6 against 20.8 when the machine is idle).  So threads
are chosen from the load measured when the build starts (:func:`choose_threads`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Environment variables a reader can set (see README, "A slow or busy machine").
TIMEOUT_ENV = "DDPM_CELL_TIMEOUT"
WORKERS_ENV = "DDPM_BUILD_WORKERS"


def toc_notebooks(root: Path) -> list[tuple[str, Path]]:
    """(docname, path) of every page of ``root/_toc.yml`` that executes, in book order.

    Notebooks (``.ipynb``) and MyST markdown pages with a kernelspec (``book/intro.md``).
    """
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    out = []
    for name in found:
        stem = name.rsplit(".", 1)[0] if name.endswith((".ipynb", ".md")) else name
        path = root / f"{stem}.ipynb"
        if path.is_file():
            out.append((stem, path))
        elif (root / f"{stem}.md").is_file() and _is_myst_notebook(root / f"{stem}.md"):
            out.append((stem, root / f"{stem}.md"))  # a page with code cells (the intro)
    return out


def _is_myst_notebook(path: Path) -> bool:
    """A MyST markdown page that myst-nb executes: a kernelspec in its front matter."""
    head = path.read_text(encoding="utf8")[:4000]
    if not head.startswith("---"):
        return False
    front = head[3:].split("\n---", 1)[0]
    return "\nkernelspec:" in front


def cache_dir(root: Path) -> Path:
    """Jupyter Book's execution cache (its default place; ``execute.cache`` is not set)."""
    return root / "_build" / ".jupyter_cache"


def read_notebook(path: Path):
    """The notebook as myst-nb reads it for the cache (nbformat 4)."""
    import nbformat

    if path.suffix == ".md":
        from myst_nb.core.read import read_myst_markdown_notebook

        return read_myst_markdown_notebook(path.read_text(encoding="utf8"))
    return nbformat.read(str(path), as_version=4)


def clean_record(cache, path: Path):
    """The cache's record of a clean execution of the notebook's current code, or None."""
    try:
        return cache.match_cache_notebook(read_notebook(path))
    except KeyError:
        return None


def open_cache(root: Path):
    from jupyter_cache import get_cache

    return get_cache(str(cache_dir(root)))


def report_path(outdir: Path, docname: str) -> Path:
    """Where myst-nb (and build.py) write a chapter's error log."""
    return outdir.joinpath("reports", *(docname + ".err.log").split("/"))


def busy_cpus(sample: float = 1.0) -> float:
    """CPUs' worth of work other programs are doing now (from /proc/stat over ``sample`` s).

    Falls back to the 1-minute load average where /proc/stat is not readable.
    """
    def snap() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = snap()
        time.sleep(sample)
        total1, idle1 = snap()
        span = max(total1 - total0, 1)
        return (1 - (idle1 - idle0) / span) * (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]


def choose_threads(notebooks: int = 1, busy: float | None = None) -> tuple[int, int, float]:
    """(parallel notebooks, torch threads each, measured busy CPUs) for this machine now.

    One thread per process never spins on a descheduled partner, and two one-thread
    processes beat one two-thread process on 2 idle cores (``benchmarks/threads.py``), so the
    free cores go to parallel notebooks first; a process gets more than one thread only
    when cores are left over, and the cores are idle.
    """
    cores = os.cpu_count() or 1
    busy = busy_cpus() if busy is None else busy
    free = max(1, round(cores - busy))
    env_workers = os.environ.get(WORKERS_ENV)
    workers = int(env_workers) if env_workers and env_workers.isdigit() and int(env_workers) > 0 \
        else max(1, min(notebooks, free))
    threads = max(1, free // workers) if busy < 0.5 else 1
    return workers, threads, busy


def apply_threads(threads: int) -> None:
    """Set the threads every kernel started from here will use, unless the reader chose."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])


# ---------------------------------------------------------------- the Sphinx extension


def _root(app) -> Path:
    return Path(app.confdir)


def _config_inited(app, config) -> None:
    value = os.environ.get(TIMEOUT_ENV)
    if value:
        try:
            config.nb_execution_timeout = int(value)
        except ValueError:
            raise SystemExit(f"{TIMEOUT_ENV}={value!r}: give the per-cell limit in whole "
                             "seconds (e.g. 3600), or -1 for none") from None
    if "OMP_NUM_THREADS" not in os.environ:
        _, threads, busy = choose_threads()
        apply_threads(threads)
        print(f"[execution] {busy:.1f} of {os.cpu_count()} CPUs busy: "
              f"{threads} torch thread(s) per chapter")


def _unexecuted(app) -> list[str]:
    root = _root(app)
    if not cache_dir(root).exists():
        return [doc for doc, _ in toc_notebooks(root)]
    cache = open_cache(root)
    return [doc for doc, path in toc_notebooks(root) if clean_record(cache, path) is None]


def _outdated(app, env, added, changed, removed) -> list[str]:
    # Pages Sphinx would not re-read although their chapter never executed cleanly.
    return [doc for doc in _unexecuted(app) if doc in env.found_docs
            and doc not in added and doc not in changed]


def chapter_times(root: Path) -> list[tuple[str, float | None]]:
    """(docname, seconds of its clean execution) for every chapter, slowest first."""
    cache = open_cache(root) if cache_dir(root).exists() else None
    rows = []
    for doc, path in toc_notebooks(root):
        rec = clean_record(cache, path) if cache is not None else None
        rows.append((doc, None if rec is None else rec.data.get("execution_seconds")))
    return sorted(rows, key=lambda r: -1.0 if r[1] is None else r[1], reverse=True)


def format_times(rows: list[tuple[str, float | None]]) -> str:
    known = [s for _, s in rows if s is not None]
    lines = ["chapter execution times (each chapter's own run, slowest first):"]
    for doc, secs in rows:
        lines.append(f"  {'not executed' if secs is None else f'{secs:7.1f} s'}  {doc}")
    lines.append(f"  {sum(known):7.1f} s  in all ({len(known)} chapters)")
    return "\n".join(lines)


def _build_finished(app, exception) -> None:
    from sphinx.util import logging

    if exception is not None:
        return
    root, logger = _root(app), logging.getLogger(__name__)
    print(format_times(chapter_times(root)))
    for doc in _unexecuted(app):
        log = report_path(Path(app.outdir), doc)
        where = f"its error log: {log}" if log.is_file() else "no error log was written"
        # An error, not a warning: the build fails with or without -W, and again next time.
        logger.error(f"chapter {doc} did not execute cleanly ({where}); the book is "
                     "incomplete until it does. Fix it, or see README 'A slow or busy machine'.")
        app.statuscode = 1


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("env-get-outdated", _outdated)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
