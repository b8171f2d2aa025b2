"""The headless Slicer bridge, tested against slicer-core's real MRML (no mocks)."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.scene import mrml


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


def test_transform_node_moves_pet_points_onto_ct_points(context):
    transform = sitk.Euler3DTransform((10.0, -5.0, 30.0), 0.05, -0.1, 0.2, (4.0, -3.0, 5.0))
    node = mrml.transform_node_from_ct_to_pet(context, transform, "t")
    to_parent = mrml.transform_node_matrix(node)
    ct_point_lps = np.array([12.0, 40.0, -7.0])
    pet_point_lps = np.array(transform.TransformPoint(tuple(ct_point_lps)))
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    moved = to_parent @ np.append(pet_point_lps * lps_to_ras, 1.0)
    np.testing.assert_allclose(moved[:3], ct_point_lps * lps_to_ras, atol=1e-9)


def test_a_parent_transform_moves_the_image_where_the_scene_shows_it(context):
    """A volume placed by a (rigid) parent transform is read where its voxels appear in the views: each
    voxel's physical point is the transform applied to where the node's own geometry puts it."""
    image = oblique_image()
    node = mrml.volume_node_from_image(context, image, "PET")
    transform = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "by hand")
    to_parent = sitk.Euler3DTransform((0, 0, 0), 0.1, -0.2, 0.3, (0, 0, 0)).GetMatrix()
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(to_parent).reshape(3, 3)
    matrix[:3, 3] = [12.0, -7.0, 30.0]                              # mm, RAS
    transform.SetMatrixTransformToParent(mrml._vtk_matrix(matrix))
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = mrml.image_from_volume_node(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(moved), sitk.GetArrayFromImage(image))
    for index in [(0, 0, 0), (29, 3, 7), (5, 19, 9)]:
        local_ras = mrml.LPS_TO_RAS @ np.array(image.TransformIndexToPhysicalPoint(index))
        expected_ras = matrix[:3, :3] @ local_ras + matrix[:3, 3]
        np.testing.assert_allclose(moved.TransformIndexToPhysicalPoint(index), mrml.LPS_TO_RAS @ expected_ras,
                                   atol=1e-6)
    node.SetAndObserveTransformNodeID(None)                          # without it, the node's own geometry
    np.testing.assert_allclose(mrml.image_from_volume_node(node).GetOrigin(), image.GetOrigin(), atol=1e-9)


def test_transforms_a_grid_cannot_carry_are_refused_with_what_to_do(context):
    node = mrml.volume_node_from_image(context, oblique_image(), "PET")
    shear = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shear")
    matrix = np.eye(4)
    matrix[0, 1] = 0.3
    shear.SetMatrixTransformToParent(mrml._vtk_matrix(matrix))
    node.SetAndObserveTransformNodeID(shear.GetID())
    with pytest.raises(OsteoSegError, match="shears or scales it: resample it first"):
        mrml.image_from_volume_node(node)
    grid = context.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(OsteoSegError, match="non-linear transform 'warp': harden it first"):
        mrml.image_from_volume_node(node)


def test_a_segmentation_of_a_transformed_volume_is_shown_where_the_volume_is(context):
    """Under the volume's parent transform, with the volume's own grid as its editing geometry: set in
    the other order, Slicer folds the transform into that geometry a second time."""
    import slicer

    image = oblique_image()
    a, _ = overlapping_masks((10, 20, 30))
    plain = mrml.volume_node_from_image(context, image, "plain CT")
    moved = mrml.volume_node_from_image(context, image, "moved CT")
    shift = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = np.eye(4)
    matrix[:3, 3] = [25.0, -10.0, 40.0]
    shift.SetMatrixTransformToParent(mrml._vtk_matrix(matrix))
    moved.SetAndObserveTransformNodeID(shift.GetID())
    geometry = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    nodes = [mrml.segmentation_from_masks(context, ct, [mrml.SegmentSpec("A", (1, 0, 0), a)], ct.GetName())
             for ct in (plain, moved)]
    assert nodes[1].GetTransformNodeID() == shift.GetID() and nodes[0].GetTransformNodeID() is None
    assert (nodes[1].GetSegmentation().GetConversionParameter(geometry)
            == nodes[0].GetSegmentation().GetConversionParameter(geometry))
    np.testing.assert_array_equal(mrml.masks_from_segmentation(context, nodes[1], moved)["A"], a)


def test_a_volume_is_named_after_its_file_and_keeps_its_storage(context, tmp_path):
    sitk.WriteImage(oblique_image(), str(tmp_path / "pet.scan.nii.gz"))
    node = mrml.read_volume_node(context, tmp_path / "pet.scan.nii.gz")
    assert node.GetName() == "pet" and node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA(
        "vtkMRMLLabelMapVolumeNode")
    assert node.GetStorageNode().GetFileName() == str(tmp_path / "pet.scan.nii.gz")
    label = mrml.read_volume_node(context, tmp_path / "pet.scan.nii.gz", "mask", labelmap=True)
    assert label.GetName() == "mask" and label.IsA("vtkMRMLLabelMapVolumeNode")
    with pytest.raises(OsteoSegError) as missing:
        mrml.read_volume_node(context, tmp_path / "none.nii.gz", case="P3")
    assert (missing.value.case, missing.value.path, missing.value.problem) == (
        "P3", str(tmp_path / "none.nii.gz"), "file not found")


def test_an_unknown_colour_table_is_named(context):
    node = mrml.volume_node_from_image(context, oblique_image(), "PET")
    with pytest.raises(OsteoSegError, match="^colour table vtkMRMLColorTableNodeNowhere is not in the scene$"):
        mrml.apply_color_table(context, node, "vtkMRMLColorTableNodeNowhere")


def test_exporting_masks_leaves_no_labelmap_behind(context):
    ct = mrml.volume_node_from_image(context, oblique_image(), "CT")
    a, b = overlapping_masks((10, 20, 30))
    node = mrml.segmentation_from_masks(context, ct, [mrml.SegmentSpec("A", (1, 0, 0), a),
                                                      mrml.SegmentSpec("B", (0, 0, 1), b)], "seg")
    labelmaps = context.scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode")
    masks = mrml.masks_from_segmentation(context, node, ct)
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == labelmaps
    assert {name: mask.dtype for name, mask in masks.items()} == {"A": np.uint8, "B": np.uint8}
    assert context.scene.GetFirstNodeByName("__export__") is None


def test_segmentation_files_that_cannot_be_loaded_are_named_and_add_nothing(context, tmp_path):
    with pytest.raises(OsteoSegError) as missing:
        mrml.load_segmentation(context, tmp_path / "none.seg.nrrd")
    assert (missing.value.path, missing.value.problem) == (str(tmp_path / "none.seg.nrrd"), "file not found")
    ct = mrml.volume_node_from_image(context, oblique_image(), "CT")
    a, _ = overlapping_masks((10, 20, 30))
    saved = mrml.save_segmentation(context, mrml.segmentation_from_masks(
        context, ct, [mrml.SegmentSpec("A", (1, 0, 0), a)], "x"), tmp_path / "case7.seg.nrrd")
    (tmp_path / "text.seg.nrrd").write_text("not a segmentation")
    data = saved.read_bytes()
    (tmp_path / "cut.seg.nrrd").write_bytes(data[:len(data) // 2])    # Slicer's reader would end the process
    # ITK reads a 4D NRRD; Slicer's segmentation reader does not (the nodes made for it are removed again)
    four_d = sitk.GetImageFromArray(np.ones((2, 3, 4, 5), np.uint8), isVector=False)
    sitk.WriteImage(four_d, str(tmp_path / "4d.seg.nrrd"))
    count = context.scene.GetNumberOfNodes()
    for name in ("text.seg.nrrd", "cut.seg.nrrd", "4d.seg.nrrd"):
        with pytest.raises(OsteoSegError) as broken:
            mrml.load_segmentation(context, tmp_path / name)
        assert (broken.value.path, broken.value.problem) == (str(tmp_path / name), mrml.UNREADABLE_SEGMENTATION)
    assert context.scene.GetNumberOfNodes() == count
    loaded = mrml.load_segmentation(context, saved)
    assert loaded.GetName() == "case7" and loaded.GetStorageNode().GetFileName() == str(saved)
    assert mrml.load_segmentation(context, saved, "mine").GetName() == "mine"


class FailingScene:
    """The scene, except that writing a bundle fails (as on a full disk); records where it wrote."""

    def __init__(self, scene):
        self.scene, self.written = scene, []

    def WriteToMRB(self, path):   # noqa: N802 (Slicer's name)
        self.written.append(path)
        return False


def test_scene_bundles_are_named_mrb_staged_beside_the_target_and_failures_named(context, tmp_path):
    with pytest.raises(OsteoSegError) as wrong:
        mrml.save_scene_bundle(context, tmp_path / "scene.zip")
    assert (wrong.value.path, wrong.value.problem) == (str(tmp_path / "scene.zip"), "a scene bundle must end in .mrb")
    nested = mrml.save_scene_bundle(context, tmp_path / "new" / "deeper" / "scene.mrb")
    assert nested.is_file() and [p.name for p in nested.parent.iterdir()] == ["scene.mrb"]
    failing = FailingScene(context.scene)
    with pytest.raises(OsteoSegError) as failed:
        mrml.save_scene_bundle(replace(context, scene=failing), tmp_path / "out" / "case.mrb")
    assert (failed.value.path, failed.value.problem) == (str(tmp_path / "out" / "case.mrb"),
                                                         "Slicer could not write the scene bundle")
    staged = Path(failing.written[0])
    assert staged.name == "case.mrb" and staged.parent.parent == tmp_path / "out"   # same file system as the target
    assert staged.parent.name.startswith(".case.") and list((tmp_path / "out").iterdir()) == []


def test_a_transform_node_has_the_name_given(context):
    node = mrml.transform_node_from_ct_to_pet(context, sitk.Euler3DTransform(), "PET to CT (rigid)")
    assert node.GetName() == "PET to CT (rigid)" and node.IsA("vtkMRMLLinearTransformNode")


def test_a_table_node_has_a_column_per_key_text_or_number(context):
    node = mrml.table_node_from_rows(context, [{"case": "P1", "dice": 0.75, "voxels": 12}], "scores")
    table = node.GetTable()
    assert node.GetName() == "scores" and (table.GetNumberOfRows(), table.GetNumberOfColumns()) == (1, 3)
    assert [table.GetColumn(c).GetName() for c in range(3)] == ["case", "dice", "voxels"]
    assert [table.GetColumn(c).GetClassName() for c in range(3)] == ["vtkStringArray", "vtkDoubleArray",
                                                                     "vtkDoubleArray"]
    assert (table.GetValue(0, 0).ToString(), table.GetValue(0, 1).ToDouble(), table.GetValue(0, 2).ToDouble()) == (
        "P1", 0.75, 12.0)
    empty = mrml.table_node_from_rows(context, [], "nothing").GetTable()
    assert (empty.GetNumberOfRows(), empty.GetNumberOfColumns()) == (0, 0)


def test_saving_a_segmentation_names_the_file_and_what_is_wrong(context, tmp_path, monkeypatch):
    ct = mrml.volume_node_from_image(context, oblique_image(), "CT")
    a, _ = overlapping_masks((10, 20, 30))
    node = mrml.segmentation_from_masks(context, ct, [mrml.SegmentSpec("A", (1, 0, 0), a)], "x")
    with pytest.raises(OsteoSegError) as wrong_name:
        mrml.save_segmentation(context, node, tmp_path / "result.nrrd")
    assert str(wrong_name.value) == f"{tmp_path / 'result.nrrd'}: a segmentation file must end in .seg.nrrd"

    def cut_short(path):
        raise RuntimeError("ITK ERROR: NrrdImageIO: read failed")

    monkeypatch.setattr(mrml.sitk, "ReadImage", cut_short)
    count = context.scene.GetNumberOfNodes()
    with pytest.raises(OsteoSegError) as incomplete:
        mrml.save_segmentation(context, node, tmp_path / "result.seg.nrrd")
    assert str(incomplete.value) == (f"{tmp_path / 'result.seg.nrrd'}: writing failed: the segmentation file on "
                                     "disk is incomplete (is the disk full?)")
    assert list(tmp_path.iterdir()) == [] and context.scene.GetNumberOfNodes() == count


class RefusingExport:
    """The Segmentations logic, except that exporting a segment fails."""

    def ExportSegmentsToLabelmapNode(self, *arguments):   # noqa: N802 (Slicer's name)
        return False


def test_a_segment_slicer_cannot_export_is_named_and_its_labelmap_removed(context):
    ct = mrml.volume_node_from_image(context, oblique_image(), "CT")
    a, _ = overlapping_masks((10, 20, 30))
    node = mrml.segmentation_from_masks(context, ct, [mrml.SegmentSpec("Model A", (1, 0, 0), a)], "x")
    segment_id = node.GetSegmentation().GetNthSegmentID(0)
    count = context.scene.GetNumberOfNodes()
    with pytest.raises(OsteoSegError) as refused:
        mrml.masks_from_segmentation(replace(context, segmentations_logic=RefusingExport()), node, ct)
    assert str(refused.value) == f"Slicer could not export segment {segment_id!r}"
    assert context.scene.GetNumberOfNodes() == count
