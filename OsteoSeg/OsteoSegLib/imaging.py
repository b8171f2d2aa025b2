"""What every stage knows about CT and PET images: the bone window, which CT voxels are body, and
grids in physical space (resampling onto a grid, the box an image covers, whether two images overlap).

CT is the reference geometry throughout OsteoSeg; resampling happens in physical space, never by
voxel index.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import OsteoSegError

BONE_WINDOW_HU = (-400.0, 1100.0)   # width 1500, level 350
BODY_HU = -500.0                     # denser than this is tissue, not air
GEOMETRY_TOLERANCE = 1e-3            # mm (origin, spacing) and direction cosines
INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def body_mask(ct_hu: np.ndarray, threshold_hu: float = BODY_HU) -> np.ndarray:
    """Tissue, not air: the region specificity is counted in and inference works in."""
    return np.asarray(ct_hu) > threshold_hu


def padded_box(mask: np.ndarray, pad_mm: float, spacing_zyx) -> tuple[slice, ...]:
    """The bounding box of a (non-empty) mask grown by `pad_mm` on every side, clipped to the volume."""
    box = []
    for axis, spacing in enumerate(spacing_zyx):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        pad = int(np.ceil(pad_mm / spacing))
        box.append(slice(max(int(present[0]) - pad, 0), min(int(present[-1]) + pad + 1, mask.shape[axis])))
    return tuple(box)


def resample_onto(moving: sitk.Image, reference: sitk.Image, *, interpolator: str = "linear",
                  transform: sitk.Transform | None = None, default_value: float = 0.0) -> sitk.Image:
    """Resample `moving` onto `reference`'s voxel grid in physical space (linear for images,
    nearest for labels). `transform` maps reference points to moving points (SimpleITK convention:
    the result of registering with the reference fixed); none means a shared frame of reference."""
    pixel_type = sitk.sitkFloat32 if interpolator == "linear" else moving.GetPixelID()
    return sitk.Resample(moving, reference, transform or sitk.Transform(), INTERPOLATORS[interpolator],
                         default_value, pixel_type)


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether two images share one voxel grid (size, spacing, origin, direction)."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=GEOMETRY_TOLERANCE)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=GEOMETRY_TOLERANCE)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=GEOMETRY_TOLERANCE))


def image_corners(image: sitk.Image) -> np.ndarray:
    """(8, 3): the physical corners (mm) of the box the image's voxels cover, oblique grids included."""
    size = np.array(image.GetSize())
    return np.array([image.TransformContinuousIndexToPhysicalPoint((np.array(c) * size - 0.5).tolist())
                     for c in np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).T.reshape(-1, 3)])


def physical_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest physical corner (mm) of the box the image's voxels cover."""
    corners = image_corners(image)
    return corners.min(axis=0), corners.max(axis=0)


def check_overlap(ct: sitk.Image, pet: sitk.Image, *, case: str | None = None, minimum_fraction: float = 0.1,
                  names: tuple[str, str] = ("PET", "CT")):
    """Refuse a PET (or other moving image) that does not cover a useful part of the CT; the message
    says by how much they miss, naming the images by `names` (moving, fixed)."""
    ct_low, ct_high = physical_bounds(ct)
    pet_low, pet_high = physical_bounds(pet)
    overlap = np.clip(np.minimum(ct_high, pet_high) - np.maximum(ct_low, pet_low), 0, None)
    fraction = float(np.prod(overlap) / np.prod(ct_high - ct_low))
    if fraction < minimum_fraction:
        gap = np.maximum(np.maximum(ct_low - pet_high, pet_low - ct_high), 0)
        detail = (f"they are {np.linalg.norm(gap):.0f} mm apart (gap x/y/z {np.round(gap, 1).tolist()} mm)"
                  if gap.any() else f"the {names[0]} covers only {100 * fraction:.1f}% of the {names[1]}")
        raise OsteoSegError(f"{names[0]} and {names[1]} do not overlap in physical space: {detail}", case=case)
    return fraction
