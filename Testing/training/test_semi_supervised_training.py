"""Semi-supervised training end to end on a tiny phantom with unlabelled cases: what the card
records, resuming after a kill, plug-in teachers, and bad input with one clear message."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch
from conftest import TINY_SHAPE, TINY_SPACING
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import load_cohort, save_cohort
from OsteoSegLib.data.fingerprint import sha256_file
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.model.network import Architecture, build_network
from OsteoSegLib.model.package import load_model_package, save_model_package
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.phantom import generate_cohort, settings_for
from OsteoSegLib.progress import Progress
from OsteoSegLib.training.semi_supervised import SemiSupervisedSettings
from OsteoSegLib.training.teachers import labelled_and_unlabelled, pool_fingerprint
from OsteoSegLib.training.train import TrainingSettings, train_model

TINY_OPTIONS = ["--width", "4", "--size", "48", "--epochs", "2", "--batch-size", "4", "--learning-rate", "1e-3"]
TINY = TrainingSettings(base_width=4, epochs=2, batch_size=4, learning_rate=1e-3,
                        preprocess=PreprocessSettings(size=48), semi_supervised=SemiSupervisedSettings())


def marking_teacher(folder, role: str, label: str = "A", bias: float = 4.0):
    """A narrow network whose output bias marks (almost) every pixel: a teacher whose mechanics are
    known without training one (`--ct-teacher` / `--pet-teacher` take such a package)."""
    torch.manual_seed(len(role))
    architecture = Architecture(1, 4)
    network = build_network(architecture)
    with torch.no_grad():
        network.head.bias.fill_(bias)
    card = {"name": f"teacher-{role}-{label}", "label_source": label, "inputs": [role], "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=48).as_dict(), "architecture": architecture.as_dict(),
            "versions": {"osteoseg": "test"}}
    return save_model_package(folder / f"teacher-{role}-{label}", network.state_dict(), card)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teachers")
    return {role: marking_teacher(folder, role) for role in ("ct", "pet")}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Four labelled phantom cases and three unlabelled ones, on a coarse grid."""
    settings = settings_for("small", shape=TINY_SHAPE, spacing=TINY_SPACING)
    return generate_cohort(tmp_path_factory.mktemp("mixed") / "cohort", 4, 7, settings, workers=1, unlabelled=3)


def test_phantom_unlabelled_cases_have_images_and_no_labels(mixed):
    unlabelled = [case for case in mixed.cases if not case.labels]
    assert [case.case_id for case in unlabelled] == ["case_004", "case_005", "case_006"]
    assert all(case.metadata["unlabelled"] and mixed.path(case.pet).is_file() for case in unlabelled)
    assert not list((mixed.root / "case_004").glob("label_*")) and mixed.generator["unlabelled_cases"] == 3


def test_the_card_records_method_teachers_and_unlabelled_patients(mixed, teachers, tmp_path, capsys):
    assert main(["train", str(mixed.root), "--label", "A", "--semi-supervised", *TINY_OPTIONS,
                 "--ct-teacher", str(teachers["ct"]), "--pet-teacher", str(teachers["pet"]),
                 "--out", str(tmp_path / "semi")]) == 0
    card = json.loads((tmp_path / "semi" / "model.json").read_text())
    semi = card["training"]["semi_supervised"]
    assert [(t["role"], t["kind"]) for t in semi["teachers"]] == [("ct", "osteoseg"), ("pet", "osteoseg")]
    for teacher in semi["teachers"]:
        given = json.loads((teachers[teacher["role"]] / "model.json").read_text())
        assert teacher["weights_sha256"] == given["weights_sha256"] and teacher["name"] == given["name"]
    _, pool = labelled_and_unlabelled(mixed, "A")
    assert semi["unlabelled"]["cases"] == 3 and semi["unlabelled"]["fingerprint"] == pool_fingerprint(pool.cases)
    assert semi["unlabelled"]["slices"] == 3 * TINY_SHAPE[2]     # the teachers mark every slice
    assert semi["settings"]["lambda_max"] == 0.1 and set(semi["unlabelled"]["teachers_given"]) == {"ct", "pet"}
    split = card["training"]["split"]
    assert not {"case_004", "case_005", "case_006"} & set(split["train"] + split["validation"] + split["test"])
    assert card["training"]["settings"]["semi_supervised"]["selection"] == "top_half"
    assert card["name"] == "model-A-ct+pet-semi"
    assert "unlabelled slices from 3 patients" in capsys.readouterr().out
    load_model_package(tmp_path / "semi")   # a normal model package: segment and the module load it
    assert not list((tmp_path / "semi").glob("**/.*partial*"))


