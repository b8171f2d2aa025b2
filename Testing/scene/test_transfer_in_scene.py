"""The "Transfer a segmentation" step's scene work, against Slicer's real MRML."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import resample_onto
from OsteoSegLib.labels.visibility import SUPPORTED
from OsteoSegLib.metrics import dice
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.transfer_in_scene import (
    SUPPORTED_COLOR,
    UNSUPPORTED_COLOR,
    label_from_segments,
    transfer_in_scene,
    transferred_specs,
    verdict_lines,
)


def pet_segmentation(context, tiny_cohort, case):
    """CT and PET nodes, and a segmentation drawn on the PET: the truth carried onto the PET grid
    ("Lesion") and a non-overlapping box in the muscle ("Muscle box")."""
    ct_node = mrml.read_volume_node(context, tiny_cohort.path(case.ct), "CT")
    pet_node = mrml.read_volume_node(context, tiny_cohort.path(case.pet), "PET")
    pet = mrml.image_from_volume_node(pet_node)
    truth = sitk.ReadImage(str(tiny_cohort.path(case.truth)))
    ct_to_pet = sitk.ReadTransform(str(tiny_cohort.path(case.metadata["ct_to_pet_transform"])))
    lesion = sitk.GetArrayFromImage(resample_onto(truth, pet, transform=ct_to_pet.GetInverse())) >= 0.5
    box = np.zeros_like(lesion)
    box[10:14, 5:9, 5:9] = True
    box &= ~lesion
    specs = [mrml.SegmentSpec("Lesion", (1.0, 0.0, 0.0), lesion.astype(np.uint8)),
             mrml.SegmentSpec("Muscle box", (0.0, 1.0, 0.0), box.astype(np.uint8))]
    return ct_node, pet_node, mrml.segmentation_from_masks(context, pet_node, specs, "PET outline"), truth


@pytest.mark.slow
def test_segments_on_the_pet_arrive_on_the_ct_with_their_verdicts(context, tiny_cohort):
    case = next(c for c in tiny_cohort.cases if sitk.GetArrayViewFromImage(
        sitk.ReadImage(str(tiny_cohort.path(c.truth)))).sum() > 50)
    ct_node, pet_node, outline, truth = pet_segmentation(context, tiny_cohort, case)
    node = transfer_in_scene(context, pet_node, outline, ct_node)
    assert node.GetName() == "PET outline on CT"
    masks = mrml.masks_from_segmentation(context, node, ct_node)
    assert list(masks) == ["Lesion (transferred)", "Muscle box (transferred)"]
    assert dice(masks["Lesion (transferred)"] > 0, sitk.GetArrayFromImage(truth) > 0) > 0.6
    report = json.loads(node.GetAttribute("OsteoSeg.transfer"))
    assert [entry["value"] for entry in report["labels"]] == [1, 2]
    segment = node.GetSegmentation().GetNthSegment(0)
    tag = vtk.mutable("")
    assert segment.GetTag("OsteoSeg.visibility", tag)
    assert str(tag) == report["labels"][0]["visibility"]["verdict"]
    if str(tag) == SUPPORTED:
        assert tuple(segment.GetColor()) == pytest.approx(SUPPORTED_COLOR)
    assert verdict_lines(node) == [f"{name}: {entry['visibility']['verdict']}"
                                   for name, entry in zip(masks, report["labels"], strict=True)]
    # a second transfer gets a name of its own
    assert transfer_in_scene(context, pet_node, outline, ct_node).GetName() == "PET outline on CT (2)"


def test_the_segments_become_values_in_their_order_on_the_source_grid(context, tiny_cohort):
    ct_node, pet_node, outline, _ = pet_segmentation(context, tiny_cohort, tiny_cohort.cases[0])
    label, names = label_from_segments(context, outline, pet_node, mrml.image_from_volume_node(pet_node))
    assert names == {1: "Lesion", 2: "Muscle box"}
    assert label.GetSize() == mrml.image_from_volume_node(pet_node).GetSize()
    assert sitk.GetArrayViewFromImage(label)[10:14, 5:9, 5:9].max() == 2


def test_a_refused_transfer_adds_nothing(context, tiny_cohort):
    ct_node, pet_node, outline, _ = pet_segmentation(context, tiny_cohort, tiny_cohort.cases[0])
    with pytest.raises(OsteoSegError, match="already on this CT"):
        transfer_in_scene(context, ct_node, outline, ct_node)
    with pytest.raises(OsteoSegError, match="select the volume"):
        transfer_in_scene(context, None, outline, ct_node)
    empty = mrml.segmentation_from_masks(context, pet_node, [], "nothing")
    nodes = context.scene.GetNumberOfNodes()
    with pytest.raises(OsteoSegError, match="no segments"):
        transfer_in_scene(context, pet_node, empty, ct_node)
    assert context.scene.GetNumberOfNodes() == nodes


def test_each_segment_is_coloured_and_tagged_by_its_own_verdict():
    from OsteoSegLib.labels.transfer import TransferResult
    from OsteoSegLib.labels.visibility import NOT_SUPPORTED

    labels = np.zeros((2, 3, 4), np.uint16)
    labels[0, 0, :2], labels[1, 2, 3] = 4, 9
    image = sitk.GetImageFromArray(labels)
    report = {"labels": [{"value": 4, "visibility": {"verdict": NOT_SUPPORTED, "score": 1.2}},
                         {"value": 9, "visibility": {"verdict": SUPPORTED, "score": 8.0}}]}
    specs = transferred_specs(TransferResult(image, sitk.Transform(), sitk.Transform(), report), {4: "Edema"})
    assert [spec.name for spec in specs] == ["Edema (transferred)", "Label 9 (transferred)"]
    assert [spec.color for spec in specs] == [UNSUPPORTED_COLOR, SUPPORTED_COLOR]
    assert [int(spec.mask.sum()) for spec in specs] == [2, 1]
    assert specs[0].tags["OsteoSeg.visibility"] == NOT_SUPPORTED and specs[1].tags["OsteoSeg.visibility.score"] == "8.0"
