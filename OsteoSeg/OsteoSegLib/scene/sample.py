"""The sample PET-CT case behind Slicer's "Load sample PET-CT": one phantom case made locally (no
network), cached in a folder and re-used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.cohort import Case, Cohort, load_cohort
from ..errors import OsteoSegError

if TYPE_CHECKING:
    from .mrml import MrmlContext

SAMPLE_SEED = 0          # case 0 of seed 0 has a lesion (checked by the tests)
SAMPLE_FOLDER_NAME = "OsteoSegSample"
SAMPLE_CATEGORY, SAMPLE_NAME = "OsteoSeg", "OsteoSeg PET-CT phantom"


def ensure_sample_case(cache_folder: str | os.PathLike) -> tuple[Cohort, Case]:
    """The sample cohort and its case, generated into `cache_folder` the first time."""
    folder = Path(cache_folder) / SAMPLE_FOLDER_NAME
    try:
        cohort = load_cohort(folder)
        if all(cohort.path(f).is_file() for f in (cohort.cases[0].ct, cohort.cases[0].pet)):
            return cohort, cohort.cases[0]
    except (OsteoSegError, IndexError):
        pass
    from ..phantom import generate_cohort, settings_for  # here: registering the sample at startup stays light

    cohort = generate_cohort(folder, 1, SAMPLE_SEED, settings_for("small"), force=True)
    return cohort, cohort.cases[0]


def load_sample(context: MrmlContext, cache_folder: str | os.PathLike) -> tuple:
    """The sample's CT and PET nodes in the scene (generated the first time): what Load sample, the
    Sample Data module's entry and the self-test load; nothing goes through a download."""
    from .display import load_case  # here: registering the sample at startup stays light

    cohort, case = ensure_sample_case(cache_folder)
    nodes = load_case(context, cohort, case, with_labels=False)
    context.scene.RemoveNode(nodes.pet_on_ct)   # Align and Preview make their own PET on the CT grid
    return nodes.ct, nodes.pet


def sample_data_source(thumbnail: str | os.PathLike, load) -> dict:
    """Keyword arguments for Slicer's `SampleDataLogic.registerCustomSampleDataSource` for a sample
    made locally by `load` (called with the SampleDataSource, as the Sample Data module's button calls
    a custom downloader). Single values, not lists: with a list of `uris`, Slicer expands only the
    options left as None and then takes `len()` of each, so `loadFiles=False` beside a list raised.
    Nothing is downloaded: Slicer's `downloadSample()` ignores custom downloaders, so scripts call the
    module logic's `loadSample()` (`load_sample` here) instead."""
    return {"category": SAMPLE_CATEGORY, "sampleName": SAMPLE_NAME, "uris": "osteoseg://phantom",
            "fileNames": "OsteoSegPhantom.nrrd", "nodeNames": "OsteoSeg phantom", "loadFiles": False,
            "thumbnailFileName": str(thumbnail), "customDownloader": load}
