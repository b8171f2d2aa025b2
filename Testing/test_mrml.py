"""The headless Slicer bridge, tested against slicer-core's real MRML (no mocks)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from OsteoSegLib import mrml
from OsteoSegLib.errors import OsteoSegError


def oblique_image(shape=(30, 20, 10), spacing=(0.7, 1.1, 2.5), origin=(-12.5, 40.0, 7.25), pixel=np.int16):
    """An image with an oblique, non-axis-aligned direction and anisotropic spacing."""
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(-1000, 2000, tuple(reversed(shape))).astype(pixel))
    rotation = sitk.VersorTransform((0.3, -0.2, 0.9), 0.4).GetMatrix()
    image.SetDirection(rotation)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def ijk_to_ras(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def assert_same_image(a: sitk.Image, b: sitk.Image, tolerance=1e-6):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


def test_headless_context_registers_logics(context):
    assert context.scene.GetNodeByID("vtkMRMLPETProceduralColorNodePET-Heat") is not None
    node = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    # Without the Segmentations logic's scene, AddEmptySegment returns '' (a measured pitfall).
    assert node.GetSegmentation().AddEmptySegment("probe") != ""


def test_image_volume_round_trip_is_exact_for_oblique_geometry(context):
    image = oblique_image()
    node = mrml.volume_node_from_image(context, image, "CT")
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.block([
        [np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing()),
         np.array(image.GetOrigin())[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])
    np.testing.assert_allclose(ijk_to_ras(node), expected, atol=1e-9)
    assert_same_image(mrml.image_from_volume_node(node), image, tolerance=1e-9)


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_read_volume_node_equals_simpleitk(context, tmp_path, extension):
    image = oblique_image()
    path = tmp_path / f"ct{extension}"
    sitk.WriteImage(image, str(path))
    node = mrml.read_volume_node(context, path, "CT")
    assert_same_image(mrml.image_from_volume_node(node), sitk.ReadImage(str(path)), tolerance=1e-5)


def test_read_volume_node_errors_name_the_file_and_add_nothing(context, tmp_path):
    with pytest.raises(OsteoSegError, match="missing.nii.gz: file not found"):
        mrml.read_volume_node(context, tmp_path / "missing.nii.gz", case="P7")
    corrupt = tmp_path / "corrupt.nrrd"
    corrupt.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 10 10 10\nencoding: raw\n\n\x00\x01")
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(OsteoSegError, match=r"case P7: .*corrupt\.nrrd: Slicer could not read"):
        mrml.read_volume_node(context, corrupt, case="P7")
    assert context.scene.GetNumberOfNodes() == before


def overlapping_masks(shape):
    a = np.zeros(shape, np.uint8)
    a[2:8, 4:16, 5:25] = 1
    b = np.zeros(shape, np.uint8)
    b[4:6, 8:12, 10:20] = 1          # inside A: segments overlap
    return a, b


def test_segmentation_from_masks_keeps_names_colours_geometry_and_voxels(context, tmp_path):
    ct = mrml.volume_node_from_image(context, oblique_image(), "CT")
    a, b = overlapping_masks((10, 20, 30))
    specs = [mrml.SegmentSpec("Model A", (1.0, 0.0, 0.0), a, tags={"OsteoSeg.source": "A"}),
             mrml.SegmentSpec("Model B", (0.0, 0.0, 1.0), b)]
    node = mrml.segmentation_from_masks(context, ct, specs, "CT osteomyelitis")
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(2)] == ["Model A", "Model B"]
    tag = vtk.mutable("")
    assert segmentation.GetNthSegment(0).GetTag("OsteoSeg.source", tag) and str(tag) == "A"
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()).GetID() == ct.GetID()
    masks = mrml.masks_from_segmentation(context, node, ct)
    np.testing.assert_array_equal(masks["Model A"], a)
    np.testing.assert_array_equal(masks["Model B"], b)

    path = mrml.save_segmentation(context, node, tmp_path / "result.seg.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.seg.nrrd"]   # no temporary left
    reloaded = mrml.load_segmentation(context, path)
    again = mrml.masks_from_segmentation(context, reloaded, ct)
    np.testing.assert_array_equal(again["Model A"], a)
    np.testing.assert_array_equal(again["Model B"], b)
    colours = [reloaded.GetSegmentation().GetNthSegment(i).GetColor() for i in range(2)]
    np.testing.assert_allclose(colours, [(1, 0, 0), (0, 0, 1)])


def test_segment_labelmaps_are_on_the_reference_grid_and_released(context):
    import slicer

    reference = mrml.volume_node_from_image(context, oblique_image(), "reference")
    ours = mrml.empty_labelmap_on(reference)
    slicers = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(reference)
    assert ours.GetExtent() == slicers.GetExtent()
    matrices = [vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()]
    ours.GetImageToWorldMatrix(matrices[0])
    slicers.GetImageToWorldMatrix(matrices[1])
    assert all(matrices[0].GetElement(r, c) == matrices[1].GetElement(r, c) for r in range(4) for c in range(4))
    # Only Python holds ours, so it is freed with the last reference (the logic's is held twice: leaked).
    assert ours.GetReferenceCount() == 1


def test_temporary_nodes_are_removed_even_after_an_error(context):
    kept = context.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "kept")
    count = context.scene.GetNumberOfNodes()
    with pytest.raises(RuntimeError), mrml.temporary_nodes(context):
        mrml.volume_node_from_image(context, oblique_image(), "temporary")
        assert context.scene.GetNumberOfNodes() > count
        raise RuntimeError("failed while writing")
    assert context.scene.GetNumberOfNodes() == count
    assert context.scene.GetNodeByID(kept.GetID()) is kept


def test_segmentation_refuses_masks_of_the_wrong_shape(context):
    ct = mrml.volume_node_from_image(context, oblique_image(), "CT")
    with pytest.raises(OsteoSegError, match="shape"):
        mrml.segmentation_from_masks(context, ct, [mrml.SegmentSpec("A", (1, 0, 0), np.zeros((3, 3, 3)))], "x")


def test_scene_bundle_is_written_atomically(context, tmp_path):
    mrml.volume_node_from_image(context, oblique_image(), "CT")
    path = mrml.save_scene_bundle(context, tmp_path / "scene.mrb")
    assert [p.name for p in tmp_path.iterdir()] == ["scene.mrb"]
    assert any(name.endswith(".mrml") for name in zipfile.ZipFile(path).namelist())
