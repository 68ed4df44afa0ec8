"""``sample`` writes its .png and .npy as one pair (issue 23, item 5)."""

from __future__ import annotations

import io
import multiprocessing as mp
import os

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddpm_lite.runs.outputs import check_pair_writable, pair_matches, read_pair, write_pair

SRC = Path(__file__).resolve().parents[1] / "src"


def _pair(value: int, size: int = 16) -> tuple[bytes, bytes]:
    """A PNG of one grey level and the .npy holding the same level."""
    a = np.full((size, size), value, dtype=np.uint8)
    png, npy = io.BytesIO(), io.BytesIO()
    Image.fromarray(a).save(png, format="PNG")
    np.save(npy, a)
    return png.getvalue(), npy.getvalue()


def _same_content(png: bytes, npy: bytes) -> bool:
    """Independent of the hash chunk: the pixels of the PNG equal the array."""
    return np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.load(io.BytesIO(npy)))


def test_the_png_still_decodes_and_records_its_npy(tmp_path: Path) -> None:
    png, npy = _pair(7)
    write_pair(tmp_path / "s.png", png, tmp_path / "s.npy", npy)
    got_png, got_npy = read_pair(tmp_path / "s.png", tmp_path / "s.npy")
    assert _same_content(got_png, got_npy) and pair_matches(got_png, got_npy)
    assert not pair_matches(got_png, _pair(8)[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.png"]  # no temporary left


def _writer(folder: str, value: int, rounds: int) -> None:
    png, npy = _pair(value)
    for _ in range(rounds):
        write_pair(Path(folder) / "s.png", png, Path(folder) / "s.npy", npy)


def test_two_writers_and_a_reader_never_see_a_mixed_pair(tmp_path: Path) -> None:
    write_pair(tmp_path / "s.png", *_pair(0)[:1], tmp_path / "s.npy", _pair(0)[1])
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), v, 150)) for v in (100, 200)]
    for p in procs:
        p.start()
    reads = mixed = 0
    while any(p.is_alive() for p in procs) or reads == 0:
        png, npy = read_pair(tmp_path / "s.png", tmp_path / "s.npy")
        reads += 1
        mixed += not _same_content(png, npy)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert reads > 10 and mixed == 0, (reads, mixed)
    assert _same_content(*read_pair(tmp_path / "s.png", tmp_path / "s.npy"))


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from ddpm_lite.runs.outputs import write_pair
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
d = Path(sys.argv[1])
try:
    write_pair(d / "s.png", b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8) + b"IHDR" + bytes(17), d / "s.npy", bytes(5000))
except OSError as exc:
    print("failed", exc.errno)
"""


def test_a_write_that_fails_midway_replaces_neither_file(tmp_path: Path) -> None:
    png, npy = _pair(5)
    write_pair(tmp_path / "s.png", png, tmp_path / "s.npy", npy)
    before = read_pair(tmp_path / "s.png", tmp_path / "s.npy")
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=120)
    assert out.stdout.split() == ["failed", "27"], out.stderr[-2000:]  # EFBIG: the file-size limit hit
    assert read_pair(tmp_path / "s.png", tmp_path / "s.npy") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.png"]


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not writable"):
        check_pair_writable("/proc/s.png", "/proc/s.npy")
    (tmp_path / "s.npy").mkdir()
    with pytest.raises(ValueError, match="which is a folder"):
        check_pair_writable(tmp_path / "s.png", tmp_path / "s.npy")
    with pytest.raises(ValueError, match="does not exist"):
        check_pair_writable(tmp_path / "no" / "s.png", tmp_path / "no" / "s.npy")

