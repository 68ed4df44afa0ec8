"""``make book``: execute the chapters that need it, in parallel, then build the book.

    python book/_ext/build.py [ROOT] [-- extra jupyter-book arguments]

1. Measures the load, chooses how many chapters run at once and the torch threads of each
   (:func:`execution.choose_threads`; ``benchmarks/threads.py`` has the measurements).
2. Executes every chapter of ``_toc.yml`` that has no clean execution of its current code in
   ``_build/.jupyter_cache``, in that many kernels at once, slowest (as last recorded) first,
   and stores each clean run in the cache exactly as Jupyter Book would.  A chapter that
   raises or times out gets its error log under ``_build/html/reports/``.
3. If a chapter failed: names each with its log and exits 1 without building (its pages
   would be incomplete); the next run executes it again.  Otherwise runs
   ``jupyter-book build ROOT -W -n --keep-going``, which finds every chapter in the cache,
   and exits with its status.  The ``execution`` Sphinx extension prints the chapter times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execution as ex  # noqa: E402

DEFAULT_TIMEOUT = 1200


def cell_timeout(root: Path) -> int:
    """Per-cell limit: ``$DDPM_CELL_TIMEOUT``, else ``execute.timeout`` of ``_config.yml``."""
    if os.environ.get(ex.TIMEOUT_ENV):
        try:
            return int(os.environ[ex.TIMEOUT_ENV])
        except ValueError:
            raise SystemExit(f"{ex.TIMEOUT_ENV}={os.environ[ex.TIMEOUT_ENV]!r}: give the "
                             "per-cell limit in whole seconds (e.g. 3600), or -1 for none") from None
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    return int((config.get("execute") or {}).get("timeout", DEFAULT_TIMEOUT))


def _read_times(path: Path) -> dict[str, float]:
    """{docname: seconds} from a JSON file of chapter times; {} if it is missing or unreadable."""
    try:
        found = json.loads(path.read_text()[:100_000]) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: float(v) for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _execute(path: str, timeout: int):
    """Run one notebook in a fresh kernel (in a worker process); what myst-nb would do."""
    from jupyter_cache.executors.utils import single_nb_execution

    nb = ex.read_notebook(Path(path))
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                 allow_errors=False, meta_override=True)
    return result.nb, result.time, result.exc_string


def execute_outdated(root: Path, outdir: Path) -> list[tuple[str, Path]]:
    """Execute the chapters without a clean cached run; return (docname, log) of failures."""
    from jupyter_cache.base import CacheBundleIn

    cache = ex.open_cache(root)
    todo = [(doc, path) for doc, path in ex.toc_notebooks(root) if ex.clean_record(cache, path) is None]
    if not todo:
        print("[execution] every chapter has a clean execution of its current code in the cache")
        return []
    # Slowest first (as last measured here, kept outside the cache, which a change under src/
    # empties; on a fresh clone, as measured on an idle machine and committed), so that the
    # long chapters do not end up running alone at the end.
    times_file = root / "_build" / ".chapter-times.json"
    last = _read_times(times_file)
    order = {**_read_times(Path(__file__).with_name("chapter_times.json")), **last}
    todo.sort(key=lambda item: -order.get(item[0], 15.0))
    workers, threads, busy = ex.choose_threads(len(todo))
    ex.apply_threads(threads)
    timeout = cell_timeout(root)
    print(f"[execution] {busy:.1f} of {os.cpu_count()} CPUs busy: {len(todo)} chapter(s) to "
          f"execute, {workers} at a time, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"at most {timeout} s per cell", flush=True)
    failed = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = {pool.submit(_execute, str(path), timeout): (doc, path) for doc, path in todo}
        for job in as_completed(jobs):
            doc, path = jobs[job]
            log = ex.report_path(outdir, doc)
            try:
                nb, secs, error = job.result()
            except Exception as err:  # noqa: BLE001 - a dead kernel, say: the chapter failed
                nb, secs, error = None, time.perf_counter() - start, f"{type(err).__name__}: {err}"
            if error is None:
                stage = cache.add_nb_to_project(str(path))
                cache.cache_notebook_bundle(
                    CacheBundleIn(nb, stage.uri, data={"execution_seconds": secs}),
                    check_validity=False, overwrite=True)
                log.unlink(missing_ok=True)
                last[doc] = round(secs, 1)
                tmp = times_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(last, indent=1, sort_keys=True))
                os.replace(tmp, times_file)
                print(f"[execution] {secs:6.1f} s  {doc}", flush=True)
            else:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text(error, encoding="utf8")
                failed.append((doc, log))
                last_line = error.strip().splitlines()[-1] if error.strip() else "failed"
                print(f"[execution] FAILED {doc} after {secs:.0f} s: {last_line[:200]}", flush=True)
    print(f"[execution] {len(todo)} chapter(s) in {time.perf_counter() - start:.0f} s of wall time")
    return failed


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = argv[: argv.index("--")] if "--" in argv else argv
    root = Path(args[0] if args else ".").resolve()
    outdir = root / "_build" / "html"
    failed = execute_outdated(root, outdir)
    if failed:
        for doc, log in failed:
            print(f"ERROR: chapter {doc} did not execute cleanly; its error log: {log}",
                  file=sys.stderr)
        print("The book was not built. Fix the chapter(s) above and run `make book` again "
              "(chapters that did execute are kept); on a slow machine see README, "
              "'A slow or busy machine'.", file=sys.stderr)
        return 1
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "-W", "-n",
           "--keep-going", *extra]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
