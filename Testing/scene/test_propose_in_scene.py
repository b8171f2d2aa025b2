"""The "Propose labels" step in a scene: a segment, an ROI box or points as the rough input, one new
segmentation node with "Proposed A" and "Proposed B" tagged as proposals, and nothing added on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import vtk
from helpers import lesion_patient
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.propose_in_scene import PROPOSAL_TAG, propose_in_scene
from OsteoSegLib.scene.terminology import finding_tag


@pytest.fixture(scope="module")
def patient():
    return lesion_patient()


def volumes(context, patient):
    ct, pet, rough, regions = patient
    return mrml.volume_node_from_image(context, ct, "patient CT"), mrml.volume_node_from_image(context, pet, "PET")


def node_count(context) -> int:
    return context.scene.GetNumberOfNodes()


def test_a_drawn_segment_becomes_a_new_segmentation_of_both_proposals(context, patient):
    ct_node, pet_node = volumes(context, patient)
    rough, regions = patient[2], patient[3]
    drawn = mrml.segmentation_from_masks(context, ct_node, [
        mrml.SegmentSpec("rough", (1.0, 1.0, 0.0), rough.astype(np.uint8)),
        mrml.SegmentSpec("other", (0.0, 1.0, 0.0), regions["confounder"].astype(np.uint8))], "drawn")
    added = propose_in_scene(context, ct_node, pet_node, drawn, segment_name="rough")
    node = added.segmentation
    assert node.GetName() == "patient CT proposals"
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Proposed A", "Proposed B"]
    for index, source in enumerate("AB"):
        segment, tag = segmentation.GetNthSegment(index), vtk.mutable("")
        segment.GetTag(PROPOSAL_TAG, tag)
        assert str(tag) == "true"
        segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
        assert str(tag) == finding_tag(source)
    masks = mrml.masks_from_segmentation(context, node, ct_node)
    assert np.array_equal(masks["Proposed A"], added.proposal.label_a)
    assert np.array_equal(masks["Proposed B"], added.proposal.label_b)
    assert masks["Proposed A"][regions["lesion"]].mean() >= 0.9 and not masks["Proposed A"][regions["confounder"]].any()
    record = json.loads(node.GetAttribute(PROPOSAL_TAG))
    assert record["lesions"][0]["confidence"] == added.proposal.lesions[0].confidence
    again = propose_in_scene(context, ct_node, pet_node, drawn, segment_name="rough")
    assert again.segmentation.GetName() == "patient CT proposals (2)"


def test_an_roi_box_and_points_mark_the_lesion_too(context, patient):
    ct_node, pet_node = volumes(context, patient)
    lesion = patient[3]["lesion"]
    # the lesion's centre: voxel (k 5.5, j 14, i 20) -> LPS (-30 + 40, -20 + 28, 5 + 16.5) -> RAS (-10, -8, 21.5)
    roi = context.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetXYZ(-10.0, -8.0, 21.5)
    roi.SetRadiusXYZ(9.0, 9.0, 9.0)
    points = context.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "clicks")
    points.AddControlPoint(-10.0, -8.0, 21.5)
    for rough_node in (roi, points):
        proposal = propose_in_scene(context, ct_node, pet_node, rough_node).proposal
        assert (proposal.label_a > 0)[lesion].mean() >= 0.8


def test_bad_input_adds_nothing_and_says_what_is_wrong(context, patient):
    ct_node, pet_node = volumes(context, patient)
    rough = patient[2]
    drawn = mrml.segmentation_from_masks(context, ct_node, [
        mrml.SegmentSpec("one", (1.0, 1.0, 0.0), rough.astype(np.uint8)),
        mrml.SegmentSpec("two", (0.0, 1.0, 0.0), rough.astype(np.uint8))], "drawn")
    before = node_count(context)
    with pytest.raises(OsteoSegError, match="need the PET"):
        propose_in_scene(context, ct_node, None, drawn, segment_name="one")
    with pytest.raises(OsteoSegError, match="choose one segment of 'drawn' \\(one, two\\)"):
        propose_in_scene(context, ct_node, pet_node, drawn)
    with pytest.raises(OsteoSegError, match="select a segment, an ROI box or points"):
        propose_in_scene(context, ct_node, pet_node, None)
    with pytest.raises(OsteoSegError, match="is a vtkMRMLScalarVolumeNode"):
        propose_in_scene(context, ct_node, pet_node, pet_node)
    with pytest.raises(OsteoSegError, match="does not look like a CT"):
        propose_in_scene(context, pet_node, pet_node, drawn, segment_name="one")
    assert node_count(context) == before
