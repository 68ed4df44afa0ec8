"""The book's exercises as data, one module per group of chapters (see ddpm_lite.book.exercises)."""

from .derivation import EXERCISES as _CH1_4
from .derivation_rest import EXERCISES as _CH5_6
from .practice import EXERCISES as _CH7_13
from .closing import EXERCISES as _CLOSE_1_6
from .closing_rest import EXERCISES as _CLOSE_7_13
from .continuous import EXERCISES as _CH14

#: Every exercise, in chapter order (numbered within its chapter by ``all_exercises``); the sort
#: is stable, so each chapter's closing set follows the exercises placed in its text.
BANK = sorted(
    _CH1_4 + _CH5_6 + _CH7_13 + _CLOSE_1_6 + _CLOSE_7_13 + _CH14, key=lambda ex: ex.chapter
)
