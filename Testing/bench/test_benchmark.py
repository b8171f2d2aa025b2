"""The pieces of the speed benchmark (no timings here: speed is measured by `osteoseg bench`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import oblique_ct_with_mask, random_model, write_package
from OsteoSegLib.bench.benchmark import (
    agreement,
    ensure_ensemble_set,
    monai_slice_inferer,
    network_flops,
    straightforward,
)
from OsteoSegLib.cli import main
from OsteoSegLib.inference.predict import predict_probabilities, prepare_network, resize_slices
from OsteoSegLib.model.ensemble import group_models
from OsteoSegLib.model.package import load_model_set


def test_flops_of_the_paper_network_per_slice():
    assert network_flops(random_model(64), 224) == pytest.approx(73.7e9, rel=0.01)


def test_three_ways_of_running_the_same_weights_agree():
    models = [random_model(seed=1), random_model(seed=2)]
    channels = np.random.default_rng(0).random((5, 2, 40, 56)).astype(np.float32)
    with torch.no_grad():   # centre the logits so that about half the voxels are lesion
        for model in models:
            logits = model.network(resize_slices(torch.from_numpy(channels), (48, 48)))
            model.network.head.bias -= logits.median()
    ours = predict_probabilities([(prepare_network(m.network, torch.device("cpu")), [0, 1]) for m in models],
                                 channels, size=48, device=torch.device("cpu"), batch_size=2)
    baseline = straightforward(models, channels, 48, torch.device("cpu"))
    monai = monai_slice_inferer(models, channels, 48, torch.device("cpu"), 2)
    for other in (baseline, monai):
        figures = agreement(ours, other)
        assert figures["dice_min"] > 0.99 and figures["max_probability_difference"] < 1e-4
    assert 0 < (ours[0] >= 0.5).mean() < 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_on_an_absent_device_says_so(capsys):
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no usable CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_memory_of_one_segment_is_measured_in_its_own_process(tmp_path):
    import SimpleITK as sitk
    from OsteoSegLib.bench.benchmark import own_process_peak_rss
    from OsteoSegLib.errors import OsteoSegError

    ct, _ = oblique_ct_with_mask()
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(sitk.Cast(ct > 0, sitk.sitkFloat32) * 5.0, str(tmp_path / "pet.nii.gz"))
    for source in "AB":
        write_package(tmp_path / "set", source)
    arguments = (tmp_path / "set", "cpu", 4, "auto", True, "auto")
    peak = own_process_peak_rss(tmp_path / "ct.nii.gz", tmp_path / "pet.nii.gz", *arguments)
    assert 0.1 < peak < 4                       # GiB: at least Python with torch, far below a leak
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name != "set"]      # output removed
    with pytest.raises(OsteoSegError, match="memory figure failed"):
        own_process_peak_rss(tmp_path / "absent.nii.gz", tmp_path / "pet.nii.gz", *arguments)


def test_an_ensemble_benchmark_set_has_k_members_per_label_source(model_set, capsys):
    assert ensure_ensemble_set(model_set, 1) == model_set
    folder = ensure_ensemble_set(model_set, 3)
    groups = group_models(load_model_set(folder))
    assert [(g.label_source, len(g.members)) for g in groups] == [("A", 3), ("B", 3)]
    assert [m.name for m in groups[1].members] == ["model-B_member0", "model-B_member1", "model-B_member2"]
    assert ensure_ensemble_set(model_set, 3) == folder and not list(folder.parent.glob(".*partial*"))
    assert main(["bench", "--members", "0", "--cache", str(model_set.parent / "cache")]) == 2
    assert "--members must be at least 1" in capsys.readouterr().err
