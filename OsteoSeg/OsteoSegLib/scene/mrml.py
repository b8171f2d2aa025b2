"""The only bridge to Slicer's MRML: scenes, volume nodes <-> SimpleITK images, segmentation nodes.

Every function takes an `MrmlContext` (the scene and the logics it needs) instead of reaching for
`slicer.app`: inside Slicer the module builds the context from `slicer.mrmlScene` and the module
logics; headless (tests, command line) `create_headless_context()` builds one from the slicer-core
wheel with the logics registered once per scene.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_path
from ..errors import OsteoSegError

# RAS (Slicer) and LPS (ITK/DICOM) differ by the sign of the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class MrmlContext:
    """A scene and the module logics that OsteoSeg's MRML code calls."""

    scene: object
    volumes_logic: object
    segmentations_logic: object
    application_logic: object | None = None


def create_headless_context() -> MrmlContext:
    """A new scene with the Colors, Volumes and Segmentations logics registered (slicer-core)."""
    import slicer

    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    # The Volumes logic needs the Colors logic, which owns the default colour tables (PET-Heat, ...).
    color_logic = application_logic.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    # Segmentation converter rules are registered only once the logic has a scene.
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    for name, logic in (("Volumes", volumes_logic), ("Segmentations", segmentations_logic)):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(application_logic)
        application_logic.SetModuleLogic(name, logic)
    return MrmlContext(scene, volumes_logic, segmentations_logic, application_logic)


# ---------------------------------------------------------------------------------------------
# Geometry and volumes


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """4x4 IJK-to-RAS matrix of a SimpleITK image (whose geometry is in LPS)."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def _vtk_matrix(matrix: np.ndarray):
    import vtk

    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def _numpy_matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def volume_node_from_image(context: MrmlContext, image: sitk.Image, name: str, *, labelmap: bool = False):
    """Add a scalar (or labelmap) volume node holding a copy of `image`, geometry exact."""
    node_class = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = context.scene.AddNewNodeByClass(node_class, name)
    update_volume_node(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def update_volume_node(node, image: sitk.Image) -> None:
    """Replace a volume node's voxels and geometry with a copy of `image`."""
    import slicer

    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras_from_image(image)))


def world_matrix(node) -> np.ndarray:
    """4x4 matrix from the node's own coordinates to the scene's world (RAS): the product of its parent
    transforms, identity when it has none. A non-linear parent transform is refused (the message
    says how to harden it), since a voxel grid cannot carry it."""
    import slicer

    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise OsteoSegError(f"volume {node.GetName()!r} is under the non-linear transform {parent.GetName()!r}: "
                            "harden it first (Data module: right-click the volume, Harden transform)")
    matrix = _vtk_matrix(np.eye(4))
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(parent, None, matrix)
    return _numpy_matrix(matrix)


def image_from_volume_node(node) -> sitk.Image:
    """A SimpleITK image (LPS geometry) holding a copy of a volume node's voxels, where the scene
    shows them: the node's parent transforms are applied to its geometry. A transform that shears or
    scales the grid is refused (a SimpleITK grid is orthogonal), with how to resample it instead."""
    import slicer

    if node is None or node.GetImageData() is None:
        raise OsteoSegError(f"volume node {node.GetName() if node else None!r} has no image data")
    image = sitk.GetImageFromArray(np.array(slicer.util.arrayFromVolume(node)))
    vtk_matrix = _vtk_matrix(np.eye(4))
    node.GetIJKToRASMatrix(vtk_matrix)
    ijk_to_lps = LPS_TO_RAS @ (world_matrix(node) @ _numpy_matrix(vtk_matrix))[:3, :]
    spacing = np.linalg.norm(ijk_to_lps[:, :3], axis=0)
    direction = ijk_to_lps[:, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise OsteoSegError(f"volume {node.GetName()!r} is under a transform that shears or scales it: resample "
                            "it first (Resample Scalar/Vector/DWI Volume, or harden the transform)")
    image.SetSpacing(spacing.tolist())
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin(ijk_to_lps[:, 3].tolist())
    return image


def place_under_same_transform(node, reference_node) -> None:
    """Put `node` under the reference's parent transform: a node made on the reference's voxel grid
    (e.g. a segmentation of a CT that was moved by a transform) then shows where the reference does."""
    node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())


