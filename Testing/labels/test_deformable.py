"""The deformable step's safety figures: folding, displacement at the label, the region it is solved
in, and the refusals they lead to."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.labels.deformable import (
    DeformableResult,
    check_deformation,
    displacement_at,
    folding_fraction,
    jacobian_determinant,
    label_region,
    shrink_factors,
)
from OsteoSegLib.phantom.deformation import deformed, smooth_deformation


def region_image(size=(30, 20, 10), spacing=(2.0, 2.0, 3.0)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkUInt8) + 1
    image.SetSpacing(spacing)
    image.SetOrigin((10.0, -5.0, 3.0))
    return image


def shifted_bspline(region: sitk.Image, shift) -> sitk.BSplineTransform:
    """A B-spline whose every control point moves by `shift` (mm): a pure translation inside its box."""
    transform = sitk.BSplineTransformInitializer(region, [2, 2, 2], order=3)
    count = len(transform.GetParameters()) // 3
    transform.SetParameters(tuple(np.repeat(np.asarray(shift, float), count)))
    return transform


def test_a_translation_moves_every_label_voxel_by_its_length_and_does_not_fold():
    region = region_image()
    label = np.zeros(tuple(reversed(region.GetSize())), bool)
    label[3:6, 5:9, 10:20] = True
    transform = shifted_bspline(region, (3.0, 0.0, 4.0))
    mean_mm, max_mm = displacement_at(transform, region, label)
    assert mean_mm == pytest.approx(5.0, abs=1e-6) and max_mm == pytest.approx(5.0, abs=1e-6)
    assert folding_fraction(transform, region) == 0.0


def test_a_violent_deformation_folds_and_a_gentle_one_does_not():
    region = region_image((40, 40, 20), (2.0, 2.0, 2.0))
    assert folding_fraction(smooth_deformation(region, 1.0, seed=3), region) == 0.0
    assert folding_fraction(smooth_deformation(region, 40.0, seed=3), region) == 0.0   # Jacobian down to 0.007
    assert folding_fraction(smooth_deformation(region, 200.0, seed=3), region) > 0.01


def test_the_jacobian_of_a_uniform_stretch_is_its_volume_ratio():
    z, y, x = np.indices((6, 7, 8), dtype=float)
    spacing_xyz = (2.0, 1.0, 3.0)
    field = np.zeros((6, 7, 8, 3))
    field[..., 0] = 0.5 * x * spacing_xyz[0]     # x stretched by 1.5
    field[..., 2] = -0.2 * z * spacing_xyz[2]    # z squeezed to 0.8
    assert np.allclose(jacobian_determinant(field, spacing_xyz), 1.5 * 0.8)
    field[..., 0] = -1.5 * x * spacing_xyz[0]    # x reversed: folded
    assert (jacobian_determinant(field, spacing_xyz) < 0).all()


def test_the_region_is_the_label_box_plus_the_margin_within_the_image():
    label = np.zeros((20, 30, 40), bool)
    label[2:5, 10:12, 30:38] = True
    # spacing x, y, z = 2, 1, 3 mm and a 6 mm margin: 3 voxels in x, 6 in y, 2 in z, clipped at the edges
    assert label_region(label, (2.0, 1.0, 3.0), 6.0) == (slice(0, 7), slice(4, 18), slice(27, 40))


def result(**changes) -> DeformableResult:
    values = {"transform": sitk.CompositeTransform(3), "metric": "mattes", "metric_rigid": -0.5,
              "metric_deformable": -0.6, "folding_fraction": 0.0, "displacement_mean_mm": 2.0,
              "displacement_max_mm": 4.0, "iterations": 10}
    return DeformableResult(**{**values, **changes})


def test_a_sound_deformation_passes_and_says_whether_it_improved_the_match():
    check_deformation(result(), "case_007")
    assert result().improved and not result(metric_deformable=-0.4).improved
    check_deformation(result(metric_deformable=-0.4), "case_007")   # not refused: the rigid answer is kept


@pytest.mark.parametrize("changes, words", [
    ({"folding_fraction": 0.01}, "folds (1.00%"),
    ({"displacement_max_mm": 40.0}, "up to 40 mm"),
])
def test_folding_or_a_runaway_are_refused_naming_the_case(changes, words):
    with pytest.raises(OsteoSegError, match="case_007") as error:
        check_deformation(result(**changes), "case_007")
    assert words in str(error.value) and "--rigid-only" in str(error.value)


def test_a_known_deformation_barely_moves_the_image_edges_and_moves_the_inside():
    image = sitk.GetImageFromArray(np.arange(20 * 24 * 28, dtype=np.float32).reshape(20, 24, 28))
    warp = smooth_deformation(image, 3.0, seed=1)
    corner = image.TransformIndexToPhysicalPoint((0, 0, 0))
    centre = image.TransformIndexToPhysicalPoint((14, 12, 10))
    assert np.linalg.norm(np.subtract(warp.TransformPoint(corner), corner)) < 0.1
    assert np.linalg.norm(np.subtract(warp.TransformPoint(centre), centre)) > 0.5
    moved = deformed(image, warp)
    assert moved.GetPixelID() == image.GetPixelID() and moved.GetSize() == image.GetSize()


def test_the_levels_are_8_then_4_mm_whatever_the_voxel_size():
    assert shrink_factors(region_image(spacing=(2.0, 2.0, 3.0))) == [4, 2]
    assert shrink_factors(region_image(spacing=(0.98, 0.98, 3.27))) == [8, 4]
    assert shrink_factors(region_image(spacing=(4.0, 4.0, 6.0))) == [2, 1]
    assert shrink_factors(region_image(spacing=(10.0, 10.0, 10.0))) == [1, 1]


def test_a_mapping_that_reverses_an_axis_folds_everywhere():
    region = region_image((8, 7, 6), (2.0, 1.0, 3.0))
    x = np.arange(8, dtype=float)[None, None, :] * 2.0
    field = np.zeros((6, 7, 8, 3))
    field[..., 0] = -1.5 * x    # d(x + u)/dx = -0.5: reversed, though not by more than its length
    image = sitk.GetImageFromArray(field, isVector=True)
    image.CopyInformation(region)
    assert folding_fraction(sitk.DisplacementFieldTransform(image), region) == 1.0


def test_folding_is_found_on_a_grid_whose_axes_are_flipped():
    region = region_image((8, 7, 6), (2.0, 1.0, 3.0))
    region.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    x_physical = -np.arange(8, dtype=float)[None, None, :] * 2.0   # physical x falls along the grid's x
    field = np.zeros((6, 7, 8, 3))
    field[..., 0] = -1.5 * x_physical    # physical d(x + u)/dx = -0.5 everywhere: folded
    image = sitk.GetImageFromArray(field, isVector=True)
    image.CopyInformation(region)
    assert folding_fraction(sitk.DisplacementFieldTransform(image), region) == 1.0
    field[..., 0] = 0.5 * x_physical     # a stretch by 1.5: not folded
    image = sitk.GetImageFromArray(field, isVector=True)
    image.CopyInformation(region)
    assert folding_fraction(sitk.DisplacementFieldTransform(image), region) == 0.0
