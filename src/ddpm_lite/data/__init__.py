"""Data: bundled toys and digits, a folder of the user's images, pictures of samples, and the
metrics and likelihood baselines that judge a model (:mod:`.metrics`, :mod:`.baselines`)."""

from .datasets import (DIGITS_LEVELS, DIGITS_TEST, DIGITS_TRAIN, TOY_DATASETS, digits, from_model_range,
                       gaussian_mixture, swiss_roll, to_model_range, toy_split, two_moons)
from .images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, image_folder
from .png import grid_png, image_grid, scatter_png, to_uint8_images

__all__ = ["DIGITS_LEVELS", "swiss_roll", "two_moons", "gaussian_mixture", "digits", "image_folder",
           "IMAGE_EXTENSIONS", "to_model_range", "from_model_range", "to_uint8_images", "image_grid",
           "TOY_DATASETS", "toy_split", "grid_png", "scatter_png", "DIGITS_TRAIN", "DIGITS_TEST", "MAX_IMAGE_PIXELS"]
