"""Cohort validation: every problem of every case in one run, each naming case, file and problem."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import write
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import Case, Cohort, save_cohort
from OsteoSegLib.data.cohort_validate import (
    check_cohort,
    check_images,
    ct_problem,
    image_problems,
    label_problem,
    pet_problem,
    validate_cohort,
)
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


def _volume(values, **geometry):
    image = sitk.GetImageFromArray(np.asarray(values, np.float32).reshape(1, 1, -1))
    for key, value in geometry.items():
        getattr(image, f"Set{key.capitalize()}")(value)
    return image


@pytest.mark.parametrize(("values", "problem"), [
    ([-100.0, 100.0], None),                                                     # a span of 200 HU is enough
    ([-100.0, 99.9], "does not look like a CT in HU: values span only -100 to 99.9 (a PET or a mask in the CT slot?)"),
    ([0.0, 500.0], "does not look like a CT in HU: no value below 0 (range 0 to 500); air is -1000 HU, so the "
                   "rescale slope/intercept was probably not applied"),
    ([-1.0, 500.0], None),
    ([-3000.0, 40000.0], None),
    ([-3001.0, 100.0], "does not look like a CT in HU: values from -3001 to 100"),
    ([-1000.0, 40001.0], "does not look like a CT in HU: values from -1000 to 40001"),
])
def test_ct_in_hounsfield_units_has_air_below_zero_and_a_plausible_range(values, problem):
    assert ct_problem(_volume(values)) == problem


@pytest.mark.parametrize(("values", "problem"), [
    ([-0.5, 3.0], None),                                                         # reconstruction noise
    ([-0.51, 3.0], "PET has negative values down to -0.51: not SUV (a CT in the PET slot, or a PET not "
                   "converted to SUV?)"),
    ([-0.5, 0.0], "PET is all zero (an empty or unreconstructed series?)"),
    ([0.0, 0.001], None),
])
def test_pet_in_suv_is_not_negative_and_not_all_zero(values, problem):
    assert pet_problem(_volume(values)) == problem


@pytest.mark.parametrize(("values", "problem"), [
    ([0, 1], None), ([0, 255], None), ([1], None), ([0], None),
    ([0, 1, 255], "label values must be 0/1 (or 0/255), found 0, 1, 255"),
    ([0, 0.5], "label values must be 0/1 (or 0/255), found 0, 0.5"),
    ([0, 1, 2, 3, 4, 5], "label values must be 0/1 (or 0/255), found 0, 1, 2, 3, 4, 5"),
    ([0, 1, 2, 3, 4, 5, 6], "label values must be 0/1 (or 0/255), found 0, 1, 2, 3, 4, 5 ..."),
])
def test_labels_are_binary_masks(values, problem):
    assert label_problem(_volume(values)) == problem


def test_a_single_image_problem_is_the_error_and_several_are_listed():
    ct, pet = _volume([-1000.0, 400.0]), _volume([0.0, 4.0])
    check_images(ct, pet, case="p1")
    check_images(None, None, case="p1")
    with pytest.raises(OsteoSegError) as raised:
        check_images(_volume([0.0, 400.0]), pet, case="p1", ct_path="ct.nrrd", pet_path="pet.nrrd")
    assert (raised.value.case, raised.value.path) == ("p1", "ct.nrrd")
    assert raised.value.problem.startswith("does not look like a CT in HU: no value below 0")
    with pytest.raises(OsteoSegError) as raised:
        check_images(None, _volume([-2.0, 1.0]), case="p2")
    assert str(raised.value) == ("case p2: PET has negative values down to -2: not SUV (a CT in the PET slot, or a "
                                 "PET not converted to SUV?)")
    far = _volume([0.0, 4.0], origin=(500.0, 0.0, 0.0))
    with pytest.raises(OsteoSegError) as raised:
        check_images(_volume([0.0, 400.0]), far, case="p3", ct_path="ct.nrrd", pet_path="pet.nrrd")
    assert str(raised.value) == (
        "case p3: 2 problems:\n"
        "  case p3: ct.nrrd: does not look like a CT in HU: no value below 0 (range 0 to 400); air is -1000 HU, so "
        "the rescale slope/intercept was probably not applied\n"
        "  case p3: pet.nrrd: PET and CT do not overlap in physical space: they are 498 mm apart "
        "(gap x/y/z [498.0, 0.0, 0.0] mm)")
    problems = image_problems(ct, far, case="p4") + image_problems(_volume([0.0, 400.0]), None, case="p5")
    assert [(p.case, p.path) for p in problems] == [("p4", None), ("p5", None)]


def test_twenty_one_problems_show_twenty_and_one_more_and_twenty_end_with_the_last(tmp_path):
    cohort = broken_cohort(tmp_path, 11)
    write(np.random.default_rng(3).integers(-1000, 1500, (4, 8, 8)).astype(np.int16), tmp_path / "ct10.nii.gz")
    with pytest.raises(OsteoSegError) as raised:
        check_cohort(cohort, [case.case_id for case in cohort.cases])   # c10 lacks only its PET: 21
    lines = raised.value.problem.split("\n")
    assert lines[0].startswith("21 problem(s)") and lines[-1] == "  ... and 1 more" and len(lines) == 22
    with pytest.raises(OsteoSegError) as raised:
        check_cohort(cohort, [f"c{i:02d}" for i in range(10)])
    assert raised.value.problem.split("\n")[-1] == f"  case c09: {tmp_path.resolve() / 'pet9.nii.gz'}: file not found"


def test_an_unreadable_label_is_named_and_the_next_label_is_still_checked(tmp_path):
    rng = np.random.default_rng(4)
    write(rng.integers(-1000, 1500, (4, 8, 8)).astype(np.int16), tmp_path / "ct.nii.gz")
    write(rng.uniform(0.1, 5, (4, 8, 8)).astype(np.float32), tmp_path / "pet.nii.gz")
    write(np.full((4, 8, 8), 2, np.uint8), tmp_path / "two.nii.gz")
    cohort = Cohort(tmp_path, [Case(case_id="p1", ct="ct.nii.gz", pet="pet.nii.gz",
                                    labels={"A": "gone.nii.gz", "B": "two.nii.gz"})])
    save_cohort(cohort)
    problems = [(p.case, p.path, p.message) for p in validate_cohort(cohort)]
    assert problems == [("p1", str(tmp_path.resolve() / "gone.nii.gz"), "file not found"),
                        ("p1", str(tmp_path.resolve() / "two.nii.gz"), "label values must be 0/1 (or 0/255), found 2")]
