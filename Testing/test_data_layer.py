"""The data layer on synthetic inputs: preprocessing, splits, alignment, SUV rules, and every kind of
bad input reported with case, file and problem."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import TINY_SHAPE
from OsteoSegLib import preprocess
from OsteoSegLib.align import align_to_folder
from OsteoSegLib.cli import main
from OsteoSegLib.cohort import Case, Cohort, save_cohort
from OsteoSegLib.cohort_validate import validate_cohort
from OsteoSegLib.dicom import Series, choose_series
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.metrics import dice
from OsteoSegLib.phantom import generate_case, settings_for
from OsteoSegLib.phantom.writer import case_seed
from OsteoSegLib.registration import (
    MAX_SAMPLES,
    _check_plausible,
    anatomy_mask,
    check_overlap,
    largest_displacement,
    mask_centroid,
    metric_mask,
    pet_coverage,
    register_rigid,
    sampling_per_level,
    target_registration_error,
)
from OsteoSegLib.splits import holdout_split, kfold_splits, lesion_slices
from OsteoSegLib.suv import suv_conversion

# -- preprocessing ------------------------------------------------------------------------------


def test_ct_bone_window_and_min_max():
    ct = np.array([[[-1000.0, -400.0, 350.0, 1100.0, 3000.0]]])
    np.testing.assert_allclose(preprocess.normalise_ct(ct), [[[0.0, 0.0, 0.5, 1.0, 1.0]]], atol=1e-6)
    flat = preprocess.min_max(np.full((2, 2, 2), 7.0))
    assert np.all(flat == 0.0)                                   # eps keeps a constant volume finite


def test_pet_normalisations():
    pet = np.array([[[0.0, 2.0, 4.0, 40.0]]])
    np.testing.assert_allclose(preprocess.normalise_pet(pet), [[[0.0, 0.05, 0.1, 1.0]]], atol=1e-6)
    fixed = preprocess.PreprocessSettings(pet_normalisation="fixed", pet_suv_range=(0.0, 10.0))
    np.testing.assert_allclose(preprocess.normalise_pet(pet, fixed), [[[0.0, 0.2, 0.4, 1.0]]], atol=1e-6)


def test_input_channels_follow_the_channel_order():
    ct, pet = np.full((3, 4, 5), 1100.0), np.full((3, 4, 5), 2.0)
    ct[0, 0, 0], pet[0, 0, 0] = -400.0, 0.0
    both = preprocess.input_channels(ct, pet, ("pet", "ct"))
    assert both.shape == (3, 2, 4, 5) and both[1, 0, 1, 1] == pytest.approx(1.0)
    assert preprocess.input_channels(None, pet, ("pet",)).shape == (3, 1, 4, 5)
    with pytest.raises(ValueError, match="'ct' was requested but not given"):
        preprocess.input_channels(None, pet, ("ct", "pet"))


@pytest.mark.parametrize("shape", [(173, 219), (512, 512), (224, 224), (97, 300)])
def test_training_size_round_trip_does_not_shift(shape):
    mask = np.zeros((2, *shape), np.float32)
    y, x = shape[0] // 3, shape[1] // 2
    mask[:, y:y + shape[0] // 4, x:x + shape[1] // 5] = 1
    small = preprocess.to_training_size(mask, 224)
    assert small.shape == (2, 224, 224)
    back = preprocess.from_training_size(small, shape) >= 0.5
    assert dice(back, mask > 0) > 0.95
    centre = np.argwhere(mask[0] > 0).mean(axis=0)
    # No systematic shift: at most half a pixel of the coarser of the two grids (quantisation).
    tolerance = 0.5 * np.maximum(1.0, np.array(shape) / 224)
    assert np.all(np.abs(np.argwhere(back[0]).mean(axis=0) - centre) <= tolerance)
    if shape == (224, 224):
        np.testing.assert_array_equal(small, mask)


# -- splits -------------------------------------------------------------------------------------


def test_holdout_split_is_patient_wise_7_1_2():
    ids = [f"P{i:02d}" for i in range(20)]
    split = holdout_split(ids, seed=3)
    assert (len(split.train), len(split.validation), len(split.test)) == (14, 2, 4)
    assert sorted(split.train + split.validation + split.test) == ids
    assert holdout_split(ids, seed=3) == split and holdout_split(ids, seed=4) != split


def test_kfold_tests_each_patient_once_and_never_mixes_parts():
    ids = [f"P{i:02d}" for i in range(20)]
    folds = kfold_splits(ids, 5, seed=1)
    tested = [i for fold in folds for i in fold.test]
    assert sorted(tested) == ids
    for fold in folds:
        parts = [set(fold.train), set(fold.validation), set(fold.test)]
        assert all(not (a & b) for n, a in enumerate(parts) for b in parts[n + 1:])
        assert fold.validation and set().union(*parts) == set(ids)


def test_too_few_patients_are_refused():
    with pytest.raises(OsteoSegError, match="5-fold cross-validation needs at least 7 patients"):
        kfold_splits(["a", "b", "c", "d"], 5)
    with pytest.raises(OsteoSegError, match="at least 3 patients"):
        holdout_split(["a", "b"])


def test_lesion_slices():
    label = np.zeros((6, 4, 4), np.uint8)
    label[[1, 4], 2, 2] = 1
    assert lesion_slices(label).tolist() == [1, 4]


# -- alignment ----------------------------------------------------------------------------------


def test_rigid_registration_recovers_the_phantom_misalignment(small_cohort):
    errors = []
    for case in small_cohort.cases[:3]:
        ct = sitk.ReadImage(str(small_cohort.path(case.ct)))
        pet = sitk.ReadImage(str(small_cohort.path(case.pet)))
        truth = sitk.ReadTransform(str(small_cohort.path(case.metadata["ct_to_pet_transform"])))
        centre = ct.TransformContinuousIndexToPhysicalPoint([n / 2 for n in ct.GetSize()])
        point = mask_centroid(sitk.ReadImage(str(small_cohort.path(case.labels["A"])))) or centre
        before = target_registration_error(sitk.Euler3DTransform(), truth, point)
        after = target_registration_error(register_rigid(ct, pet).transform, truth, point)
        errors.append((before, after))
    assert all(after < 2.0 for _, after in errors), errors
    # a misalignment beyond registration precision is reduced (one case starts at 1.1 mm already)
    assert all(after < before for before, after in errors if before > 2.0), errors
    assert sum(before > 2.0 for before, _ in errors) >= 2, errors


def test_rigid_registration_gives_the_same_answer_every_time(small_cohort):
    """ITK's Mattes metric sums its histogram in thread order; the registration runs ITK on one thread
    so the answer is reproducible, and gives the caller's thread setting back afterwards."""
    case = small_cohort.cases[3]
    ct, pet = (sitk.ReadImage(str(small_cohort.path(f))) for f in (case.ct, case.pet))
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    first = register_rigid(ct, pet).transform.GetParameters()
    assert register_rigid(ct, pet).transform.GetParameters() == first
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads


