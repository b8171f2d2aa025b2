"""The overview figure of a case: one axial slice, CT in the bone window, PET, CT + PET fused, each
mask's outline; and the colours OsteoSeg gives Label / Model A and B in every figure."""

from __future__ import annotations

import os

import numpy as np

from ..atomic import atomic_path
from ..imaging import BONE_WINDOW_HU

# Colours follow the paper: Model / Label A red, Model / Label B blue.
MASK_COLORS = {"A": "#e41a1c", "B": "#377eb8", "truth": "#4daf4a"}


def busiest_slice(masks: dict[str, np.ndarray]) -> int:
    """The axial slice (index along z) where the masks cover the most voxels."""
    stack = sum(np.asarray(m, dtype=np.int32) for m in masks.values())
    per_slice = stack.reshape(stack.shape[0], -1).sum(axis=1)
    return int(np.argmax(per_slice)) if per_slice.max() > 0 else stack.shape[0] // 2


def write_case_overview(ct_hu: np.ndarray, pet_suv: np.ndarray, masks: dict[str, np.ndarray],
                        path: str | os.PathLike, *, title: str = "", slice_index: int | None = None,
                        aspect: float = 1.0) -> int:
    """Panels on one axial slice: CT (bone window), PET (on the CT grid), CT + PET fused, then each
    mask's outline on the CT. Arrays are (z, y, x) on the CT grid. Returns the slice shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = busiest_slice(masks) if slice_index is None else slice_index
    ct = ct_hu[k]
    pet = pet_suv[k]
    pet_top = max(float(np.percentile(pet_suv, 99.9)), 1e-3)
    panels = 3 + len(masks)
    figure, axes = plt.subplots(1, panels, figsize=(3.0 * panels, 3.3), dpi=110)
    ct_view = dict(cmap="gray", vmin=BONE_WINDOW_HU[0], vmax=BONE_WINDOW_HU[1], aspect=aspect)
    axes[0].imshow(ct, **ct_view)
    axes[0].set_title("CT, bone window")
    axes[1].imshow(pet, cmap="hot", vmin=0, vmax=pet_top, aspect=aspect)
    axes[1].set_title(f"PET (SUV 0-{pet_top:.1f})")
    axes[2].imshow(ct, **ct_view)
    axes[2].imshow(np.ma.masked_less(pet, 0.15 * pet_top), cmap="hot", vmin=0, vmax=pet_top, alpha=0.6,
                   aspect=aspect)
    axes[2].set_title("CT + PET")
    for axis, (name, mask) in zip(axes[3:], masks.items(), strict=True):
        axis.imshow(ct, **ct_view)
        if mask[k].any():
            axis.contour(mask[k].astype(float), levels=[0.5], colors=[MASK_COLORS.get(name, "yellow")],
                         linewidths=1.2)
        axis.set_title(f"{name} ({int(mask[k].sum())} px)")
    for axis in axes:
        axis.set_axis_off()
    figure.suptitle(f"{title}  axial slice {k}".strip(), fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return k


def write_cohort_case_overview(cohort, case, path: str | os.PathLike) -> int:
    """Overview PNG of one cohort case: PET resampled onto the CT grid, every label source and the
    truth when the cohort has one."""
    import SimpleITK as sitk

    from ..imaging import resample_onto
    from .io import read_image

    ct = read_image(cohort.path(case.ct), case=case.case_id)
    pet = resample_onto(read_image(cohort.path(case.pet), case=case.case_id), ct)
    masks = {source: sitk.GetArrayFromImage(read_image(cohort.path(file), case=case.case_id))
             for source, file in sorted(case.labels.items())}
    if case.truth:
        masks["truth"] = sitk.GetArrayFromImage(read_image(cohort.path(case.truth), case=case.case_id))
    spacing = ct.GetSpacing()
    return write_case_overview(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(pet), masks, path,
                               title=case.case_id, aspect=spacing[1] / spacing[0])