def read_volume_node(context: MrmlContext, path: str | os.PathLike, name: str | None = None, *,
                     case: str | None = None, labelmap: bool = False):
    """Read an image file (NIfTI, NRRD, MHA, ...) into a new volume node through Slicer's own
    storage node; on failure remove what was added and raise OsteoSegError naming the file."""
    path = Path(path).resolve()
    if not path.is_file():
        raise OsteoSegError("file not found", case=case, path=path)
    node_class = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = context.scene.AddNewNodeByClass(node_class, name or path.name.split(".")[0])
    storage = context.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node) or node.GetImageData() is None:
        context.scene.RemoveNode(node)
        context.scene.RemoveNode(storage)
        raise OsteoSegError("Slicer could not read this image file", case=case, path=path)
    node.CreateDefaultDisplayNodes()
    return node


def apply_window_level(node, window: float, level: float) -> None:
    """Fix a volume's display window/level (e.g. the CT bone window W1500/L350)."""
    display = node.GetDisplayNode()
    display.SetAutoWindowLevel(0)
    display.SetWindowLevel(window, level)


def apply_color_table(context: MrmlContext, node, color_node_id: str) -> None:
    """Show a volume with one of Slicer's colour tables (e.g. vtkMRMLPETProceduralColorNodePET-Heat)."""
    if context.scene.GetNodeByID(color_node_id) is None:
        raise OsteoSegError(f"colour table {color_node_id} is not in the scene")
    node.GetDisplayNode().SetAndObserveColorNodeID(color_node_id)


# ---------------------------------------------------------------------------------------------
# Segmentations


@dataclass
class SegmentSpec:
    """One segment to create: a name, an RGB colour in [0, 1], a binary mask on the reference grid
    (array in K, J, I order), optional terminology entry string and extra tags."""

    name: str
    color: tuple[float, float, float]
    mask: np.ndarray
    terminology: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def empty_labelmap_on(reference_node):
    """A vtkOrientedImageData on the volume's grid, scalars not yet allocated. Built here rather than
    with the Segmentations logic's CreateOrientedImageDataFromVolumeNode, whose Python wrapping never
    releases the image it returns (measured: one full-size labelmap leaked per segment per call)."""
    import slicer
    import vtk

    labelmap = slicer.vtkOrientedImageData()
    ijk_to_ras = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(ijk_to_ras)
    labelmap.SetImageToWorldMatrix(ijk_to_ras)
    labelmap.SetExtent(reference_node.GetImageData().GetExtent())
    return labelmap


def segmentation_from_masks(context: MrmlContext, reference_node, segments: list[SegmentSpec], name: str):
    """Add a segmentation node whose segments are the given masks, on the reference volume's grid
    (its reference image geometry is set, so the result can be edited and exported), shown where the
    reference is shown (under the same parent transform)."""
    import slicer
    from vtk.util import numpy_support

    shape = tuple(reversed(reference_node.GetImageData().GetDimensions()))
    for spec in segments:
        if spec.mask.shape != shape:
            raise OsteoSegError(f"segment {spec.name!r} has shape {spec.mask.shape}, "
                                f"the reference volume {reference_node.GetName()!r} has {shape}")
    node = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    # The masks lie on the reference's voxel grid, so the segmentation goes under the reference's parent
    # transform; first, because Slicer folds the transform between the two parents into the geometry.
    place_under_same_transform(node, reference_node)
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    segmentation = node.GetSegmentation()
    logic_class = slicer.vtkSlicerSegmentationsModuleLogic
    for spec in segments:
        segment_id = segmentation.AddEmptySegment(spec.name, spec.name, list(spec.color))
        if not segment_id:
            context.scene.RemoveNode(node)
            raise OsteoSegError("Slicer could not create a segment: the Segmentations logic has no scene")
        labelmap = empty_labelmap_on(reference_node)
        labelmap.AllocateScalars(numpy_support.get_vtk_array_type(np.dtype(np.uint8)), 1)
        numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = (spec.mask > 0).ravel()
        logic_class.SetBinaryLabelmapToSegment(labelmap, node, segment_id, logic_class.MODE_REPLACE)
        segment = segmentation.GetSegment(segment_id)
        if spec.terminology:
            segment.SetTag(segment.GetTerminologyEntryTagName(), spec.terminology)
        for key, value in spec.tags.items():
            segment.SetTag(key, value)
    return node


