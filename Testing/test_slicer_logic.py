"""The logic behind the OsteoSeg module's buttons, headless against slicer-core: Align, Segment (nodes,
names, colours, terminology, geometry, provenance, subject hierarchy, statistics), cancel, CUDA
out-of-memory fallback, the worker process, and the dependency check."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from OsteoSegLib import dependencies, mrml
from OsteoSegLib.align_scene import align_in_scene
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference import predict_with_fallback
from OsteoSegLib.models import save_model_package
from OsteoSegLib.network import Architecture, build_network
from OsteoSegLib.preprocess import PreprocessSettings
from OsteoSegLib.progress import CancelledError, Progress
from OsteoSegLib.segment import segment_images
from OsteoSegLib.segment_job import SegmentationJob
from OsteoSegLib.segment_output import PROVENANCE_TAG
from OsteoSegLib.segment_scene import add_segmentation_nodes, load_checked_model_set, segment_in_scene
from OsteoSegLib.segment_worker import load_result
from OsteoSegLib.terminology import finding_tag
from test_evaluation import oblique_ct_with_mask


def write_package(folder, source, inputs=("ct", "pet"), size=48, seed=0):
    torch.manual_seed(seed)
    network = build_network(Architecture(len(inputs), 4))
    card = {"name": f"model-{source}", "label_source": source, "inputs": list(inputs), "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=size).as_dict(),
            "architecture": Architecture(len(inputs), 4).as_dict(),
            "versions": {"osteoseg": "test"}}
    return save_model_package(folder / f"model-{source}", network.state_dict(), card)


@pytest.fixture
def model_set(tmp_path):
    for source in "AB":
        write_package(tmp_path / "set", source)
    return tmp_path / "set"


def ct_and_pet(context):
    """An oblique CT (in the test study of the subject hierarchy) and a PET on its own grid."""
    ct, mask = oblique_ct_with_mask()
    ct = sitk.Cast(ct, sitk.sitkFloat32) - 300.0 * (1 - sitk.Cast(ct > 0, sitk.sitkFloat32))
    pet = sitk.Resample(sitk.Cast(ct > 0, sitk.sitkFloat32) * 6.0 + 1.0, ct)
    ct_node = mrml.volume_node_from_image(context, ct, "patient CT")
    pet_node = mrml.volume_node_from_image(context, pet, "patient PET")
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(context.scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient"), "study")
    hierarchy.CreateItem(study, ct_node)
    return ct_node, pet_node, study


def test_segment_adds_one_complete_segmentation_node_beside_the_ct(context, model_set):
    ct_node, pet_node, study = ct_and_pet(context)
    added = segment_in_scene(context, ct_node, pet_node, model_set, device="cpu", probabilities=True)
    node = added.segmentation
    assert node.GetName() == "patient CT osteomyelitis"
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"]
    first = segmentation.GetNthSegment(0)
    assert first.GetColor() == pytest.approx((0.894, 0.102, 0.110), abs=1e-3)
    import vtk

    tag = vtk.mutable("")
    first.GetTag(first.GetTerminologyEntryTagName(), tag)
    assert str(tag) == finding_tag("A") and "SCT^60168000^Osteomyelitis" in str(tag)
    # Reference geometry is the (oblique) CT's.
    reference = mrml.image_from_volume_node(ct_node)
    masks = mrml.masks_from_segmentation(context, node, ct_node)
    assert masks["Model A (high sensitivity)"].shape == sitk.GetArrayViewFromImage(reference).shape
    provenance = json.loads(node.GetAttribute(PROVENANCE_TAG))
    assert [m["name"] for m in provenance["models"]] == ["model-A", "model-B"]
    assert len(provenance["models"][0]["weights_sha256"]) == 64 and provenance["device"] == "cpu"
    assert float(node.GetAttribute("OsteoSeg.threshold")) == 0.5
    assert mrml.subject_hierarchy_parent(context, node) == study
    assert len(added.probabilities) == 2 and mrml.subject_hierarchy_parent(context, added.probabilities[0]) == study
    assert added.statistics.GetTable().GetNumberOfRows() == 3
    again = segment_in_scene(context, ct_node, pet_node, model_set, device="cpu")
    assert again.segmentation.GetName() == "patient CT osteomyelitis (2)" and again.segmentation is not node


def test_statistics_table_matches_a_hand_computation(context, model_set):
    ct_node, pet_node, _ = ct_and_pet(context)
    ct = mrml.image_from_volume_node(ct_node)
    models = load_checked_model_set(model_set)
    result = segment_images(ct, mrml.image_from_volume_node(pet_node), models, device="cpu")
    shape = sitk.GetArrayViewFromImage(ct).shape
    a, b = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    a[1, 2:4, 2:5] = 1                                   # 6 voxels
    b[1, 2, 2] = 1                                       # 1 voxel
    result.masks = {"model-A": a, "model-B": b}
    pet = np.full(shape, 2.0, np.float32)
    pet[1, 2, 2] = 10.0
    table = add_segmentation_nodes(context, ct_node, result, pet).statistics.GetTable()
    voxel_ml = 0.9 * 1.3 * 3.0 / 1000
    rows = {table.GetValue(r, 0).ToString(): [table.GetValue(r, c).ToDouble() for c in range(1, 5)]
            for r in range(table.GetNumberOfRows())}
    assert rows["Model A (high sensitivity)"] == pytest.approx([6 * voxel_ml, 10.0, 20 / 6, 20 / 6 * 6 * voxel_ml])
    assert rows["Model B (high specificity)"] == pytest.approx([voxel_ml, 10.0, 10.0, 10.0 * voxel_ml])
    assert rows["A only (disagreement)"][:3] == pytest.approx([5 * voxel_ml, 2.0, 2.0])


class CancelAt(Progress):
    def __init__(self):
        self.calls = 0

    def cancelled(self):
        self.calls += 1
        return self.calls > 1


def test_cancel_leaves_the_scene_as_it_was(context, model_set):
    ct_node, pet_node, _ = ct_and_pet(context)
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(CancelledError):
        # batch size 2 on 7 slices: cancelled after the first batch
        segment_images(mrml.image_from_volume_node(ct_node), mrml.image_from_volume_node(pet_node),
                       load_checked_model_set(model_set),
                       device="cpu", batch_size=2, progress=CancelAt())
    with pytest.raises(CancelledError):
        segment_in_scene(context, ct_node, pet_node, model_set, device="cpu", progress=CancelAt())
    assert context.scene.GetNumberOfNodes() == before


def test_bad_inputs_add_nothing_to_the_scene(context, model_set, tmp_path):
    ct_node, pet_node, _ = ct_and_pet(context)
    far = mrml.image_from_volume_node(pet_node)
    far.SetOrigin((5000.0, 0.0, 0.0))
    far_node = mrml.volume_node_from_image(context, far, "far PET")
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(OsteoSegError, match="select a CT volume and a PET volume"):
        segment_in_scene(context, ct_node, None, model_set)
    with pytest.raises(OsteoSegError, match="does not look like a CT"):
        segment_in_scene(context, pet_node, pet_node, model_set)
    with pytest.raises(OsteoSegError, match="do not overlap"):
        segment_in_scene(context, ct_node, far_node, model_set)
    only_a = tmp_path / "only-a"
    write_package(only_a, "A")
    with pytest.raises(OsteoSegError, match="no Model B"):
        segment_in_scene(context, ct_node, pet_node, only_a)
    weights = model_set / "model-B" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"0000")
    with pytest.raises(OsteoSegError, match="do not match the model card"):
        segment_in_scene(context, ct_node, pet_node, model_set)
    assert context.scene.GetNumberOfNodes() == before


class OutOfMemoryAbove(torch.nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than `limit` slices."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return x[:, :1] - 0.5


class Messages(Progress):
    def __init__(self):
        self.texts = []

    def message(self, text):
        self.texts.append(text)


def test_out_of_memory_retries_with_smaller_batches():
    messages = Messages()
    channels = np.random.default_rng(0).random((10, 1, 16, 16)).astype(np.float32)
    (probability,), device = predict_with_fallback([(OutOfMemoryAbove(2), [0])], channels, size=16,
                                                   device=torch.device("cpu"), batch_size=8, dtype=None,
                                                   progress=messages)
    assert probability.shape == (10, 16, 16) and device == "cpu"
    assert messages.texts == ["out of GPU memory: retrying with 4 slices per batch",
                              "out of GPU memory: retrying with 2 slices per batch"]


def test_align_in_scene_adds_a_pet_on_the_ct_grid_and_keeps_the_originals(context, tiny_cohort, tmp_path):
    case = tiny_cohort.cases[0]
    ct_node = mrml.read_volume_node(context, tiny_cohort.path(case.ct), "CT")
    pet_node = mrml.read_volume_node(context, tiny_cohort.path(case.pet), "PET")
    pet_before = mrml.image_from_volume_node(pet_node)
    aligned = align_in_scene(context, ct_node, pet_node, "rigid", figure_folder=tmp_path)
    ct = mrml.image_from_volume_node(ct_node)
    on_ct = mrml.image_from_volume_node(aligned.pet_on_ct)
    assert on_ct.GetSize() == ct.GetSize() and on_ct.GetOrigin() == pytest.approx(ct.GetOrigin())
    pet_after = mrml.image_from_volume_node(pet_node)
    assert pet_after.GetOrigin() == pet_before.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(pet_after), sitk.GetArrayViewFromImage(pet_before))
    assert aligned.transform is not None and aligned.figure.stat().st_size > 1000
    assert aligned.metric_after <= aligned.metric_before
    resampled = align_in_scene(context, ct_node, pet_node, "resample")
    assert resampled.transform is None and resampled.pet_on_ct.GetName() != aligned.pet_on_ct.GetName()


def test_transform_node_moves_pet_points_onto_ct_points(context):
    transform = sitk.Euler3DTransform((10.0, -5.0, 30.0), 0.05, -0.1, 0.2, (4.0, -3.0, 5.0))
    node = mrml.transform_node_from_ct_to_pet(context, transform, "t")
    to_parent = mrml.transform_node_matrix(node)
    ct_point_lps = np.array([12.0, 40.0, -7.0])
    pet_point_lps = np.array(transform.TransformPoint(tuple(ct_point_lps)))
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    moved = to_parent @ np.append(pet_point_lps * lps_to_ras, 1.0)
    np.testing.assert_allclose(moved[:3], ct_point_lps * lps_to_ras, atol=1e-9)


def test_worker_process_reports_progress_and_its_result_loads(model_set, tmp_path):
    ct, _ = oblique_ct_with_mask()
    pet = sitk.Resample(sitk.Cast(ct > 0, sitk.sitkFloat32) * 5.0, ct)
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nrrd"))
    arguments = ["--ct", str(tmp_path / "ct.nrrd"), "--pet", str(tmp_path / "pet.nrrd"), "--models",
                 str(model_set / "model-A"), str(model_set / "model-B"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--batch-size", "2"]
    job = SegmentationJob(sys.executable, arguments)
    events = job.wait(timeout=120)
    assert job.process.returncode == 0, job.errors[-5:]
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [2, 4, 6, 7] and progress[-1]["eta_s"] == 0
    done = next(e for e in events if e["event"] == "done")
    result = load_result(done["result"])
    assert set(result.masks) == {"model-A", "model-B"} and result.masks["model-A"].shape == (7, 53, 37)
    broken = SegmentationJob(sys.executable, arguments[:-4] + ["--device", "tpu"])
    broken_events = broken.wait(timeout=120)
    assert broken.process.returncode == 2 and "unknown device" in broken_events[-1]["text"]


def test_a_cancelled_worker_is_gone_and_left_no_result(model_set, tmp_path):
    ct, _ = oblique_ct_with_mask()
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    job = SegmentationJob(sys.executable, ["--ct", str(tmp_path / "ct.nrrd"), "--pet", str(tmp_path / "ct.nrrd"),
                                           "--models", str(model_set / "model-A"), "--out", str(tmp_path / "out")])
    assert job.running            # still importing torch
    job.cancel()
    assert job.cancelled and not job.running
    assert not (tmp_path / "out" / "result.json").exists()


def test_dependency_check_names_what_is_missing(monkeypatch):
    assert dependencies.missing_requirements() == []
    assert not dependencies.torch_missing()
    monkeypatch.setattr(dependencies, "is_installed", lambda module: module not in {"monai", "torch"})
    assert dependencies.missing_requirements() == ["monai>=1.4"] and dependencies.torch_missing()
    assert set(dependencies.SLICER_OWNED).isdisjoint(dependencies.PIP_REQUIREMENTS)
    assert dependencies.installed_version("numpy") == np.__version__
    assert dependencies.installed_version("no-such-distribution") is None


def test_our_terminology_loads_into_slicer_and_the_tags_point_into_it(context):
    import slicer
    from OsteoSegLib.terminology import TERMINOLOGY_FILE

    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    logic.SetMRMLScene(context.scene)
    assert logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE)) == "OsteoSeg findings"
    for source, modifier in (("A", "High-sensitivity extent (Model A)"), ("B", "High-specificity core (Model B)"),
                             ("disagreement", "Model disagreement (A only)")):
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(finding_tag(source), entry)
        assert entry.GetTypeObject().GetCodeValue() == "60168000"            # SNOMED CT: osteomyelitis
        assert entry.GetTypeModifierObject().GetCodeMeaning() == modifier


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_gpu_falls_back_for_users_with_a_notice_but_not_for_benchmarks():
    ct, _ = oblique_ct_with_mask()
    from test_evaluation import identity_model

    messages = Messages()
    result = segment_images(ct, None, [identity_model("id", "A")], device="cuda", progress=messages)
    assert result.device == "cpu" and "no usable CUDA GPU" in messages.texts[0] and "using cpu" in messages.texts[0]
    with pytest.raises(OsteoSegError, match="no usable CUDA GPU"):
        segment_images(ct, None, [identity_model("id", "A")], device="cuda", device_fallback=False)
