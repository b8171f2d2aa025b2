"""`osteoseg transfer` and `osteoseg cohort transfer`: the files they write, what they refuse, and a
cohort run that resumes after an interruption."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import SimpleITK as sitk
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import load_cohort
from OsteoSegLib.data.fingerprint import sha256_file
from OsteoSegLib.labels.transfer_files import TRANSFER_OUTPUTS


def pet_outline(pet_path, out_path, suv=2.0) -> None:
    """A label drawn on the PET grid: where the PET is above `suv` (the hot lesion)."""
    sitk.WriteImage(sitk.Cast(sitk.ReadImage(str(pet_path)) > suv, sitk.sitkUInt8), str(out_path))


@pytest.fixture
def case_files(tiny_cohort, tmp_path):
    case = tiny_cohort.cases[0]
    ct, pet = tiny_cohort.path(case.ct), tiny_cohort.path(case.pet)
    pet_outline(pet, tmp_path / "outline.nii.gz")
    return ct, pet, tmp_path / "outline.nii.gz"


@pytest.mark.slow
def test_transfer_writes_the_labels_transforms_segmentation_and_report(case_files, tmp_path, capsys, context):
    ct, pet, outline = case_files
    out = tmp_path / "moved"
    assert main(["transfer", "--label", str(outline), "--source", str(pet), "--target", str(ct),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no registration" in printed and "ml on the CT" in printed
    assert all((out / name).is_file() for name in TRANSFER_OUTPUTS)
    report = json.loads((out / "transfer.json").read_text())
    assert report["source_kind"] == "pet" and report["steps"] == "resample" and report["deformable"] is None
    for entry in report["outputs"].values():   # the report lists what it vouches for, with checksums
        assert sha256_file(out / entry["file"]) == entry["sha256"]
    labels = sitk.ReadImage(str(out / "transferred_labels.nii.gz"))
    assert labels.GetSize() == sitk.ReadImage(str(ct)).GetSize()
    from OsteoSegLib.scene import mrml

    node = mrml.load_segmentation(context, out / "transferred.seg.nrrd")
    segment = node.GetSegmentation().GetNthSegment(0)
    assert segment.GetName() == "Label 1 (transferred)"
    import vtk

    tag = vtk.mutable("")
    assert segment.GetTag("OsteoSeg.visibility", tag)
    assert str(tag) == report["labels"][0]["visibility"]["verdict"]
    # a second run is refused without --force, and replaces only its own files with it
    assert main(["transfer", "--label", str(outline), "--source", str(pet), "--target", str(ct),
                 "--out", str(out)]) == 2
    assert "an earlier transfer is there" in capsys.readouterr().err
    (out / "notes.txt").write_text("mine")
    # a --force run whose transfer is refused leaves the earlier result as it was
    before = {name: sha256_file(out / name) for name in TRANSFER_OUTPUTS}
    empty = tmp_path / "empty.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(outline)) * 0, str(empty))
    assert main(["transfer", "--label", str(empty), "--source", str(pet), "--target", str(ct),
                 "--out", str(out), "--force"]) == 2
    assert {name: sha256_file(out / name) for name in TRANSFER_OUTPUTS} == before
    assert main(["transfer", "--label", str(outline), "--source", str(pet), "--target", str(ct),
                 "--out", str(out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("problem, message", [
    ("other grid", "not on its source image's grid"),
    ("empty", "the label is empty"),
])
def test_bad_labels_get_one_line_naming_the_file_and_no_output(case_files, tmp_path, capsys, problem, message):
    ct, pet, outline = case_files
    label = tmp_path / "bad.nii.gz"
    if problem == "other grid":
        sitk.WriteImage(sitk.Cast(sitk.ReadImage(str(ct)) > 200, sitk.sitkUInt8), str(label))   # drawn on the CT
    else:
        image = sitk.ReadImage(str(outline)) * 0
        sitk.WriteImage(image, str(label))
    out = tmp_path / "out"
    assert main(["transfer", "--label", str(label), "--source", str(pet), "--target", str(ct),
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error and str(label) in error
    assert not out.exists()


@pytest.fixture
def cohort_with_outlines(tiny_cohort, tmp_path):
    """A copy of the tiny cohort with a PET-grid outline beside each case's CT; the third case's
    outline is empty, so its transfer is refused."""
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.root, root)
    cohort = load_cohort(root)
    for index, case in enumerate(cohort.cases):
        path = cohort.path(case.ct).parent / "PET_outline.nii.gz"
        pet_outline(cohort.path(case.pet), path, suv=2.0 if index < 2 else 1e6)
    return cohort


@pytest.mark.slow
def test_cohort_transfer_adds_a_label_source_lists_refusals_and_resumes(cohort_with_outlines, tmp_path, capsys):
    cohort = cohort_with_outlines
    out = tmp_path / "moved"
    arguments = ["cohort", "transfer", str(cohort.root), "--label", "PET_outline.nii.gz", "--as", "pet_outline",
                 "--out", str(out)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "Transferred 2 case(s)" in printed and "the label is empty" in printed
    moved = load_cohort(out)
    ids = [case.case_id for case in cohort.cases]
    assert [case.case_id for case in moved.cases] == ids
    assert "pet_outline" in moved.cases[0].labels and "pet_outline" not in moved.cases[2].labels
    assert moved.cases[0].labels["A"] == str(cohort.path(cohort.cases[0].labels["A"]))   # originals stay put
    label = moved.path(moved.cases[0].labels["pet_outline"])
    assert sitk.ReadImage(str(label)).GetSize() == sitk.ReadImage(str(moved.path(moved.cases[0].ct))).GetSize()
    rows = list(csv.DictReader((out / "transfer.csv").open()))
    assert [row["status"] for row in rows] == ["transferred", "transferred", "refused"]
    # an interrupted run: the second case's report never got written; the rerun redoes only that case
    (out / ids[1] / "transfer.json").unlink()
    first_written = (out / ids[0] / "transferred_labels.nii.gz").stat().st_mtime_ns
    assert main(arguments) == 0
    assert (out / ids[0] / "transferred_labels.nii.gz").stat().st_mtime_ns == first_written
    assert (out / ids[1] / "transfer.json").is_file()
    # the new cohort still finds each case's recorded alignment
    from OsteoSegLib.model.slice_data import recorded_transform

    assert recorded_transform(moved, moved.cases[0]) is not None
    # a rerun that asks for something else does not silently keep the earlier labels
    assert main([*arguments, "--rigid-only"]) == 2
    assert "transferred earlier with other inputs or settings" in capsys.readouterr().err
    assert main(["cohort", "transfer", str(cohort.root), "--label", "PET_outline.nii.gz", "--source",
                 "PET_outline.nii.gz", "--as", "x", "--out", str(tmp_path / "other")]) == 2
    assert "--source-kind" in capsys.readouterr().err


def test_cohort_transfer_checks_every_case_before_writing(cohort_with_outlines, tmp_path, capsys):
    cohort = cohort_with_outlines
    (cohort.path(cohort.cases[1].ct).parent / "PET_outline.nii.gz").unlink()
    out = tmp_path / "moved"
    assert main(["cohort", "transfer", str(cohort.root), "--label", "PET_outline.nii.gz", "--as", "x",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert cohort.cases[1].case_id in error and "no file matches 'PET_outline.nii.gz'" in error
    assert not out.exists()


def test_cohort_transfer_refuses_an_existing_source_name(cohort_with_outlines, tmp_path, capsys):
    assert main(["cohort", "transfer", str(cohort_with_outlines.root), "--label", "PET_outline.nii.gz",
                 "--as", "A", "--out", str(tmp_path / "x")]) == 2
    assert "already has a label source 'A'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_slicer_segmentation_is_transferred_with_its_segment_names(case_files, tmp_path, capsys, context):
    from OsteoSegLib.scene import mrml

    ct, pet, outline = case_files
    pet_node = mrml.read_volume_node(context, pet, "PET")
    hot = sitk.GetArrayFromImage(sitk.ReadImage(str(outline)))
    node = mrml.segmentation_from_masks(context, pet_node, [mrml.SegmentSpec("Hot focus", (1.0, 0.0, 0.0), hot)],
                                        "outline")
    segmentation = mrml.save_segmentation(context, node, tmp_path / "outline.seg.nrrd")
    out = tmp_path / "moved"
    assert main(["transfer", "--label", str(segmentation), "--source", str(pet), "--target", str(ct),
                 "--out", str(out)]) == 0
    assert "Hot focus: " in capsys.readouterr().out
    report = json.loads((out / "transfer.json").read_text())
    assert report["names"] == {"1": "Hot focus"}
    carried = mrml.load_segmentation(context, out / "transferred.seg.nrrd")
    assert carried.GetSegmentation().GetNthSegment(0).GetName() == "Hot focus (transferred)"
