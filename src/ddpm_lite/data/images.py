"""A folder of the user's own images, read defensively: sizes checked from the header, one mode, one size.

Images are scaled from their 8-bit levels to the model's range [−1, 1] (eq. ``data-scaling``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .datasets import to_model_range

__all__ = ["image_folder", "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS"]

#: Largest image (W·H pixels) :func:`image_folder` decodes, checked from the file's header
#: before any pixel is decoded (a 20000×20000 header would otherwise take gigabytes).
MAX_IMAGE_PIXELS = 4096 * 4096
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _open_checked(f: Path):  # noqa: ANN202
    """Open ``f`` (header only), refuse it if it is too large, then decode it upright (EXIF)."""
    import warnings

    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(f)
        except Image.DecompressionBombError:
            raise ValueError(f"image file {str(f)!r} is larger than {MAX_IMAGE_PIXELS} pixels; shrink it first.") from None
    with im:
        if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:
            raise ValueError(f"image file {str(f)!r} is {im.size[0]}x{im.size[1]} pixels, more than the "
                             f"{MAX_IMAGE_PIXELS} (4096x4096) this loader decodes; shrink it first.")
        im.load()
        return ImageOps.exif_transpose(im)  # a photo taken sideways is read the way it is shown


def _stated_bits(im) -> int | None:  # noqa: ANN001
    """Bits per sample a TIFF states in its header (None for other formats)."""
    tags = getattr(im, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return int(bits) if isinstance(bits, int) else None


def _to_8bit(im, f: Path, mode: str):  # noqa: ANN001, ANN202
    """Convert one decoded image to 8-bit ``mode`` at its true depth (the policy of :func:`image_folder`)."""
    from PIL import Image

    if im.mode in _HIGH_DEPTH_MODES or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "I" and _stated_bits(im) != 16:
            # A 32-bit integer file has no agreed white level: 0..255 in it may mean 8-bit levels
            # (white) or 32-bit ones (black). Guessing would silently darken or wash out the data.
            raise ValueError(f"image file {str(f)!r} is a {_stated_bits(im) or 32}-bit integer image (values "
                             f"{a.min():g}..{a.max():g}), whose white level is ambiguous; save it as 8-bit or "
                             "16-bit, or as float (mode F) in [0, 1].")
        top = 1.0 if im.mode == "F" else 65535.0  # float: intensities in [0, 1]; integer: 16-bit levels
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > top:
            raise ValueError(f"image file {str(f)!r} ({im.mode}) holds values in [{a.min():g}, {a.max():g}]; "
                             f"{'float images must hold intensities in [0, 1]' if top == 1 else 'expected 0..65535'}.")
        key = im.info.get("transparency")  # a tRNS grey key is a 16-bit level here
        im = Image.fromarray(np.round(a * (255.0 / top)).astype(np.uint8), "L")
        if isinstance(key, int) and not isinstance(key, bool):
            # Same policy as 8 bits: the keyed pixels are transparent, composited over white.
            im = Image.fromarray(np.where(a == key, 255, np.asarray(im)).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        # Transparent pixels are composited over white: a cut-out on a page, not on black.
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA"))
    return im.convert(mode)


#: File endings :func:`image_folder` reads (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_folder(path: str | os.PathLike, size: int | tuple[int, int] | None = None, mode: str = "L") -> torch.Tensor:
    """Every image in the folder ``path`` as (N, C, H, W) float32 in [−1, 1].

    Parameters
    ----------
    path:
        A folder holding image files (see :data:`IMAGE_EXTENSIONS`; other files and
        sub-folders are ignored), read in sorted file-name order so the result is
        reproducible.
    size:
        ``(H, W)`` or an int for square images.  Every image is resized to it (bicubic,
        PIL) when its size differs.  With ``size=None`` all images must already share one
        size; mixed sizes then raise ``ValueError`` naming two files that differ.
    mode:
        ``"L"`` for grayscale (C = 1) or ``"RGB"`` (C = 3); images are converted to it.

    Raises ``ValueError`` for a missing path, a file where a folder is expected, a folder
    with no images, an unreadable or corrupt image (the message names the file), an image
    over :data:`MAX_IMAGE_PIXELS` (checked before decoding) and mixed sizes without ``size``.

    Depth and mode policy: every image is first turned upright by its EXIF orientation;
    16-bit images are scaled (level/65535), float images (TIFF mode F) must hold [0, 1] and
    are taken as they are, 32-bit integer images are refused (their white level is
    ambiguous), palette images are expanded, and transparency (RGBA, LA, palette or a tRNS
    key, at 8 or 16 bits) is composited over **white**.  The result is quantised to 8-bit levels, so a
    16-bit file and its 8-bit copy load identically, and mapped to [−1, 1] by
    :func:`to_model_range`; :func:`from_model_range` maps samples back to uint8.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' (grayscale) or 'RGB', got {mode!r}.")
    if size is not None:
        hw = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
        try:
            hw = tuple(int(s) for s in hw)
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or a pair (H, W) of positive ints, got {size!r}.") from None
        if len(hw) != 2 or min(hw) < 1:
            raise ValueError(f"size must be an int or a pair (H, W) of positive ints, got {size!r}.")
    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"image folder {str(folder)!r} does not exist.")
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is a file, but image_folder needs a folder of images.")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(
            f"image folder {str(folder)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})."
        )
    arrays, first_size = [], None
    for f in files:
        try:
            im = _open_checked(f)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ValueError) and str(f) in str(exc):
                raise  # already names the file
            # Pillow raises bare ValueErrors too (an oversized text chunk: "Decompressed Data Too Large").
            raise ValueError(f"cannot read image file {str(f)!r}: {exc}") from None
        try:
            im = _to_8bit(im, f, mode)
        except (ValueError, OSError) as exc:
            if str(f) in str(exc):
                raise
            # e.g. LAB or CMYK-with-alpha: modes Pillow cannot convert to L or RGB.
            raise ValueError(f"cannot convert image file {str(f)!r} (mode {im.mode}) to {mode}: {exc}; "
                             "save it as RGB or grayscale.") from None
        if size is not None:
            if im.size != (hw[1], hw[0]):  # PIL sizes are (W, H)
                im = im.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
        elif first_size is None:
            first_size = (f, im.size)
        elif im.size != first_size[1]:
            raise ValueError(
                f"images differ in size: {first_size[0].name} is {first_size[1][0]}x{first_size[1][1]} but "
                f"{f.name} is {im.size[0]}x{im.size[1]} (W x H); pass size=(H, W) to resize them all."
            )
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return to_model_range(np.stack(arrays), 256)
