"""Putting a PET-CT case into a Slicer scene: CT in the bone window, PET on the CT grid with a PET
colour map, label masks as one editable segmentation node. Used by the module, the demo and tests."""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..data.cohort import Case, Cohort
from ..data.io import read_image
from ..imaging import BONE_WINDOW_HU, resample_onto
from . import mrml

PET_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"
BONE_WINDOW = (BONE_WINDOW_HU[1] - BONE_WINDOW_HU[0], (BONE_WINDOW_HU[1] + BONE_WINDOW_HU[0]) / 2)
# Label colours follow the paper's figures: A (high sensitivity) red, B (high specificity) blue.
LABEL_STYLE = {
    "A": ("Label A (high sensitivity)", (0.89, 0.10, 0.11)),
    "B": ("Label B (high specificity)", (0.22, 0.49, 0.72)),
    "truth": ("True extent (phantom only)", (0.30, 0.69, 0.29)),
}


@dataclass
class CaseNodes:
    """The nodes a case became in the scene."""

    ct: object
    pet: object
    pet_on_ct: object
    labels: object | None


def show_ct_bone_window(node) -> None:
    """CT in the bone window (W1500 / L350)."""
    mrml.apply_window_level(node, *BONE_WINDOW)


def show_pet(context: mrml.MrmlContext, node) -> None:
    """PET with Slicer's PET-Heat colour table."""
    mrml.apply_color_table(context, node, PET_COLOR_NODE_ID)


def load_case(context: mrml.MrmlContext, cohort: Cohort, case: Case, *, with_labels: bool = True) -> CaseNodes:
    """Read a case's CT and PET through Slicer's storage nodes, add the PET resampled onto the CT
    grid (the original PET is kept unchanged) and, optionally, its label masks as segments."""
    ct = mrml.read_volume_node(context, cohort.path(case.ct), f"{case.case_id} CT", case=case.case_id)
    pet = mrml.read_volume_node(context, cohort.path(case.pet), f"{case.case_id} PET", case=case.case_id)
    ct_image = mrml.image_from_volume_node(ct)
    pet_on_ct = preview(context, ct, pet)
    show_pet(context, pet)
    labels = None
    if with_labels:
        sources = dict(case.labels)
        if case.truth:
            sources["truth"] = case.truth
        segments = []
        for source, file in sources.items():
            name, color = LABEL_STYLE.get(source, (f"Label {source}", (0.9, 0.9, 0.2)))
            mask = resample_onto(read_image(cohort.path(file), case=case.case_id), ct_image, interpolator="nearest")
            segments.append(mrml.SegmentSpec(name, color, sitk.GetArrayFromImage(mask)))
        labels = mrml.segmentation_from_masks(context, ct, segments, f"{case.case_id} labels")
    return CaseNodes(ct, pet, pet_on_ct, labels)


PREVIEW_OF = "OsteoSeg.previewOf"   # attribute naming the CT and PET a preview volume was made from


def pet_on_ct_grid(context: mrml.MrmlContext, ct_node, pet_node):
    """The PET resampled onto the CT's grid (the original PET is untouched), in a volume node that is
    made once per (CT, PET) pair and refreshed on later previews, so repeated clicks add nothing."""
    resampled = resample_onto(mrml.image_from_volume_node(pet_node), mrml.image_from_volume_node(ct_node))
    pair = f"{ct_node.GetID()}|{pet_node.GetID()}"
    earlier = next((node for node in _volume_nodes(context) if node.GetAttribute(PREVIEW_OF) == pair), None)
    if earlier is not None:
        mrml.update_volume_node(earlier, resampled)
        return earlier
    node = mrml.volume_node_from_image(context, resampled, f"{pet_node.GetName()} on CT grid")
    node.SetAttribute(PREVIEW_OF, pair)
    return node


def _volume_nodes(context: mrml.MrmlContext) -> list:
    scene = context.scene
    return [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
            for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]


def fuse_in_slice_views(scene, background_node, foreground_node, opacity: float = 0.5) -> int:
    """Show background and foreground volumes in every slice view; returns how many views changed."""
    views = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    for view in views:
        view.SetBackgroundVolumeID(background_node.GetID())
        view.SetForegroundVolumeID(foreground_node.GetID())
        view.SetForegroundOpacity(opacity)
    return len(views)


def preview(context: mrml.MrmlContext, ct_node, pet_node, opacity: float = 0.5):
    """CT in the bone window with the PET, resampled onto the CT grid, fused on top in the slice
    views. Returns the new PET-on-CT node."""
    pet_on_ct = pet_on_ct_grid(context, ct_node, pet_node)
    show_ct_bone_window(ct_node)
    show_pet(context, pet_on_ct)
    fuse_in_slice_views(context.scene, ct_node, pet_on_ct, opacity)
    return pet_on_ct
