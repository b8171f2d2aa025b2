"""The logic behind the module's buttons (sample, preview), the demo and the command lines."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TINY_SHAPE
from OsteoSegLib import mrml
from OsteoSegLib.cli import main
from OsteoSegLib.sample import ensure_sample_case
from OsteoSegLib.scene import PET_COLOR_NODE_ID, load_case, preview

ROOT = Path(__file__).resolve().parents[1]


def test_load_case_puts_pet_on_ct_grid_and_labels_as_segments(context, tiny_cohort):
    case = tiny_cohort.cases[0]
    nodes = load_case(context, tiny_cohort, case)
    assert nodes.pet_on_ct.GetImageData().GetDimensions() == TINY_SHAPE
    assert nodes.pet.GetImageData().GetDimensions() != TINY_SHAPE          # the original PET is kept
    masks = mrml.masks_from_segmentation(context, nodes.labels, nodes.ct)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_cohort.path(case.labels["A"]))))
    np.testing.assert_array_equal(masks["Label A (high sensitivity)"], expected)
    assert set(masks) == {"Label A (high sensitivity)", "Label B (high specificity)", "True extent (phantom only)"}


def test_preview_sets_bone_window_pet_colours_and_fuses_views(context, tiny_cohort):
    case = tiny_cohort.cases[0]
    nodes = load_case(context, tiny_cohort, case, with_labels=False)
    views = [context.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    before = context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    pet_on_ct = preview(context, nodes.ct, nodes.pet, opacity=0.4)
    assert context.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before + 1
    display = nodes.ct.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel(), display.GetAutoWindowLevel()) == (1500, 350, 0)
    assert pet_on_ct.GetDisplayNode().GetColorNodeID() == PET_COLOR_NODE_ID
    for view in views:
        assert view.GetBackgroundVolumeID() == nodes.ct.GetID()
        assert view.GetForegroundVolumeID() == pet_on_ct.GetID()
        assert view.GetForegroundOpacity() == pytest.approx(0.4)


def test_sample_case_is_generated_once_and_has_a_lesion(tmp_path):
    cohort, case = ensure_sample_case(tmp_path)
    assert case.metadata["phantom"]["lesion"] is not None
    stamp = cohort.path(case.ct).stat().st_mtime_ns
    again, _ = ensure_sample_case(tmp_path)
    assert again.path(case.ct).stat().st_mtime_ns == stamp                  # re-used, not regenerated


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


def test_phantom_command_prints_agreement_and_writes_overview(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["phantom", str(out), "--cases", "2", "--seed", "3", "--shape", "48", "48", "20",
                 "--spacing", "4", "4", "6", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "kappa A-B" in printed and "case_001" in printed
    assert (out / "cohort.json").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["--cases", "0"], "number of cases must be at least 1"),
    (["--size", "medium"], "unknown phantom size 'medium'"),
    (["--shape", "-5", "96", "40"], "too small"),
])
def test_phantom_command_reports_bad_input_in_one_line(tmp_path, capsys, arguments, message):
    assert main(["phantom", str(tmp_path / "x"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("osteoseg: error:") and message in error and "\n" not in error
    assert not (tmp_path / "x").exists()


def test_osteosegtrain_script_runs_osteoseg_commands(tmp_path):
    """The same entry Slicer runs with --python-script, here under plain Python."""
    script = ROOT / "OsteoSegTrain" / "OsteoSegTrain.py"
    command = [sys.executable, str(script), "--", "phantom", str(tmp_path / "c"), "--cases", "1", "--shape",
               "48", "48", "20", "--spacing", "4", "4", "6", "--no-overview"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert (tmp_path / "c" / "cohort.json").is_file()
    failed = subprocess.run(command[:4] + [str(tmp_path / "d"), "--cases", "0"], capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 2 and "number of cases" in failed.stderr
