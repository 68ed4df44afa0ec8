"""Bundled datasets and the image-folder loader of ddpm_lite.data."""

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_lite import data


def test_digits_split_is_fixed():
    train, test, every = data.digits("train"), data.digits("test"), data.digits("all")
    assert train.shape == (1497, 1, 8, 8) and test.shape == (300, 1, 8, 8) and every.shape == (1797, 1, 8, 8)
    # The split is a seed-0 permutation of load_digits(), scaled x/8 − 1.
    from sklearn.datasets import load_digits

    images = load_digits().images[np.random.default_rng(0).permutation(1797)]
    torch.testing.assert_close(train[:, 0], torch.as_tensor(images[:1497] / 8 - 1, dtype=torch.float32))
    torch.testing.assert_close(test[:, 0], torch.as_tensor(images[-300:] / 8 - 1, dtype=torch.float32))


@pytest.mark.parametrize("loader", [data.swiss_roll, data.two_moons, data.gaussian_mixture])
def test_toys_are_standardized_and_seeded(loader):
    x = loader(4000, seed=0)
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(2), atol=1e-5, rtol=0)
    assert torch.equal(loader(100, seed=3), loader(100, seed=3))
    assert not torch.equal(loader(100, seed=3), loader(100, seed=4))
    with pytest.raises(ValueError, match="n must be"):
        loader(0)


def test_gaussian_mixture_has_every_mode():
    x = data.gaussian_mixture(8000, seed=1, modes=8, std=0.05).numpy()
    angles = np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)) % 8
    counts = np.bincount(angles.astype(int), minlength=8)
    # Each mode has probability 1/8: counts within 5 binomial standard errors of 1000.
    assert np.all(np.abs(counts - 1000) < 5 * np.sqrt(8000 * (1 / 8) * (7 / 8)))


def _write(path, array, mode):
    Image.fromarray(array, mode=None).convert(mode).save(path)


def test_image_folder_gray_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = [rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8) for _ in range(3)]
    for i, a in enumerate(rgb):
        Image.fromarray(a).save(tmp_path / f"im{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    x = data.image_folder(tmp_path, mode="RGB")
    assert x.shape == (3, 3, 6, 4) and x.min() >= -1 and x.max() <= 1
    # Lossless PNG → exact round trip through the model range.
    back = data.to_uint8_images(x)
    assert back.shape == (3, 6, 4, 3) and np.array_equal(back[1], rgb[1])
    gray = data.image_folder(tmp_path, size=(3, 2), mode="L")
    assert gray.shape == (3, 1, 3, 2)
    assert data.image_folder(tmp_path, size=8).shape == (3, 1, 8, 8)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        data.image_folder(tmp_path / "missing")
    f = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(f)
    with pytest.raises(ValueError, match="is a file"):
        data.image_folder(f)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        data.image_folder(empty)
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="differ in size.*b.png"):
        data.image_folder(tmp_path)
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="c.png"):
        data.image_folder(tmp_path, size=4)
    with pytest.raises(ValueError, match="mode"):
        data.image_folder(tmp_path, mode="CMYK")
    with pytest.raises(ValueError, match="size"):
        data.image_folder(tmp_path, size=(0, 4))
