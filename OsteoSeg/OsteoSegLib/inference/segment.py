"""Segment one patient with a model set: PET onto the CT grid, one preprocessing pass, every model
on the same batches, probabilities and masks on the original CT grid."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from ..data.cohort_validate import check_images
from ..errors import OsteoSegError
from ..imaging import body_mask, check_overlap, resample_onto
from ..model.devices import choose_device, describe, inference_dtype
from ..model.ensemble import ModelGroup, group_models
from ..model.package import ModelPackage
from ..model.preprocess import CHANNEL_ORDER, InputVolume, PreprocessSettings
from ..progress import Progress
from .backends import choose_backend, describe_backend, inference_networks
from .predict import StageTimer, body_box, predict_with_fallback

# Slices per network batch: on a CPU larger batches are not faster (measured: 4, 8 and 16 within 5%)
# but hold more activations in memory; a GPU needs large batches to be busy.
BATCH_BY_DEVICE = {"cuda": 32, "mps": 16, "cpu": 4}


@dataclass
class Segmentation:
    """Per model group (a model, or an ensemble of several of one label source and inputs, by its
    name): the lesion probability and the mask, (z, y, x) on the CT grid."""

    probabilities: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    models: list[ModelGroup]
    threshold: float
    device: str
    seconds: float
    backend: str                  # the engine that ran the networks, with its version where not torch


def check_model_set(models: list[ModelPackage]) -> PreprocessSettings:
    """Models that run together must preprocess identically (one shared input pass)."""
    if not models:
        raise OsteoSegError("the model set is empty")
    first = models[0].card["preprocessing"]
    for model in models[1:]:
        if model.card["preprocessing"] != first:
            differing = sorted(k for k in first if first.get(k) != model.card["preprocessing"].get(k))
            raise OsteoSegError(f"models {models[0].name!r} and {model.name!r} disagree on preprocessing "
                                f"({', '.join(differing)}); they cannot share one input pass", path=model.folder)
    values = dict(first)
    for key in ("ct_window_hu", "pet_suv_range"):
        values[key] = tuple(values[key])
    return PreprocessSettings(**values)


def needed_inputs(models: list[ModelPackage], available: dict[str, bool], case: str | None = None) -> tuple[str, ...]:
    """The inputs the models need, in channel order; a model needing an input the case lacks is refused."""
    needed = tuple(name for name in CHANNEL_ORDER if any(name in model.inputs for model in models))
    for model in models:
        missing = [name for name in model.inputs if not available.get(name)]
        if missing:
            raise OsteoSegError(f"model {model.name!r} needs {'+'.join(model.inputs)} but the case has no "
                                f"{' or '.join(missing).upper()}", case=case, path=model.folder)
    return needed


def pet_on_ct_grid(ct: sitk.Image, pet: sitk.Image, transform: sitk.Transform | None, case: str | None) -> sitk.Image:
    check_overlap(ct, pet, case=case)
    return resample_onto(pet, ct, transform=transform)


def body_slices(ct_hu: np.ndarray | None) -> np.ndarray | None:
    """Axial slices holding any tissue (a voxel above -500 HU); None when there is no CT."""
    if ct_hu is None:
        return None
    return np.flatnonzero(body_mask(ct_hu.reshape(ct_hu.shape[0], -1)).any(axis=1))


def body_region(ct_hu: np.ndarray | None, size: int, body_only: bool):
    """Where the networks work: the slices with tissue and, within each, the box around the body in
    network pixels (both None: everything)."""
    if not body_only or ct_hu is None:
        return None, None
    return body_slices(ct_hu), body_box(body_mask(ct_hu).any(axis=0), size)


def usable_device(name: str, fallback: bool, progress: Progress) -> torch.device:
    """The requested device, or (for users, not for measurements) the best present one, said aloud."""
    try:
        return choose_device(name)
    except OsteoSegError as error:
        if not fallback or name not in ("cuda", "mps") and not name.startswith("cuda:"):
            raise
        chosen = choose_device("auto")
        progress.message(f"{error}; using {describe(chosen)} instead")
        return chosen


def segment_images(ct: sitk.Image | None, pet: sitk.Image | None, models: list[ModelPackage], *,
                   transform: sitk.Transform | None = None, device: str = "auto", threshold: float | None = None,
                   batch_size: int | None = None, case: str | None = None, progress: Progress | None = None,
                   precision: str = "auto", body_only: bool = True, timer: StageTimer | None = None,
                   device_fallback: bool = True, backend: str = "auto") -> Segmentation:
    """Run every model on one patient. CT is the reference grid (PET alone: the PET's grid).
    `threshold` None uses each model's card threshold. With `body_only`, axial slices without any
    tissue (no voxel above -500 HU, e.g. beyond the feet) are not sent through the networks and
    get probability 0, and each slice is cropped (in network pixels) to the box around the body.
    `timer` collects the seconds per stage (for the benchmark). A requested device that is absent
    falls back to the best present one with a notice (`device_fallback=False` refuses instead, as
    the benchmark must). `backend` picks the engine (inference/backends.py): auto is OpenVINO on the CPU
    when it is installed, torch otherwise."""
    started = time.perf_counter()
    check_images(ct, pet, case=case)   # the checks of `cohort validate`, before any work
    progress = progress or Progress()
    compute_device = usable_device(device, device_fallback, progress)
    timer = timer or StageTimer(compute_device)
    settings = check_model_set(models)
    groups = group_models(models)   # members of one label source and inputs are averaged
    inputs = needed_inputs(models, {"ct": ct is not None, "pet": pet is not None}, case)
    reference = ct if ct is not None else pet
    with timer.stage("align"):
        pet_array = None
        if pet is not None and "pet" in inputs:
            pet_image = pet_on_ct_grid(reference, pet, transform, case) if ct is not None else pet
            pet_array = sitk.GetArrayViewFromImage(pet_image)
    with timer.stage("preprocess"):
        ct_array = sitk.GetArrayViewFromImage(ct) if ct is not None else None
        channels = InputVolume(ct_array if "ct" in inputs else None, pet_array, inputs, settings)
        slices, box = body_region(ct_array, settings.size, body_only)
    engine, dtype = choose_backend(backend, compute_device), inference_dtype(compute_device, precision)
    with timer.stage("prepare networks"):
        networks = inference_networks(models, inputs, compute_device, engine, dtype, progress=progress)
    probabilities, used_device = predict_with_fallback(networks, channels, size=settings.size, device=compute_device,
                                                       batch_size=batch_size or BATCH_BY_DEVICE[compute_device.type],
                                                       dtype=dtype, progress=progress, slices=slices, box=box,
                                                       timer=timer, channels_last=engine == "torch")
    with timer.stage("map back"):
        by_model = {model.name: p for model, p in zip(models, probabilities, strict=True)}
        averaged = {group.name: group.average(by_model) for group in groups}
        masks = {group.name: (averaged[group.name] >= (threshold if threshold is not None else group.threshold))
                 .astype(np.uint8) for group in groups}
    return Segmentation(averaged, masks, groups, threshold if threshold is not None else groups[0].threshold,
                        describe(torch.device(used_device)), time.perf_counter() - started, describe_backend(engine))
