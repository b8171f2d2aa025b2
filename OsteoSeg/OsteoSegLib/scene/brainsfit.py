"""Rigid registration by Slicer's BRAINSFit CLI module, as an Align method where it is present.

Two of BRAINSFit's habits are undone here. Its `linearTransform` output has `reference="movingVolume"`,
so Slicer's CLI logic puts the moving (original) PET under the new transform after the run: the
PET's own parent is put back, so the originals stay unchanged. And `slicer.cli.runSync` never
raises: a failed run is seen only in its node's status, so it is checked, the half-made output nodes
are removed, and the CLI node is removed either way.
"""

from __future__ import annotations

from ..errors import OsteoSegError
from . import mrml
from .align_in_scene import AlignedNodes


def brainsfit_parameters(ct_node, pet_node, transform_node, output_node) -> dict:
    """Rigid, Mattes mutual information, started from the two volumes' geometric centres."""
    return {"fixedVolume": ct_node.GetID(), "movingVolume": pet_node.GetID(), "useRigid": True,
            "initializeTransformMode": "useGeometryAlign", "costMetric": "MMI", "samplingPercentage": 0.05,
            "linearTransform": transform_node.GetID(), "outputVolume": output_node.GetID()}


def check_cli_finished(cli_node, module: str = "BRAINSFit") -> None:
    """Raise with the module's own error text unless the run completed without errors."""
    status = cli_node.GetStatus()
    if status & cli_node.ErrorsMask or status != cli_node.Completed:
        detail = (cli_node.GetErrorText() or "").strip().splitlines()
        raise OsteoSegError(f"{module} failed ({cli_node.GetStatusString()}"
                            + (f": {detail[-1]}" if detail else "") + "); nothing was added")


def align_with_brainsfit(context: mrml.MrmlContext, ct_node, pet_node, run_cli) -> AlignedNodes:
    """Run BRAINSFit through `run_cli(parameters) -> CLI node` (slicer.cli.runSync in Slicer). Volumes
    under a transform are refused: the CLI logic hands BRAINSFit the voxels without their parent
    transforms, so its answer would be misplaced."""
    for node in (ct_node, pet_node):
        if node.GetParentTransformNode() is not None:
            raise OsteoSegError(f"BRAINSFit does not see the transform that places {node.GetName()!r}: harden it "
                                "first (Data module: right-click, Harden transform) or align with rigid (SimpleITK)")
    name = mrml.unique_node_name(context, f"{pet_node.GetName()} on {ct_node.GetName()} (BRAINSFit)")
    transform = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", f"{name} transform")
    output = context.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    parent = pet_node.GetTransformNodeID()
    cli_node = None
    try:
        cli_node = run_cli(brainsfit_parameters(ct_node, pet_node, transform, output))
        check_cli_finished(cli_node)
    except BaseException:
        for node in (output, transform):
            context.scene.RemoveNode(node)
        raise
    finally:
        pet_node.SetAndObserveTransformNodeID(parent)   # the CLI logic moved the original PET
        if cli_node is not None:
            context.scene.RemoveNode(cli_node)
    mrml.place_beside(context, output, ct_node)
    return AlignedNodes(output, transform, None, None, None)
