"""Datasets that need no download: 2-D toys and scikit-learn's bundled 8×8 digits.

Every loader returns float32 tensors already in the model's range: 2-D toys are
standardized with their training mean and std, images are scaled from their
integer levels to [−1, 1] (eq. ``data-scaling``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import checks

__all__ = [
    "DIGITS_LEVELS",
    "swiss_roll",
    "two_moons",
    "gaussian_mixture",
    "digits",
    "image_folder",
    "IMAGE_EXTENSIONS",
    "to_model_range",
    "from_model_range",
    "to_uint8_images",
    "image_grid",
    "TOY_DATASETS",
    "toy_split",
    "grid_png",
    "scatter_png",
]

#: The bundled digits hold integers 0..16, i.e. 17 intensity levels.
DIGITS_LEVELS = 17
DIGITS_TRAIN, DIGITS_TEST = 1497, 300


def to_model_range(x: np.ndarray | torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    """Map integer levels 0..K−1 linearly onto [−1, 1]: x ↦ 2x/(K−1) − 1."""
    checks.integer("num_levels", num_levels, 2, hint="(256 for 8-bit images)")
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError("data contains NaN; clean or drop those samples before scaling.")
    if x.numel() and (x.min() < 0 or x.max() > num_levels - 1):
        raise ValueError(
            f"levels must lie in 0..{num_levels - 1} for num_levels={num_levels}, "
            f"found [{x.min().item()}, {x.max().item()}]."
        )
    return (x.to(torch.float32) * (2.0 / (num_levels - 1)) - 1.0)


def from_model_range(x: torch.Tensor, num_levels: int = 256) -> torch.Tensor:
    """Inverse of :func:`to_model_range`: clip to [−1, 1] and round to the nearest level."""
    levels = torch.round((x.clamp(-1.0, 1.0) + 1.0) * ((num_levels - 1) / 2.0))
    return levels.to(torch.uint8 if num_levels <= 256 else torch.int64)


def _check_noise(noise: object) -> float:
    return checks.number("noise", noise, 0.0)


def _swiss_roll_points(n: int, seed: int, noise: float) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    pts, _ = make_swiss_roll(n, noise=noise, random_state=seed)
    return pts[:, [0, 2]]


def _moons_points(n: int, seed: int, noise: float) -> np.ndarray:
    from sklearn.datasets import make_moons

    pts, _ = make_moons(n, noise=noise, random_state=seed)
    return pts


def _mixture_points(n: int, seed: int, modes: int, radius: float, std: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, modes, size=n)
    angle = 2.0 * np.pi * k / modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + std * rng.standard_normal((n, 2))


def _standardize(pts: np.ndarray, standardize_with: tuple | None) -> torch.Tensor:
    mean, std = standardize_with if standardize_with is not None else (pts.mean(0), pts.std(0))
    return torch.as_tensor((pts - mean) / std, dtype=torch.float32)


def swiss_roll(n: int = 20000, seed: int = 0, *, noise: float = 0.5, standardize_with: tuple | None = None) -> torch.Tensor:
    """2-D swiss roll: columns 0 and 2 of ``sklearn.datasets.make_swiss_roll``.

    Points are standardized with their own mean and std, or with ``standardize_with``
    = (mean, std) from a training set so a test set is scaled identically.
    """
    n = checks.integer("n", n, 1)
    return _standardize(_swiss_roll_points(n, seed, _check_noise(noise)), standardize_with)


def two_moons(n: int = 20000, seed: int = 0, *, noise: float = 0.05, standardize_with: tuple | None = None) -> torch.Tensor:
    """2-D two interleaving half circles (``sklearn.datasets.make_moons``), standardized.

    Standardized like :func:`swiss_roll`: with the points' own mean and std, or with
    ``standardize_with`` = (mean, std) of a training set.
    """
    n = checks.integer("n", n, 1)
    return _standardize(_moons_points(n, seed, _check_noise(noise)), standardize_with)


def gaussian_mixture(
    n: int = 20000, seed: int = 0, *, modes: int = 8, radius: float = 4.0, std: float = 0.3,
    standardize_with: tuple | None = None,
) -> torch.Tensor:
    """2-D mixture of ``modes`` equal-weight Gaussians (std ``std``) on a circle of ``radius``.

    The classic mode-dropping test: a sampler that misses a mode shows it at once.
    Standardized like :func:`swiss_roll`.
    """
    n = checks.integer("n", n, 1)
    modes = checks.integer("modes", modes, 1)
    radius = checks.number("radius", radius, 0.0, lo_open=True)
    std = checks.number("std", std, 0.0, lo_open=True)
    return _standardize(_mixture_points(n, seed, modes, radius, std), standardize_with)


#: The bundled 2-D toys by the names the CLI accepts, with their default noise.
TOY_DATASETS = {
    "swiss_roll": lambda n, seed: _swiss_roll_points(n, seed, 0.5),
    "moons": lambda n, seed: _moons_points(n, seed, 0.05),
    "mixture": lambda n, seed: _mixture_points(n, seed, 8, 4.0, 0.3),
}
TOY_TRAIN_N, TOY_TEST_N = 20000, 5000


def toy_split(name: str, split: str = "train", n_train: int = TOY_TRAIN_N, n_test: int = TOY_TEST_N) -> torch.Tensor:
    """The fixed split of a bundled 2-D toy used by the CLI, the metrics and the benchmarks.

    ``"train"``: ``n_train`` points from seed 0; ``"test"``: ``n_test`` points from seed 1.
    Both are standardized with the *training* points' mean and std, so they share one scale.
    """
    checks.choice("name", name, tuple(TOY_DATASETS))
    checks.choice("split", split, ("train", "test"))
    draw = TOY_DATASETS[name]
    train = draw(checks.integer("n_train", n_train, 1), 0)
    stats = (train.mean(0), train.std(0))
    if split == "train":
        return _standardize(train, stats)
    return _standardize(draw(checks.integer("n_test", n_test, 1), 1), stats)


def digits(split: str = "train") -> torch.Tensor:
    """scikit-learn's bundled 8×8 digits as (N, 1, 8, 8) float32 in [−1, 1].

    Fixed split: ``load_digits()``, scaled x/8 − 1, permuted with seed 0; the first
    1497 images are ``"train"``, the last 300 ``"test"``; ``"all"`` returns all 1797.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    from sklearn.datasets import load_digits  # imported after the check: it takes seconds

    images = load_digits().images  # (1797, 8, 8), integers 0..16
    perm = np.random.default_rng(0).permutation(len(images))
    images = images[perm]
    if split == "train":
        images = images[:DIGITS_TRAIN]
    elif split == "test":
        images = images[-DIGITS_TEST:]
    return to_model_range(images, DIGITS_LEVELS).unsqueeze(1)


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