def masks_from_segmentation(context: MrmlContext, segmentation_node, reference_node) -> dict[str, np.ndarray]:
    """Each segment's binary mask (uint8, K, J, I) on the reference volume's grid, by segment name."""
    import slicer
    import vtk

    masks = {}
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        labelmap = context.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__export__")
        try:
            if not context.segmentations_logic.ExportSegmentsToLabelmapNode(
                    segmentation_node, ids, labelmap, reference_node):
                raise OsteoSegError(f"Slicer could not export segment {segment_id!r}")
            masks[segmentation.GetSegment(segment_id).GetName()] = (
                np.array(slicer.util.arrayFromVolume(labelmap)) > 0).astype(np.uint8)
        finally:
            context.scene.RemoveNode(labelmap)
    return masks


def save_segmentation(context: MrmlContext, segmentation_node, path: str | os.PathLike) -> Path:
    """Write a segmentation node as `.seg.nrrd` atomically, through Slicer's storage node."""
    path = Path(path).resolve()
    if not path.name.endswith(".seg.nrrd"):
        raise OsteoSegError("a segmentation file must end in .seg.nrrd", path=path)
    storage = context.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")

    def readable(written):   # ITK's NRRD reader refuses a file cut short (a full disk)
        try:
            sitk.ReadImage(str(written))
        except RuntimeError:
            raise OsteoSegError("writing failed: the segmentation file on disk is incomplete (is the disk full?)",
                                path=path) from None

    try:
        with atomic_path(path, verify=readable) as temporary:
            storage.SetFileName(str(temporary))
            if not storage.WriteData(segmentation_node):
                raise OsteoSegError("Slicer could not write the segmentation", path=path)
    finally:
        context.scene.RemoveNode(storage)
    return path


UNREADABLE_SEGMENTATION = "Slicer could not read this segmentation file (damaged, cut short or not a segmentation)"


def load_segmentation(context: MrmlContext, path: str | os.PathLike, name: str | None = None):
    """Read a `.seg.nrrd` file into a new segmentation node."""
    path = Path(path).resolve()
    if not path.is_file():
        raise OsteoSegError("file not found", path=path)
    try:   # Slicer's reader ends the process on a file cut short (an ITK exception it does not catch)
        sitk.ReadImage(str(path))
    except RuntimeError:
        raise OsteoSegError(UNREADABLE_SEGMENTATION, path=path) from None
    node = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or path.name.split(".")[0])
    storage = context.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        context.scene.RemoveNode(node)
        context.scene.RemoveNode(storage)
        raise OsteoSegError(UNREADABLE_SEGMENTATION, path=path)
    node.CreateDefaultDisplayNodes()
    return node


