"""Rough inputs on the CT grid (mask, box, points; RAS coordinates on an LPS grid) and the bad input
they are refused for: another grid, empty, outside the body, no PET."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.labels.rough_input import (
    check_rough_input,
    pet_on_ct_grid,
    rough_from_box,
    rough_from_mask,
    rough_from_points,
)


def grid(size=(10, 8, 6), spacing=(2.0, 3.0, 4.0), origin=(10.0, 20.0, 30.0)) -> sitk.Image:
    """A CT grid (x, y, z sizes) whose first voxel's centre is `origin` in LPS."""
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def test_a_box_in_ras_covers_the_voxels_between_its_corners():
    # LPS x 14..18 -> i 2..4, y 26..32 -> j 2..4, z 34..42 -> k 1..3 (RAS flips the first two signs)
    rough = rough_from_box(grid(), (-18.0, -26.0, 42.0), (-14.0, -32.0, 34.0))
    expected = np.zeros((6, 8, 10), bool)
    expected[1:4, 2:5, 2:5] = True
    assert rough.kind == "box" and np.array_equal(rough.region, expected)


def test_a_box_partly_outside_the_ct_is_clipped_and_one_wholly_outside_is_empty():
    rough = rough_from_box(grid(), (-200.0, -26.0, 42.0), (-14.0, -32.0, 34.0))
    assert rough.region.any(axis=(0, 1)).nonzero()[0].tolist() == list(range(2, 10))
    assert not rough_from_box(grid(), (500.0, 500.0, 500.0), (600.0, 600.0, 600.0)).region.any()


def test_points_mark_a_ball_of_the_given_radius_in_millimetres():
    rough = rough_from_points(grid(), [(-20.0, -29.0, 38.0)], radius_mm=5.0)   # voxel (k 2, j 3, i 5)
    assert rough.region[2, 3, 5]
    assert rough.region[2, 3, 7] and not rough.region[2, 3, 8]        # 4 mm along x in, 6 mm out
    assert rough.region[3, 3, 5] and not rough.region[4, 3, 5]        # 4 mm along z in, 8 mm out
    # offsets (di, dj, dk) with (2 di)^2 + (3 dj)^2 + (4 dk)^2 <= 25, counted by hand: 5 with dj = dk = 0,
    # 2 x 5 with dj = +-1, 2 x 3 with dk = +-1, and 4 with dj = +-1 and dk = +-1 (exactly 5 mm away)
    assert rough.region.sum() == 5 + 10 + 6 + 4
    assert rough.region[3, 4, 5] and not rough.region[3, 4, 6]


def test_a_mask_on_another_grid_is_refused_with_what_differs():
    ct = grid()
    other = grid(spacing=(2.0, 3.0, 5.0))
    with pytest.raises(OsteoSegError, match="not on the CT's grid.*resample it onto the CT"):
        rough_from_mask(sitk.Cast(other, sitk.sitkUInt8), ct, source="outline.nii.gz")
    mask = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(ct)
    mask[4, 3, 2] = 2
    region = rough_from_mask(mask, ct).region
    assert region.sum() == 1 and region[2, 3, 4]


def test_empty_input_and_input_outside_the_body_are_refused():
    ct_hu = np.full((6, 8, 10), -1000.0)
    ct_hu[:, :, 5:] = 40.0                                             # body on the right only
    empty = rough_from_box(grid(), (500.0, 500.0, 500.0), (600.0, 600.0, 600.0))
    with pytest.raises(OsteoSegError, match="empty \\(the box lies outside the CT\\)"):
        check_rough_input(empty, ct_hu)
    air = np.zeros(ct_hu.shape, bool)
    air[2, 3, 1:4] = True
    with pytest.raises(OsteoSegError, match="outside the body"):
        check_rough_input(rough_from_mask(air, grid(), source="drawn"), ct_hu, case="p1")
    air[2, 3, 5] = True                                                # one voxel on the patient: accepted
    check_rough_input(rough_from_mask(air, grid()), ct_hu)


def test_no_pet_an_empty_pet_and_a_pet_elsewhere_are_refused():
    ct = grid()
    with pytest.raises(OsteoSegError, match="need the PET"):
        pet_on_ct_grid(ct, None)
    with pytest.raises(OsteoSegError, match="all zero"):
        pet_on_ct_grid(ct, grid())
    far = grid(origin=(900.0, 20.0, 30.0)) + 1.0
    with pytest.raises(OsteoSegError, match="do not overlap"):
        pet_on_ct_grid(ct, far)
    pet = grid(spacing=(4.0, 6.0, 8.0), origin=(11.0, 21.5, 32.0)) + 2.5
    assert pet_on_ct_grid(ct, pet)[1, 1, 1] == pytest.approx(2.5)


def test_a_probability_map_is_refused_not_taken_as_a_mask():
    ct = sitk.Image((6, 5, 4), sitk.sitkFloat32)
    probabilities = np.linspace(0, 1, 120).reshape(4, 5, 6)
    with pytest.raises(OsteoSegError, match="not a mask: it holds 120 different values"):
        rough_from_mask(probabilities, ct, case="case_7")
    assert rough_from_mask((probabilities > 0.5) * 3, ct).region.sum() == (probabilities > 0.5).sum()
