"""Label transfer: labels carried by a known transform land where they should, a known motion and
deformation of a CT is undone, and bad input is refused before any registration."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.alignment.registration import mask_centroid, move_geometry
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.labels.transfer import check_label_on_source, metric_image, transfer_label, warp_labels
from OsteoSegLib.metrics import dice
from OsteoSegLib.phantom.deformation import deformed, smooth_deformation


def grid(size=(20, 16, 12), spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def labelled(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    return image


def test_labels_move_with_the_transform_by_hand_counted_voxels():
    source = grid()
    array = np.zeros((12, 16, 20), np.uint8)
    array[4:7, 5:9, 3:8] = 1
    array[4:7, 5:9, 12:15] = 2
    # target points map to source points 4 mm further in x: on the target, the labels sit 2 voxels lower in x
    moved = warp_labels(labelled(array, source), [1, 2], source, sitk.TranslationTransform(3, (4.0, 0.0, 0.0)))
    expected = np.zeros_like(array)
    expected[4:7, 5:9, 1:6] = 1
    expected[4:7, 5:9, 10:13] = 2
    assert np.array_equal(moved, expected)


def test_where_labels_meet_each_voxel_takes_the_more_probable():
    source = grid()
    array = np.zeros((12, 16, 20), np.uint8)
    array[:, :, :10] = 1
    array[:, :, 10:] = 3
    half_voxel = sitk.TranslationTransform(3, (0.8, 0.0, 0.0))   # 40% of a voxel
    moved = warp_labels(labelled(array, source), [1, 3], source, half_voxel)
    # voxel 9 reads source position 9.4: 60% label 1, 40% label 3; voxel 10 reads 10.4: all label 3
    assert (moved[:, :, :10] == 1).all() and (moved[:, :, 10:] == 3).all()


def test_a_label_moved_by_part_of_a_voxel_keeps_the_voxels_it_covers_at_least_half():
    source = grid()
    array = np.zeros((12, 16, 20), np.uint8)
    array[:, :, 5:10] = 1
    moved = warp_labels(labelled(array, source), [1], source, sitk.TranslationTransform(3, (0.8, 0.0, 0.0)))
    # voxel 4 reads source x = 4.4: 40% inside, left out; voxel 9 reads 9.4: 60% inside, kept
    assert np.array_equal(np.flatnonzero(moved[0, 0]), np.arange(5, 10))


def test_a_label_on_another_grid_an_empty_one_and_fractions_are_refused():
    source = grid()
    with pytest.raises(OsteoSegError, match="not on its source image's grid") as error:
        check_label_on_source(labelled(np.ones((12, 16, 20)), grid(spacing=(4.0, 2.0, 3.0))), source, "case_3")
    assert "case_3" in str(error.value)
    with pytest.raises(OsteoSegError, match="empty"):
        check_label_on_source(labelled(np.zeros((12, 16, 20)), source), source, None)
    fractional = sitk.GetImageFromArray(np.full((12, 16, 20), 0.5, np.float32))
    fractional.CopyInformation(source)
    with pytest.raises(OsteoSegError, match="whole numbers"):
        check_label_on_source(fractional, source, None)
    assert check_label_on_source(labelled(np.eye(20)[:12, None, :].repeat(16, 1) * 7, source), source, None) == [7]


def test_an_image_given_as_the_label_is_refused():
    source = grid()
    ramp = labelled(np.arange(12 * 16 * 20).reshape(12, 16, 20) % 251 + 1, source)
    assert len(check_label_on_source(ramp, source, None)) == 251   # 251 labels: allowed
    image = sitk.GetImageFromArray(np.arange(12 * 16 * 20, dtype=np.int32).reshape(12, 16, 20))
    image.CopyInformation(source)
    with pytest.raises(OsteoSegError, match="looks like an image, not a label"):
        check_label_on_source(image, source, "case_1")


def test_images_that_do_not_overlap_are_refused_naming_both():
    source = grid()
    target = grid(origin=(500.0, 0.0, 0.0))
    label = labelled(np.ones((12, 16, 20)), source)
    with pytest.raises(OsteoSegError, match="source image and target CT do not overlap"):
        transfer_label(source, label, target)


def test_an_unknown_source_kind_is_refused():
    with pytest.raises(OsteoSegError, match="unknown source kind 'mr'"):
        transfer_label(grid(), grid(), grid(), source_kind="mr")


def test_a_ct_source_is_shown_to_the_metric_with_air_at_zero():
    ct = sitk.GetImageFromArray(np.array([[[-1024.0, 0.0, 2500.0]]], np.float32))
    assert sitk.GetArrayFromImage(metric_image(ct, "ct")).ravel().tolist() == [0.0, 1000.0, 3000.0]
    pet = sitk.GetImageFromArray(np.array([[[0.2, 2.0, 9.0]]], np.float32))
    assert sitk.GetArrayFromImage(metric_image(pet, "pet")).ravel().tolist() == pytest.approx([0.2, 2.0, 3.0])


@pytest.fixture(scope="module")
def follow_up(tiny_cohort):
    """A tiny phantom case with a lesion, and the same CT moved (3 mm, 1 degree) and deformed (up to
    6 mm per control point) as a follow-up scan with its label."""
    case = next(c for c in tiny_cohort.cases if sitk.GetArrayViewFromImage(
        sitk.ReadImage(str(tiny_cohort.path(c.truth)))).any())
    ct = sitk.ReadImage(str(tiny_cohort.path(case.ct)))
    truth = sitk.ReadImage(str(tiny_cohort.path(case.truth)))
    motion = sitk.Euler3DTransform(ct.TransformContinuousIndexToPhysicalPoint([9.5, 9.5, 9.5]), 0.0, 0.0,
                                   np.radians(1.0), (3.0, -2.0, 1.0))
    warp = smooth_deformation(ct, 6.0, seed=2)
    source = deformed(move_geometry(ct, motion), warp)
    label = deformed(move_geometry(truth, motion), warp, label=True)
    return ct, truth, source, label, motion, warp


@pytest.mark.slow
def test_a_moved_and_deformed_follow_up_ct_is_carried_back(follow_up):
    ct, truth, source, label, motion, warp = follow_up
    result = transfer_label(source, label, ct, source_kind="ct", case="case_000")
    centroid = mask_centroid(truth)

    def error_at(transform):   # a source point's place in the CT is motion^-1(warp(point))
        found = motion.GetInverse().TransformPoint(warp.TransformPoint(transform.TransformPoint(centroid)))
        return float(np.linalg.norm(np.subtract(found, centroid)))

    truth_array = sitk.GetArrayFromImage(truth) > 0
    rigid_dice = dice(warp_labels(label, [1], ct, result.rigid_transform) > 0, truth_array)
    final_dice = dice(sitk.GetArrayFromImage(result.labels) > 0, truth_array)
    assert error_at(result.transform) < 2.0
    assert error_at(result.transform) < error_at(result.rigid_transform)
    assert final_dice > 0.8 and final_dice > rigid_dice
    report = result.report
    assert report["deformable"]["metric"] == "correlation"
    assert report["deformable"]["metric_deformable"] < report["deformable"]["metric_rigid"]
    assert report["deformable"]["folding_fraction"] == 0.0
    assert report["labels"][0]["visibility"]["verdict"].startswith("supported")
    assert result.labels.GetSize() == ct.GetSize() and result.labels.GetSpacing() == ct.GetSpacing()


def test_a_pet_source_shares_the_cts_frame_by_default_and_is_registered_when_asked(tiny_cohort):
    case = tiny_cohort.cases[0]
    ct, pet = (sitk.ReadImage(str(tiny_cohort.path(f))) for f in (case.ct, case.pet))
    outline = sitk.Cast(pet > 2.0, sitk.sitkUInt8)
    result = transfer_label(pet, outline, ct)
    assert result.report["steps"] == "resample" and result.report["rigid"] is None
    assert np.array_equal(result.transform.GetParameters(), sitk.Euler3DTransform().GetParameters())
    assert np.array_equal(sitk.GetArrayFromImage(result.labels),
                          warp_labels(outline, [1], ct, sitk.Transform()))
    registered = transfer_label(pet, outline, ct, steps="rigid")
    assert registered.report["steps"] == "rigid" and registered.report["deformable"] is None
    assert registered.transform is registered.rigid_transform
    assert registered.report["rigid"]["metric_after"] <= registered.report["rigid"]["metric_before"]
    with pytest.raises(OsteoSegError, match="unknown registration 'bspline'"):
        transfer_label(pet, outline, ct, steps="bspline")


@pytest.mark.slow
def test_a_deformation_that_matches_worse_is_reported_and_the_rigid_answer_kept(follow_up, monkeypatch):
    from OsteoSegLib.labels import transfer as transfer_module
    from OsteoSegLib.labels.deformable import DeformableResult

    ct, _, source, label, _, _ = follow_up
    far_off = sitk.CompositeTransform([sitk.TranslationTransform(3, (15.0, 0.0, 0.0))])
    monkeypatch.setattr(transfer_module, "register_deformable",
                        lambda *args, **kwargs: DeformableResult(far_off, "correlation", -0.9, -0.8, 0.0, 1.0, 2.0, 5))
    result = transfer_label(source, label, ct, source_kind="ct")
    assert result.transform is result.rigid_transform
    deformable = result.report["deformable"]
    assert deformable["used"] is False and "rigid answer is kept" in deformable["note"]
    rigid_only = transfer_label(source, label, ct, source_kind="ct", steps="rigid")
    assert np.array_equal(sitk.GetArrayFromImage(result.labels), sitk.GetArrayFromImage(rigid_only.labels))

