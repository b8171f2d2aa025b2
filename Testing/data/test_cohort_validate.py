"""Cohort validation: every problem of every case in one run, each naming case, file and problem."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import Case, Cohort, save_cohort
from OsteoSegLib.data.cohort_validate import check_cohort, validate_cohort
from OsteoSegLib.errors import OsteoSegError


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


def broken_cohort(tmp_path, cases: int) -> Cohort:
    """`cases` cases whose CT and PET files are missing: two problems each."""
    cohort = Cohort(tmp_path, [Case(case_id=f"c{i:02d}", ct=f"ct{i}.nii.gz", pet=f"pet{i}.nii.gz")
                               for i in range(cases)])
    save_cohort(cohort)
    return cohort


def test_work_is_refused_with_the_first_twenty_problems_and_a_count_of_the_rest(tmp_path):
    cohort = broken_cohort(tmp_path, 11)                              # 22 problems
    with pytest.raises(OsteoSegError) as raised:
        check_cohort(cohort, [case.case_id for case in cohort.cases])
    error = raised.value
    assert error.path == str(tmp_path.resolve() / "cohort.json")
    lines = error.problem.split("\n")
    assert lines[0] == "22 problem(s) in the cohort; nothing was started (see 'osteoseg cohort validate'):"
    assert lines[1] == f"  case c00: {tmp_path.resolve() / 'ct0.nii.gz'}: file not found"
    assert lines[2] == f"  case c00: {tmp_path.resolve() / 'pet0.nii.gz'}: file not found"
    assert len(lines) == 1 + 20 + 1 and lines[20].startswith("  case c09: ") and lines[-1] == "  ... and 2 more"


def test_exactly_twenty_problems_are_all_shown_and_only_the_cases_asked_for_are_checked(tmp_path):
    cohort = broken_cohort(tmp_path, 12)
    with pytest.raises(OsteoSegError) as raised:
        check_cohort(cohort, [f"c{i:02d}" for i in range(10)])      # 20 problems, c10 and c11 not asked
    lines = raised.value.problem.split("\n")
    assert lines[0].startswith("20 problem(s)") and len(lines) == 21 and "more" not in lines[-1]
    assert not any("c10" in line or "c11" in line for line in lines)
    check_cohort(cohort, [])                                          # nothing asked, nothing wrong


def test_required_labels_are_checked_when_work_starts_and_an_empty_cohort_is_named(tmp_path):
    rng = np.random.default_rng(1)
    write(rng.integers(-1000, 1500, (8, 16, 16)).astype(np.int16), tmp_path / "ct.nii.gz")
    write(rng.uniform(0.1, 5, (8, 16, 16)).astype(np.float32), tmp_path / "pet.nii.gz")
    cohort = Cohort(tmp_path, [Case(case_id="p1", ct="ct.nii.gz", pet="pet.nii.gz")])
    save_cohort(cohort)
    check_cohort(cohort, ["p1"])
    expected = r"cohort.json: 1 problem\(s\) in the cohort.*\n  case p1: label source 'B' is missing from this case"
    with pytest.raises(OsteoSegError, match=expected):
        check_cohort(cohort, ["p1"], ["B"])
    empty = validate_cohort(Cohort(tmp_path / "nothing", []))
    assert [(p.case, p.path, p.message) for p in empty] == [("-", str(tmp_path / "nothing"),
                                                             "the cohort has no cases")]


def test_work_that_reads_no_label_is_not_stopped_by_a_bad_label_but_by_a_bad_image(tmp_path):
    rng = np.random.default_rng(2)
    write(rng.integers(-1000, 1500, (8, 16, 16)).astype(np.int16), tmp_path / "ct.nii.gz")
    write(rng.uniform(0.1, 5, (8, 16, 16)).astype(np.float32), tmp_path / "pet.nii.gz")
    write(np.full((8, 16, 16), 3, np.uint8), tmp_path / "label.nii.gz")          # not a mask
    write(np.zeros((8, 16, 16), np.float32) - 2.0, tmp_path / "negative.nii.gz")  # not SUV
    cohort = Cohort(tmp_path, [Case(case_id="p1", ct="ct.nii.gz", pet="pet.nii.gz", labels={"A": "label.nii.gz"}),
                               Case(case_id="p2", ct="ct.nii.gz", pet="negative.nii.gz")])
    save_cohort(cohort)
    with pytest.raises(OsteoSegError, match="case p1: .*label.nii.gz: label values must be 0/1"):
        check_cohort(cohort, ["p1"])
    check_cohort(cohort, ["p1"], ["B"], labels=False)                 # neither the label nor a missing one
    with pytest.raises(OsteoSegError, match=r"1 problem\(s\).*\n  case p2: .*negative.nii.gz: PET has negative"):
        check_cohort(cohort, ["p1", "p2"], labels=False)
