"""``python -m ddpm_lite`` / ``ddpm-lite``: train, sample and score a DDPM from the shell."""

from .args import build_parser
from .main import load_dataset, load_run, main

__all__ = ["main", "build_parser", "load_run", "load_dataset"]
