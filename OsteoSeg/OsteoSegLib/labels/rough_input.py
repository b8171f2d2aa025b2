"""The expert's rough input (a mask, a box, a few points, or a model's prediction) as a region on the
CT grid, and the checks that refuse input a proposal cannot start from: another grid, nothing marked,
marked outside the body, no PET."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..data.cohort_validate import pet_problem
from ..errors import OsteoSegError
from ..imaging import body_mask, same_grid
from ..inference.segment import pet_on_ct_grid as resampled_pet

__all__ = ["RoughInput", "check_rough_input", "pet_on_ct_grid", "rough_from_box", "rough_from_mask",
           "rough_from_points"]

POINT_RADIUS_MM = 10.0   # a click marks a ball of this radius as "lesion here"


@dataclass
class RoughInput:
    """Where the expert says the lesion is: a boolean (z, y, x) region on the CT grid, and what it came from."""

    region: np.ndarray
    kind: str          # "mask", "box" or "points"
    source: str        # a file name, a segment's name, ... (for messages)


def ras_to_lps(point) -> np.ndarray:
    """Slicer shows RAS coordinates; SimpleITK grids are in LPS (the first two axes flip sign)."""
    x, y, z = (float(v) for v in point)
    return np.array([-x, -y, z])


def rough_from_mask(mask: sitk.Image | np.ndarray, ct: sitk.Image, *, source: str = "rough mask",
                    case: str | None = None) -> RoughInput:
    """Any non-zero voxel of a mask on the CT grid (a drawn segment or a model's prediction)."""
    if isinstance(mask, sitk.Image):
        if mask.GetDimension() != 3 or not same_grid(mask, ct):
            raise OsteoSegError(f"the rough input {source!r} is not on the CT's grid (size {mask.GetSize()} vs "
                                f"{ct.GetSize()}, or origin, spacing or direction differ); resample it onto the CT "
                                "first", case=case)
        mask = sitk.GetArrayFromImage(mask)   # a copy: a view dies with the image it was taken from
    mask = np.asarray(mask)
    shape = tuple(reversed(ct.GetSize()))
    if mask.shape != shape:
        raise OsteoSegError(f"the rough input {source!r} has shape {mask.shape}, the CT {shape}", case=case)
    values = np.unique(mask)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        raise OsteoSegError(f"the rough input {source!r} is not a mask: it holds {values.size} different values "
                            f"({values.min():g} to {values.max():g}), e.g. a probability map; give a binary mask "
                            "(0 outside, one value inside), such as a thresholded prediction", case=case)
    return RoughInput(mask != 0, "mask", source)


def index_of(ct: sitk.Image, point_ras) -> np.ndarray:
    """The continuous (z, y, x) index of a RAS point on the CT grid."""
    return np.array(ct.TransformPhysicalPointToContinuousIndex(ras_to_lps(point_ras).tolist()))[::-1]


def rough_from_box(ct: sitk.Image, corner_ras, opposite_ras, *, source: str = "box",
                   case: str | None = None) -> RoughInput:
    """Every voxel inside the box spanned by two opposite corners (RAS, mm; an oblique CT takes the
    box's voxel-aligned hull)."""
    corners = np.array([index_of(ct, (a[0], b[1], c[2]))
                        for a in (corner_ras, opposite_ras) for b in (corner_ras, opposite_ras)
                        for c in (corner_ras, opposite_ras)])
    shape = np.array(tuple(reversed(ct.GetSize())))
    low = np.clip(np.ceil(corners.min(axis=0) - 0.5), 0, shape).astype(int)
    high = np.clip(np.floor(corners.max(axis=0) + 0.5) + 1, 0, shape).astype(int)
    region = np.zeros(tuple(shape), bool)
    region[tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))] = True
    return RoughInput(region, "box", source)


def rough_from_points(ct: sitk.Image, points_ras, *, radius_mm: float = POINT_RADIUS_MM, source: str = "points",
                      case: str | None = None) -> RoughInput:
    """A ball of `radius_mm` around each clicked point (RAS, mm)."""
    shape = tuple(reversed(ct.GetSize()))
    region = np.zeros(shape, bool)
    spacing = np.array(ct.GetSpacing())[::-1]
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    for point in points_ras:
        centre = index_of(ct, point)
        squared = sum(((axis - c) * s) ** 2 for axis, c, s in zip(grids, centre, spacing, strict=True))
        region |= squared <= radius_mm ** 2
    return RoughInput(region, "points", source)


def check_rough_input(rough: RoughInput, ct_hu: np.ndarray, *, case: str | None = None) -> None:
    """Refuse a rough input that marks nothing, or nothing inside the body."""
    if not rough.region.any():
        where = {"box": "the box lies outside the CT", "points": "every point lies outside the CT"}.get(
            rough.kind, "it marks no voxel")
        raise OsteoSegError(f"the rough input {rough.source!r} is empty ({where}); mark the lesion first", case=case)
    if not body_mask(ct_hu[rough.region]).any():
        raise OsteoSegError(f"the rough input {rough.source!r} lies outside the body (only air under it); "
                            "mark the lesion on the patient", case=case)


def pet_on_ct_grid(ct: sitk.Image, pet: sitk.Image | None, transform: sitk.Transform | None = None, *,
                   case: str | None = None, path=None) -> np.ndarray:
    """The PET (SUV) resampled onto the CT grid, refused when absent, empty, not SUV or not over the CT."""
    if pet is None:
        raise OsteoSegError("label proposals need the PET (the clusters are found in CT and PET together)",
                            case=case)
    problem = pet_problem(pet)
    if problem:
        raise OsteoSegError(problem, case=case, path=path)
    return sitk.GetArrayFromImage(resampled_pet(ct, pet, transform, case))
