"""Patient-level metrics against hand computations, statistics, whole-volume inference on an
oblique grid, the Segment output, and cross-validation with its report."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import TINY_SHAPE, TINY_SPACING
from OsteoSegLib import mrml
from OsteoSegLib.cli import main
from OsteoSegLib.cohort import load_cohort, save_cohort
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.evaluation import cross_validate
from OsteoSegLib.metrics import iou, lesion_detection, patient_metrics, sensitivity, specificity, surface_distances
from OsteoSegLib.models import ModelPackage
from OsteoSegLib.phantom import generate_cohort, settings_for
from OsteoSegLib.preprocess import PreprocessSettings
from OsteoSegLib.report import write_report
from OsteoSegLib.segment import segment_images
from OsteoSegLib.segment_output import write_segmentation
from OsteoSegLib.statistics import paired_wilcoxon, summarise
from OsteoSegLib.training import TrainingSettings
from scipy import stats

TINY = TrainingSettings(base_width=4, epochs=2, batch_size=4, learning_rate=1e-3,
                        preprocess=PreprocessSettings(size=48))


# ---------------------------------------------------------------- metrics, by hand


def test_surface_distances_use_the_anisotropic_spacing():
    a, b = np.zeros((5, 5, 5), bool), np.zeros((5, 5, 5), bool)
    a[0, 0, 0], b[2, 0, 0] = True, True                 # two slices apart, 3 mm slices
    assert surface_distances(a, b, (3.0, 1.0, 1.0)) == pytest.approx((6.0, 6.0))
    assert surface_distances(a, b, (1.0, 1.0, 1.0)) == pytest.approx((2.0, 2.0))


def test_surface_distances_of_a_cube_shifted_by_one_slice():
    a, b = np.zeros((10, 10, 10), bool), np.zeros((10, 10, 10), bool)
    a[2:6, 2:6, 2:6], b[3:7, 2:6, 2:6] = True, True
    hd95, assd = surface_distances(a, b, (3.0, 1.0, 1.0))
    # Each 4x4x4 cube has 56 surface voxels; per direction 16 lie 3 mm from the other surface (the
    # face that moved), 4 lie 1 mm from it (face centres inside the other cube), 36 lie on it.
    assert hd95 == pytest.approx(3.0)
    assert assd == pytest.approx((16 * 3 + 4 * 1) / 56)


def test_empty_mask_conventions():
    empty, full = np.zeros((4, 4, 4), bool), np.ones((4, 4, 4), bool)
    assert patient_metrics(empty, empty, (1, 1, 1), full)["dice"] == 1.0
    assert surface_distances(empty, empty, (1, 1, 1)) == (0.0, 0.0)
    one_empty = patient_metrics(full, empty, (1, 1, 1), full)
    assert one_empty["dice"] == 0.0 and math.isnan(one_empty["hd95_mm"]) and math.isnan(one_empty["sensitivity"])
    assert one_empty["false_positive_volume_ml"] == pytest.approx(64 / 1000)


def test_overlap_metrics_by_hand():
    truth, prediction = np.zeros(10, bool), np.zeros(10, bool)
    truth[:4], prediction[2:7] = True, True              # TP 2, FP 3, FN 2
    region = np.ones(10, bool)
    region[9] = False                                     # TN 2 inside the region (7, 8), not 9
    assert iou(prediction, truth) == pytest.approx(2 / 7)
    assert sensitivity(prediction, truth) == pytest.approx(2 / 4)
    assert specificity(prediction, truth, region) == pytest.approx(2 / 5)


def test_lesion_detection_by_connected_components():
    truth, prediction = np.zeros((6, 10, 10), bool), np.zeros((6, 10, 10), bool)
    truth[1:3, 1:3, 1:3] = True                           # lesion 1: 8 voxels, found
    truth[1:3, 6:9, 6:9] = True                           # lesion 2: 18 voxels, missed
    prediction[2:4, 2:4, 2:4] = True                      # touches lesion 1
    prediction[5, 0, 9] = True                            # a false-positive component of 1 voxel
    detection = lesion_detection(prediction, truth, (2.0, 1.0, 1.0))
    assert detection["true_lesions"] == 2 and detection["detected_lesions"] == 1
    assert detection["predicted_components"] == 2 and detection["false_positive_components"] == 1
    assert detection["false_negative_volume_ml"] == pytest.approx(18 * 2 / 1000)
    assert detection["false_positive_volume_ml"] == pytest.approx(2 / 1000)


# ---------------------------------------------------------------- statistics


def test_summaries_and_paired_tests():
    summary = summarise([0.2, 0.4, 0.6, 0.8, float("nan")])
    assert summary["n"] == 4 and summary["undefined"] == 1
    assert summary["mean"] == pytest.approx(0.5) and summary["sd"] == pytest.approx(np.std([.2, .4, .6, .8], ddof=1))
    assert summary["median"] == pytest.approx(0.5) and summary["q1"] == pytest.approx(0.35)
    assert summary["ci95"][0] < 0.5 < summary["ci95"][1]
    first = {f"c{i}": v for i, v in enumerate([0.9, 0.8, 0.85, 0.7, 0.95, 0.6])}
    second = {f"c{i}": v for i, v in enumerate([0.7, 0.75, 0.6, 0.72, 0.8, 0.5])}
    test = paired_wilcoxon(first, second)
    expected = stats.wilcoxon(np.array(list(first.values())) - np.array(list(second.values())))
    assert test["n"] == 6 and test["p_value"] == pytest.approx(expected.pvalue)
    assert math.isnan(paired_wilcoxon({"a": 1.0}, {"a": 0.5})["p_value"])


# ---------------------------------------------------------------- inference and Segment output


class ThresholdNetwork(torch.nn.Module):
    """Logits that reproduce channel 0 thresholded at 0.5: an identity-like path through inference."""

    def forward(self, x):
        return 40.0 * (x[:, :1] - 0.5)


def identity_model(name: str, source: str, inputs=("ct",)) -> ModelPackage:
    card = {"name": name, "label_source": source, "inputs": list(inputs), "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=224).as_dict(), "weights_sha256": "0" * 64,
            "versions": {"osteoseg": "test"}}
    return ModelPackage(ThresholdNetwork(), card, None)


def oblique_ct_with_mask():
    """An oblique, anisotropic CT of 37 x 53 x 7 voxels (not 224-divisible) holding a known mask."""
    mask = np.zeros((7, 53, 37), np.uint8)
    mask[2:5, 10:30, 8:21] = 1
    mask[3, 35:45, 25:33] = 1
    ct = sitk.GetImageFromArray(np.where(mask > 0, 1100.0, -400.0).astype(np.float32))
    ct.SetSpacing((0.9, 1.3, 3.0))
    ct.SetOrigin((-20.0, 15.0, 7.5))
    rotation = sitk.Euler3DTransform((0, 0, 0), 0.2, -0.1, 0.3)
    ct.SetDirection(rotation.GetMatrix())
    return ct, mask


def test_inference_maps_predictions_back_onto_an_oblique_grid_without_shifting():
    ct, mask = oblique_ct_with_mask()
    result = segment_images(ct, None, [identity_model("id", "A")], device="cpu")
    predicted = result.masks["id"]
    assert predicted.shape == mask.shape
    overlap = 2 * (predicted & mask).sum() / (predicted.sum() + mask.sum())
    assert overlap > 0.97
    centre = np.array(np.nonzero(mask)).mean(axis=1)
    assert np.abs(np.array(np.nonzero(predicted)).mean(axis=1) - centre).max() < 0.1   # voxels


def test_segment_output_is_an_editable_segmentation_on_the_ct_geometry(context, tmp_path):
    ct, mask = oblique_ct_with_mask()
    models = [identity_model("model-A", "A"), identity_model("model-B", "B")]
    result = segment_images(ct, None, models, device="cpu")
    result.masks["model-B"][3] = 0                        # B smaller than A, as intended
    nodes = context.scene.GetNumberOfNodes()
    paths = write_segmentation(context, ct, result, tmp_path, "patient", nifti=True, probabilities=True)
    assert context.scene.GetNumberOfNodes() == nodes          # a batch in one scene does not keep every case
    reference = mrml.volume_node_from_image(context, ct, "reference")
    node = mrml.load_segmentation(context, paths["segmentation"])
    masks = mrml.masks_from_segmentation(context, node, reference)
    assert set(masks) == {"Model A (high sensitivity)", "Model B (high specificity)", "A only (disagreement)"}
    np.testing.assert_array_equal(masks["A only (disagreement)"], result.masks["model-A"] & ~result.masks["model-B"])
    segment = node.GetSegmentation().GetSegment(node.GetSegmentation().GetSegmentIdBySegmentName(
        "Model A (high sensitivity)"))
    assert segment.GetColor() == pytest.approx((0.894, 0.102, 0.110), abs=1e-3)
    written = sitk.ReadImage(str(paths["mask model-A"]))
    assert written.GetDirection() == pytest.approx(ct.GetDirection())
    assert written.GetOrigin() == pytest.approx(ct.GetOrigin())
    assert json.loads(paths["provenance"].read_text())["models"][0]["name"] == "model-A"
    with pytest.raises(OsteoSegError, match="earlier result is in the way"):
        write_segmentation(context, ct, result, tmp_path, "patient")


def test_model_sets_that_cannot_run_together_are_refused():
    ct, _ = oblique_ct_with_mask()
    other = identity_model("other", "B")
    other.card["preprocessing"] = PreprocessSettings(size=96).as_dict()
    with pytest.raises(OsteoSegError, match="disagree on preprocessing"):
        segment_images(ct, None, [identity_model("id", "A"), other], device="cpu")
    with pytest.raises(OsteoSegError, match="needs ct\\+pet but the case has no PET"):
        segment_images(ct, None, [identity_model("dual", "A", ("ct", "pet"))], device="cpu")


# ---------------------------------------------------------------- cross-validation and report


@pytest.fixture(scope="module")
def six_cases(tmp_path_factory):
    settings = settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING)
    return generate_cohort(tmp_path_factory.mktemp("six") / "cohort", 6, 5, settings, workers=1)


@pytest.fixture(scope="module")
def crossval(six_cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    return out, cross_validate(six_cases, ("A", "B"), (("pet",), ("ct", "pet")), 2, TINY, out)


def test_every_patient_is_tested_once_per_model_and_scored_against_every_source(crossval, six_cases):
    _, result = crossval
    cases = {case.case_id for case in six_cases.cases}
    for label in "AB":
        for inputs in ("pet", "ct+pet"):
            for reference in ("A", "B", "truth"):
                rows = [r for r in result.rows
                        if (r["model_label"], r["inputs"], r["reference"]) == (label, inputs, reference)]
                assert sorted(r["case"] for r in rows) == sorted(cases)
    folds = {r["case"]: r["fold"] for r in result.rows}
    assert set(folds.values()) == {0, 1}


def test_report_has_both_tables_figures_and_every_patient(crossval, tmp_path):
    out, result = crossval
    folder = write_report(result, tmp_path / "report")
    report = json.loads((folder / "report.json").read_text())
    assert set(report["modality_table"]) == {"A", "B"} and set(report["modality_table"]["A"]) == {"pet", "ct+pet"}
    assert set(report["cross_matrix"]["A"]) == {"A", "B", "truth"}
    assert report["cross_matrix"]["A"]["B"]["n"] + report["cross_matrix"]["A"]["B"]["undefined"] == 6
    assert len(report["patients"]) == len(result.rows) == 6 * 4 * 3
    text = (folder / "report.md").read_text()
    assert "## Modality comparison" in text and "## Cross-evaluation matrix" in text
    for figure in ["figures/dice_boxplot.png", "figures/matrix_heatmap.png"] + [
            o["file"] for o in report["figures"]["overlays"]]:
        assert (folder / figure).stat().st_size > 5000, figure
    assert len((folder / "patients.csv").read_text().splitlines()) == 1 + len(result.rows)
    with pytest.raises(OsteoSegError, match="not empty"):
        write_report(result, folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]   # no staging left behind


def test_finished_models_are_reused_and_other_settings_refused(crossval, six_cases):
    out, result = crossval
    again = cross_validate(six_cases, ("A",), (("pet",),), 2, TINY, out)   # loads, trains nothing
    first = [r for r in result.rows if (r["model_label"], r["inputs"]) == ("A", "pet")]
    assert [r["dice"] for r in again.rows] == [r["dice"] for r in first]
    with pytest.raises(OsteoSegError, match="other settings"):
        cross_validate(six_cases, ("A",), (("pet",),), 2, replace(TINY, epochs=3), out)


def test_a_patient_without_a_label_source_is_skipped_and_counted(six_cases, tmp_path):
    copy = tmp_path / "cohort"
    shutil.copytree(six_cases.root, copy)
    cohort = load_cohort(copy)
    del cohort.cases[0].labels["B"]
    save_cohort(cohort)
    result = cross_validate(load_cohort(copy), ("B",), (("pet",),), 2, replace(TINY, epochs=1), tmp_path / "cv")
    assert {"case": cohort.cases[0].case_id, "reference": "B", "reason": "label source missing"} in result.skipped
    assert not [r for r in result.rows if r["case"] == cohort.cases[0].case_id and r["reference"] == "B"]


def test_crossval_refuses_what_it_cannot_do(six_cases, tmp_path):
    with pytest.raises(OsteoSegError, match="appear in no case"):
        cross_validate(six_cases, ("C",), (("pet",),), 2, TINY, tmp_path / "a")
    with pytest.raises(OsteoSegError, match="needs at least 7 patients"):
        cross_validate(six_cases, ("A",), (("pet",),), 5, TINY, tmp_path / "b")
    empty = load_cohort(six_cases.root)
    empty.cases = []
    with pytest.raises(OsteoSegError, match="no cases"):
        cross_validate(empty, ("A",), (("pet",),), 2, TINY, tmp_path / "c")


def test_crossval_and_segment_commands(crossval, six_cases, tmp_path, capsys):
    out, _ = crossval
    model_set = tmp_path / "set"
    for label in "AB":
        shutil.copytree(out / "models" / "fold0" / f"{label}_ct+pet", model_set / label)
    case = six_cases.cases[0]
    arguments = ["segment", "--ct", str(six_cases.path(case.ct)), "--pet", str(six_cases.path(case.pet)),
                 "--models", str(model_set), "--out", str(tmp_path / "seg"), "--device", "cpu"]
    assert main(arguments) == 0
    assert (tmp_path / "seg" / "ct.seg.nrrd").is_file()
    assert "segmentation:" in capsys.readouterr().out
    assert main(arguments) == 2 and "earlier result" in capsys.readouterr().err
    assert main(["segment", "--ct", str(six_cases.path(case.ct)), "--models", str(model_set),
                 "--out", str(tmp_path / "x")]) == 2
    assert "no PET" in capsys.readouterr().err
    assert main(["crossval", str(six_cases.root), "--labels", "Z", "--out", str(tmp_path / "cv")]) == 2
    assert "appear in no case" in capsys.readouterr().err


def test_evaluate_and_batch_segment_commands(crossval, six_cases, tmp_path, capsys):
    out, _ = crossval
    model_set = tmp_path / "set"
    for label in "AB":
        shutil.copytree(out / "models" / "fold0" / f"{label}_ct+pet", model_set / label)
    assert main(["evaluate", str(six_cases.root), "--models", str(model_set), "--out", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev" / "report" / "report.json").read_text())
    assert report["folds"] == 0 and report["patients_tested"] == 6
    assert "Evaluation of a fixed model set" in (tmp_path / "ev" / "report" / "report.md").read_text()
    assert main(["segment", "--cohort", str(six_cases.root), "--models", str(model_set),
                 "--out", str(tmp_path / "batch")]) == 0
    assert sorted(p.name for p in (tmp_path / "batch").glob("*.seg.nrrd")) == sorted(
        f"{case.case_id}.seg.nrrd" for case in six_cases.cases)
    capsys.readouterr()
