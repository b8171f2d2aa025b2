"""PET onto the CT grid. CT is the reference geometry; resampling happens in physical space."""

from __future__ import annotations

import SimpleITK as sitk

INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def resample_onto(moving: sitk.Image, reference: sitk.Image, *, interpolator: str = "linear",
                  transform: sitk.Transform | None = None, default_value: float = 0.0) -> sitk.Image:
    """Resample `moving` onto `reference`'s voxel grid in physical space (linear for images,
    nearest for labels). `transform` maps reference points to moving points (SimpleITK convention:
    the result of registering with the reference fixed); none means a shared frame of reference."""
    pixel_type = sitk.sitkFloat32 if interpolator == "linear" else moving.GetPixelID()
    return sitk.Resample(moving, reference, transform or sitk.Transform(), INTERPOLATORS[interpolator],
                         default_value, pixel_type)