class KillStudent(Progress):
    """Stands in for a kill during the student's second epoch (the teachers are finished by then)."""

    def __init__(self):
        self.student = False

    def message(self, text):
        self.student = self.student or "unlabelled slices from" in text

    def step_done(self, epoch, step, steps, loss):
        if self.student and epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_teachers_are_trained_on_the_students_labelled_patients_and_recorded(mixed, tmp_path):
    labelled, pool = labelled_and_unlabelled(mixed, "A")
    settings = replace(TINY, base_width=8, epochs=8, learning_rate=1e-2, fold="all")   # teachers that mark something
    card = train_model(labelled, settings, tmp_path / "semi", unlabelled=pool).card
    semi = card["training"]["semi_supervised"]
    assert [t["role"] for t in semi["teachers"]] == ["ct", "pet"] and semi["unlabelled"]["slices"] > 0
    for teacher in semi["teachers"]:
        teacher_card = json.loads((tmp_path / "semi" / "training" / "teachers" / teacher["role"] / "model.json")
                                  .read_text())
        assert teacher["weights_sha256"] == teacher_card["weights_sha256"] and teacher["kind"] == "osteoseg"
        assert teacher_card["inputs"] == [teacher["role"]] and teacher_card["label_source"] == "A"
        assert teacher_card["training"]["split"] == card["training"]["split"]    # the same labelled patients


