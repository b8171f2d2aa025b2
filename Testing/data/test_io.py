"""Image reading and atomic writing: clear errors that name the file, no half-written outputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from OsteoSegLib.data import io
from OsteoSegLib.errors import OsteoSegError


def volume(shape=(4, 5, 6), value=1.0):
    return sitk.GetImageFromArray(np.full(shape, value, np.float32))


def test_read_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(OsteoSegError, match=r"case P1: .*nope\.nii\.gz: file not found"):
        io.read_image(tmp_path / "nope.nii.gz", case="P1")
    corrupt = tmp_path / "ct.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(OsteoSegError, match=r"ct\.nii\.gz: cannot read the image"):
        io.read_image(corrupt)


def test_read_refuses_wrong_dimension_and_non_finite_voxels(tmp_path):
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 6), np.float32)), str(flat))
    with pytest.raises(OsteoSegError, match="expected a 3D image, found 2D"):
        io.read_image(flat)
    four = tmp_path / "four.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False), str(four))
    with pytest.raises(OsteoSegError, match="expected a 3D image, found 4D"):
        io.read_image(four)
    broken = np.ones((4, 5, 6), np.float32)
    broken[0, 0, :3] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "nan.nrrd"   # (ITK's NIfTI writer turns NaN into 0, NRRD keeps it)
    sitk.WriteImage(sitk.GetImageFromArray(broken), str(path))
    with pytest.raises(OsteoSegError, match="nan.nrrd: 3 voxels are NaN or infinite"):
        io.read_image(path)


def test_write_then_read_round_trip(tmp_path):
    image = volume(value=3.5)
    image.SetSpacing((0.5, 1.5, 3.0))
    path = io.write_image(image, tmp_path / "sub" / "pet.nii.gz")
    again = io.read_image(path)
    assert again.GetSpacing() == (0.5, 1.5, 3.0)
    assert float(sitk.GetArrayViewFromImage(again).mean()) == 3.5
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pet.nii.gz"]


def test_failed_write_leaves_neither_output_nor_temporary(tmp_path, monkeypatch):
    target = tmp_path / "ct.nii.gz"
    target.write_bytes(b"previous result")

    def half_write(image, path, compress):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", half_write)
    with pytest.raises(OsteoSegError, match=r"ct\.nii\.gz: cannot write the image \(disk full\)"):
        io.write_image(volume(), target)
    assert target.read_bytes() == b"previous result"   # the earlier file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]


def test_a_write_that_itk_reports_only_on_its_console_is_caught(tmp_path, monkeypatch):
    """ITK's writers print a failed write (a full disk) and return; the file is then cut short."""
    real_write = sitk.WriteImage

    def silently_short(image, path, compress):
        real_write(image, path, compress)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])

    monkeypatch.setattr(sitk, "WriteImage", silently_short)
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((20, 30, 40)).astype(np.float32))
    for name in ("pet.nii.gz", "pet.nii", "pet.nrrd"):
        with pytest.raises(OsteoSegError, match=f"{name}: writing failed: the file on disk is incomplete"):
            io.write_image(image, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_unknown_extension(tmp_path):
    with pytest.raises(OsteoSegError, match="unknown image extension"):
        io.write_image(volume(), tmp_path / "ct.jpg")
    assert not list(tmp_path.iterdir())
