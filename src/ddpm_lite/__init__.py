"""ddpm_lite: a small DDPM whose code mirrors the derivation in *Diffusion, Derived*.

Timesteps follow the paper (t = 1..T); schedule arrays have length T + 1 so that index t
is timestep t.  See ``book/notation.md``.

This package is the library: it trains, samples and scores with torch, numpy, safetensors
and tqdm alone.  The chapters' teaching layer (sympy steps, toy chains, figures, widgets)
is :mod:`ddpm_lite.book`, installed with the ``book`` extra.
"""

import importlib.abc
import sys

from .diffusion import GaussianDiffusion
from .forward import ForwardProcess
from .levels import LevelPosteriorDenoiser
from .models import MLPDenoiser, UNet
from .schedule import NoiseSchedule
from .training import train

__all__ = ["ForwardProcess", "GaussianDiffusion", "LevelPosteriorDenoiser", "MLPDenoiser", "NoiseSchedule", "UNet", "train"]
__version__ = "0.2.0"

#: Modules that moved into the teaching layer in 0.2.0: old name → new name.
_MOVED = {
    "ddpm_lite.symbolic": "ddpm_lite.book.symbolic",
    "ddpm_lite.toy_chain": "ddpm_lite.book.exact",
    "ddpm_lite.experiments": "ddpm_lite.book.experiments (exact Gaussian helpers: ddpm_lite.book.exact)",
    "ddpm_lite.plotting": "ddpm_lite.book.plotting (image_grid: ddpm_lite.data)",
    "ddpm_lite.widgets": "ddpm_lite.book.widgets",
    "ddpm_lite.posterior_widgets": "ddpm_lite.book.widgets (eps_loss_weight: ddpm_lite.diffusion)",
    "ddpm_lite.reverse_widgets": "ddpm_lite.book.widgets",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Turns an import of a module that moved into an error that says where it went.

    The library must not import the teaching layer, so the old names cannot simply
    re-export the new ones; they fail with a message instead of a bare "No module named".
    """

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        if fullname in _MOVED:
            # No ``name=``: "from ddpm_lite import symbolic" would otherwise swallow this
            # message and report a bare "cannot import name".
            raise ModuleNotFoundError(f"{fullname} moved to {_MOVED[fullname]} in ddpm_lite 0.2.0; "
                                      "update the import (the book layer needs the 'book' extra).")
        return None


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
