"""The Align step's files: what each method writes, the report's content, the figure's slice and title."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TINY_SHAPE
from OsteoSegLib.alignment import align as align_module
from OsteoSegLib.alignment.align import align_to_folder, figure_title, highest_uptake_slice
from OsteoSegLib.alignment.registration import RigidResult
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import resample_onto


@pytest.fixture
def images(tiny_cohort):
    case = tiny_cohort.cases[0]
    return sitk.ReadImage(str(tiny_cohort.path(case.ct))), sitk.ReadImage(str(tiny_cohort.path(case.pet)))


@pytest.fixture
def figures(monkeypatch):
    """The quality figure's arguments, instead of drawing it."""
    drawn = []
    monkeypatch.setattr(align_module, "write_quality_figure",
                        lambda ct, before, after, path, title: drawn.append((before, after, path, title)))
    return drawn


def array(image):
    return sitk.GetArrayFromImage(image)


def test_align_writes_pet_on_ct_transform_and_report(images, tmp_path):
    ct, pet = images
    report = align_to_folder(ct, pet, tmp_path, "resample")
    assert report == {"method": "resample", "transform": [0.0] * 6, "transform_center": [0.0] * 3}
    assert json.loads((tmp_path / "alignment.json").read_text()) == report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alignment.json", "alignment.png", "ct_to_pet.tfm",
                                                          "pet_on_ct.nii.gz"]
    written = sitk.ReadImage(str(tmp_path / "pet_on_ct.nii.gz"))
    assert written.GetSize() == TINY_SHAPE
    np.testing.assert_allclose(array(written), array(resample_onto(pet, ct)), rtol=1e-6)
    assert sitk.ReadTransform(str(tmp_path / "ct_to_pet.tfm")).GetParameters() == (0.0,) * 6
    with pytest.raises(OsteoSegError, match=r"^case P7: unknown alignment method 'affine'; use one of resample, rigid"):
        align_to_folder(ct, pet, tmp_path / "x", "affine", case="P7")
    assert not (tmp_path / "x").exists()


def test_rigid_alignment_writes_the_registration_its_metric_and_a_before_after_figure(images, tmp_path,
                                                                                       monkeypatch, figures):
    ct, pet = images
    found = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.0, 0.0, 0.02, (4.0, -2.0, 1.0))
    calls = []

    def register(ct_, pet_, *, case):
        calls.append(case)
        return RigidResult(found, -0.25, -0.5, 17, "converged")

    monkeypatch.setattr(align_module, "register_rigid", register)
    report = align_to_folder(ct, pet, tmp_path, "rigid", case="P8")
    assert calls == ["P8"]
    assert report == {"method": "rigid", "transform": list(found.GetParameters()), "transform_center": [1.0, 2.0, 3.0],
                      "metric": "Mattes mutual information (lower is better)", "metric_before": -0.25,
                      "metric_after": -0.5, "iterations": 17, "stop_condition": "converged"}
    assert json.loads((tmp_path / "alignment.json").read_text()) == report
    aligned = array(sitk.ReadImage(str(tmp_path / "pet_on_ct.nii.gz")))
    np.testing.assert_allclose(aligned, array(resample_onto(pet, ct, transform=found)), rtol=1e-6)
    assert not np.allclose(aligned, array(resample_onto(pet, ct)))        # the transform was applied
    written = sitk.ReadTransform(str(tmp_path / "ct_to_pet.tfm"))
    np.testing.assert_allclose(written.GetParameters(), found.GetParameters())
    (before, after, path, title), = figures
    np.testing.assert_allclose(array(before), array(resample_onto(pet, ct)), rtol=1e-6)   # unregistered
    np.testing.assert_allclose(array(after), aligned, rtol=1e-6)
    assert path == tmp_path / "alignment.png" and title == "rigid: MI -0.2500 -> -0.5000"


def test_resampling_shows_the_same_pet_before_and_after(images, tmp_path, figures):
    ct, pet = images
    align_to_folder(ct, pet, tmp_path, "resample")
    (before, after, _, title), = figures
    assert before is after and title == "resample"


def test_images_that_do_not_overlap_are_refused_before_anything_is_written(images, tmp_path):
    ct, pet = images
    away = sitk.Image(pet)
    away.SetOrigin((0.0, 0.0, 900.0))
    with pytest.raises(OsteoSegError, match="^case P9: PET and CT do not overlap"):
        align_to_folder(ct, away, tmp_path / "out", "resample", case="P9")
    assert not (tmp_path / "out").exists()


def test_the_figure_looks_at_the_slice_of_highest_uptake():
    pet = np.zeros((5, 3, 4), np.float32)
    pet[1, 0, 0], pet[3, 2, 3], pet[4, 1, 1] = 2.0, 7.5, 7.5      # the first of two equal maxima
    assert highest_uptake_slice(pet) == 3
    assert figure_title("resample", None) == "resample"
    assert figure_title("rigid", RigidResult(sitk.Euler3DTransform(), -0.123456, -0.65432, 3, "")) == \
        "rigid: MI -0.1235 -> -0.6543"