def save_scene_bundle(context: MrmlContext, path: str | os.PathLike) -> Path:
    """Write the whole scene with its data as a Slicer `.mrb` bundle, atomically."""
    path = Path(path).resolve()
    if path.suffix != ".mrb":
        raise OsteoSegError("a scene bundle must end in .mrb", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # WriteToMRB names its bundle folder after the file, so the temporary file keeps the final
    # name inside a private temporary folder, then is renamed into place.
    with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as folder:
        temporary = Path(folder) / path.name
        if not context.scene.WriteToMRB(str(temporary)):
            raise OsteoSegError("Slicer could not write the scene bundle", path=path)
        os.replace(temporary, path)
    return path


@contextlib.contextmanager
def temporary_nodes(context: MrmlContext):
    """Every node added to the scene inside the block is removed at its end: for writers that build
    nodes only to save them, so that a long-lived scene (a batch of cases) does not keep every case."""
    before = {context.scene.GetNthNode(i).GetID() for i in range(context.scene.GetNumberOfNodes())}
    try:
        yield
    finally:
        added = [context.scene.GetNthNode(i) for i in range(context.scene.GetNumberOfNodes())]
        for node in added:
            if node.GetID() not in before:
                context.scene.RemoveNode(node)


def unique_node_name(context: MrmlContext, base: str) -> str:
    """`base`, or `base (2)`, `base (3)`, ... : a name no node in the scene has yet."""
    name, number = base, 1
    while context.scene.GetFirstNodeByName(name) is not None:
        number += 1
        name = f"{base} ({number})"
    return name


def _hierarchy_item(hierarchy, node) -> int:
    """The node's subject hierarchy item. Inside Slicer a plugin creates one for every data node;
    a bare scene has no such plugin, so it is created here when missing."""
    item = hierarchy.GetItemByDataNode(node)
    return item if item else hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)


def place_beside(context: MrmlContext, node, reference_node) -> None:
    """Put `node` in the subject hierarchy under the same parent (the study) as `reference_node`."""
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(context.scene)
    parent = hierarchy.GetItemParent(_hierarchy_item(hierarchy, reference_node))
    hierarchy.SetItemParent(_hierarchy_item(hierarchy, node), parent)


def subject_hierarchy_parent(context: MrmlContext, node) -> int:
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(context.scene)
    return hierarchy.GetItemParent(_hierarchy_item(hierarchy, node))


def table_node_from_rows(context: MrmlContext, rows: list[dict], name: str):
    """A table node with one column per key of the rows (numbers as double columns)."""
    import vtk

    node = context.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    keys = list(rows[0]) if rows else []
    for key in keys:
        column = vtk.vtkStringArray() if isinstance(rows[0][key], str) else vtk.vtkDoubleArray()
        column.SetName(key)
        table.AddColumn(column)
    table.SetNumberOfRows(len(rows))
    for r, row in enumerate(rows):
        for c, key in enumerate(keys):
            table.SetValue(r, c, vtk.vtkVariant(row[key]))
    node.Modified()
    return node


def transform_node_from_ct_to_pet(context: MrmlContext, transform: sitk.Transform, name: str):
    """A linear transform node that moves the PET onto the CT. SimpleITK's registration result maps CT
    points to PET points in LPS; Slicer's "to parent" transform of the PET is its inverse, in RAS."""
    affine = _affine_lps(transform)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])   # LPS <-> RAS, homogeneous
    to_parent = flip @ np.linalg.inv(affine) @ flip
    node = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformToParent(_vtk_matrix(to_parent))
    return node


def _affine_lps(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix of a linear SimpleITK transform: y = M (x - c) + c + t."""
    linear = sitk.AffineTransform(3)
    linear.SetMatrix(transform.GetMatrix())
    linear.SetCenter(transform.GetCenter())
    linear.SetTranslation(transform.GetTranslation())
    matrix = np.array(linear.GetMatrix()).reshape(3, 3)
    centre, translation = np.array(linear.GetCenter()), np.array(linear.GetTranslation())
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = centre + translation - matrix @ centre
    return affine


def transform_node_matrix(node) -> np.ndarray:
    """A linear transform node's matrix to parent (RAS), as numpy."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(matrix)
    return _numpy_matrix(matrix)
