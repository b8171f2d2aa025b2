"""The demo end to end."""

from __future__ import annotations

import zipfile

import pytest
import SimpleITK as sitk
from OsteoSegLib.cli import main

pytestmark = pytest.mark.slow   # a minute: never in mutation runs


def test_demo_runs_end_to_end(tmp_path, capsys):
    """The demo at its smallest (8 cases, 2 folds, 1 epoch): every stage runs and is reported."""
    quick = ["--cases", "8", "--folds", "2", "--epochs", "1"]
    assert main(["demo", "--out", str(tmp_path / "demo"), *quick]) == 0
    printed = capsys.readouterr().out
    produced = tmp_path / "demo"
    segmentation = next(produced.glob("segmentation/*.seg.nrrd"))
    assert str(segmentation) in printed and "Cross-evaluation matrix" in printed and "Modality comparison" in printed
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(segmentation))
    reader.ReadImageInformation()
    names = {reader.GetMetaData(k) for k in reader.GetMetaDataKeys() if k.endswith("_Name")}
    assert names == {"Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"}
    assert any(n.endswith(".mrml") for n in zipfile.ZipFile(next(produced.glob("segmentation/*.mrb"))).namelist())
    assert next(produced.glob("*_overview.png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = produced / "crossval" / "report"
    assert (report / "report.md").is_file() and (report / "figures" / "matrix_heatmap.png").is_file()
    assert sorted(p.name for p in (produced / "model-set").iterdir()) == ["model-A", "model-B"]
    # A second run into the same folder must not silently replace it.
    assert main(["demo", "--out", str(produced), *quick]) == 2
    assert "not empty" in capsys.readouterr().err
