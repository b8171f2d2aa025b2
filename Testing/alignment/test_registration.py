"""Rigid PET-to-CT registration: recovery of known misalignments, reproducibility, the metric's region, and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.alignment.registration import (
    MAX_SAMPLES,
    _check_plausible,
    anatomy_mask,
    largest_displacement,
    mask_centroid,
    metric_mask,
    pet_coverage,
    register_rigid,
    sampling_per_level,
    target_registration_error,
)
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import check_overlap
from OsteoSegLib.phantom import generate_case, settings_for
from OsteoSegLib.phantom.writer import case_seed


@pytest.mark.slow
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


@pytest.mark.slow
def test_rigid_registration_gives_the_same_answer_every_time(small_cohort):
    """ITK's Mattes metric sums its histogram in thread order; the registration runs ITK on one thread
    so the answer is reproducible, and gives the caller's thread setting back afterwards."""
    case = small_cohort.cases[3]
    ct, pet = (sitk.ReadImage(str(small_cohort.path(f))) for f in (case.ct, case.pet))
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    first = register_rigid(ct, pet).transform.GetParameters()
    assert register_rigid(ct, pet).transform.GetParameters() == first
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads


@pytest.mark.slow
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


@pytest.mark.realdata
def test_rigid_registration_recovers_a_known_perturbation_of_a_real_pet(shared_data):
    """STS_029: the registration of the perturbed PET lands where the perturbation sends the answer on
    the unperturbed PET (the true alignment of real data is unknown; see benchmarks/registration.py).
    Before the metric's region followed the aligned PET, this case missed by 2.4 mm."""
    from OsteoSegLib.alignment.registration import mask_centroid, move_geometry, register_rigid

    folder = shared_data / "sts-petct" / "nifti" / "STS_029"
    ct, pet = (sitk.ReadImage(str(folder / name)) for name in ("CT_image.nii.gz", "PET_image.nii.gz"))
    lesion = mask_centroid(sitk.ReadImage(str(folder / "CT_mask.nii.gz")))
    perturbation = sitk.Euler3DTransform(lesion, *[math.radians(a) for a in (2, -3, 2)], (4, -3, 5))
    unperturbed = register_rigid(ct, pet, case="STS_029").transform
    found = register_rigid(ct, move_geometry(pet, perturbation), case="STS_029").transform
    expected = perturbation.TransformPoint(unperturbed.TransformPoint(lesion))
    moved_by = np.linalg.norm(np.subtract(expected, unperturbed.TransformPoint(lesion)))
    error = np.linalg.norm(np.subtract(found.TransformPoint(lesion), expected))
    assert moved_by > 6.0                    # the perturbation is real (7 mm at the lesion) ...
    assert error < 1.0, error                # ... and is undone to within 1 mm


@pytest.mark.parametrize("spacing", [(1e-4, 1e-4, 1e-4), (80.0, 2.0, 3.0)])
def test_an_implausible_voxel_spacing_is_refused_before_registering(spacing):
    ct = sitk.Image([20, 20, 10], sitk.sitkFloat32) - 1000.0
    pet = sitk.Image([10, 10, 5], sitk.sitkFloat32) + 1.0
    ct.SetSpacing(spacing)
    pet.SetSpacing([s * 2 for s in spacing])
    with pytest.raises(OsteoSegError, match="case P4: the CT's voxel spacing .* mm is implausible"):
        register_rigid(ct, pet, case="P4")
