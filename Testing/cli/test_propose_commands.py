"""`osteoseg propose`: one patient into .seg.nrrd + NIfTI + record, the editing-effort comparison, the
compare-only form, the cohort form, and bad input as one line with no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import lesion_patient
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import load_cohort


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The small lesion patient as files: CT, PET (own grid), rough mask, a 'saved' Label A."""
    folder = tmp_path_factory.mktemp("patient")
    ct, pet, rough, regions = lesion_patient()
    sitk.WriteImage(ct, str(folder / "ct.nii.gz"))
    sitk.WriteImage(pet, str(folder / "pet.nii.gz"))
    for name, mask in (("rough", rough), ("saved_a", regions["lesion"] | regions["edema"])):
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(ct)
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    return folder


def run(*arguments):
    return main(["propose", *map(str, arguments)])


def test_one_patient_gets_a_segmentation_with_both_proposals_masks_and_a_record(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("--ct", files / "ct.nii.gz", "--pet", files / "pet.nii.gz", "--rough", files / "rough.nii.gz",
               "--out", out, "--compare-with", f"A={files / 'saved_a.nii.gz'}") == 0
    printed = capsys.readouterr().out
    assert "lesion 1:" in printed and "confidence" in printed and "spares" in printed
    segmentation = sitk.ReadImage(str(out / "ct.seg.nrrd"))
    keys = {key: segmentation.GetMetaData(key) for key in segmentation.GetMetaDataKeys()}
    names = [value for key, value in keys.items() if key.endswith("_Name")]
    assert names == ["Proposed A", "Proposed B"]
    assert any("OsteoSeg.proposal:true" in value for key, value in keys.items() if key.endswith("_Tags"))
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "ct_proposed_A.nii.gz")))
    record = json.loads((out / "ct.proposal.json").read_text())
    assert record["voxels"]["A"] == a.sum() > 0 and record["rough_input"]["kind"] == "mask"
    effort = record["editing_effort"]["A"]
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(files / "saved_a.nii.gz"))) > 0
    rough = sitk.GetArrayFromImage(sitk.ReadImage(str(files / "rough.nii.gz"))) > 0
    assert effort["proposal"]["voxels_changed"] == ((a > 0) ^ saved).sum()
    assert record["rough_input"]["voxels"] == rough.sum()
    assert effort["rough_input"]["voxels_changed"] == (rough ^ saved).sum()
    assert effort["proposal"]["voxels_added"] == (saved & (a == 0)).sum()
    assert effort["voxels_saved"] == pytest.approx(
        1 - effort["proposal"]["voxels_changed"] / effort["rough_input"]["voxels_changed"], abs=1e-4)
    # the same name again is refused; --force replaces only OsteoSeg's files
    assert run("--ct", files / "ct.nii.gz", "--pet", files / "pet.nii.gz", "--box", -2, 0, 14, -20, -18, 29,
               "--out", out) == 2
    assert "earlier proposal" in capsys.readouterr().err
    assert run("--ct", files / "ct.nii.gz", "--pet", files / "pet.nii.gz", "--box", -2, 0, 14, -20, -18, 29,
               "--out", out, "--force") == 0
    assert json.loads((out / "ct.proposal.json").read_text())["rough_input"]["kind"] == "box"


def test_an_earlier_proposal_is_compared_with_the_saved_label_without_writing(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("--ct", files / "ct.nii.gz", "--pet", files / "pet.nii.gz", "--points", -10, -8, 21.5,
               "--out", out) == 0
    capsys.readouterr()
    before = sorted(p.name for p in out.iterdir())
    assert run("--proposal", out / "ct_proposed_A.nii.gz", "--compare-with", files / "saved_a.nii.gz") == 0
    printed = capsys.readouterr().out
    proposal = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "ct_proposed_A.nii.gz"))) > 0
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(files / "saved_a.nii.gz"))) > 0
    assert f"{int((proposal ^ saved).sum()):>10}" in printed
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("arguments, message", [
    (["--rough", "rough.nii.gz"], "need the PET"),
    (["--pet", "pet.nii.gz", "--box", 500, 500, 500, 600, 600, 600], "empty (the box lies outside the CT)"),
    (["--pet", "pet.nii.gz", "--points", 1, 2], "three numbers per point"),
    (["--pet", "pet.nii.gz", "--rough", "pet.nii.gz"], "not on the CT's grid"),
    (["--pet", "pet.nii.gz", "--rough", "rough.nii.gz", "--box", 0, 0, 0, 1, 1, 1], "give one rough input"),
    (["--pet", "pet.nii.gz", "--rough", "rough.nii.gz", "--compare-with", "C=x"], "A=FILE or B=FILE"),
])
def test_bad_input_is_one_line_and_no_output(files, tmp_path, capsys, arguments, message):
    arguments = [files / a if isinstance(a, str) and a.endswith(".nii.gz") else a for a in arguments]
    assert run("--ct", files / "ct.nii.gz", *arguments, "--out", tmp_path / "out") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("osteoseg: error:") and message in error and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_a_cohort_becomes_a_new_cohort_of_proposals(tiny_cohort, tmp_path, capsys):
    assert run(tiny_cohort.root, "--rough-label", "B", "--out", tmp_path / "proposed") == 0
    assert "osteoseg train" in capsys.readouterr().out
    proposed = load_cohort(tmp_path / "proposed")
    assert proposed.generator["rough_label"] == "B" and len(proposed.cases) == len(tiny_cohort.cases)
    assert run(tiny_cohort.root, "--out", tmp_path / "again") == 2
    assert "--rough-label" in capsys.readouterr().err
