"""The Align button's scene work."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.imaging import resample_onto
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.align_in_scene import align_in_scene


def test_align_in_scene_adds_a_pet_on_the_ct_grid_and_keeps_the_originals(context, tiny_cohort, tmp_path):
    case = tiny_cohort.cases[0]
    ct_node = mrml.read_volume_node(context, tiny_cohort.path(case.ct), "CT")
    pet_node = mrml.read_volume_node(context, tiny_cohort.path(case.pet), "PET")
    pet_before = mrml.image_from_volume_node(pet_node)
    aligned = align_in_scene(context, ct_node, pet_node, "rigid", figure_folder=tmp_path)
    ct = mrml.image_from_volume_node(ct_node)
    on_ct = mrml.image_from_volume_node(aligned.pet_on_ct)
    assert on_ct.GetSize() == ct.GetSize() and on_ct.GetOrigin() == pytest.approx(ct.GetOrigin())
    pet_after = mrml.image_from_volume_node(pet_node)
    assert pet_after.GetOrigin() == pet_before.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(pet_after), sitk.GetArrayViewFromImage(pet_before))
    assert aligned.transform is not None and aligned.figure.stat().st_size > 1000
    assert aligned.metric_after <= aligned.metric_before
    resampled = align_in_scene(context, ct_node, pet_node, "resample")
    assert resampled.transform is None and resampled.pet_on_ct.GetName() != aligned.pet_on_ct.GetName()


def hot_spot_mm(image: sitk.Image) -> np.ndarray:
    """Physical centroid (LPS mm) of the voxels above half the image's maximum."""
    values = sitk.GetArrayFromImage(image)
    index = np.argwhere(values > 0.5 * values.max()).mean(axis=0)[::-1]
    return np.array(image.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def test_a_pet_placed_by_hand_is_aligned_where_its_transform_puts_it(context, tiny_cohort):
    """The PET's voxels shifted 12 mm along x in the file and put back by a parent transform (a user's
    hand alignment): Align must land the hot spot where the unshifted PET has it (ignoring the
    transform would leave it 12 mm off)."""
    case = tiny_cohort.cases[0]
    ct = sitk.ReadImage(str(tiny_cohort.path(case.ct)))
    pet = sitk.ReadImage(str(tiny_cohort.path(case.pet)))
    expected = hot_spot_mm(resample_onto(pet, ct))
    shifted = sitk.Image(pet)
    shifted.SetOrigin((np.array(pet.GetOrigin()) + [12.0, 0.0, 0.0]).tolist())
    ct_node = mrml.volume_node_from_image(context, ct, "CT")
    pet_node = mrml.volume_node_from_image(context, shifted, "PET")
    hand = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "by hand")
    back = np.eye(4)
    back[0, 3] = 12.0                       # +12 mm in RAS x is -12 mm in LPS x: undoes the shift
    hand.SetMatrixTransformToParent(mrml._vtk_matrix(back))
    pet_node.SetAndObserveTransformNodeID(hand.GetID())
    aligned = align_in_scene(context, ct_node, pet_node, "resample")
    found = hot_spot_mm(mrml.image_from_volume_node(aligned.pet_on_ct))
    assert np.linalg.norm(found - expected) < 0.5, (found, expected)
    assert pet_node.GetTransformNodeID() == hand.GetID()          # the original keeps its transform


def test_without_matplotlib_align_aligns_and_says_the_figure_was_skipped(context, tiny_cohort, tmp_path,
                                                                         monkeypatch):
    from OsteoSegLib.scene import align_in_scene as module

    case = tiny_cohort.cases[0]
    ct_node = mrml.read_volume_node(context, tiny_cohort.path(case.ct), "CT")
    pet_node = mrml.read_volume_node(context, tiny_cohort.path(case.pet), "PET")
    monkeypatch.setattr(module, "is_installed", lambda name: name != "matplotlib")
    aligned = align_in_scene(context, ct_node, pet_node, "resample", figure_folder=tmp_path)
    assert aligned.figure is None and "matplotlib" in aligned.note and not list(tmp_path.iterdir())
    assert aligned.pet_on_ct.GetImageData() is not None


def test_a_failed_figure_adds_nothing_to_the_scene(context, tiny_cohort, tmp_path, monkeypatch):
    from OsteoSegLib.scene import align_in_scene as module

    case = tiny_cohort.cases[0]
    ct_node = mrml.read_volume_node(context, tiny_cohort.path(case.ct), "CT")
    pet_node = mrml.read_volume_node(context, tiny_cohort.path(case.pet), "PET")
    before = context.scene.GetNumberOfNodes()

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "write_quality_figure", full_disk)
    with pytest.raises(OSError, match="No space left"):
        align_in_scene(context, ct_node, pet_node, "rigid", figure_folder=tmp_path)
    assert context.scene.GetNumberOfNodes() == before
