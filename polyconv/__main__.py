"""``python -m polyconv``: see :mod:`polyconv.cli`."""

import sys

from .cli import main

sys.exit(main())
