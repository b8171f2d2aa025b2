"""Segment one patient with a model set: PET onto the CT grid, one preprocessing pass, every model
on the same batches, probabilities and masks on the original CT grid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import torch

from .devices import autocast_dtype, choose_device, describe
from .errors import OsteoSegError
from .inference import predict_with_fallback
from .models import ModelPackage
from .preprocess import CHANNEL_ORDER, PreprocessSettings, input_channels
from .progress import Progress
from .registration import check_overlap, resample_onto

DEFAULT_BATCH = 16


@dataclass
class Segmentation:
    """Per model (by name): the lesion probability and the mask, (z, y, x) on the CT grid."""

    probabilities: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    models: list[ModelPackage]
    threshold: float
    device: str
    seconds: float
    provenance: dict = field(default_factory=dict)


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


def segment_images(ct: sitk.Image | None, pet: sitk.Image | None, models: list[ModelPackage], *,
                   transform: sitk.Transform | None = None, device: str = "auto", threshold: float | None = None,
                   batch_size: int = DEFAULT_BATCH, case: str | None = None,
                   progress: Progress | None = None) -> Segmentation:
    """Run every model on one patient. CT is the reference grid (PET alone: the PET's grid).
    `threshold` None uses each model's card threshold."""
    started = time.perf_counter()
    settings = check_model_set(models)
    inputs = needed_inputs(models, {"ct": ct is not None, "pet": pet is not None}, case)
    reference = ct if ct is not None else pet
    pet_array = None
    if pet is not None and "pet" in inputs:
        pet_array = sitk.GetArrayFromImage(pet_on_ct_grid(reference, pet, transform, case) if ct is not None else pet)
    ct_array = sitk.GetArrayFromImage(ct).astype(np.float32) if ct is not None and "ct" in inputs else None
    channels = input_channels(ct_array, pet_array, inputs, settings)
    compute_device = choose_device(device)
    networks = [(model.network.to(compute_device), [inputs.index(name) for name in model.inputs]) for model in models]
    probabilities, used_device = predict_with_fallback(networks, channels, size=settings.size, device=compute_device,
                                                       batch_size=batch_size, dtype=autocast_dtype(compute_device),
                                                       progress=progress)
    named = {model.name: p for model, p in zip(models, probabilities, strict=True)}
    masks = {model.name: (named[model.name] >= (threshold if threshold is not None else model.card["threshold"]))
             .astype(np.uint8) for model in models}
    return Segmentation(named, masks, models, threshold if threshold is not None else models[0].card["threshold"],
                        describe(torch.device(used_device)), time.perf_counter() - started)
