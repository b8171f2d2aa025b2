"""Importing a cohort from one folder per case."""

from __future__ import annotations

import numpy as np
from helpers import write
from OsteoSegLib.cli import main


def test_folder_import_reports_every_unmatched_pattern(tmp_path, capsys):
    for name in ("P1", "P2"):
        (tmp_path / "data" / name).mkdir(parents=True)
        write(np.zeros((8, 16, 16), np.int16) - 1000, tmp_path / "data" / name / "CT.nii.gz")
    assert main(["cohort", "import-folders", str(tmp_path / "data"), "--out", str(tmp_path / "c"),
                 "--ct", "CT.nii.gz", "--pet", "PET*.nii.gz"]) == 2
    error = capsys.readouterr().err
    assert "2 case(s) could not be imported" in error and "case P1" in error and "case P2" in error
    assert not (tmp_path / "c").exists()
