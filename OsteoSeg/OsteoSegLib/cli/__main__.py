"""`python -m OsteoSegLib.cli ...` (used by torchrun for data-parallel training)."""

import sys

from .main import main

sys.exit(main())
