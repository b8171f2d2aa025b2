"""Cohort validation: every problem of every case in one run, each naming case, file and problem."""

from __future__ import annotations

import numpy as np
from helpers import write
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import Case, Cohort, save_cohort
from OsteoSegLib.data.cohort_validate import validate_cohort


def test_validate_lists_every_problem_with_case_file_and_reason(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 1500, (8, 16, 16)).astype(np.int16)
    pet = rng.uniform(0, 5, (4, 8, 8)).astype(np.float32)
    label = np.zeros((8, 16, 16), np.uint8)
    label[3, 5:9, 5:9] = 1
    write(ct, tmp_path / "ct.nii.gz")
    write(pet, tmp_path / "pet.nii.gz", spacing=(4.0, 4.0, 6.0))
    write(label, tmp_path / "label.nii.gz")
    write(label * 2, tmp_path / "label_two.nii.gz")
    write(label, tmp_path / "label_shifted.nii.gz", origin=(5.0, 0.0, 0.0))
    write(np.zeros_like(label), tmp_path / "label_empty.nii.gz")
    write(pet, tmp_path / "pet_far.nii.gz", spacing=(4.0, 4.0, 6.0), origin=(0.0, 0.0, 900.0))
    write((ct.astype(np.int32) + 1024).astype(np.uint16), tmp_path / "ct_raw.nii.gz")
    write(np.repeat(np.repeat(np.repeat(pet, 2, 0), 2, 1), 2, 2), tmp_path / "pet_as_ct.nii.gz")
    write(ct[0], tmp_path / "ct_2d.nii.gz", spacing=(2.0, 2.0))
    (tmp_path / "pet_broken.nii.gz").write_bytes(b"not an image")
    nan = pet.copy()
    nan[0, 0, 0] = np.nan
    write(nan, tmp_path / "pet_nan.nrrd", spacing=(4.0, 4.0, 6.0))
    good = dict(ct="ct.nii.gz", pet="pet.nii.gz", labels={"A": "label.nii.gz"})
    cases = {
        "ok": {},
        "missing_ct": dict(ct="nowhere.nii.gz"),
        "broken_pet": dict(pet="pet_broken.nii.gz"),
        "flat_ct": dict(ct="ct_2d.nii.gz"),
        "label_values": dict(labels={"A": "label_two.nii.gz"}),
        "label_grid": dict(labels={"A": "label_shifted.nii.gz"}),
        "far_pet": dict(pet="pet_far.nii.gz"),
        "raw_ct": dict(ct="ct_raw.nii.gz"),
        "pet_in_ct_slot": dict(ct="pet_as_ct.nii.gz"),
        "nan_pet": dict(pet="pet_nan.nrrd"),
        "empty_label": dict(labels={"A": "label_empty.nii.gz"}),
        "no_label": dict(labels={}),
    }
    cohort = Cohort(tmp_path, [Case(case_id=name, **(good | change)) for name, change in cases.items()])
    save_cohort(cohort)
    problems = {p.case: str(p) for p in validate_cohort(cohort, ["A"])}
    expected = {
        "missing_ct": "nowhere.nii.gz: file not found",
        "broken_pet": "pet_broken.nii.gz: cannot read the image",
        "flat_ct": "ct_2d.nii.gz: expected a 3D image, found 2D",
        "label_values": "label_two.nii.gz: label values must be 0/1 (or 0/255), found 0, 2",
        "label_grid": "label_shifted.nii.gz: label A's grid differs from its CT",
        "far_pet": "pet_far.nii.gz: PET and CT do not overlap in physical space",
        "raw_ct": "ct_raw.nii.gz: does not look like a CT in HU: no value below 0",
        "pet_in_ct_slot": "does not look like a CT in HU: values span only",
        "nan_pet": "pet_nan.nrrd: 1 voxels are NaN or infinite",
        "empty_label": "label_empty.nii.gz: label A is empty but is required",
        "no_label": "label source 'A' is missing from this case",
    }
    assert set(problems) == set(expected)
    for case, fragment in expected.items():
        assert problems[case].startswith(f"case {case}: ") and fragment in problems[case], problems[case]
    assert main(["cohort", "validate", str(tmp_path), "--require-labels", "A"]) == 1
    printed = capsys.readouterr().out
    assert "12 cases checked: 11 problem(s)" in printed and "case far_pet:" in printed
