"""The Segment button's scene work: check the inputs, run the models (or take a finished run's
result), and add one new segmentation node "<CT> osteomyelitis" beside the CT, with terminology,
provenance and, optionally, probability volumes. Nothing is added until everything succeeded."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..data.cohort_validate import ct_problem
from ..data.io import write_image
from ..errors import OsteoSegError
from ..imaging import check_overlap, resample_onto
from ..inference.segment import Segmentation, segment_images
from ..model.package import ModelPackage, load_model_set
from ..progress import CancelledError, Progress
from . import mrml
from .quantify import segment_statistics
from .segment_output import segment_specs, segmentation_node
from .worker_job import SegmentationJob

REQUIRED_SOURCES = ("A", "B")


@dataclass
class SegmentNodes:
    """What one Segment click added to the scene."""

    segmentation: object
    probabilities: list
    statistics: object


def load_checked_model_set(folder) -> list[ModelPackage]:
    """A model set with Model A and Model B (checksums verified on loading)."""
    models = load_model_set(folder)
    sources = {model.card["label_source"] for model in models}
    missing = [source for source in REQUIRED_SOURCES if source not in sources]
    if missing:
        raise OsteoSegError(f"the model set has no Model {' or Model '.join(missing)} "
                            f"(it has {', '.join(sorted(sources))})", path=folder)
    return models


def check_inputs(ct_node, pet_node) -> tuple[sitk.Image, sitk.Image]:
    """The CT and PET as images, refused when the CT is not CT-like or the two do not overlap."""
    if ct_node is None or pet_node is None:
        raise OsteoSegError("select a CT volume and a PET volume")
    ct, pet = mrml.image_from_volume_node(ct_node), mrml.image_from_volume_node(pet_node)
    problem = ct_problem(ct)
    if problem:
        raise OsteoSegError(f"{ct_node.GetName()!r} {problem}")
    check_overlap(ct, pet, case=ct_node.GetName())
    return ct, pet


def segment_in_scene(context: mrml.MrmlContext, ct_node, pet_node, model_set, *, device: str = "auto",
                     threshold: float | None = None, probabilities: bool = False,
                     progress: Progress | None = None, transform: sitk.Transform | None = None) -> SegmentNodes:
    """Run the model set on the selected volumes in this process and add the result."""
    ct, pet = check_inputs(ct_node, pet_node)
    models = load_checked_model_set(model_set)
    result = segment_images(ct, pet, models, transform=transform, device=device, threshold=threshold,
                            progress=progress, case=ct_node.GetName())
    if progress is not None and progress.cancelled():   # asked during the last batch
        raise CancelledError("segmentation cancelled")
    return add_segmentation_nodes(context, ct_node, result, pet_on_ct(ct, pet, transform),
                                  probabilities=probabilities)


def pet_on_ct(ct: sitk.Image, pet: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    return sitk.GetArrayFromImage(resample_onto(pet, ct, transform=transform))


def add_segmentation_nodes(context: mrml.MrmlContext, ct_node, result: Segmentation, pet_suv: np.ndarray, *,
                           probabilities: bool = False) -> SegmentNodes:
    """The new nodes: segmentation (never replacing an earlier one), statistics table, and
    optionally one probability volume per model, all beside the CT in the subject hierarchy."""
    name = mrml.unique_node_name(context, f"{ct_node.GetName()} osteomyelitis")
    specs = segment_specs(result)
    node = segmentation_node(context, ct_node, result, specs, name)
    mrml.place_beside(context, node, ct_node)
    rows = segment_statistics({spec.name: spec.mask for spec in specs}, pet_suv,
                              tuple(reversed(ct_node.GetSpacing())))
    table = mrml.table_node_from_rows(context, rows, f"{name} statistics")
    mrml.place_beside(context, table, ct_node)
    volumes = []
    if probabilities:
        ct_image = mrml.image_from_volume_node(ct_node)   # its geometry, for the probability volumes
        for model in result.models:
            image = sitk.GetImageFromArray(result.probabilities[model.name])
            image.CopyInformation(ct_image)
            volume = mrml.volume_node_from_image(context, image, f"{name} probability {model.name}")
            mrml.place_beside(context, volume, ct_node)
            volumes.append(volume)
    return SegmentNodes(node, volumes, table)


def start_segmentation_job(python: str, ct_node, pet_node, model_set, *, device: str = "auto",
                           threshold: float | None = None, folder: str | Path | None = None) -> SegmentationJob:
    """Check the inputs and the model set, write CT and PET to a private folder, and start the
    worker process (`segment_worker`) that the GUI follows with `SegmentationJob.poll()`."""
    ct, pet = check_inputs(ct_node, pet_node)
    models = load_checked_model_set(model_set)    # refused here, before any process starts
    folder = Path(folder or tempfile.mkdtemp(prefix="OsteoSegRun"))
    for name, image in (("ct", ct), ("pet", pet)):
        write_image(image, folder / f"{name}.nrrd")
    arguments = ["--ct", str(folder / "ct.nrrd"), "--pet", str(folder / "pet.nrrd"), "--out", str(folder / "out"),
                 "--device", device, "--models", *[str(model.folder) for model in models]]
    if threshold is not None:
        arguments += ["--threshold", str(threshold)]
    return SegmentationJob(python, arguments)
