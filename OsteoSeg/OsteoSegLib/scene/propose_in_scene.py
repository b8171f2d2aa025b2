"""The "Propose labels" step's scene work: the selected segment, ROI box or points as the rough input,
the proposals added as one new segmentation node "<CT> proposals" (segments "Proposed A" and
"Proposed B", each tagged as a proposal) beside the CT, ready for Segment Editor. Also the segment
specification the `.seg.nrrd` files of `osteoseg propose` are written with."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..data.cohort_validate import ct_problem
from ..errors import OsteoSegError
from ..labels.propose import Proposal, ProposalSettings, propose
from ..labels.rough_input import RoughInput, rough_from_box, rough_from_mask, rough_from_points
from . import mrml
from .terminology import finding_tag

__all__ = ["PROPOSAL_TAG", "ProposalNodes", "proposal_node", "propose_in_scene", "rough_from_node"]

PROPOSAL_STYLE = {"A": ("Proposed A", (0.894, 0.102, 0.110)), "B": ("Proposed B", (0.216, 0.494, 0.722))}
PROPOSAL_TAG = "OsteoSeg.proposal"


@dataclass
class ProposalNodes:
    """What one "Propose labels" click added (the node) and what it holds (the proposal)."""

    segmentation: object
    proposal: Proposal


def proposal_specs(proposal: Proposal) -> list[mrml.SegmentSpec]:
    """Proposed A (red) and Proposed B (blue), each tagged as a proposal of its label source."""
    return [mrml.SegmentSpec(name, color, getattr(proposal, f"label_{source.lower()}"), finding_tag(source),
                             tags={PROPOSAL_TAG: "true", "OsteoSeg.label_source": source})
            for source, (name, color) in PROPOSAL_STYLE.items()]


def proposal_node(context: mrml.MrmlContext, reference_node, proposal: Proposal, name: str):
    """A segmentation node holding the proposals, with the proposal's record (lesions and their
    confidence, clusters, time) as an attribute."""
    node = mrml.segmentation_from_masks(context, reference_node, proposal_specs(proposal), name)
    node.SetAttribute(PROPOSAL_TAG, json.dumps(proposal.summary()))
    return node


def rough_from_node(context: mrml.MrmlContext, ct_node, ct_image, rough_node, segment_name: str | None = None,
                    *, case: str | None = None) -> RoughInput:
    """The rough input from a segmentation node (one segment: the named one, or its only one), an ROI
    markup (its box) or a point list (a ball around each point)."""
    if rough_node is None:
        raise OsteoSegError("select a segment, an ROI box or points that mark the lesion")
    kind, name = rough_node.GetClassName(), rough_node.GetName()
    if kind == "vtkMRMLSegmentationNode":
        with mrml.temporary_nodes(context):   # the export leaves display and colour nodes behind
            masks = mrml.masks_from_segmentation(context, rough_node, ct_node)
        chosen = segment_name or (next(iter(masks)) if len(masks) == 1 else None)
        if chosen not in masks:
            raise OsteoSegError(f"choose one segment of {name!r} ({', '.join(masks) or 'it has none'})")
        return rough_from_mask(masks[chosen], ct_image, source=chosen, case=case)
    if kind == "vtkMRMLMarkupsROINode":
        bounds = [0.0] * 6
        rough_node.GetRASBounds(bounds)
        return rough_from_box(ct_image, bounds[0::2], bounds[1::2], source=name, case=case)
    if kind == "vtkMRMLMarkupsFiducialNode":
        points = []
        for index in range(rough_node.GetNumberOfControlPoints()):
            point = [0.0, 0.0, 0.0]
            rough_node.GetNthControlPointPositionWorld(index, point)
            points.append(point)
        return rough_from_points(ct_image, points, source=name, case=case)
    raise OsteoSegError(f"{name!r} is a {kind}; the rough input must be a segment, an ROI box or points")


def propose_in_scene(context: mrml.MrmlContext, ct_node, pet_node, rough_node, *, segment_name: str | None = None,
                     settings: ProposalSettings | None = None) -> ProposalNodes:
    """Propose Label A and B from the rough input and add them as a new segmentation node beside the
    CT (an earlier one is never replaced). Nothing is added when the input is refused."""
    if ct_node is None:
        raise OsteoSegError("select a CT volume")
    ct = mrml.image_from_volume_node(ct_node)
    problem = ct_problem(ct)
    if problem:
        raise OsteoSegError(f"{ct_node.GetName()!r} {problem}")
    rough = rough_from_node(context, ct_node, ct, rough_node, segment_name, case=ct_node.GetName())
    pet = mrml.image_from_volume_node(pet_node) if pet_node is not None else None
    proposal = propose(ct, pet, rough, settings=settings or ProposalSettings(), case=ct_node.GetName())
    node = proposal_node(context, ct_node, proposal, mrml.unique_node_name(context, f"{ct_node.GetName()} proposals"))
    mrml.place_beside(context, node, ct_node)
    return ProposalNodes(node, proposal)
