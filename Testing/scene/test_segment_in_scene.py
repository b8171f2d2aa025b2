"""The Segment button's scene work: nodes, names, colours, terminology, provenance, subject hierarchy,
statistics, cancel, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import oblique_ct_with_mask, write_package
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.progress import CancelledError, Progress
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.segment_in_scene import add_segmentation_nodes, load_checked_model_set, segment_in_scene
from OsteoSegLib.scene.segment_output import PROVENANCE_TAG
from OsteoSegLib.scene.terminology import finding_tag


def ct_and_pet(context):
    """An oblique CT (in the test study of the subject hierarchy) and a PET on its own grid."""
    ct, mask = oblique_ct_with_mask()
    ct = sitk.Cast(ct, sitk.sitkFloat32) - 300.0 * (1 - sitk.Cast(ct > 0, sitk.sitkFloat32))
    pet = sitk.Resample(sitk.Cast(ct > 0, sitk.sitkFloat32) * 6.0 + 1.0, ct)
    ct_node = mrml.volume_node_from_image(context, ct, "patient CT")
    pet_node = mrml.volume_node_from_image(context, pet, "patient PET")
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(context.scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient"), "study")
    hierarchy.CreateItem(study, ct_node)
    return ct_node, pet_node, study


def test_segment_adds_one_complete_segmentation_node_beside_the_ct(context, model_set):
    ct_node, pet_node, study = ct_and_pet(context)
    added = segment_in_scene(context, ct_node, pet_node, model_set, device="cpu", probabilities=True)
    node = added.segmentation
    assert node.GetName() == "patient CT osteomyelitis"
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"]
    first = segmentation.GetNthSegment(0)
    assert first.GetColor() == pytest.approx((0.894, 0.102, 0.110), abs=1e-3)
    import vtk

    tag = vtk.mutable("")
    first.GetTag(first.GetTerminologyEntryTagName(), tag)
    assert str(tag) == finding_tag("A") and "SCT^60168000^Osteomyelitis" in str(tag)
    # Reference geometry is the (oblique) CT's.
    reference = mrml.image_from_volume_node(ct_node)
    masks = mrml.masks_from_segmentation(context, node, ct_node)
    assert masks["Model A (high sensitivity)"].shape == sitk.GetArrayViewFromImage(reference).shape
    provenance = json.loads(node.GetAttribute(PROVENANCE_TAG))
    assert [m["name"] for m in provenance["models"]] == ["model-A", "model-B"]
    assert len(provenance["models"][0]["weights_sha256"]) == 64 and provenance["device"] == "cpu"
    assert float(node.GetAttribute("OsteoSeg.threshold")) == 0.5
    assert mrml.subject_hierarchy_parent(context, node) == study
    assert len(added.probabilities) == 2 and mrml.subject_hierarchy_parent(context, added.probabilities[0]) == study
    assert added.statistics.GetTable().GetNumberOfRows() == 3
    again = segment_in_scene(context, ct_node, pet_node, model_set, device="cpu")
    assert again.segmentation.GetName() == "patient CT osteomyelitis (2)" and again.segmentation is not node


def test_an_ensemble_set_segments_as_one_model_a_and_b_with_every_member_in_the_provenance(context, tmp_path):
    for seed, name in enumerate(("A_fold0", "A_fold1", "A_fold2")):
        write_package(tmp_path / "set", "A", seed=seed, name=name)
    write_package(tmp_path / "set", "B", seed=7)
    ct_node, pet_node, _ = ct_and_pet(context)
    added = segment_in_scene(context, ct_node, pet_node, tmp_path / "set", device="cpu", probabilities=True)
    segmentation = added.segmentation.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"]
    provenance = json.loads(added.segmentation.GetAttribute(PROVENANCE_TAG))
    assert [m["name"] for m in provenance["models"]] == ["A_ct+pet_ensemble_of_3", "model-B"]
    assert [m["name"] for m in provenance["models"][0]["members"]] == ["A_fold0", "A_fold1", "A_fold2"]
    assert len(added.probabilities) == 2     # one averaged map per label source


def test_statistics_table_matches_a_hand_computation(context, model_set):
    ct_node, pet_node, _ = ct_and_pet(context)
    ct = mrml.image_from_volume_node(ct_node)
    models = load_checked_model_set(model_set)
    result = segment_images(ct, mrml.image_from_volume_node(pet_node), models, device="cpu")
    shape = sitk.GetArrayViewFromImage(ct).shape
    a, b = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    a[1, 2:4, 2:5] = 1                                   # 6 voxels
    b[1, 2, 2] = 1                                       # 1 voxel
    result.masks = {"model-A": a, "model-B": b}
    pet = np.full(shape, 2.0, np.float32)
    pet[1, 2, 2] = 10.0
    table = add_segmentation_nodes(context, ct_node, result, pet).statistics.GetTable()
    voxel_ml = 0.9 * 1.3 * 3.0 / 1000
    rows = {table.GetValue(r, 0).ToString(): [table.GetValue(r, c).ToDouble() for c in range(1, 5)]
            for r in range(table.GetNumberOfRows())}
    assert rows["Model A (high sensitivity)"] == pytest.approx([6 * voxel_ml, 10.0, 20 / 6, 20 / 6 * 6 * voxel_ml])
    assert rows["Model B (high specificity)"] == pytest.approx([voxel_ml, 10.0, 10.0, 10.0 * voxel_ml])
    assert rows["A only (disagreement)"][:3] == pytest.approx([5 * voxel_ml, 2.0, 2.0])


class CancelAt(Progress):
    def __init__(self):
        self.calls = 0

    def cancelled(self):
        self.calls += 1
        return self.calls > 1


def test_cancel_leaves_the_scene_as_it_was(context, model_set):
    ct_node, pet_node, _ = ct_and_pet(context)
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(CancelledError):
        # batch size 2 on 7 slices: cancelled after the first batch
        segment_images(mrml.image_from_volume_node(ct_node), mrml.image_from_volume_node(pet_node),
                       load_checked_model_set(model_set),
                       device="cpu", batch_size=2, progress=CancelAt())
    with pytest.raises(CancelledError):
        segment_in_scene(context, ct_node, pet_node, model_set, device="cpu", progress=CancelAt())
    assert context.scene.GetNumberOfNodes() == before


def test_bad_inputs_add_nothing_to_the_scene(context, model_set, tmp_path):
    ct_node, pet_node, _ = ct_and_pet(context)
    far = mrml.image_from_volume_node(pet_node)
    far.SetOrigin((5000.0, 0.0, 0.0))
    far_node = mrml.volume_node_from_image(context, far, "far PET")
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(OsteoSegError, match="select a CT volume and a PET volume"):
        segment_in_scene(context, ct_node, None, model_set)
    with pytest.raises(OsteoSegError, match="does not look like a CT"):
        segment_in_scene(context, pet_node, pet_node, model_set)
    with pytest.raises(OsteoSegError, match="do not overlap"):
        segment_in_scene(context, ct_node, far_node, model_set)
    only_a = tmp_path / "only-a"
    write_package(only_a, "A")
    with pytest.raises(OsteoSegError, match="no Model B"):
        segment_in_scene(context, ct_node, pet_node, only_a)
    weights = model_set / "model-B" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"0000")
    with pytest.raises(OsteoSegError, match="do not match the model card"):
        segment_in_scene(context, ct_node, pet_node, model_set)
    assert context.scene.GetNumberOfNodes() == before
