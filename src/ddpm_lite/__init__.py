"""ddpm_lite: a small DDPM whose code mirrors the derivation in *Diffusion, Derived*.

Timesteps follow the paper (t = 1..T); schedule arrays have length T + 1 so that
index t is timestep t.  See ``book/notation.md``.
"""

from .diffusion import GaussianDiffusion
from .forward import ForwardProcess
from .models import MLPDenoiser, UNet
from .schedule import NoiseSchedule
from .training import train

__all__ = ["ForwardProcess", "GaussianDiffusion", "MLPDenoiser", "NoiseSchedule", "UNet", "train"]
__version__ = "0.1.0"
