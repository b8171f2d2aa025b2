"""The synthetic osteomyelitis cohort: properties, not pictures."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TINY_SHAPE, TINY_SPACING
from OsteoSegLib.data.cohort import load_cohort
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.metrics import cohens_kappa, dice
from OsteoSegLib.phantom import generate_cohort, settings_for
from OsteoSegLib.phantom.pet import FWHM_PER_SIGMA, effective_sigma_mm, simulate_pet
from OsteoSegLib.phantom.spec import draw_case


def read(cohort, relative):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.path(relative))))


def lesion_cases(cohort):
    return [c for c in cohort.cases if c.metadata["phantom"]["lesion"] is not None]


def test_cohort_json_records_seed_parameters_and_files(tiny_cohort):
    reloaded = load_cohort(tiny_cohort.root)
    assert reloaded.generator["seed"] == 5 and reloaded.generator["cases"] == 3
    assert tuple(reloaded.generator["settings"]["grid"]["shape"]) == TINY_SHAPE
    for case in reloaded.cases:
        for relative in (case.ct, case.pet, case.labels["A"], case.labels["B"], case.truth,
                         case.metadata["ct_to_pet_transform"]):
            assert reloaded.path(relative).is_file()
        assert read(reloaded, case.ct).shape == tuple(reversed(TINY_SHAPE))


def test_label_a_contains_most_of_b_and_they_agree_only_partly(small_cohort):
    kappas = []
    for case in lesion_cases(small_cohort):
        a, b = read(small_cohort, case.labels["A"]) > 0, read(small_cohort, case.labels["B"]) > 0
        truth = read(small_cohort, case.truth) > 0
        assert (a & b).sum() >= 0.9 * b.sum(), case.case_id                # A contains most of B
        assert b.sum() < truth.sum() < a.sum(), case.case_id                # B core < truth < A broad
        kappa = cohens_kappa(a, b)
        assert kappa == pytest.approx(case.metadata["agreement"]["kappa_A_B"], abs=1e-4)   # recorded = measured
        assert dice(a, b) == pytest.approx(case.metadata["agreement"]["dice_A_B"], abs=1e-4)
        kappas.append(kappa)
    assert len(kappas) >= 5
    # The paper's sources agree at kappa ~0.66: partly, not nearly perfectly and not at random.
    assert 0.45 < float(np.mean(kappas)) < 0.8 and max(kappas) < 0.9


def test_no_lesion_case_has_empty_labels():
    settings = replace(settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING), no_lesion_probability=1.0)
    spec = draw_case("x", 1, settings)
    assert spec.lesion is None


def test_ct_intensities_are_physical(small_cohort):
    for case in small_cohort.cases:
        ct = read(small_cohort, case.ct)
        truth = read(small_cohort, case.truth) > 0
        assert ct.dtype == np.int16 and ct.min() >= -1024 and ct.max() <= 3071
        assert ct[:, :3, :3].mean() < -900                          # air in the corners
        body = ct > -500
        assert -150 < np.median(ct[body]) < 120                     # mostly fat and muscle
        bright = np.percentile(ct[body], 99.5)
        assert 800 < bright <= 3071                                  # cortical bone (or metal)
        if case.metadata["phantom"]["lesion"] is not None:
            assert np.median(ct[truth]) < 900                       # infected bone is destroyed


def point_source_pet(fwhm_mm, noise_cov=0.0, activity_value=None):
    settings = replace(settings_for("small", shape=(64, 64, 64), spacing=(1.0, 1.0, 1.0)),
                       pet_spacing_mm=(2.0, 2.0, 2.0), pet_fwhm_mm=fwhm_mm, pet_noise_cov=noise_cov)
    spec = replace(draw_case("p", 0, settings), misalignment_deg=(0, 0, 0), misalignment_mm=(0, 0, 0),
                   pet_origin_shift_mm=(0.0, 0.0, 0.0))
    array = np.zeros((64, 64, 64), np.float32)
    if activity_value is None:
        array[32, 32, 32] = 1000.0
    else:
        array[:] = activity_value
    activity = sitk.GetImageFromArray(array)
    activity.SetOrigin((-31.5, -31.5, -31.5))
    pet, _ = simulate_pet(activity, spec, settings, np.random.default_rng(0))
    return pet, settings


@pytest.mark.parametrize("fwhm", [5.0, 8.0])
def test_pet_resolution_is_as_configured(fwhm):
    pet, settings = point_source_pet(fwhm)
    values = sitk.GetArrayFromImage(pet).astype(float)
    indices = np.indices(values.shape)
    for axis in range(3):   # z, y, x second moments of the blurred point, in mm
        coordinate = indices[axis] * pet.GetSpacing()[2 - axis]
        mean = (coordinate * values).sum() / values.sum()
        sigma = math.sqrt(((coordinate - mean) ** 2 * values).sum() / values.sum())
        expected = effective_sigma_mm(fwhm, settings.pet_spacing_mm)[2 - axis]
        assert sigma * FWHM_PER_SIGMA == pytest.approx(expected * FWHM_PER_SIGMA, rel=0.1)
    assert pet.GetSpacing() == (2.0, 2.0, 2.0)


def test_pet_noise_is_as_configured_and_scales_with_counts():
    deviations = []
    for suv in (1.0, 4.0):
        pet, _ = point_source_pet(6.5, noise_cov=0.12, activity_value=suv)
        interior = sitk.GetArrayFromImage(pet)[8:-8, 8:-8, 8:-8]
        assert interior.mean() == pytest.approx(suv, rel=0.02)
        deviations.append(float(interior.std()))
    assert deviations[0] == pytest.approx(0.12, rel=0.15)             # configured CoV at SUV 1
    assert deviations[1] / deviations[0] == pytest.approx(2.0, rel=0.15)   # sqrt(4): Poisson-like


def hot_centroid(image: sitk.Image) -> np.ndarray:
    """Uptake-weighted centre of the hot spot (physical mm)."""
    values = sitk.GetArrayFromImage(image).astype(float)
    values[values < 0.1 * values.max()] = 0
    hot = np.argwhere(values > 0)
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(p[::-1].tolist()) for p in hot.astype(float)])
    return (points * values[tuple(hot.T)][:, None]).sum(axis=0) / values.sum()


def test_recorded_misalignment_is_real(tiny_cohort):
    settings = replace(settings_for("small", shape=(64, 64, 32), spacing=(2.0, 2.0, 3.0)), pet_noise_cov=0.0)
    spec = draw_case("m", 3, settings)
    array = np.zeros((32, 64, 64), np.float32)
    array[20:23, 40:43, 22:25] = 10.0                                   # an off-centre hot spot
    activity = sitk.GetImageFromArray(array)
    activity.SetSpacing((2.0, 2.0, 3.0))
    activity.SetOrigin((-63.0, -63.0, -46.5))
    moved = replace(spec, misalignment_deg=(1.0, -2.0, 2.0), misalignment_mm=(6.0, -4.0, 3.0))
    still = replace(spec, misalignment_deg=(0, 0, 0), misalignment_mm=(0, 0, 0))
    rng = np.random.default_rng(0)
    moved_pet, _ = simulate_pet(activity, moved, settings, rng)
    still_pet, _ = simulate_pet(activity, still, settings, rng)
    from OsteoSegLib.phantom.pet import ct_to_pet_transform

    expected = np.array(ct_to_pet_transform(moved).TransformPoint(tuple(hot_centroid(still_pet))))
    assert np.linalg.norm(hot_centroid(moved_pet) - expected) < 1.0
    assert np.linalg.norm(hot_centroid(moved_pet) - hot_centroid(still_pet)) > 5.0
    # The case folder's .tfm holds the transform cohort.json describes.
    case = tiny_cohort.cases[0]
    transform = sitk.ReadTransform(str(tiny_cohort.path(case.metadata["ct_to_pet_transform"])))
    recorded = case.metadata["phantom"]
    parameters = transform.GetParameters()
    np.testing.assert_allclose(np.degrees(parameters[:3]), recorded["misalignment_deg"], atol=1e-6)
    np.testing.assert_allclose(parameters[3:], recorded["misalignment_mm"], atol=1e-6)


def test_pet_lives_on_its_own_coarser_grid(tiny_cohort):
    case = tiny_cohort.cases[0]
    ct = sitk.ReadImage(str(tiny_cohort.path(case.ct)))
    pet = sitk.ReadImage(str(tiny_cohort.path(case.pet)))
    assert pet.GetSpacing() == (4.0, 4.0, 4.0) and pet.GetOrigin() != ct.GetOrigin()
    assert pet.GetPixelID() == sitk.sitkFloat32 and sitk.GetArrayViewFromImage(pet).min() >= 0


def file_hashes(root):
    """The cohort's files (not the output folder's lock and manifest, which hold a time and a pid)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".osteoseg")}


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path, tiny_cohort):
    settings = settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING)
    again = generate_cohort(tmp_path / "again", 3, 5, settings, workers=1)
    assert file_hashes(again.root) == file_hashes(tiny_cohort.root)
    other = generate_cohort(tmp_path / "other", 1, 6, settings, workers=1)
    assert file_hashes(other.root)["case_000/ct.nii.gz"] != file_hashes(tiny_cohort.root)["case_000/ct.nii.gz"]
    # A case does not depend on how many cases were asked for.
    fewer = generate_cohort(tmp_path / "fewer", 1, 5, settings, workers=1)
    assert file_hashes(fewer.root)["case_000/pet.nii.gz"] == file_hashes(tiny_cohort.root)["case_000/pet.nii.gz"]


