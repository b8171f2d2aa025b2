"""Atomic output: temporary names that keep double extensions."""

from __future__ import annotations

from OsteoSegLib.atomic import atomic_path, split_extension


def test_temporary_name_keeps_double_extension(tmp_path):
    assert split_extension(tmp_path / "a.seg.nrrd") == ("a", ".seg.nrrd")
    assert split_extension(tmp_path / "a.nii.gz") == ("a", ".nii.gz")
    with atomic_path(tmp_path / "x.nii.gz") as temporary:
        assert temporary.name.endswith(".nii.gz") and temporary.parent == tmp_path
        temporary.write_bytes(b"ok")
    assert (tmp_path / "x.nii.gz").read_bytes() == b"ok"
