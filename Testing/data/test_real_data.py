"""The data layer on real scanner data (../shared/data): skipped with a reason when it is absent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.data.cohort_import import import_folders
from OsteoSegLib.data.cohort_summary import summarise_cohort
from OsteoSegLib.data.cohort_validate import validate_cohort
from OsteoSegLib.data.dicom import choose_series, find_series, read_pet_suv, read_series
from OsteoSegLib.data.dicomseg import dicom_seg_to_masks
from OsteoSegLib.data.rtstruct import rtstruct_to_mask
from OsteoSegLib.data.suv import suv_conversion
from OsteoSegLib.errors import OsteoSegError

pytestmark = pytest.mark.realdata


def test_all_sts_patients_import_validate_and_contours_agree(shared_data, tmp_path):
    cohort = import_folders(shared_data / "sts-petct" / "nifti", tmp_path, ct="CT_image.nii.gz",
                            pet="PET_image.nii.gz", labels={"tumour": "CT_mask.nii.gz"},
                            pet_grid_labels={"tumour": "PET_mask.nii.gz"})
    assert len(cohort.cases) == 20
    assert validate_cohort(cohort, ["tumour"]) == []
    rows = summarise_cohort(cohort)
    dices = [row["labels"]["tumour"]["dice_with_pet_grid_label"] for row in rows]
    # The same contour rasterised on 1 mm CT and 4-5 mm PET grids: close, limited by PET voxels.
    assert np.mean(dices) > 0.9 and min(dices) > 0.5
    assert all(row["labels"]["tumour"]["suv_max"] > 2.0 for row in rows)      # FDG-avid sarcomas


@pytest.mark.parametrize("case", ["STS_001", "STS_002"])
def test_dicom_and_rtstruct_match_the_nifti_versions(shared_data, case):
    for modality, grid in (("CT", "CT"), ("PT", "PET")):
        folder = shared_data / "sts-petct" / "dicom" / case / grid
        series = find_series(folder)
        chosen = choose_series(series, modality, folder)
        image = read_pet_suv(chosen)[0] if modality == "PT" else read_series(chosen)
        nifti = sitk.ReadImage(str(shared_data / "sts-petct" / "nifti" / case / f"{grid}_image.nii.gz"))
        assert image.GetSize() == nifti.GetSize()
        np.testing.assert_allclose(image.GetOrigin(), nifti.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(image.GetSpacing(), nifti.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(nifti), rtol=1e-4, atol=1e-3)
        mask = rtstruct_to_mask(folder / "mask" / "RS.dcm", image, frame_of_reference=chosen.frame_of_reference)
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "sts-petct" / "nifti" / case
                                                             / f"{grid}_mask.nii.gz")))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), expected)


def test_qin_pet_converts_from_bq_per_ml_to_suv(shared_data):
    folder = shared_data / "qin-headneck-pet"
    pet = choose_series(find_series(folder), "PT", folder)
    header = pet.header
    # Arithmetic from the tags, by hand: decay-corrected to the series start (DecayCorrection START).
    assert (header.Units, header.DecayCorrection) == ("BQML", "START")
    info = header.RadiopharmaceuticalInformationSequence[0]
    elapsed = (10 * 3600 + 27 * 60 + 31.687) - (8 * 3600 + 45 * 60)       # SeriesTime - injection, s
    assert (str(header.SeriesTime), str(info.RadiopharmaceuticalStartTime)) == ("102731.687000", "084500.000000")
    half_life = float(info.RadionuclideHalfLife)
    decayed_dose = float(info.RadionuclideTotalDose) * math.exp(-math.log(2) * elapsed / half_life)
    expected_factor = float(header.PatientWeight) * 1000.0 / decayed_dose
    conversion = suv_conversion(header)
    assert conversion.factor == pytest.approx(expected_factor, rel=1e-9)
    assert conversion.factor == pytest.approx(4.0166e-4, rel=1e-4)
    image, _ = read_pet_suv(pet)
    # One voxel: stored value x slope (Bq/mL) x factor.
    import pydicom

    first = pydicom.dcmread(sorted(pet.files)[200])
    index = image.TransformPhysicalPointToIndex([float(v) for v in first.ImagePositionPatient])
    raw = first.pixel_array.astype(float) * float(first.RescaleSlope) + float(first.RescaleIntercept)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image)[index[2]], raw * expected_factor, rtol=1e-5, atol=1e-4)
    assert 40 < float(sitk.GetArrayViewFromImage(image).max()) < 150       # bladder-level SUVmax, whole body


def test_qin_dicom_seg_gives_eleven_lesions_on_the_pet_grid(shared_data):
    folder = shared_data / "qin-headneck-pet"
    series = find_series(folder)
    pet = choose_series(series, "PT", folder)
    image, _ = read_pet_suv(pet)
    segmentation = choose_series(series, "SEG", folder)
    masks = dicom_seg_to_masks(segmentation.files[0], image, frame_of_reference=pet.frame_of_reference)
    with pytest.raises(OsteoSegError, match="DICOM SEG is drawn on frame of reference .* not the image's 1.2.3"):
        dicom_seg_to_masks(segmentation.files[0], image, frame_of_reference="1.2.3")
    assert len(masks) == 11
    values = sitk.GetArrayFromImage(image)
    primary = next(m for name, m in masks.items() if name.startswith("1 "))
    assert all(sitk.GetArrayViewFromImage(m).any() for m in masks.values())
    assert float(values[sitk.GetArrayFromImage(primary) > 0].max()) > 10      # the primary tumour is hot