def test_refinements_do_not_wander_about_the_limb_axis(tmp_path):
    """A phantom at the real STS grids (1 mm CT, 5.47 mm PET) whose near-cylindrical limb barely
    constrains rotation about its axis: refinements with the first descent's fixed step wandered
    23 degrees and the case was refused as implausible; steps bounded in mm keep them local."""
    settings = settings_for("small", shape=(176, 176, 48), spacing=(1.0, 1.0, 3.27),
                            pet_spacing_mm=(5.47, 5.47, 3.27), max_misalignment_mm=5.0, max_misalignment_deg=3.0)
    case = generate_case("case_002", case_seed(81, 2), settings, tmp_path / "case_002")
    ct, pet = (sitk.ReadImage(str(tmp_path / f)) for f in (case.ct, case.pet))
    truth = sitk.ReadTransform(str(tmp_path / case.metadata["ct_to_pet_transform"]))
    lesion = mask_centroid(sitk.ReadImage(str(tmp_path / case.truth)))
    assert target_registration_error(register_rigid(ct, pet).transform, truth, lesion) < 1.0


def test_metric_mask_takes_the_body_and_the_air_next_to_it():
    """The metric samples the body plus a band of air (so the skin outline steers the registration),
    not far air, and only where the PET has data."""
    hounsfield = np.full((5, 40, 60), -1000.0, np.float32)
    hounsfield[:, 10:30, 10:30] = 40.0                          # body: x 10-29 (1 mm voxels)
    ct = sitk.GetImageFromArray(hounsfield)
    pet = sitk.Image([50, 40, 5], sitk.sitkFloat32)             # PET covers x 0-49 only
    mask = sitk.GetArrayFromImage(metric_mask(anatomy_mask(ct, 12.0), pet_coverage(ct, pet), ct))[2, 20]
    assert mask[10:30].all()                                    # body
    assert mask[30:41].all() and mask[0:10].all()               # air within 12 mm of the skin
    assert not mask[43:].any()                                  # far air, and beyond the PET
    no_air = sitk.GetArrayFromImage(metric_mask(anatomy_mask(ct, 0.0), pet_coverage(ct, pet), ct))[2, 20]
    assert no_air.nonzero()[0].tolist() == list(range(10, 30))


