"""Pictures of samples without matplotlib: model-range images to uint8, a tiled grid, PNG bytes."""

from __future__ import annotations

import numpy as np
import torch

from .. import checks
from .datasets import from_model_range

__all__ = ["to_uint8_images", "image_grid", "grid_png", "scatter_png"]


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
