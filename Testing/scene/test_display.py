"""A case in the scene: PET on the CT grid, labels as segments, the fused preview."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TINY_SHAPE
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.display import PET_COLOR_NODE_ID, load_case, preview


def test_load_case_puts_pet_on_ct_grid_and_labels_as_segments(context, tiny_cohort):
    case = tiny_cohort.cases[0]
    nodes = load_case(context, tiny_cohort, case)
    assert nodes.pet_on_ct.GetImageData().GetDimensions() == TINY_SHAPE
    assert nodes.pet.GetImageData().GetDimensions() != TINY_SHAPE          # the original PET is kept
    masks = mrml.masks_from_segmentation(context, nodes.labels, nodes.ct)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort.path(case.labels["A"]))))
    np.testing.assert_array_equal(masks["Label A (high sensitivity)"], expected)
    assert set(masks) == {"Label A (high sensitivity)", "Label B (high specificity)", "True extent (phantom only)"}


def test_preview_sets_bone_window_pet_colours_and_fuses_views(context, tiny_cohort):
    case = tiny_cohort.cases[0]
    nodes = load_case(context, tiny_cohort, case, with_labels=False)
    context.scene.RemoveNode(nodes.pet_on_ct)                            # as the module's Load sample does
    views = [context.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    pet_on_ct = preview(context, nodes.ct, nodes.pet, opacity=0.4)
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + 1
    display = nodes.ct.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel(), display.GetAutoWindowLevel()) == (1500, 350, 0)
    assert pet_on_ct.GetDisplayNode().GetColorNodeID() == PET_COLOR_NODE_ID
    for view in views:
        assert view.GetBackgroundVolumeID() == nodes.ct.GetID()
        assert view.GetForegroundVolumeID() == pet_on_ct.GetID()
        assert view.GetForegroundOpacity() == pytest.approx(0.4)


def test_previewing_again_refreshes_the_preview_instead_of_adding_volumes(context, tiny_cohort):
    case = tiny_cohort.cases[0]
    nodes = load_case(context, tiny_cohort, case, with_labels=False)         # previews once itself
    first = preview(context, nodes.ct, nodes.pet)
    assert first is nodes.pet_on_ct
    count = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    again = preview(context, nodes.ct, nodes.pet)
    assert again is first and context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == count
    other_pet = mrml.volume_node_from_image(context, mrml.image_from_volume_node(nodes.pet), "another PET")
    assert preview(context, nodes.ct, other_pet) is not first            # another pair, another preview
