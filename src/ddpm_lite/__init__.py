"""ddpm_lite: a small DDPM whose code mirrors the derivation in *Diffusion, Derived*.

Timesteps follow the paper (t = 1..T); schedule arrays have length T + 1 so that index t
is timestep t.  See ``book/notation.md``.

This package is the library: it trains, samples and scores with torch, numpy, safetensors
and tqdm alone.  The chapters' teaching layer (sympy steps, toy chains, figures, widgets)
is :mod:`ddpm_lite.book`, installed with the ``book`` extra.
"""

import importlib.abc
import sys

from .continuous import ContinuousDiffusion, ContinuousModel
from .diffusion import GaussianDiffusion
from .forward import ForwardProcess
from .nets import LevelPosteriorDenoiser, MLPDenoiser, UNet
from .logsnr import LogSNRSchedule
from .sampling import SamplerConfig
from .schedule import NoiseSchedule
from .training import ImportanceSampler, TrainConfig, train

__all__ = ["ContinuousDiffusion", "ContinuousModel", "ForwardProcess", "GaussianDiffusion", "ImportanceSampler",
           "LevelPosteriorDenoiser", "LogSNRSchedule", "MLPDenoiser", "NoiseSchedule", "SamplerConfig", "TrainConfig",
           "UNet", "train"]
__version__ = "0.3.0"

#: Modules that moved: old name → (new name, the version that moved it).  0.2.0 moved the
#: teaching layer into ddpm_lite.book; 0.3.0 grouped the library by idea (issue 20).
_MOVED = {
    "ddpm_lite.symbolic": ("ddpm_lite.book.symbolic", "0.2.0"),
    "ddpm_lite.toy_chain": ("ddpm_lite.book.exact", "0.2.0"),
    "ddpm_lite.experiments": ("ddpm_lite.book.experiments (exact Gaussian helpers: ddpm_lite.book.exact)", "0.2.0"),
    "ddpm_lite.plotting": ("ddpm_lite.book.plotting (image_grid: ddpm_lite.data)", "0.2.0"),
    "ddpm_lite.widgets": ("ddpm_lite.book.widgets", "0.2.0"),
    "ddpm_lite.posterior_widgets": ("ddpm_lite.book.widgets (eps_loss_weight: ddpm_lite.diffusion)", "0.2.0"),
    "ddpm_lite.reverse_widgets": ("ddpm_lite.book.widgets", "0.2.0"),
    "ddpm_lite.models": ("ddpm_lite.nets (MLPDenoiser: ddpm_lite.nets.mlp, UNet: ddpm_lite.nets.unet)", "0.3.0"),
    "ddpm_lite.networks": ("ddpm_lite.nets (build_model, default_model: ddpm_lite.nets.build)", "0.3.0"),
    "ddpm_lite.levels": ("ddpm_lite.nets.levels (LevelPosteriorDenoiser: ddpm_lite)", "0.3.0"),
    "ddpm_lite.metrics": ("ddpm_lite.data.metrics", "0.3.0"),
    "ddpm_lite.baselines": ("ddpm_lite.data.baselines", "0.3.0"),
    "ddpm_lite.rundir": ("ddpm_lite.runs.directory", "0.3.0"),
    "ddpm_lite.checkpoint": ("ddpm_lite.runs.checkpoint", "0.3.0"),
    "ddpm_lite.train_state": ("ddpm_lite.training.state", "0.3.0"),
    "ddpm_lite.fast_step": ("ddpm_lite.training.step", "0.3.0"),
    "ddpm_lite.resample": ("ddpm_lite.training.timesteps (ImportanceSampler: ddpm_lite)", "0.3.0"),
    "ddpm_lite.progress": ("ddpm_lite.training.progress", "0.3.0"),
    "ddpm_lite.distributed": ("ddpm_lite.training.distributed", "0.3.0"),
    "ddpm_lite.cli_args": ("ddpm_lite.cli.args", "0.3.0"),
    "ddpm_lite.solvers": ("ddpm_lite.sampling (dpm_solver_plan; the grids: ddpm_lite.spacing)", "0.3.0"),
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
            where, version = _MOVED[fullname]
            extra = " (the book layer needs the 'book' extra)" if where.startswith("ddpm_lite.book") else ""
            raise ModuleNotFoundError(f"{fullname} moved to {where} in ddpm_lite {version}; update the import{extra}.")
        return None


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
