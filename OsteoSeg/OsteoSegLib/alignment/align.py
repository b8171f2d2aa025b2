"""The Align step: PET onto the CT grid by resampling (combined PET/CT, one frame of reference) or
after rigid registration; writes the aligned PET, the transform and a quality report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_path, write_text
from ..data.cohort_validate import check_images
from ..data.io import write_image
from ..errors import OsteoSegError
from ..imaging import BONE_WINDOW_HU, resample_onto
from .registration import register_rigid, save_transform

METHODS = ("resample", "rigid")
ALIGN_OUTPUTS = ("pet_on_ct.nii.gz", "ct_to_pet.tfm", "alignment.json", "alignment.png")


def align(ct: sitk.Image, pet: sitk.Image, method: str = "resample", *, case: str | None = None):
    """PET on the CT grid, the CT-to-PET transform, and the registration report (None for resample)."""
    if method not in METHODS:
        raise OsteoSegError(f"unknown alignment method {method!r}; use one of {', '.join(METHODS)}", case=case)
    check_images(ct, pet, case=case)   # the checks of `cohort validate`, overlap included
    if method == "resample":
        return resample_onto(pet, ct), sitk.Euler3DTransform(), None
    result = register_rigid(ct, pet, case=case)
    return resample_onto(pet, ct, transform=result.transform), result.transform, result


def highest_uptake_slice(pet: np.ndarray) -> int:
    """The axial slice (z, y, x) holding the PET's maximum, the first of equals: where the figure looks."""
    return int(np.argmax(pet.reshape(pet.shape[0], -1).max(axis=1)))


def figure_title(method: str, result) -> str:
    """The figure's title: the method, and for a registration the metric before and after."""
    return method + (f": MI {result.metric_before:.4f} -> {result.metric_after:.4f}" if result else "")


def write_quality_figure(ct: sitk.Image, before: sitk.Image, after: sitk.Image, path, title: str) -> None:
    """CT with the PET fused on top, before and after alignment, on the slice of highest uptake."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ct_array = sitk.GetArrayFromImage(ct)
    after_array = sitk.GetArrayFromImage(after)
    k = highest_uptake_slice(after_array)
    top = max(float(np.percentile(after_array, 99.5)), 1e-3)
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.2), dpi=100)
    for axis, pet, name in zip(axes, (before, after), ("before", "after"), strict=True):
        axis.imshow(ct_array[k], cmap="gray", vmin=BONE_WINDOW_HU[0], vmax=BONE_WINDOW_HU[1])
        pet_slice = sitk.GetArrayFromImage(pet)[k]
        axis.imshow(np.ma.masked_less(pet_slice, 0.2 * top), cmap="hot", vmin=0, vmax=top, alpha=0.55)
        axis.set_title(name)
        axis.set_axis_off()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)


def align_to_folder(ct: sitk.Image, pet: sitk.Image, out: str | os.PathLike, method: str = "resample",
                    *, case: str | None = None) -> dict:
    """Run `align` and write pet_on_ct.nii.gz, ct_to_pet.tfm, alignment.json and alignment.png into `out`."""
    out = Path(out)
    aligned, transform, result = align(ct, pet, method, case=case)
    write_image(aligned, out / "pet_on_ct.nii.gz")
    save_transform(transform, out / "ct_to_pet.tfm")
    report = {"method": method, "transform": list(transform.GetParameters()),
              "transform_center": list(transform.GetCenter())}
    if result is not None:
        report.update(metric="Mattes mutual information (lower is better)", metric_before=result.metric_before,
                      metric_after=result.metric_after, iterations=result.iterations,
                      stop_condition=result.stop_condition)
    write_text(out / "alignment.json", json.dumps(report, indent=2) + "\n")
    before = aligned if result is None else resample_onto(pet, ct)   # resampling is its own "before"
    write_quality_figure(ct, before, aligned, out / "alignment.png", figure_title(method, result))
    return report
