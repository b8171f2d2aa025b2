"""Segmentation output files: an editable .seg.nrrd on the CT geometry, NIfTI, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from helpers import identity_model, oblique_ct_with_mask
from OsteoSegLib.data.fingerprint import sha256_file
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.outputs import OutputFolder
from OsteoSegLib.scene import mrml
from OsteoSegLib.scene.segment_output import (
    PROVENANCE_TAG,
    clear_result,
    finished_outputs,
    result_names,
    segment_specs,
    segmentation_node,
    write_segmentation,
)


def test_segment_output_is_an_editable_segmentation_on_the_ct_geometry(context, tmp_path):
    ct, mask = oblique_ct_with_mask()
    models = [identity_model("model-A", "A"), identity_model("model-B", "B")]
    result = segment_images(ct, None, models, device="cpu")
    result.masks["model-B"][3] = 0                        # B smaller than A, as intended
    nodes = context.scene.GetNumberOfNodes()
    paths = write_segmentation(context, ct, result, tmp_path, "patient", nifti=True, probabilities=True)
    assert context.scene.GetNumberOfNodes() == nodes          # a batch in one scene does not keep every case
    reference = mrml.volume_node_from_image(context, ct, "reference")
    node = mrml.load_segmentation(context, paths["segmentation"])
    masks = mrml.masks_from_segmentation(context, node, reference)
    assert set(masks) == {"Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"}
    np.testing.assert_array_equal(masks["A only (disagreement)"], result.masks["model-A"] & ~result.masks["model-B"])
    segment = node.GetSegmentation().GetSegment(node.GetSegmentation().GetSegmentIdBySegmentName(
        "Model A (high sensitivity)"))
    assert segment.GetColor() == pytest.approx((0.894, 0.102, 0.110), abs=1e-3)
    written = sitk.ReadImage(str(paths["mask model-A"]))
    assert written.GetDirection() == pytest.approx(ct.GetDirection())
    assert written.GetOrigin() == pytest.approx(ct.GetOrigin())
    assert json.loads(paths["provenance"].read_text())["models"][0]["name"] == "model-A"
    with pytest.raises(OsteoSegError, match="earlier result is in the way"):
        write_segmentation(context, ct, result, tmp_path, "patient")


def test_every_file_a_result_can_have_is_named():
    assert result_names("P7", ["A", "B"]) == [
        "P7.seg.nrrd", "P7.provenance.json", "P7_A_mask.nii.gz", "P7_A_probability.nii.gz",
        "P7_B_mask.nii.gz", "P7_B_probability.nii.gz"]


def write_result(out, name: str, files: dict[str, str]) -> dict:
    """Files of a result and the provenance record listing them with their sha256."""
    outputs = {}
    for role, (file, text) in files.items():
        (out / file).write_text(text)
        outputs[role] = {"file": file, "sha256": sha256_file(out / file)}
    (out / f"{name}.provenance.json").write_text(json.dumps({"outputs": outputs}))
    return outputs


def test_a_result_is_finished_only_when_its_provenance_lists_every_file_unchanged(tmp_path):
    write_result(tmp_path, "P1", {"segmentation": ("P1.seg.nrrd", "seg"), "mask A": ("P1_A_mask.nii.gz", "a")})
    assert finished_outputs(tmp_path, "P1") == {"segmentation": tmp_path / "P1.seg.nrrd",
                                                "mask A": tmp_path / "P1_A_mask.nii.gz",
                                                "provenance": tmp_path / "P1.provenance.json"}
    assert finished_outputs(tmp_path, "P2") is None                               # no result of that name
    (tmp_path / "P1_A_mask.nii.gz").write_text("changed")
    assert finished_outputs(tmp_path, "P1") is None                               # a file changed since
    (tmp_path / "P1_A_mask.nii.gz").unlink()
    assert finished_outputs(tmp_path, "P1") is None                               # a file missing
    for broken in ("{", json.dumps({"files": {}}), json.dumps({"outputs": [1]}), json.dumps({"outputs": {"x": 1}})):
        (tmp_path / "P1.provenance.json").write_text(broken)
        assert finished_outputs(tmp_path, "P1") is None, broken


def test_clearing_a_result_removes_only_what_osteoseg_wrote_and_refuses_before_removing(tmp_path):
    with OutputFolder(tmp_path / "out") as folder:
        out = folder.path
        for file in ("P1.seg.nrrd", "P1_A_mask.nii.gz", "P10.seg.nrrd"):
            (out / file).write_text("mine")
            folder.record(file)
        clear_result(folder, "P1", ["A"])
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["P10.seg.nrrd"]
        (out / "P10.provenance.json").write_text("a user's")
        (out / "P10_A_mask.nii.gz").write_text("a user's")
        with pytest.raises(OsteoSegError) as error:
            clear_result(folder, "P10", ["A"])
        assert error.value.problem == ("P10.provenance.json, P10_A_mask.nii.gz are in the way and not written by "
                                       "OsteoSeg; choose another output folder or name")
        assert error.value.path == str(out) and (out / "P10.seg.nrrd").read_text() == "mine"   # nothing removed
        (out / "P10_A_mask.nii.gz").unlink()
        with pytest.raises(OsteoSegError, match=r": P10.provenance.json is in the way"):
            clear_result(folder, "P10", ["A"])


def test_the_provenance_names_every_model_setting_and_file_and_the_node_carries_it(context, tmp_path):
    ct, _ = oblique_ct_with_mask()
    models = [identity_model("model-A", "A"), identity_model("model-B", "B")]
    models[1].card["weights_sha256"] = "b" * 64
    models[1].card["versions"] = {"osteoseg": "9.9"}
    result = segment_images(ct, None, models, device="cpu")
    result.seconds = 1.23456
    paths = write_segmentation(context, ct, result, tmp_path, "P3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P3.provenance.json", "P3.seg.nrrd"]   # no NIfTI unasked
    text = paths["provenance"].read_text()
    record = json.loads(text)
    assert text.startswith('{\n "models": [') and text.endswith("}\n")                       # readable, one level
    assert record["models"] == [
        {"name": "model-A", "label_source": "A", "inputs": ["ct"], "weights_sha256": "0" * 64, "osteoseg": "test"},
        {"name": "model-B", "label_source": "B", "inputs": ["ct"], "weights_sha256": "b" * 64, "osteoseg": "9.9"}]
    assert (record["device"], record["threshold"], record["seconds"]) == ("cpu", 0.5, 1.235)
    assert record["backend"] == result.backend
    assert record["outputs"] == {"segmentation": {"file": "P3.seg.nrrd", "sha256": sha256_file(paths["segmentation"])}}
    assert finished_outputs(tmp_path, "P3") == {"segmentation": paths["segmentation"],
                                                "provenance": paths["provenance"]}
    node = mrml.load_segmentation(context, paths["segmentation"])
    segmentation = node.GetSegmentation()
    tags = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        for key in ("OsteoSeg.model", "OsteoSeg.weights_sha256", segment.GetTerminologyEntryTagName()):
            value = vtk.reference("")
            found = segment.GetTag(key, value)
            tags.setdefault(segment.GetName(), {})[key.split(".")[-1]] = str(value) if found else None
    assert tags["Model B (high specificity)"]["model"] == "model-B"
    assert tags["Model B (high specificity)"]["weights_sha256"] == "b" * 64
    assert all(entry[next(k for k in entry if k not in ("model", "weights_sha256"))] for entry in tags.values())
    with pytest.raises(OsteoSegError) as error:
        write_segmentation(context, ct, result, tmp_path, "P3")
    assert str(paths["segmentation"]) in error.value.problem and str(paths["provenance"]) in error.value.problem


def test_a_segmentation_node_carries_its_provenance_as_attributes(context):
    ct, _ = oblique_ct_with_mask()
    result = segment_images(ct, None, [identity_model("model-A", "A"), identity_model("model-B", "B")], device="cpu")
    result.seconds = 2.0004
    reference = mrml.volume_node_from_image(context, ct, "CT")
    node = segmentation_node(context, reference, result, segment_specs(result), "P4 osteomyelitis")
    assert node.GetName() == "P4 osteomyelitis"
    assert node.GetAttribute("OsteoSeg.models") == "model-A, model-B"
    assert (node.GetAttribute("OsteoSeg.device"), node.GetAttribute("OsteoSeg.threshold"),
            node.GetAttribute("OsteoSeg.seconds")) == ("cpu", "0.5", "2.0")
    assert json.loads(node.GetAttribute(PROVENANCE_TAG))["models"][1]["name"] == "model-B"
