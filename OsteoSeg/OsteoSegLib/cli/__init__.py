"""The `osteoseg` command: `main.py` builds the parser from one module per command family
(phantom, cohort, suv, align, train, crossval and evaluate, segment, bench, demo)."""

from .main import main

__all__ = ["main"]
