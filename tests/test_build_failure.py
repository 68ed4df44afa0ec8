"""A chapter that fails to execute fails every build until it executes (issue 19).

A small book (an intro page, a chapter that works, a chapter that raises) is built twice
with ``book/_ext/build.py`` (what ``make book`` runs) and twice with a plain
``jupyter-book build`` (only the ``execution`` extension guarding it): every run must exit
non-zero and name the failed chapter and its error log.  Once the chapter is fixed, the
build passes and prints the chapters' execution times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXT = REPO / "book" / "_ext"
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")

CONFIG = f"""\
title: tiny
only_build_toc_files: true
execute:
  execute_notebooks: cache
  timeout: 60
  allow_errors: false
sphinx:
  local_extensions:
    execution: {EXT}
"""
TOC = """\
format: jb-book
root: intro
chapters:
  - file: works
  - file: breaks
"""


def _notebook(code: str) -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# A chapter\n"]},
            {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": None,
             "outputs": [], "source": [code]},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


@pytest.fixture
def tiny_book(tmp_path: Path) -> Path:
    (tmp_path / "_config.yml").write_text(CONFIG)
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "intro.md").write_text("# Tiny\n\nA book of two chapters.\n")
    (tmp_path / "works.ipynb").write_text(json.dumps(_notebook("print(6 * 7)")))
    (tmp_path / "breaks.ipynb").write_text(
        json.dumps(_notebook("raise RuntimeError('broken on purpose')")))
    return tmp_path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _build(book: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, str(EXT / "build.py"), str(book)], book)


def _jupyter_book(book: Path) -> subprocess.CompletedProcess:
    return _run([str(JUPYTER_BOOK), "build", str(book), "-W", "-n", "--keep-going"], book)


def test_failed_chapter_fails_every_build(tiny_book: Path) -> None:
    log = tiny_book / "_build" / "html" / "reports" / "breaks.err.log"
    for attempt in (1, 2):
        run = _build(tiny_book)
        out = run.stdout + run.stderr
        assert run.returncode != 0, f"make-book build {attempt} passed:\n{out[-3000:]}"
        assert "chapter breaks did not execute cleanly" in out and str(log) in out, out[-3000:]
        assert "broken on purpose" in log.read_text()
    # The chapter that works was executed and cached; only the broken one is retried.
    assert "works" not in _build(tiny_book).stdout.split("to execute")[-1].split("FAILED")[0]

    # Jupyter Book alone, twice: the second run re-reads no page of its own accord, and
    # still fails (the execution extension re-reads and re-executes the chapter).
    for attempt in (1, 2):
        run = _jupyter_book(tiny_book)
        out = run.stdout + run.stderr
        assert run.returncode != 0, f"jupyter-book build {attempt} passed:\n{out[-3000:]}"
        assert "chapter breaks did not execute cleanly" in out, out[-3000:]
        assert "breaks.err.log" in out, out[-3000:]

    # Fixed: the build passes and reports each chapter's own execution time.
    (tiny_book / "breaks.ipynb").write_text(json.dumps(_notebook("print('fixed')")))
    run = _build(tiny_book)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    table = out.split("chapter execution times")[-1]
    assert " s  breaks" in table and " s  works" in table, table
    assert (tiny_book / "_build" / "html" / "breaks.html").is_file()


def _load_build():
    sys.path.insert(0, str(EXT))
    import importlib

    return importlib.import_module("build"), importlib.import_module("execution")


def test_committed_chapter_times_name_real_chapters_and_order_a_cold_build():
    """The times a fresh clone orders its chapters by name chapters of _toc.yml, slowest first."""
    build, ex = _load_build()
    committed = build._read_times(EXT / "chapter_times.json")
    chapters = {doc for doc, _ in ex.toc_notebooks(REPO)}
    assert committed and set(committed) <= chapters, set(committed) - chapters
    # The heaviest chapter is a trained-model one, not the toc's first.
    assert max(committed, key=committed.get) != min(chapters)


def test_unreadable_or_odd_times_files_are_ignored(tmp_path: Path):
    build, _ = _load_build()
    bad = tmp_path / "t.json"
    for text in ("not json", "[1, 2]", '{"a": "slow", "b": true, "c": 3}'):
        bad.write_text(text)
        assert build._read_times(bad) in ({}, {"c": 3.0})
    assert build._read_times(tmp_path / "missing.json") == {}
