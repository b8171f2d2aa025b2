"""Synthetic osteomyelitis PET-CT cohort with two annotation sources (the embedded default data).

Entry point: `generate_cohort(out, cases, seed, settings)`; `settings_for(size)` gives the settings
of a named size ("small" for tests and the demo, "full" for a clinical grid).
"""

from dataclasses import replace

from .spec import SIZES, PhantomSettings, validate_grid
from .writer import generate_case, generate_cohort

__all__ = ["SIZES", "PhantomSettings", "generate_case", "generate_cohort", "settings_for"]


def settings_for(size: str = "small", *, shape=None, spacing=None, **overrides) -> PhantomSettings:
    """Settings for a named grid size, optionally with a custom grid shape/spacing and other overrides."""
    from ..errors import OsteoSegError

    if size not in SIZES:
        raise OsteoSegError(f"unknown phantom size {size!r}; choose one of {', '.join(SIZES)}")
    grid = SIZES[size]
    if shape is not None or spacing is not None:
        grid = validate_grid(shape or grid.shape, spacing or grid.spacing)
    return replace(PhantomSettings(grid=grid), **overrides)
