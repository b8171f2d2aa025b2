"""The Align step's files."""

from __future__ import annotations

import pytest
import SimpleITK as sitk
from conftest import TINY_SHAPE
from OsteoSegLib.alignment.align import align_to_folder
from OsteoSegLib.errors import OsteoSegError


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