def test_pet_coverage_follows_the_transform_that_places_the_pet():
    """With the PET placed by a transform (CT point -> PET point), the CT voxels it covers move the
    other way: the metric region the registration re-places on the aligned PET."""
    ct = sitk.Image([60, 10, 4], sitk.sitkFloat32)              # x 0-59 mm
    pet = sitk.Image([30, 10, 4], sitk.sitkFloat32)             # x 0-29 mm
    assert pet_coverage(ct, pet)[2, 5].nonzero()[0].tolist() == list(range(30))
    shift = sitk.TranslationTransform(3, (-10.0, 0.0, 0.0))     # CT x maps to PET x - 10
    assert pet_coverage(ct, pet, transform=shift)[2, 5].nonzero()[0].tolist() == list(range(10, 40))
    assert pet_coverage(ct, pet, margin_mm=5.0)[2, 5].nonzero()[0].tolist() == list(range(5, 25))


def test_pet_coverage_of_a_full_size_ct():
    """A clinical 512 x 512 CT grid: the coverage must not be read from a freed temporary image (a view
    of it gave all False or a segmentation fault here, so rigid registration failed on full-size CTs)."""
    ct = sitk.Image([512, 512, 40], sitk.sitkInt16)             # 0 .. 511 mm in-plane, 1 mm voxels
    pet = sitk.Image([100, 130, 12], sitk.sitkFloat32)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((-1.5, -1.5, -1.5))                           # covers x -3.5 .. 396.5 mm, all of y and z
    coverage = pet_coverage(ct, pet)
    assert coverage[:, :, :397].all() and not coverage[:, :, 397:].any()


def test_metric_samples_at_most_max_samples_per_level():
    mask = sitk.Image([400, 400, 25], sitk.sitkUInt8) + 1      # 4,000,000 voxels in the region
    full, half, quarter = sampling_per_level(mask, (1, 2, 4), 0.5)
    assert full * 4_000_000 == pytest.approx(MAX_SAMPLES)
    assert half * 4_000_000 / 2**3 == pytest.approx(MAX_SAMPLES)
    assert quarter == 0.5                                       # 31,250 samples: under the cap, as asked


def test_largest_displacement_is_where_two_rigid_transforms_disagree_most():
    image = sitk.Image([11, 11, 11], sitk.sitkUInt8)            # box -0.5 .. 10.5 mm
    shifted = sitk.Euler3DTransform((0, 0, 0), 0, 0, 0, (3.0, 4.0, 0.0))
    assert largest_displacement(sitk.Euler3DTransform(), shifted, image) == pytest.approx(5.0)
    turned = sitk.Euler3DTransform((5.0, 5.0, 5.0), 0, 0, math.radians(90), (0, 0, 0))
    # a quarter turn about z through the box's centre moves each corner by sqrt(2) * its 5.5*sqrt(2) mm radius
    assert largest_displacement(sitk.Euler3DTransform(), turned, image) == pytest.approx(11.0)


def test_implausible_registration_and_disjoint_volumes_are_refused():
    transform = sitk.Euler3DTransform()
    transform.SetTranslation((0.0, 45.0, 0.0))
    with pytest.raises(OsteoSegError, match="implausible alignment"):
        _check_plausible(transform, "P1")
    ct = sitk.Image([20, 20, 10], sitk.sitkFloat32)
    pet = sitk.Image([10, 10, 5], sitk.sitkFloat32)
    pet.SetOrigin((0.0, 0.0, 500.0))
    with pytest.raises(OsteoSegError, match=r"case P2: PET and CT do not overlap .* 49\d mm apart"):
        check_overlap(ct, pet, case="P2")
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    with pytest.raises(OsteoSegError, match="case P3: PET and CT do not overlap"):
        register_rigid(ct, pet, case="P3")
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads   # given back on failure too


