"""The sample PET-CT case behind Slicer's "Load sample PET-CT": one phantom case made locally (no
network), cached in a folder and re-used."""

from __future__ import annotations

import os
from pathlib import Path

from .cohort import Case, Cohort, load_cohort
from .errors import OsteoSegError
from .phantom import generate_cohort, settings_for

SAMPLE_SEED = 0          # case 0 of seed 0 has a lesion (checked by the tests)
SAMPLE_FOLDER_NAME = "OsteoSegSample"


def ensure_sample_case(cache_folder: str | os.PathLike) -> tuple[Cohort, Case]:
    """The sample cohort and its case, generated into `cache_folder` the first time."""
    folder = Path(cache_folder) / SAMPLE_FOLDER_NAME
    try:
        cohort = load_cohort(folder)
        if all(cohort.path(f).is_file() for f in (cohort.cases[0].ct, cohort.cases[0].pet)):
            return cohort, cohort.cases[0]
    except (OsteoSegError, IndexError):
        pass
    cohort = generate_cohort(folder, 1, SAMPLE_SEED, settings_for("small"), force=True)
    return cohort, cohort.cases[0]