@pytest.mark.parametrize("arguments, message", [
    (dict(cases=0), "number of cases must be at least 1"),
    (dict(seed=-1), "seed must be zero or positive"),
])
def test_impossible_parameters_fail_before_writing(tmp_path, arguments, message):
    out = tmp_path / "cohort"
    options = dict(cases=2, seed=0) | arguments
    with pytest.raises(OsteoSegError, match=message):
        generate_cohort(out, options["cases"], options["seed"], settings_for("small"))
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("size, shape, spacing, message", [
    ("huge", None, None, "unknown phantom size 'huge'"),
    ("small", (-96, 96, 40), None, "too small"),
    ("small", (96, 96, 40), (2.0, 0.0, 3.0), "spacing must be positive"),
])
def test_bad_sizes_are_refused(size, shape, spacing, message):
    with pytest.raises(OsteoSegError, match=message):
        settings_for(size, shape=shape, spacing=spacing)


def test_non_empty_output_is_kept_unless_forced(tmp_path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "precious.txt").write_text("user data")
    settings = settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING)
    with pytest.raises(OsteoSegError, match="not empty.*--force"):
        generate_cohort(out, 1, 0, settings, workers=1)
    assert (out / "precious.txt").read_text() == "user data"
    with pytest.raises(OsteoSegError, match="--force only removes what OsteoSeg wrote.*precious.txt"):
        generate_cohort(out, 1, 0, settings, workers=1, force=True)    # never the user's file
    assert (out / "precious.txt").read_text() == "user data"
    (out / "precious.txt").unlink()
    first = generate_cohort(out, 2, 0, settings, workers=1)
    again = generate_cohort(out, 1, 7, settings, workers=1, force=True)   # an earlier cohort OsteoSeg wrote
    assert len(first.cases) == 2 and [c.case_id for c in again.cases] == ["case_000"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["case_000", "cohort.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]          # no staging folder left behind
    assert not [p for p in out.iterdir() if ".partial" in p.name]
    assert json.loads((out / "cohort.json").read_text())["generator"]["seed"] == 7
