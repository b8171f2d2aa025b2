"""Atomic output: temporary names that keep double extensions; a failed write names the file asked for."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest
from OsteoSegLib.atomic import atomic_path, split_extension, write_text
from OsteoSegLib.errors import describe_os_error


def test_temporary_name_keeps_double_extension(tmp_path):
    assert split_extension(tmp_path / "a.seg.nrrd") == ("a", ".seg.nrrd")
    assert split_extension(tmp_path / "a.nii.gz") == ("a", ".nii.gz")
    with atomic_path(tmp_path / "x.nii.gz") as temporary:
        assert temporary.name.endswith(".nii.gz") and temporary.parent == tmp_path
        temporary.write_bytes(b"ok")
    assert (tmp_path / "x.nii.gz").read_bytes() == b"ok"


def test_a_failed_write_names_the_file_asked_for_and_leaves_nothing(tmp_path, monkeypatch):
    def full(self, *arguments, **keywords):
        raise OSError(errno.ENOSPC, "No space left on device")      # as a write on a full disk: no file named

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as raised:
        write_text(tmp_path / "summary.json", "{}")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "summary.json")
    assert describe_os_error(raised.value) == f"{tmp_path / 'summary.json'}: the disk is full"
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_that_cannot_be_made_names_the_file_asked_for_and_other_errors_stay(tmp_path, monkeypatch):
    def read_only(*arguments, **keywords):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".x.abc.partial.nii.gz"))

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(OSError) as raised, atomic_path(tmp_path / "x.nii.gz"):
            pass
    assert raised.value.filename == str(tmp_path / "x.nii.gz") and raised.value.errno == errno.EROFS
    with pytest.raises(FileNotFoundError) as raised, atomic_path(tmp_path / "y.nii.gz"):
        open(tmp_path / "an-input.txt")                              # another file's error is left as it is
    assert raised.value.filename == str(tmp_path / "an-input.txt") and list(tmp_path.iterdir()) == []