def _to_8bit(im, f: Path, mode: str):  # noqa: ANN001, ANN202
    """Convert one decoded image to 8-bit ``mode`` at its true depth (the policy of :func:`image_folder`)."""
    from PIL import Image

    if im.mode in _HIGH_DEPTH_MODES or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        top = 1.0 if im.mode == "F" else 65535.0  # float: intensities in [0, 1]; integer: 16-bit levels
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > top:
            raise ValueError(f"image file {str(f)!r} ({im.mode}) holds values in [{a.min():g}, {a.max():g}]; "
                             f"{'float images must hold intensities in [0, 1]' if top == 1 else 'expected 0..65535'}.")
        im = Image.fromarray(np.round(a * (255.0 / top)).astype(np.uint8), "L")
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
    are taken as they are, palette images are expanded, and transparency (RGBA, LA, palette
    or tRNS) is composited over **white**.  The result is quantised to 8-bit levels, so a
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
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot read image file {str(f)!r}: {exc}") from None
        im = _to_8bit(im, f, mode)
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


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """Model-range images (N, C, H, W) → uint8 array (N, H, W, C) ready for PIL or matplotlib."""
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}.")
    return from_model_range(x.detach().cpu(), 256).permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor | np.ndarray, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile model-range images (N, C, H, W) into one float array in [0, 1], white between tiles.

    Returns (rows·(H+pad) − pad, cols·(W+pad) − pad) for C = 1 and the same with a last
    axis of 3 for RGB; ``ncols`` defaults to a near-square grid.  Values are clipped to [−1, 1].
    """
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {x.shape}.")
    n, c, h, w = x.shape
    ncols = checks.integer("ncols", ncols, 1, allow_none=True) or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    grid = np.ones((c, nrows * (h + pad) - pad, ncols * (w + pad) - pad))
    for i in range(n):
        r, q = divmod(i, ncols)
        grid[:, r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = (np.clip(x[i], -1, 1) + 1) / 2
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def _png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def grid_png(x: torch.Tensor) -> bytes:
    """Images (N, C, H, W) in [−1, 1] → PNG bytes of a near-square grid, enlarged when tiny."""
    grid = np.round(image_grid(x) * 255).astype(np.uint8)
    # Tiny images (8×8 digits) are enlarged by whole pixels so the grid is visible on a screen.
    scale = max(1, 256 // max(grid.shape[:2]))
    return _png(grid.repeat(scale, axis=0).repeat(scale, axis=1))


def scatter_png(points: torch.Tensor, size: int = 400) -> bytes:
    """2-D points → PNG bytes of a density-shaded scatter plot (no plotting library needed)."""
    p = points.double().numpy()
    lim = max(3.2, float(np.quantile(np.abs(p), 0.999)) * 1.05)
    counts, _, _ = np.histogram2d(p[:, 1], p[:, 0], bins=size, range=[[-lim, lim], [-lim, lim]])
    shade = 1.0 - np.exp(-0.7 * counts[::-1])  # y grows upwards; a few points per pixel read as dark
    img = np.round(255 * (1.0 - shade)).astype(np.uint8)
    img[[0, -1], :] = img[:, [0, -1]] = 0  # frame
    return _png(img)
