"""Training end to end on phantoms: it learns, A and B differ as their annotators do, a killed run
resumes to the same weights, DDP runs on CPU, and bad requests stop before any training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import ROOT
from OsteoSegLib.cli import main
from OsteoSegLib.data.cohort import load_cohort, save_cohort
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.predict import predict_probabilities
from OsteoSegLib.model.package import load_model_package
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.model.slice_data import load_patient
from OsteoSegLib.progress import Progress
from OsteoSegLib.training.train import TrainingSettings, choose_split, train_model

QUICK = TrainingSettings(base_width=8, epochs=20, learning_rate=1e-3, preprocess=PreprocessSettings(size=96))


TINY = replace(QUICK, base_width=4, epochs=3, batch_size=4, preprocess=PreprocessSettings(size=48))


@pytest.fixture(scope="module")
def trained_pair(small_cohort, tmp_path_factory):
    """Model A and Model B trained on the same eight phantom cases with the same settings."""
    out = tmp_path_factory.mktemp("pair")
    return {label: train_model(small_cohort, replace(QUICK, label=label), out / label) for label in "AB"}


@pytest.mark.slow
def test_a_narrow_network_beats_the_baselines_on_its_validation_patients(trained_pair):
    for label, result in trained_pair.items():
        validation = result.card["validation"]
        baselines = validation["baselines"]
        print(f"Model {label}: validation 3D Dice {validation['dice_mean']:.3f}; all-background "
              f"{baselines['all_background']['dice_mean']:.3f}; "
              f"PET SUV >= 2.5 {baselines['pet_suv_2.5']['dice_mean']:.3f}")
        assert validation["dice_mean"] > 0.6
        assert validation["dice_mean"] > baselines["all_background"]["dice_mean"] + 0.5
        assert validation["dice_mean"] > baselines["pet_suv_2.5"]["dice_mean"]


@pytest.mark.slow
def test_model_a_predicts_larger_volumes_than_model_b(trained_pair, small_cohort):
    models = {label: load_model_package(result.folder) for label, result in trained_pair.items()}
    split = trained_pair["A"].card["training"]["split"]
    ratios = []
    for case_id in split["test"] + split["validation"]:
        patient = load_patient(small_cohort, case_id, ("ct", "pet"))
        a, b = predict_probabilities([(models[k].network, (0, 1)) for k in "AB"], patient.channels, size=96,
                                     device=torch.device("cpu"))
        if (b >= 0.5).sum():
            ratios.append((a >= 0.5).sum() / (b >= 0.5).sum())
    print(f"volume ratio A / B per patient: {np.round(ratios, 2).tolist()}")
    assert ratios and min(ratios) > 1.0


@pytest.mark.slow
def test_model_package_records_what_a_reviewer_needs(trained_pair):
    result = trained_pair["B"]
    card = json.loads((result.folder / "model.json").read_text())
    assert card["label_source"] == "B" and "specificity" in card["intent"]
    assert card["inputs"] == ["ct", "pet"] and card["architecture"]["base_width"] == 8
    assert card["preprocessing"]["ct_window_hu"] == [-400.0, 1100.0]
    training = card["training"]
    assert len(training["cohort"]["fingerprint"]) == 64 and training["world_size"] == 1
    assert not set(training["split"]["train"]) & set(training["split"]["test"])
    assert card["versions"]["torch"] == torch.__version__
    rows = (result.folder / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + training["epochs_run"]
    assert (result.folder / "learning_curve.png").stat().st_size > 1000
    assert json.loads((result.folder / "run.json").read_text())["status"] == "finished"


class KillDuring(Progress):
    """Stands in for a kill: raises in the middle of an epoch."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def step_done(self, epoch, step, steps, loss):
        if epoch == self.epoch and step == 1:
            raise KeyboardInterrupt


