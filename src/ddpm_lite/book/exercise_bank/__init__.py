"""The book's exercises as data, one module per group of chapters (see ddpm_lite.book.exercises)."""

from .derivation import EXERCISES as _DERIVATION
from .practice import EXERCISES as _PRACTICE

#: Every exercise, in chapter order (numbered within its chapter by ``all_exercises``).
BANK = sorted(_DERIVATION + _PRACTICE, key=lambda ex: ex.chapter)
