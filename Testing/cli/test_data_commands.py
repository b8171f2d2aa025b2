"""The data commands end to end on synthetic DICOM (pydicom, so they run in any clone): `suv`,
`cohort import-dicom` and `cohort summary`, checked against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import DICOM_PET_TAGS, dicom_suv_factor, write_dicom_case
from OsteoSegLib.cli import main

VOXEL_ML = 2.0 * 1.5 * 3.0 / 1000.0      # write_dicom_case's spacing
LESION_VOXELS = 3 * 5 * 5


@pytest.fixture(scope="module")
def dicom(tmp_path_factory):
    """Two DICOM cases with a graded lesion (SUV 10 to 14 across its columns): folder and their arrays."""
    root = tmp_path_factory.mktemp("dicom")
    arrays = {name: write_dicom_case(root / name, seed=seed, graded=True) for seed, name in enumerate(("p2", "p1"))}
    return root, arrays


def test_suv_converts_bq_per_ml_with_the_decay_from_injection_to_scan(dicom, tmp_path, capsys):
    root, arrays = dicom
    _, suv, _ = arrays["p1"]
    assert main(["suv", str(root / "p1" / "PT"), "--out", str(tmp_path / "pet.nii.gz")]) == 0
    printed = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.startswith("  "))
    # By hand: 70 kg / (370 MBq decayed over one hour of a 6586.2 s half-life) = 2.7634e-4 SUV per Bq/mL.
    assert float(printed["factor"]) == pytest.approx(70000.0 / (3.7e8 * 0.5 ** (3600 / 6586.2)), rel=1e-9)
    assert float(printed["factor"]) == pytest.approx(dicom_suv_factor(), rel=1e-12)
    assert printed["SUVmax"] == "14.000" and printed["units"] == "BQML"
    assert printed["decay_factor"].startswith("0.6846")
    converted = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pet.nii.gz")))
    # Each slice has its own rescale slope (the lesion's slices another than the rest): exact to 1e-4 of the max.
    np.testing.assert_allclose(converted, suv, atol=14.0 / 32000 + 1e-6)
    assert main(["suv", str(root / "p1" / "PT"), "--out", str(tmp_path / "pet.nii.gz")]) == 2
    assert "--force" in capsys.readouterr().err


def test_import_dicom_makes_a_cohort_whose_images_and_label_are_the_dicom_content(dicom, tmp_path, capsys):
    root, arrays = dicom
    assert main(["cohort", "import-dicom", str(root), "--out", str(tmp_path / "cohort"),
                 "--label-source", "tumour"]) == 0
    assert "Imported 2 cases" in capsys.readouterr().out
    cohort = json.loads((tmp_path / "cohort" / "cohort.json").read_text())
    assert [case["case_id"] for case in cohort["cases"]] == ["p1", "p2"]
    for case in cohort["cases"]:
        hu, suv, mask = arrays[case["case_id"]]
        read = {key: sitk.ReadImage(str(tmp_path / "cohort" / case[key])) for key in ("ct", "pet")}
        label = sitk.ReadImage(str(tmp_path / "cohort" / case["labels"]["tumour"]))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read["ct"]), hu)
        np.testing.assert_allclose(sitk.GetArrayFromImage(read["pet"]), suv, atol=14.0 / 32000 + 1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), mask)     # the RTSTRUCT outline, filled
        assert label.GetSpacing() == pytest.approx((2.0, 1.5, 3.0)) and label.GetOrigin() == pytest.approx(
            (-20.0, 10.0, 5.0))
        conversion = case["metadata"]["suv_conversion"]
        assert conversion["weight_kg"] == DICOM_PET_TAGS["weight_kg"] and case["pet_units"] == "SUVbw"


def test_summary_reports_volume_and_suv_of_each_label_by_hand(dicom, tmp_path, capsys):
    root, _ = dicom
    assert main(["cohort", "import-dicom", str(root), "--out", str(tmp_path / "cohort"),
                 "--label-source", "tumour"]) == 0
    assert main(["cohort", "summary", str(tmp_path / "cohort"), "--json", str(tmp_path / "summary.json")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert any(line.split()[:5] == ["p1", "tumour", "0.7", "14.00", "12.00"] for line in table), table
    summary = {entry["case"]: entry for entry in json.loads((tmp_path / "summary.json").read_text())}
    lesion = summary["p2"]["labels"]["tumour"]
    assert lesion["volume_ml"] == pytest.approx(LESION_VOXELS * VOXEL_ML)       # 0.675 mL
    assert lesion["suv_max"] == pytest.approx(14.0, abs=1e-3)
    assert lesion["suv_mean"] == pytest.approx(12.0, abs=1e-3)                 # mean of 4 + columns 6..10
    assert summary["p1"]["ct_size"] == [20, 24, 6] and summary["p1"]["pet_spacing"] == [2.0, 1.5, 3.0]


def test_an_interrupted_import_is_replaced_by_the_next_but_a_folder_osteoseg_did_not_write_is_not(dicom, tmp_path,
                                                                                                  capsys):
    from OsteoSegLib.outputs import OutputFolder

    root, arrays = dicom
    out = tmp_path / "cohort"
    with OutputFolder(out) as folder:                # as an import killed while moving its cases out of staging
        folder.record("p1", "p2")
        (out / "p1").mkdir()
        (out / "p1" / "ct.nii.gz").write_bytes(b"an earlier import's")
        (out / ".import.partial-k3j").mkdir()       # its staging folder, with the case not moved yet
        (out / ".import.partial-k3j" / "p2").mkdir()
    arguments = ["cohort", "import-dicom", str(root), "--out", str(out)]
    assert main(arguments) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".osteoseg-manifest.json", ".osteoseg.lock", "cohort.json",
                                                     "p1", "p2"]
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "p1" / "ct.nii.gz")))
    np.testing.assert_array_equal(ct, arrays["p1"][0])                        # the new import's, not the old
    assert main(arguments) == 2 and "a cohort is already there" in capsys.readouterr().err   # finished: kept
    other = tmp_path / "other"
    (other / "p1").mkdir(parents=True)
    (other / "p1" / "mine.txt").write_text("mine")
    assert main(["cohort", "import-dicom", str(root), "--out", str(other)]) == 2
    assert "holds files OsteoSeg did not write (p1)" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["p1"] and (other / "p1" / "mine.txt").read_text() == "mine"
