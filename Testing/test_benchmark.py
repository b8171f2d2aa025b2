"""The pieces of the speed benchmark (no timings here: speed is measured by `osteoseg bench`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from OsteoSegLib.benchmark import agreement, monai_slice_inferer, network_flops, straightforward
from OsteoSegLib.cli import main
from OsteoSegLib.inference import body_box, predict_probabilities, prepare_network, resize_slices
from OsteoSegLib.models import ModelPackage
from OsteoSegLib.network import Architecture, build_network
from OsteoSegLib.segment import body_slices


def random_model(width=4, seed=0) -> ModelPackage:
    torch.manual_seed(seed)
    network = build_network(Architecture(2, width))
    torch.nn.init.zeros_(network.head.bias)              # masks neither empty nor full
    for module in network.modules():                     # BatchNorm statistics as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return ModelPackage(network.eval(), {"name": f"random-{seed}", "inputs": ["ct", "pet"]}, None)


def test_flops_of_the_paper_network_per_slice():
    assert network_flops(random_model(64), 224) == pytest.approx(73.7e9, rel=0.01)


def test_batchnorm_folding_changes_nothing_but_speed():
    model = random_model()
    x = torch.rand(3, 2, 48, 48)
    with torch.no_grad():
        expected = model.network(x)
        folded = prepare_network(model.network, torch.device("cpu"))
        torch.testing.assert_close(folded(x.contiguous(memory_format=torch.channels_last)), expected,
                                   atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.modules())   # original untouched


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


def test_slices_without_tissue_are_skipped():
    ct = np.full((6, 8, 8), -1000.0, np.float32)
    ct[2:4, 3, 3] = 40.0
    assert body_slices(ct).tolist() == [2, 3]
    channels = np.ones((6, 2, 8, 8), np.float32)
    probability, = predict_probabilities([(random_model().network, [0, 1])], channels, size=16,
                                         device=torch.device("cpu"), slices=body_slices(ct))
    assert not probability[[0, 1, 4, 5]].any() and probability[[2, 3]].all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_bench_on_an_absent_device_says_so(capsys):
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no usable CUDA GPU" in capsys.readouterr().err


def test_body_box_covers_the_body_in_network_pixels_and_snaps_to_16():
    body = np.zeros((512, 512), bool)
    body[132:375, 40:470] = True
    y0, y1, x0, x1 = body_box(body, 224, margin=16)
    assert all(v % 16 == 0 for v in (y0, y1, x0, x1))
    assert y0 <= (132 + 0.5) * 224 / 512 - 0.5 - 16 and y1 >= (374 + 0.5) * 224 / 512 - 0.5 + 16
    assert body_box(body, 224)[:2] == (48, 176)     # the default margin of 8 network pixels
    assert (y1 - y0) < 224 and (x0, x1) == (0, 224)
    assert body_box(np.ones((64, 64), bool), 224) is None          # nothing to save
    assert body_box(np.zeros((64, 64), bool), 224) is None         # no body


def test_a_cropped_prediction_is_zero_outside_its_box():
    channels = np.random.default_rng(1).random((2, 2, 100, 100)).astype(np.float32)
    probability, = predict_probabilities([(random_model().network, [0, 1])], channels, size=64,
                                         device=torch.device("cpu"), box=(16, 48, 0, 64))
    assert probability[:, :20].max() < 1e-6 and probability[:, 40:60].min() > 1e-3


def test_memory_of_one_segment_is_measured_in_its_own_process(tmp_path):
    import SimpleITK as sitk
    from OsteoSegLib.benchmark import own_process_peak_rss
    from OsteoSegLib.errors import OsteoSegError
    from test_evaluation import oblique_ct_with_mask
    from test_slicer_logic import write_package

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
