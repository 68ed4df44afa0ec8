"""ε-networks ε_θ(x_t, t): an MLP for points, a U-Net for images, the level-posterior
denoiser for data on a grid, and how to rebuild one from the config a checkpoint stores."""

from .build import build_model, default_model
from .embedding import TimeEmbedding, count_parameters, timestep_embedding
from .levels import LevelPosteriorDenoiser, level_values
from .mlp import MLPDenoiser
from .unet import UNet

__all__ = ["MLPDenoiser", "UNet", "LevelPosteriorDenoiser", "level_values", "build_model", "default_model",
           "count_parameters", "timestep_embedding", "TimeEmbedding"]