def test_a_killed_run_resumes_to_the_same_weights(tiny_cohort, tmp_path):
    settings = replace(TINY, epochs=3)
    reference = train_model(tiny_cohort, settings, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train_model(tiny_cohort, settings, tmp_path / "killed", progress=KillDuring(epoch=1))
    assert not (tmp_path / "killed" / "model.json").exists()
    with pytest.raises(OsteoSegError, match="pass --resume"):
        train_model(tiny_cohort, settings, tmp_path / "killed")
    resumed = train_model(tiny_cohort, settings, tmp_path / "killed", resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in reference.history]
    a = load_model_package(reference.folder).network.state_dict()
    b = load_model_package(resumed.folder).network.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_output_folders_are_never_mixed_up(tiny_cohort, tmp_path):
    settings = replace(TINY, epochs=1)
    train_model(tiny_cohort, settings, tmp_path / "run")
    with pytest.raises(OsteoSegError, match="finished run"):
        train_model(tiny_cohort, settings, tmp_path / "run")
    with pytest.raises(OsteoSegError, match="holds another run"):
        train_model(tiny_cohort, replace(settings, label="B"), tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OsteoSegError, match="holds no training run"):
        train_model(tiny_cohort, settings, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def _cohort_without_lesions(tiny_cohort, tmp_path):
    copy = tmp_path / "empty"
    shutil.copytree(tiny_cohort.root, copy)
    cohort = load_cohort(copy)
    for case in cohort.cases:
        label = sitk.ReadImage(str(cohort.path(case.labels["A"])))
        sitk.WriteImage(label * 0, str(cohort.path(case.labels["A"])))
    return cohort


def test_requests_that_cannot_train_fail_before_training(tiny_cohort, tmp_path):
    with pytest.raises(OsteoSegError, match="no usable training slices"):
        train_model(_cohort_without_lesions(tiny_cohort, tmp_path), TINY, tmp_path / "a")
    with pytest.raises(OsteoSegError, match="label source 'C' is missing from 2 case"):
        train_model(tiny_cohort, replace(TINY, label="C"), tmp_path / "b")
    with pytest.raises(OsteoSegError, match="needs at least 7 patients"):
        train_model(tiny_cohort, replace(TINY, folds=5, fold=0), tmp_path / "c")
    with pytest.raises(OsteoSegError, match="inputs"):
        train_model(tiny_cohort, replace(TINY, inputs=("mri",)), tmp_path / "d")
    with pytest.raises(OsteoSegError, match="not divisible"):
        train_model(tiny_cohort, replace(TINY, preprocess=PreprocessSettings(size=50)), tmp_path / "e")
    assert not any((tmp_path / name).exists() for name in "bcde")


def test_one_label_source_missing_from_some_cases_is_named(tiny_cohort, tmp_path):
    copy = tmp_path / "partial"
    shutil.copytree(tiny_cohort.root, copy)
    cohort = load_cohort(copy)
    training_case = choose_split(cohort, TINY).train[0]
    del cohort.case(training_case).labels["B"]
    save_cohort(cohort)
    with pytest.raises(OsteoSegError, match=f"missing from 1 case.*{training_case}"):
        train_model(load_cohort(copy), replace(TINY, label="B"), tmp_path / "out")


def test_fold_all_trains_on_every_patient_with_a_validation_share_and_no_test(small_cohort, tmp_path, capsys):
    arguments = ["train", str(small_cohort.root), "--label", "B", "--width", "4", "--size", "48", "--epochs", "1",
                 "--batch-size", "4", "--fold", "all"]
    assert main([*arguments, "--out", str(tmp_path / "all")]) == 0
    training = json.loads((tmp_path / "all" / "model.json").read_text())["training"]
    split, ids = training["split"], sorted(case.case_id for case in small_cohort.cases)
    assert split["test"] == [] and len(split["validation"]) == 1           # 8 patients: round(8 / 8)
    assert sorted(split["train"] + split["validation"]) == ids
    assert training["fold"] == "all" and training["purpose"].startswith("deployment: trained on every patient (7)")
    default = choose_split(small_cohort, TINY)
    assert len(default.test) == 2 and len(default.train) == 5              # what --fold all gives back: 7:1:2
    capsys.readouterr()
    assert main([*arguments, "--folds", "5", "--out", str(tmp_path / "x")]) == 2
    assert "--fold all takes no --folds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*arguments[:-1], "some", "--out", str(tmp_path / "y")])
    assert "expected a fold number or 'all'" in capsys.readouterr().err


def test_train_command_single_modality_and_bad_input(tiny_cohort, tmp_path, capsys):
    arguments = ["train", str(tiny_cohort.root), "--label", "A", "--inputs", "pet", "--width", "4", "--size", "48",
                 "--epochs", "1", "--batch-size", "4"]
    assert main(arguments + ["--out", str(tmp_path / "pet")]) == 0
    card = json.loads((tmp_path / "pet" / "model.json").read_text())
    assert card["inputs"] == ["pet"] and card["architecture"]["in_channels"] == 1
    assert "validation 3D Dice" in capsys.readouterr().out
    assert main(arguments + ["--out", str(tmp_path / "pet")]) == 2
    assert "finished run" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nowhere"), "--label", "A", "--out", str(tmp_path / "x")]) == 2
    assert "cohort.json" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_ddp_training_on_cpu(tiny_cohort, tmp_path):
    """torchrun with the gloo backend on loopback: both processes train, rank 0 writes the package."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    command = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "OsteoSegLib.cli", "train",
               str(tiny_cohort.root), "--label", "A", "--out", str(tmp_path / "ddp"), "--width", "4", "--size", "48",
               "--epochs", "2", "--batch-size", "4", "--device", "cpu"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "OsteoSeg"), "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    card = json.loads((tmp_path / "ddp" / "model.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["epochs_run"] == 2
    assert finished.stdout.count("model package:") == 1   # rank 0 alone reports