def test_align_writes_pet_on_ct_transform_and_report(tiny_cohort, tmp_path):
    case = tiny_cohort.cases[0]
    ct = sitk.ReadImage(str(tiny_cohort.path(case.ct)))
    pet = sitk.ReadImage(str(tiny_cohort.path(case.pet)))
    report = align_to_folder(ct, pet, tmp_path, "resample")
    assert report["method"] == "resample"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alignment.json", "alignment.png", "ct_to_pet.tfm",
                                                          "pet_on_ct.nii.gz"]
    assert sitk.ReadImage(str(tmp_path / "pet_on_ct.nii.gz")).GetSize() == TINY_SHAPE
    with pytest.raises(OsteoSegError, match="unknown alignment method 'affine'"):
        align_to_folder(ct, pet, tmp_path / "x", "affine")


# -- SUV rules ----------------------------------------------------------------------------------


def pet_header(**changes):
    header = pydicom.Dataset()
    header.Units, header.DecayCorrection, header.PatientWeight = "BQML", "START", "70"
    header.SeriesDate, header.SeriesTime = "20260101", "100000"
    info = pydicom.Dataset()
    info.RadiopharmaceuticalStartTime, info.RadionuclideTotalDose = "090000", "3.7e8"
    info.RadionuclideHalfLife = "6586.2"
    header.RadiopharmaceuticalInformationSequence = [info]
    for key, value in changes.items():
        setattr(header, key, value)
    return header


def test_suv_factor_from_tags():
    conversion = suv_conversion(pet_header())
    assert conversion.factor == pytest.approx(70000 / (3.7e8 * 2 ** (-3600 / 6586.2)), rel=1e-12)
    assert suv_conversion(pet_header(DecayCorrection="ADMIN")).factor == pytest.approx(70000 / 3.7e8)
    assert suv_conversion(pet_header(Units="GML")).factor == 1.0


def test_injection_before_midnight_scan_after():
    header = pet_header(SeriesTime="003000")
    header.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "233000"
    assert suv_conversion(header).decay_factor == pytest.approx(2 ** (-3600 / 6586.2))


@pytest.mark.parametrize("changes, message", [
    (dict(Units="CNTS"), "'CNTS' cannot be converted to SUV"),
    (dict(DecayCorrection="NONE"), "DecayCorrection 'NONE' is not supported"),
    (dict(PatientWeight="0"), "positive PatientWeight"),
])
def test_unknown_units_and_missing_tags_are_errors(changes, message):
    with pytest.raises(OsteoSegError, match=message):
        suv_conversion(pet_header(**changes))


def test_several_series_without_a_choice_is_an_error(tmp_path):
    series = [Series("1.2.3", "CT", "arterial", "f"), Series("1.2.4", "CT", "venous", "f")]
    with pytest.raises(OsteoSegError, match=r"2 CT series here, choose one by its SeriesInstanceUID: .*1\.2\.3.*1\.2\.4"
                       ):
        choose_series(series, "CT", tmp_path, case="P9")
    assert choose_series(series, "CT", tmp_path, uid="1.2.4").description == "venous"
    with pytest.raises(OsteoSegError, match="no a PT series here"):
        choose_series(series, "PT", tmp_path)


# -- cohort validation: every problem, in one run -----------------------------------------------


def write(array, path, spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path.name


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


def test_folder_import_reports_every_unmatched_pattern(tmp_path, capsys):
    for name in ("P1", "P2"):
        (tmp_path / "data" / name).mkdir(parents=True)
        write(np.zeros((8, 16, 16), np.int16) - 1000, tmp_path / "data" / name / "CT.nii.gz")
    assert main(["cohort", "import-folders", str(tmp_path / "data"), "--out", str(tmp_path / "c"),
                 "--ct", "CT.nii.gz", "--pet", "PET*.nii.gz"]) == 2
    error = capsys.readouterr().err
    assert "2 case(s) could not be imported" in error and "case P1" in error and "case P2" in error
    assert not (tmp_path / "c").exists()
