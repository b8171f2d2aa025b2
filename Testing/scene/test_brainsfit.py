"""BRAINSFit as an Align method, against real MRML nodes: a CLI runner stands in for Slicer's (it does
what Slicer's CLI logic does to the moving volume and sets the node's status)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import oblique_ct_with_mask
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.brainsfit import align_with_brainsfit, brainsfit_parameters


def volumes(context):
    import slicer

    context.scene.RegisterNodeClass(slicer.vtkMRMLCommandLineModuleNode())
    ct, _ = oblique_ct_with_mask()
    ct_node = mrml.volume_node_from_image(context, ct, "CT")
    pet_node = mrml.volume_node_from_image(context, sitk.Cast(ct, sitk.sitkFloat32) / 100.0, "PET")
    hand = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "placed by hand")
    pet_node.SetAndObserveTransformNodeID(hand.GetID())
    return ct_node, pet_node, hand


def untransformed(context):
    ct_node, pet_node, _ = volumes(context)
    pet_node.SetAndObserveTransformNodeID(None)
    return ct_node, pet_node


class SlicerLikeCli:
    """Sets the status and, as Slicer's CLI logic does for an output transform with
    reference="movingVolume", puts the moving volume under the new transform."""

    def __init__(self, context, status: str, error: str = ""):
        self.context, self.status, self.error, self.parameters, self.node = context, status, error, None, None

    def __call__(self, parameters):
        self.parameters = parameters
        self.node = self.context.scene.AddNewNodeByClass("vtkMRMLCommandLineModuleNode", "BRAINSFit")
        moving = self.context.scene.GetNodeByID(parameters["movingVolume"])
        moving.SetAndObserveTransformNodeID(parameters["linearTransform"])
        self.node.SetErrorText(self.error)
        self.node.SetStatus(getattr(self.node, self.status))
        return self.node


def test_a_finished_run_adds_its_volume_and_transform_and_leaves_the_original_pet_where_it_was(context):
    ct_node, pet_node = untransformed(context)
    cli = SlicerLikeCli(context, "Completed")
    aligned = align_with_brainsfit(context, ct_node, pet_node, cli)
    assert pet_node.GetTransformNodeID() is None                         # put back after the CLI moved it
    assert context.scene.GetNodeByID(cli.node.GetID()) is None           # the CLI node is gone
    assert cli.parameters["fixedVolume"] == ct_node.GetID() and cli.parameters["useRigid"] is True
    assert cli.parameters["linearTransform"] == aligned.transform.GetID()
    assert cli.parameters["outputVolume"] == aligned.pet_on_ct.GetID()
    assert aligned.pet_on_ct.GetName() == "PET on CT (BRAINSFit)"


@pytest.mark.parametrize("status, error", [("CompletedWithErrors", "itk::ExceptionObject: metric failed"),
                                           ("Cancelled", "")])
def test_a_failed_run_raises_with_brainsfits_message_and_adds_nothing(context, status, error):
    ct_node, pet_node = untransformed(context)
    before = context.scene.GetNumberOfNodes()
    cli = SlicerLikeCli(context, status, error)
    with pytest.raises(OsteoSegError, match="BRAINSFit failed") as raised:
        align_with_brainsfit(context, ct_node, pet_node, cli)
    if error:
        assert "metric failed" in str(raised.value)
    assert context.scene.GetNumberOfNodes() == before                   # output, transform and CLI node removed
    assert pet_node.GetTransformNodeID() is None


def test_a_runner_that_raises_leaves_the_scene_as_it_was(context):
    ct_node, pet_node = untransformed(context)
    before = context.scene.GetNumberOfNodes()

    def crash(parameters):
        context.scene.GetNodeByID(parameters["movingVolume"]).SetAndObserveTransformNodeID(
            parameters["linearTransform"])
        raise RuntimeError("CLI module crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        align_with_brainsfit(context, ct_node, pet_node, crash)
    assert context.scene.GetNumberOfNodes() == before
    assert pet_node.GetTransformNodeID() is None


def test_the_parameters_are_brainsfits_own_names(context):
    ct_node, pet_node, _ = volumes(context)
    parameters = brainsfit_parameters(ct_node, pet_node, ct_node, pet_node)
    # names and values as BRAINSFit.xml declares them (docs/slicer-compatibility.md)
    assert parameters["costMetric"] == "MMI" and parameters["initializeTransformMode"] == "useGeometryAlign"
    assert set(parameters) == {"fixedVolume", "movingVolume", "useRigid", "initializeTransformMode", "costMetric",
                               "samplingPercentage", "linearTransform", "outputVolume"}
    assert np.isclose(parameters["samplingPercentage"], 0.05)


def test_volumes_under_a_transform_are_refused_since_brainsfit_would_not_see_it(context):
    ct_node, pet_node, hand = volumes(context)          # the PET is under "placed by hand"
    with pytest.raises(OsteoSegError, match="BRAINSFit does not see the transform that places 'PET'"):
        align_with_brainsfit(context, ct_node, pet_node, SlicerLikeCli(context, "Completed"))
