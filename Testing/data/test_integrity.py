"""Input files that are not whole are refused with the file named: cut short, NaN in NIfTI, a folder,
a symbolic link loop, an empty file."""

from __future__ import annotations

import os

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.data import io
from OsteoSegLib.errors import OsteoSegError


def pet_volume() -> sitk.Image:
    return sitk.GetImageFromArray((np.random.default_rng(1).random((12, 20, 30)) * 8).astype(np.float32))


@pytest.mark.parametrize("name", ["pet.nii.gz", "pet.nii"])
def test_a_nifti_cut_short_is_refused_though_itk_reads_it(tmp_path, name):
    whole = tmp_path / name
    sitk.WriteImage(pet_volume(), str(whole))
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    assert sitk.ReadImage(str(cut)).GetSize() == (30, 20, 12)          # ITK alone fills the rest with 0
    with pytest.raises(OsteoSegError, match=f"cut_{name}: the file is cut short"):
        io.read_image(cut, case="P1")
    assert io.read_image(whole).GetSize() == (30, 20, 12)


def test_nan_and_infinite_voxels_in_nifti_are_found_though_itk_reads_them_as_zero(tmp_path):
    values = sitk.GetArrayFromImage(pet_volume())
    values[3, 4, 5], values[6, 7, 8] = np.nan, -np.inf
    path = tmp_path / "pet.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.transpose(values, (2, 1, 0)), np.eye(4)), str(path))
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()   # ITK: silently 0
    with pytest.raises(OsteoSegError, match=r"pet\.nii\.gz: 2 voxels are NaN or infinite"):
        io.read_image(path)


def test_paths_that_are_not_image_files_say_what_they_are(tmp_path):
    (tmp_path / "folder.nii.gz").mkdir()
    with pytest.raises(OsteoSegError, match="folder.nii.gz: this is a folder; expected an image file"):
        io.read_image(tmp_path / "folder.nii.gz")
    os.symlink(tmp_path / "b.nii.gz", tmp_path / "a.nii.gz")
    os.symlink(tmp_path / "a.nii.gz", tmp_path / "b.nii.gz")
    with pytest.raises(OsteoSegError, match="a.nii.gz: a symbolic link loop, not a file"):
        io.read_image(tmp_path / "a.nii.gz")
    (tmp_path / "empty.nrrd").write_bytes(b"")
    with pytest.raises(OsteoSegError, match="empty.nrrd: the file is empty"):
        io.read_image(tmp_path / "empty.nrrd")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OsteoSegError, match="not found .a part of the path is a file"):
        io.read_image(tmp_path / "file" / "ct.nii.gz")
