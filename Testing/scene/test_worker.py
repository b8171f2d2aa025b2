"""The segmentation worker process: progress, result, cancel."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import oblique_ct_with_mask, write_package
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.model.package import load_model_set
from OsteoSegLib.scene.worker import load_result
from OsteoSegLib.scene.worker import main as worker_main
from OsteoSegLib.scene.worker_job import SegmentationJob


@pytest.mark.slow
def test_worker_process_reports_progress_and_its_result_loads(model_set, tmp_path):
    ct, _ = oblique_ct_with_mask()
    pet = sitk.Resample(sitk.Cast(ct > 0, sitk.sitkFloat32) * 5.0, ct)
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nrrd"))
    arguments = ["--ct", str(tmp_path / "ct.nrrd"), "--pet", str(tmp_path / "pet.nrrd"), "--models",
                 str(model_set / "model-A"), str(model_set / "model-B"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--batch-size", "2"]
    job = SegmentationJob(sys.executable, arguments)
    events = job.wait(timeout=120)
    assert job.process.returncode == 0, job.errors[-5:]
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [2, 4, 6, 7] and progress[-1]["eta_s"] == 0
    done = next(e for e in events if e["event"] == "done")
    result = load_result(done["result"])
    assert set(result.masks) == {"model-A", "model-B"} and result.masks["model-A"].shape == (7, 53, 37)
    broken = SegmentationJob(sys.executable, arguments[:-4] + ["--device", "tpu"])
    broken_events = broken.wait(timeout=120)
    assert broken.process.returncode == 2 and "unknown device" in broken_events[-1]["text"]


def test_a_cancelled_worker_is_gone_and_left_no_result(model_set, tmp_path):
    ct, _ = oblique_ct_with_mask()
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    job = SegmentationJob(sys.executable, ["--ct", str(tmp_path / "ct.nrrd"), "--pet", str(tmp_path / "ct.nrrd"),
                                           "--models", str(model_set / "model-A"), "--out", str(tmp_path / "out")])
    assert job.running            # still importing torch
    job.cancel()
    assert job.cancelled and not job.running
    assert not (tmp_path / "out" / "result.json").exists()


def test_the_worker_writes_one_averaged_map_per_ensemble_and_its_result_regroups(tmp_path, capsys):
    ct, _ = oblique_ct_with_mask()
    pet = sitk.Resample(sitk.Cast(ct > 0, sitk.sitkFloat32) * 5.0 + 0.5, ct)
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(pet, str(tmp_path / "pet.nrrd"))
    members = [write_package(tmp_path / "set", "A", seed=seed, name=f"A_fold{seed}") for seed in range(2)]
    members.append(write_package(tmp_path / "set", "B", seed=5))
    arguments = ["--ct", str(tmp_path / "ct.nrrd"), "--pet", str(tmp_path / "pet.nrrd"), "--device", "cpu",
                 "--models", *map(str, members), "--out", str(tmp_path / "out")]
    assert worker_main(arguments) == 0
    capsys.readouterr()
    result = load_result(tmp_path / "out" / "result.json")
    assert [g.name for g in result.models] == ["A_ct+pet_ensemble_of_2", "model-B"]
    assert [m.name for m in result.models[0].members] == ["A_fold0", "A_fold1"]
    direct = segment_images(ct, pet, load_model_set(tmp_path / "set"), device="cpu")
    for group in result.models:
        np.testing.assert_allclose(result.probabilities[group.name], direct.probabilities[group.name], atol=1e-6)
        np.testing.assert_array_equal(result.masks[group.name], direct.masks[group.name])


@pytest.mark.slow
def test_cancel_while_the_networks_run_ends_the_worker_mid_case_and_leaves_no_result(tmp_path):
    import time

    ct = sitk.GetImageFromArray(np.random.default_rng(0).uniform(-900, 1200, (120, 40, 40)).astype(np.float32))
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(sitk.Abs(ct) / 100.0, str(tmp_path / "pet.nrrd"))
    package = write_package(tmp_path / "set", "A", size=224)
    job = SegmentationJob(sys.executable, ["--ct", str(tmp_path / "ct.nrrd"), "--pet", str(tmp_path / "pet.nrrd"),
                                           "--models", str(package), "--out", str(tmp_path / "out"),
                                           "--device", "cpu", "--batch-size", "1"])
    seen, deadline = [], time.monotonic() + 120
    while not any(e["event"] == "progress" for e in seen) and job.running and time.monotonic() < deadline:
        seen += job.poll()
        time.sleep(0.01)
    progress = [e for e in seen if e["event"] == "progress"]
    assert progress and progress[0]["done"] < progress[0]["total"], (seen, job.errors[-3:])   # mid-inference
    job.cancel()
    assert job.cancelled and not job.running and job.process.returncode != 0
    remaining = job.wait(timeout=10)
    assert not any(e["event"] == "done" for e in remaining)
    assert not (tmp_path / "out" / "result.json").exists()
