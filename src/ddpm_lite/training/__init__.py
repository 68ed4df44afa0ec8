"""Training: the loop, its state and checkpoints, the train step, the timestep samplers,
progress and data parallelism under torchrun."""

from .loop import TrainResult, diffusion_config, train
from .timesteps import ImportanceSampler

__all__ = ["train", "TrainResult", "diffusion_config", "ImportanceSampler"]
