"""Images (issue 23, item 6): one transparency policy at every depth, no silent guess of a
32-bit integer image's white level, and every image error names its file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from ddpm_lite.data import image_folder


def _one(folder: Path) -> torch.Tensor:
    return image_folder(folder)[0, 0]


def test_a_16_bit_transparency_key_is_white_like_the_8_bit_one(tmp_path: Path) -> None:
    levels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10 + 5
    levels[1, 2] = levels[3, 3] = 77  # the keyed (transparent) level
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    Image.fromarray(levels).save(a / "x.png", transparency=77)
    Image.fromarray(levels.astype(np.uint16) * 257).save(b / "x.png", transparency=77 * 257)
    assert Image.open(b / "x.png").mode.startswith("I;16")  # really a 16-bit file
    eight, sixteen = _one(a), _one(b)
    assert eight[1, 2] == eight[3, 3] == 1.0  # white, the documented policy
    torch.testing.assert_close(sixteen, eight, rtol=0, atol=0)


def test_a_32_bit_integer_tiff_is_refused_naming_the_file(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 200, dtype=np.int32)).save(tmp_path / "deep.tif")
    with pytest.raises(ValueError, match=r"deep.tif' is a 32-bit integer image \(values 200..200\).*ambiguous"):
        image_folder(tmp_path)


def test_a_16_bit_tiff_still_loads_like_its_8_bit_copy(tmp_path: Path) -> None:
    levels = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 16)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    Image.fromarray(levels).save(a / "x.tif")
    Image.fromarray(levels.astype(np.uint16) * 257).save(b / "x.tif")
    torch.testing.assert_close(_one(b), _one(a), rtol=0, atol=0)


def test_a_lab_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    Image.new("LAB", (4, 4), (50, 0, 0)).save(tmp_path / "lab.tif")
    with pytest.raises(ValueError, match=r"lab.tif'"):
        image_folder(tmp_path)


def test_a_png_with_an_oversized_text_chunk_names_the_file(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (PngImagePlugin.MAX_TEXT_CHUNK + 10), zip=True)
    Image.new("L", (4, 4)).save(tmp_path / "chatty.png", pnginfo=info)
    with pytest.raises(ValueError, match=r"cannot read image file '.*chatty.png'"):
        image_folder(tmp_path)
