"""Image geometry shared by every stage: body mask, resampling in physical space, grids and overlap."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import (
    body_mask,
    check_overlap,
    image_corners,
    padded_box,
    physical_bounds,
    resample_onto,
    same_grid,
)


def _image(size_xyz, *, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None, values=None,
           pixel=sitk.sitkFloat32):
    image = sitk.Image(list(size_xyz), pixel)
    if values is not None:
        image = sitk.Cast(sitk.GetImageFromArray(values), pixel)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _profile(values, **geometry):
    """A (len, 1, 1) image along x holding `values`."""
    return _image((len(values), 1, 1), values=np.array(values, np.float64).reshape(1, 1, -1), **geometry)


def test_body_is_denser_than_minus_500_hu():
    ct = np.array([-1000.0, -500.0, -499.5, 0.0, 1500.0])
    assert body_mask(ct).tolist() == [False, False, True, True, True]
    assert body_mask(ct, threshold_hu=0.0).tolist() == [False, False, False, False, True]


def test_linear_resampling_interpolates_in_physical_space_as_float():
    moving = _profile([0, 10, 20, 30], pixel=sitk.sitkInt16)
    reference = _image((3, 1, 1), origin=(0.5, 0.0, 0.0), pixel=sitk.sitkUInt8)
    result = resample_onto(moving, reference)
    assert result.GetPixelID() == sitk.sitkFloat32
    assert sitk.GetArrayFromImage(result).ravel().tolist() == [5.0, 15.0, 25.0]
    assert result.GetOrigin() == (0.5, 0.0, 0.0)


def test_nearest_resampling_keeps_the_label_type_and_outside_gets_the_default():
    moving = _profile([1, 2, 3, 4], pixel=sitk.sitkUInt8)
    reference = _image((4, 1, 1), origin=(1.4, 0.0, 0.0))     # 1.4 ... 4.4: the last is past the voxels' 3.5
    result = resample_onto(moving, reference, interpolator="nearest", default_value=9)
    assert result.GetPixelID() == sitk.sitkUInt8
    assert sitk.GetArrayFromImage(result).ravel().tolist() == [2, 3, 4, 9]
    assert sitk.GetArrayFromImage(resample_onto(moving, reference, interpolator="nearest")).ravel()[-1] == 0


def test_the_transform_maps_reference_points_to_moving_points():
    moving = _profile([0, 10, 20, 30])
    reference = _image((3, 1, 1))
    shifted = resample_onto(moving, reference, transform=sitk.TranslationTransform(3, (1.0, 0.0, 0.0)))
    assert sitk.GetArrayFromImage(shifted).ravel().tolist() == [10.0, 20.0, 30.0]
    assert sitk.GetArrayFromImage(resample_onto(moving, reference)).ravel().tolist() == [0.0, 10.0, 20.0]


@pytest.mark.parametrize(("change", "same"), [
    ({}, True),
    ({"spacing": (1.0005, 1.0, 1.0)}, True),
    ({"spacing": (1.0, 1.002, 1.0)}, False),
    ({"origin": (0.0, 0.0, 0.0009)}, True),
    ({"origin": (0.002, 0.0, 0.0)}, False),
    ({"direction": (1, 0, 0, 0, 0.999998, 0.002, 0, -0.002, 0.999998)}, False),
    ({"direction": (1, 0, 0, 0, 0.99999987, 0.0005, 0, -0.0005, 0.99999987)}, True),
    ({"size_xyz": (4, 3, 3)}, False),
])
def test_same_grid_allows_a_thousandth_of_a_millimetre(change, same):
    geometry = {"size_xyz": (4, 3, 2), "spacing": (1.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0)}
    changed = {**geometry, **change}
    assert same_grid(_image(**geometry), _image(**changed)) is same
    assert same_grid(_image(**changed), _image(**geometry)) is same


def test_corners_are_the_outer_faces_of_the_edge_voxels():
    image = _image((2, 3, 4), spacing=(1.0, 2.0, 3.0), origin=(10.0, 20.0, 30.0))
    corners = {tuple(c) for c in np.round(image_corners(image), 6)}
    assert corners == {(x, y, z) for x in (9.5, 11.5) for y in (19.0, 25.0) for z in (28.5, 40.5)}
    low, high = physical_bounds(image)
    assert low.tolist() == [9.5, 19.0, 28.5] and high.tolist() == [11.5, 25.0, 40.5]


def test_corners_of_a_rotated_grid():
    # index x runs along physical +y, index y along physical -x.
    image = _image((2, 3, 4), spacing=(1.0, 2.0, 3.0), origin=(10.0, 20.0, 30.0),
                   direction=(0, -1, 0, 1, 0, 0, 0, 0, 1))
    low, high = physical_bounds(image)
    np.testing.assert_allclose(low, [5.0, 19.5, 28.5])
    np.testing.assert_allclose(high, [11.0, 21.5, 40.5])
    assert image_corners(image).shape == (8, 3)


def _ct():
    return _image((10, 10, 10))      # covers [-0.5, 9.5] mm on each axis


def test_overlap_is_the_fraction_of_the_ct_covered():
    assert check_overlap(_ct(), _image((10, 10, 10), origin=(5.0, 0.0, 0.0))) == pytest.approx(0.5)
    assert check_overlap(_ct(), _image((5, 5, 5), origin=(2.0, 2.0, 2.0))) == pytest.approx(0.125)
    assert check_overlap(_ct(), _image((30, 30, 30), origin=(-10.0, -10.0, -10.0))) == pytest.approx(1.0)
    assert check_overlap(_ct(), _image((10, 10, 10), origin=(5.0, 0.0, 0.0)), minimum_fraction=0.5) == 0.5


def test_too_little_overlap_says_how_much_is_covered():
    touching = _image((10, 10, 10), origin=(9.5, 0.0, 0.0))    # 0.5 mm of 10 mm in x: 5%
    with pytest.raises(OsteoSegError) as raised:
        check_overlap(_ct(), touching, case="P7")
    assert str(raised.value) == ("case P7: PET and CT do not overlap in physical space: "
                                 "the PET covers only 5.0% of the CT")
    with pytest.raises(OsteoSegError, match="covers only 50.0%"):
        check_overlap(_ct(), _image((10, 10, 10), origin=(5.0, 0.0, 0.0)), minimum_fraction=0.6)


def test_images_that_miss_are_told_apart_by_how_far():
    far = _image((10, 10, 10), origin=(30.0, 0.0, -14.0))      # x [29.5, 39.5], z [-14.5, -4.5]
    with pytest.raises(OsteoSegError) as raised:
        check_overlap(_ct(), far, names=("label", "reference CT"))
    assert str(raised.value) == ("label and reference CT do not overlap in physical space: they are 20 mm apart "
                                 "(gap x/y/z [20.0, 0.0, 4.0] mm)")
    below = _image((10, 10, 10), origin=(0.0, -25.25, 0.0))   # y [-25.75, -15.75]: 15.25 mm below
    with pytest.raises(OsteoSegError, match=r"15 mm apart \(gap x/y/z \[0.0, 15.2, 0.0\] mm\)"):
        check_overlap(_ct(), below)


def test_padded_box_grows_by_whole_voxels_per_axis_and_stops_at_the_volume():
    mask = np.zeros((5, 6, 7), bool)
    mask[1:3, 0, 4:7] = True
    # pad 1.5 mm: ceil(1.5 / 2) = 1 voxel in z, 2 in y, 3 in x.
    box = padded_box(mask, 1.5, (2.0, 1.0, 0.5))
    assert box == (slice(0, 4), slice(0, 3), slice(1, 7))
    assert padded_box(mask, 0.0, (2.0, 1.0, 0.5)) == (slice(1, 3), slice(0, 1), slice(4, 7))
