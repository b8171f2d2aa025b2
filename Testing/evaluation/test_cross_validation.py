"""Cross-validation and external evaluation with their report and commands."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
from conftest import TINY_SHAPE, TINY_SPACING
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import load_cohort, save_cohort
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.evaluation.cross_validation import cross_validate
from OsteoSegLib.evaluation.report import write_report
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.phantom import generate_cohort, settings_for
from OsteoSegLib.training.train import TrainingSettings

TINY = TrainingSettings(base_width=4, epochs=2, batch_size=4, learning_rate=1e-3,
                        preprocess=PreprocessSettings(size=48))


@pytest.fixture(scope="module")
def six_cases(tmp_path_factory):
    settings = settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING)
    return generate_cohort(tmp_path_factory.mktemp("six") / "cohort", 6, 5, settings, workers=1)


@pytest.fixture(scope="module")
def crossval(six_cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    return out, cross_validate(six_cases, ("A", "B"), (("pet",), ("ct", "pet")), 2, TINY, out)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_finished_models_are_reused_and_other_settings_refused(crossval, six_cases):
    out, result = crossval
    again = cross_validate(six_cases, ("A",), (("pet",),), 2, TINY, out)   # loads, trains nothing
    first = [r for r in result.rows if (r["model_label"], r["inputs"]) == ("A", "pet")]
    assert [r["dice"] for r in again.rows] == [r["dice"] for r in first]
    with pytest.raises(OsteoSegError, match="other settings"):
        cross_validate(six_cases, ("A",), (("pet",),), 2, replace(TINY, epochs=3), out)


@pytest.mark.slow
def test_a_patient_without_a_label_source_is_skipped_and_counted(six_cases, tmp_path):
    copy = tmp_path / "cohort"
    shutil.copytree(six_cases.root, copy)
    cohort = load_cohort(copy)
    del cohort.cases[0].labels["B"]
    save_cohort(cohort)
    result = cross_validate(load_cohort(copy), ("B",), (("pet",),), 2, replace(TINY, epochs=1), tmp_path / "cv")
    assert {"case": cohort.cases[0].case_id, "reference": "B", "reason": "label source missing"} in result.skipped
    assert not [r for r in result.rows if r["case"] == cohort.cases[0].case_id and r["reference"] == "B"]


@pytest.mark.slow
def test_crossval_refuses_what_it_cannot_do(six_cases, tmp_path):
    with pytest.raises(OsteoSegError, match="appear in no case"):
        cross_validate(six_cases, ("C",), (("pet",),), 2, TINY, tmp_path / "a")
    with pytest.raises(OsteoSegError, match="needs at least 7 patients"):
        cross_validate(six_cases, ("A",), (("pet",),), 5, TINY, tmp_path / "b")
    empty = load_cohort(six_cases.root)
    empty.cases = []
    with pytest.raises(OsteoSegError, match="no cases"):
        cross_validate(empty, ("A",), (("pet",),), 2, TINY, tmp_path / "c")


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_report_killed_while_written_leaves_only_a_temporary_that_the_next_run_clears(crossval, tmp_path,
                                                                                        monkeypatch):
    """As after kill -9 (no clean-up runs): the staging folder must carry the temporary mark."""
    from OsteoSegLib.evaluation import report as module
    from OsteoSegLib.outputs import OutputFolder

    _, result = crossval

    def killed(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "write_matrix_heatmap", killed)
    monkeypatch.setattr(module.shutil, "rmtree", lambda *_, **__: None)     # no clean-up, as after kill -9
    with pytest.raises(KeyboardInterrupt):
        write_report(result, tmp_path / "cv" / "report")
    monkeypatch.undo()
    assert [p.name.startswith(".report.partial-") for p in (tmp_path / "cv").iterdir()] == [True]
    with OutputFolder(tmp_path / "cv") as folder:
        assert folder.contents() == []


TINY_OPTIONS = ["--width", "4", "--epochs", "2", "--batch-size", "4", "--learning-rate", "1e-3", "--size", "48"]


@pytest.mark.slow
def test_fold_models_exported_as_an_ensemble_segment_and_evaluate_beside_the_estimate(six_cases, tmp_path, capsys):
    crossval = ["crossval", str(six_cases.root), "--labels", "A", "B", "--inputs", "pet", "ct+pet", "--folds", "2",
                "--out", str(tmp_path / "cv"), *TINY_OPTIONS]
    assert main([*crossval, "--export-set", str(tmp_path / "set")]) == 0
    assert "model set:" in capsys.readouterr().out
    exported = sorted(p.name for p in (tmp_path / "set").iterdir() if not p.name.startswith("."))
    assert exported == ["A_ct+pet_fold0", "A_ct+pet_fold1", "B_ct+pet_fold0", "B_ct+pet_fold1"]
    folds = {name: json.loads((tmp_path / "cv" / "models" / f"fold{name[-1]}" / name[:-6] / "model.json")
                              .read_text())["weights_sha256"] for name in exported}

    # A finished cross-validation exports again without training; other settings are refused.
    assert main([*crossval, "--export-set", str(tmp_path / "again"), "--export-inputs", "pet"]) == 0
    assert "report:" not in capsys.readouterr().out
    assert (tmp_path / "again" / "B_pet_fold1" / "model.json").is_file()
    assert main([*crossval, "--epochs", "3", "--export-set", str(tmp_path / "x")]) == 2
    assert "other settings (epochs)" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main([*crossval, "--export-set", str(tmp_path / "set")]) == 2
    assert "already there" in capsys.readouterr().err
    assert main([*crossval, "--export-set", str(tmp_path / "y"), "--export-inputs", "ct"]) == 2
    assert "not among --inputs" in capsys.readouterr().err

    case = six_cases.cases[0]
    assert main(["segment", "--ct", str(six_cases.path(case.ct)), "--pet", str(six_cases.path(case.pet)),
                 "--models", str(tmp_path / "set"), "--out", str(tmp_path / "seg"), "--nifti"]) == 0
    provenance = json.loads((tmp_path / "seg" / "ct.provenance.json").read_text())
    members = {m["name"]: m["weights_sha256"] for model in provenance["models"] for m in model["members"]}
    assert members == {f"{name[:-6]}_fold{name[-1]}": sha for name, sha in folds.items()}
    assert sorted(p.name for p in (tmp_path / "seg").glob("*.nii.gz")) == [
        "ct_A_ct+pet_ensemble_of_2_mask.nii.gz", "ct_B_ct+pet_ensemble_of_2_mask.nii.gz"]

    assert main(["evaluate", str(six_cases.root), "--models", str(tmp_path / "set"), "--out", str(tmp_path / "ev"),
                 "--compare-crossval", str(tmp_path / "cv" / "report")]) == 0
    out = capsys.readouterr().out
    assert "Model A ct+pet: Dice" in out and "in cross-validation; difference" in out
    report = json.loads((tmp_path / "ev" / "report" / "report.json").read_text())
    entries = {(e["model"], e["metric"]): e for e in report["crossval_comparison"]["entries"]}
    assert set(entries) == {(m, metric) for m in "AB" for metric in
                            ("dice", "iou", "sensitivity", "specificity", "hd95_mm", "assd_mm")}
    assert report["crossval_comparison"]["settings_differences"] == []
    assert "Beside the cross-validation estimate" in (tmp_path / "ev" / "report" / "report.md").read_text()
    assert main(["evaluate", str(six_cases.root), "--models", str(tmp_path / "set"), "--out", str(tmp_path / "e2"),
                 "--compare-crossval", str(tmp_path / "again")]) == 2
    assert "no report.json" in capsys.readouterr().err and not (tmp_path / "e2").exists()
