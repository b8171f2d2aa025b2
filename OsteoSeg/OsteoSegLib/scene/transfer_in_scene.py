"""The "Transfer a segmentation" step: segments drawn on one volume (a PET, an earlier CT, an MRI)
carried onto the CT as a new segmentation node, each segment tagged with its CT visibility verdict.
Also builds the `.seg.nrrd` that `osteoseg transfer` writes."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from ..errors import OsteoSegError
from ..labels.transfer import TransferResult, transfer_label
from ..labels.visibility import SUPPORTED
from . import mrml

SUPPORTED_COLOR = (0.20, 0.63, 0.17)      # green: the CT shows it
UNSUPPORTED_COLOR = (0.60, 0.31, 0.64)    # purple: PET-only (or no CT evidence)
REPORT_TAG = "OsteoSeg.transfer"
VERDICT_TAG = "OsteoSeg.visibility"


def label_from_segments(context: mrml.MrmlContext, segmentation_node, source_node,
                        source: sitk.Image) -> tuple[sitk.Image, dict[int, str]]:
    """The segments of a segmentation node as one label map on the grid of the source volume (`source`:
    its image; value i for the i-th segment, later segments on top where they overlap) and the names by
    value."""
    with mrml.temporary_nodes(context):   # the export leaves display and colour nodes behind
        masks = mrml.masks_from_segmentation(context, segmentation_node, source_node)
    if not masks:
        raise OsteoSegError(f"the segmentation {segmentation_node.GetName()!r} has no segments to transfer")
    labels = np.zeros(tuple(reversed(source.GetSize())), np.uint16)
    names = {}
    for value, (name, mask) in enumerate(masks.items(), start=1):
        labels[mask > 0] = value
        names[value] = name
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(source)
    return image, names


def transferred_specs(result: TransferResult, names: dict[int, str]) -> list[mrml.SegmentSpec]:
    """One segment per carried label, named "<name> (transferred)", green where the CT supports it and
    purple where it does not, with the verdict and its figures as tags."""
    labels = sitk.GetArrayViewFromImage(result.labels)
    specs = []
    for entry in result.report["labels"]:
        value = entry["value"]
        visibility = entry["visibility"] or {}
        verdict = visibility.get("verdict", "nothing was carried onto the CT")
        color = SUPPORTED_COLOR if verdict == SUPPORTED else UNSUPPORTED_COLOR
        specs.append(mrml.SegmentSpec(f"{names.get(value, f'Label {value}')} (transferred)", color,
                                      (labels == value).astype(np.uint8),
                                      tags={VERDICT_TAG: verdict,
                                            "OsteoSeg.visibility.score": str(visibility.get("score")),
                                            "OsteoSeg.transfer.label_value": str(value)}))
    return specs


def transferred_segmentation_node(context: mrml.MrmlContext, target_node, result: TransferResult,
                                  names: dict[int, str], name: str):
    """A segmentation node on the target CT's grid with the transferred segments and the report."""
    specs = transferred_specs(result, names)
    node = mrml.segmentation_from_masks(context, target_node, specs, name)
    report = {**result.report, "labels": [{**entry, "segment": spec.name}
                                           for entry, spec in zip(result.report["labels"], specs, strict=True)]}
    node.SetAttribute(REPORT_TAG, json.dumps(report))
    return node


def transfer_in_scene(context: mrml.MrmlContext, source_node, segmentation_node, target_node, *,
                      source_kind: str = "pet", steps: str | None = None):
    """Carry the segments of `segmentation_node` (drawn on `source_node`) onto the CT `target_node`; add
    the result as a new segmentation "<segmentation> on <CT>" and return it. Nothing is added when the
    transfer is refused."""
    if source_node is None or segmentation_node is None or target_node is None:
        raise OsteoSegError("select the volume the segmentation was drawn on, the segmentation and the CT")
    if source_node is target_node:
        raise OsteoSegError("the segmentation is already on this CT: choose the volume it was drawn on")
    source = mrml.image_from_volume_node(source_node)
    label, names = label_from_segments(context, segmentation_node, source_node, source)
    result = transfer_label(source, label, mrml.image_from_volume_node(target_node), source_kind=source_kind,
                            steps=steps, case=segmentation_node.GetName())
    name = mrml.unique_node_name(context, f"{segmentation_node.GetName()} on {target_node.GetName()}")
    node = transferred_segmentation_node(context, target_node, result, names, name)
    mrml.place_beside(context, node, target_node)
    return node


def verdict_lines(node) -> list[str]:
    """"<segment>: <verdict>" for each segment of a transferred segmentation node (for the panel), from
    the report it carries."""
    report = json.loads(node.GetAttribute(REPORT_TAG) or "{}")
    return [f"{entry['segment']}: {(entry['visibility'] or {}).get('verdict', 'nothing was carried onto the CT')}"
            for entry in report.get("labels", [])]
