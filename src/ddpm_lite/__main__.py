"""``python -m ddpm_lite ...`` runs the command-line interface (see ``ddpm_lite.cli``)."""

import sys

from .cli.main import main

sys.exit(main())
