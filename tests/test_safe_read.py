"""Files that are not what they claim are refused before they are read (issue 23, item 2)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ddpm_lite.runs.files import UnsafeFileError, json_depth, read_json, read_regular


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "state.json")
    t0 = time.monotonic()
    with pytest.raises(UnsafeFileError, match=r"state.json' is a FIFO"):
        read_json(tmp_path / "state.json", limit=1000, what="checkpoint file")
    assert time.monotonic() - t0 < 10  # a plain open() would block until a writer appears


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_a_link_to_a_device_is_never_followed(tmp_path: Path, target: str) -> None:
    os.symlink(target, tmp_path / "state.json")
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        read_regular(tmp_path / "state.json", limit=1000)


def test_a_device_named_directly_is_refused() -> None:
    with pytest.raises(UnsafeFileError, match="character device"):
        read_regular("/dev/zero", limit=1000)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileError, match="a directory"):
        read_regular(tmp_path, limit=1000)


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b" " * 1001)
    with pytest.raises(UnsafeFileError, match="1001 bytes, more than the 1000"):
        read_regular(tmp_path / "big", limit=1000)
    assert read_regular(tmp_path / "big", limit=1001) == b" " * 1001


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "nope", limit=10)


def test_deep_json_is_refused_without_recursion(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnsafeFileError, match="nested 100000 levels deep"):
        read_json(tmp_path / "m.json", limit=10**6)


@pytest.mark.parametrize(("text", "depth"), [
    ('{"a": [1, {"b": 2}]}', 3),
    ('{"a": "[[[[{{{{"}', 1),  # brackets in a string are text
    ('{"a": "\\"[[[[", "b": [[]]}', 3),  # an escaped quote does not end the string
    ('{"a": "\\\\", "b": [[]]}', 3),  # an escaped backslash does not escape the quote
    ('[[["unterminated [[[[[[', 3),
    ("", 0),
])
def test_json_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text.encode()) == depth
    if depth and "unterminated" not in text:
        assert depth == _python_depth(json.loads(text))


def _python_depth(obj: object) -> int:
    """Independent count: nesting of the parsed object."""
    if isinstance(obj, dict):
        return 1 + max((_python_depth(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((_python_depth(v) for v in obj), default=0)
    return 0


@pytest.mark.parametrize(("raw", "words"), [(b"\xff\xfe", "not UTF-8"), (b'{"a": ', "not valid JSON"),
                                            (b"1" * 5000, "not valid JSON")])
def test_corrupt_json_names_the_file(tmp_path: Path, raw: bytes, words: str) -> None:
    (tmp_path / "x.json").write_bytes(raw)
    with pytest.raises(UnsafeFileError, match=f"x.json' is corrupted \\({words}"):
        read_json(tmp_path / "x.json", limit=10**6, what="manifest")


def test_valid_json_is_read(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"weights": ["weights-00000001.safetensors"]}')
    assert read_json(tmp_path / "x.json", limit=1000) == {"weights": ["weights-00000001.safetensors"]}
