"""Known smooth deformations, so that label transfer can be scored against the truth: a random cubic
B-spline (no folding at the amplitudes used) and an image resampled through it."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..imaging import resample_onto


def smooth_deformation(image: sitk.Image, amplitude_mm: float, seed: int, mesh: int = 3) -> sitk.BSplineTransform:
    """A B-spline over `image`'s box with `mesh` cells per axis and control-point displacements drawn
    uniformly within +-`amplitude_mm` per axis; the outer control points stay put, so the image's
    edges move by a small fraction of the amplitude at most. Maps points of the deformed image to points of `image`."""
    transform = sitk.BSplineTransformInitializer(image, [mesh] * 3, order=3)
    points = mesh + 3   # a cubic B-spline has mesh + order control points per axis
    rng = np.random.default_rng(seed)
    displacement = rng.uniform(-amplitude_mm, amplitude_mm, size=(3, points, points, points))
    interior = np.zeros((points,) * 3, bool)
    interior[2:-2, 2:-2, 2:-2] = True
    displacement[:, ~interior] = 0.0
    transform.SetParameters(tuple(displacement.ravel().tolist()))   # every x, then every y, then every z
    return transform


def deformed(image: sitk.Image, transform: sitk.Transform, *, label: bool = False) -> sitk.Image:
    """`image` seen through `transform` on its own grid: the voxel at x takes the value at transform(x)."""
    if label:
        return resample_onto(image, image, interpolator="nearest", transform=transform)
    moved = resample_onto(image, image, transform=transform,
                          default_value=float(sitk.GetArrayViewFromImage(image).min()))
    return sitk.Cast(moved, image.GetPixelID())
