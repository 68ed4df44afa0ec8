"""Sizes the command line checks before any work: the target image size, a training step's
memory, and the shape ``sample`` draws (from a run's state.json, checked on the meta device)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_image_size", "check_training_fits", "sample_shape"]


def check_image_size(folder: Path, image_size: int, mode: str) -> None:
    """Refuse a target size the loader cannot hold before any image is decoded or resized."""
    import torch

    from ..data.images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS
    from ..nets.memory import check_fits

    if image_size * image_size > MAX_IMAGE_PIXELS:
        raise ValueError(f"--image-size {image_size} makes {image_size}x{image_size} images, more than the "
                         f"{MAX_IMAGE_PIXELS} pixels (4096x4096) the loader makes; choose a smaller --image-size "
                         "(memory and time grow with its square).")
    n = sum(1 for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
    channels = 3 if mode == "RGB" else 1
    need = n * channels * image_size * image_size * 5  # uint8 decode + float32 copy
    check_fits({"data": need, "total": need}, torch.device("cpu"),
               what=f"loading {n} images at --image-size {image_size}", fix="lower --image-size")


def sample_shape(state: dict, n: int, model) -> tuple[int, ...]:  # noqa: ANN001
    """(n, *one sample's shape) from the run's ``config.data``, checked against the model on the
    meta device, so an edited or missing entry is refused before anything is allocated."""
    import torch

    data = state["config"].get("data")
    shape = data.get("shape") if isinstance(data, dict) else None
    if not (isinstance(shape, list) and len(shape) in (2, 4)
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 1 << 20 for s in shape)):
        raise ValueError(f"run state.json is damaged: config.data.shape should list 2 or 4 positive sizes "
                         f"(N, d) or (N, C, H, W), got {str(shape)[:80]}.")
    from ..nets.memory import meta_copy

    try:
        t_dtype = torch.float32 if getattr(model, "takes_gamma", False) else torch.long  # continuous time: γ
        meta_copy(model)(torch.empty((1, *shape[1:]), device="meta"), torch.ones(1, dtype=t_dtype, device="meta"))
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"run state.json is damaged: config.data.shape {shape} does not fit its model.") from None
    return (n, *shape[1:])


def check_training_fits(model, data, batch: int, device) -> None:  # noqa: ANN001
    """Estimate a training step's memory on the meta device; refuse with the numbers and the flags."""
    from ..nets.memory import check_fits, meta_copy, training_bytes
    from ..training.config import MAX_BATCH_SIZE

    if batch > MAX_BATCH_SIZE:
        return  # train() refuses it by its range first, naming batch_size
    sample = tuple(data.shape[1:])
    need = training_bytes(meta_copy(model), (batch, *sample), data_bytes=data.numel() * data.element_size())
    size = f"{sample[-1]}x{sample[-2]} px images" if len(sample) == 3 else f"{sample[0]}-d points"
    fix = "lower --image-size (e.g. 64) or --batch-size" if len(sample) == 3 else "lower --batch-size"
    check_fits(need, device, what=f"training on {size} at --batch-size {batch} per process", fix=fix)