def test_a_killed_semi_supervised_run_resumes_to_the_same_weights(mixed, teachers, tmp_path):
    labelled, pool = labelled_and_unlabelled(mixed, "A", teachers={r: str(p) for r, p in teachers.items()})
    settings = TINY
    whole = train_model(labelled, settings, tmp_path / "whole", unlabelled=pool)
    with pytest.raises(KeyboardInterrupt):
        train_model(labelled, settings, tmp_path / "killed", unlabelled=pool, progress=KillStudent())
    resumed = train_model(labelled, settings, tmp_path / "killed", unlabelled=pool, resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    a, b = (load_model_package(r.folder).network.state_dict() for r in (whole, resumed))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    supervised = train_model(labelled, replace(settings, semi_supervised=None), tmp_path / "supervised")
    assert supervised.history[0]["train_loss"] != whole.history[0]["train_loss"]   # the unlabelled term counts
    with pytest.raises(OsteoSegError, match="differs in unlabelled"):
        train_model(labelled, settings, tmp_path / "killed", unlabelled=replace(pool, cases=pool.cases[:2]),
                    resume=True, force=False)


def test_a_plug_in_teacher_from_a_local_checkpoint(mixed, tmp_path, capsys):
    checkpoint = tmp_path / "teacher.json"
    checkpoint.write_text(json.dumps({"threshold": 0.4}))
    assert main(["train", str(mixed.root), "--label", "A", "--semi-supervised", "--teachers", "pet",
                 "--pet-teacher", f"python:standin_teacher:make_teacher={checkpoint}", *TINY_OPTIONS,
                 "--out", str(tmp_path / "plug")]) == 0
    teachers = json.loads((tmp_path / "plug" / "model.json").read_text())["training"]["semi_supervised"]["teachers"]
    assert teachers == [{"role": "pet", "kind": "plugin", "entry": "standin_teacher:make_teacher",
                         "checkpoint": str(checkpoint.resolve()), "checkpoint_sha256": sha256_file(checkpoint)}]
    assert not (tmp_path / "plug" / "training" / "teachers").exists()      # nothing trained
    capsys.readouterr()
    missing = ["--pet-teacher", f"python:standin_teacher:make_teacher={tmp_path / 'none.pt'}"]
    assert main(["train", str(mixed.root), "--label", "A", "--semi-supervised", "--teachers", "pet", *missing,
                 *TINY_OPTIONS, "--out", str(tmp_path / "x")]) == 2
    assert "checkpoint is not a file here (nothing is downloaded)" in capsys.readouterr().err


def test_bad_requests_get_one_clear_message(mixed, teachers, tmp_path, capsys):
    labelled_only = tmp_path / "labelled"
    shutil.copytree(mixed.root, labelled_only)
    cohort = load_cohort(labelled_only)
    cohort.cases = [case for case in cohort.cases if case.labels]
    save_cohort(cohort)
    run = ["train", "--label", "A", "--semi-supervised", *TINY_OPTIONS]
    cases = {
        "every case of the cohort has the label source and no --unlabelled": [str(labelled_only)],
        "--unlabelled belongs to semi-supervised training": ["train", str(mixed.root), "--label", "A",
                                                            "--unlabelled", str(mixed.root)],
        "trains a dual-channel student: use --inputs ct\\+pet": [str(mixed.root), "--inputs", "ct"],
    }
    for message, arguments in cases.items():
        full = arguments if arguments[0] == "train" else [run[0], *arguments, *run[1:]]
        assert main([*full, "--out", str(tmp_path / "out")]) == 2, message
        assert __import__("re").search(message, capsys.readouterr().err), message
    other_units = tmp_path / "other"
    shutil.copytree(mixed.root, other_units)
    cohort = load_cohort(other_units)
    for case in cohort.cases:
        case.pet_units = "BQML"
    save_cohort(cohort)
    assert main([run[0], str(labelled_only), *run[1:], "--unlabelled", str(other_units), "--out",
                 str(tmp_path / "out")]) == 2
    assert "unlabelled cases' PET is in BQML" in capsys.readouterr().err
    no_pet = tmp_path / "no-pet"
    shutil.copytree(mixed.root, no_pet)
    cohort = load_cohort(no_pet)
    unlabelled_case = next(case for case in cohort.cases if not case.labels)
    cohort.path(unlabelled_case.pet).unlink()
    assert main([run[0], str(labelled_only), *run[1:], "--unlabelled", str(no_pet), "--out",
                 str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert unlabelled_case.case_id in error and "pet" in error.lower()
    teacher_b = marking_teacher(tmp_path, "pet", label="B")
    assert main([*run[:1], str(mixed.root), *run[1:], "--pet-teacher", str(teacher_b), "--out",
                 str(tmp_path / "out")]) == 2
    assert "trained on label 'B', not 'A'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_crossval_compares_semi_supervised_with_supervised_on_the_same_patients(mixed, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["crossval", str(mixed.root), "--labels", "A", "--inputs", "ct", "pet", "ct+pet", "--folds", "2",
                 "--semi-supervised", *TINY_OPTIONS, "--out", str(out)]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    comparison = report["semi_supervised"]
    patients = report["semi_supervised_patients"]
    labelled = sorted(case.case_id for case in mixed.cases if case.labels)
    assert sorted({row["case"] for row in patients}) == labelled        # unlabelled cases are never scored
    entry = comparison["A"]["A"]
    assert entry["semi_supervised"]["dice"]["n"] == entry["supervised"]["dice"]["n"] == len(labelled)
    assert "test" in entry                                              # paired by patient over both folds
    for fold in (0, 1):
        assert (out / "models" / f"fold{fold}" / "A_ct+pet_semi" / "model.json").is_file()
    lines = (out / "report" / "patients.csv").read_text().splitlines()
    assert lines[0].startswith("method,") and sum(line.startswith("semi-supervised,") for line in lines) > 0
    assert "Semi-supervised against supervised only" in (out / "report" / "report.md").read_text()
