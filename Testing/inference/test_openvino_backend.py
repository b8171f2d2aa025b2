"""The OpenVINO backend: same outputs as torch, converted once and cached, a damaged or unwritable
cache handled, and the choice between backends (no timings here: see `osteoseg bench`)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import Messages, identity_model, oblique_ct_with_mask, random_model, write_package
from OsteoSegLib.cli import main
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference import backends
from OsteoSegLib.inference.backends import choose_backend, inference_networks
from OsteoSegLib.inference.predict import prepare_network
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.model.devices import cpu_supports_bf16

openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (it is in requirements.txt)")
from OsteoSegLib.inference import openvino_backend  # noqa: E402
from OsteoSegLib.inference.openvino_backend import openvino_network  # noqa: E402

CPU = torch.device("cpu")


def torch_logits(model, batch):
    with torch.no_grad():
        return model.network(batch)


@pytest.mark.parametrize("shape", [(3, 2, 48, 48), (1, 2, 32, 80)])
def test_openvino_computes_what_torch_computes_for_any_batch_and_slice_shape(shape):
    model = random_model(seed=3)
    network = openvino_network(model, None)            # fp32 throughout; no cache
    batch = torch.rand(*shape)
    torch.testing.assert_close(network(batch), torch_logits(model, batch), atol=2e-4, rtol=1e-4)
    channels_last = batch.contiguous(memory_format=torch.channels_last)   # what the torch path feeds
    torch.testing.assert_close(network(channels_last), torch_logits(model, batch), atol=2e-4, rtol=1e-4)


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")
def test_openvino_bf16_stays_as_close_to_fp32_as_torch_bf16():
    model = random_model(width=8, seed=4)
    batch = torch.rand(2, 2, 64, 64)
    reference = torch_logits(model, batch)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch_bf16 = prepare_network(model.network, CPU)(batch).float()
    error = (openvino_network(model, torch.bfloat16)(batch) - reference).abs().max()
    # bf16 really in use (fp32 through OpenVINO differs by ~1e-8 here), and no worse than torch's bf16.
    assert 1e-5 < error <= 4 * (torch_bf16 - reference).abs().max()


def test_a_model_is_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    model, batch, messages = random_model(seed=5), torch.rand(2, 2, 32, 32), Messages()
    first = openvino_network(model, None, cache_folder=tmp_path, progress=messages)(batch)
    assert any("converting" in text for text in messages.texts)
    (entry,) = [p for p in tmp_path.iterdir()]
    assert {p.name for p in entry.iterdir()} == {"model.xml", "model.bin", "manifest.json"}

    def no_conversion(*_):
        raise AssertionError("converted although the cache holds the model")

    monkeypatch.setattr(openvino_backend, "convert", no_conversion)
    torch.testing.assert_close(openvino_network(model, None, cache_folder=tmp_path)(batch), first)
    other = random_model(seed=6)       # other weights: another entry, never the cached one
    monkeypatch.undo()
    assert not torch.equal(openvino_network(other, None, cache_folder=tmp_path)(batch), first)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_damaged_cache_entry_is_converted_again(tmp_path):
    model, batch = random_model(seed=7), torch.rand(1, 2, 32, 32)
    expected = openvino_network(model, None, cache_folder=tmp_path)(batch)
    (entry,) = list(tmp_path.iterdir())
    weights = entry / "model.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])     # a truncated copy
    messages = Messages()
    torch.testing.assert_close(openvino_network(model, None, cache_folder=tmp_path, progress=messages)(batch),
                               expected)
    assert any("damaged" in text for text in messages.texts)
    assert weights.stat().st_size > 0 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    messages.texts.clear()
    openvino_network(model, None, cache_folder=tmp_path, progress=messages)
    assert messages.texts == []                       # repaired: read without a word


def test_an_unwritable_cache_only_costs_the_conversion(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    model, batch, messages = random_model(seed=8), torch.rand(1, 2, 32, 32), Messages()
    result = openvino_network(model, None, cache_folder=blocked, progress=messages)(batch)
    torch.testing.assert_close(result, torch_logits(model, batch), atol=2e-4, rtol=1e-4)
    assert any("could not keep" in text and str(blocked) in text for text in messages.texts)


def test_auto_takes_openvino_on_the_cpu_only_and_a_named_backend_that_cannot_run_is_refused(monkeypatch):
    assert choose_backend("auto", CPU) == "openvino"
    assert choose_backend("auto", torch.device("cuda")) == "torch"
    assert choose_backend("torch", CPU) == "torch"
    with pytest.raises(OsteoSegError, match="CPU only"):
        choose_backend("openvino", torch.device("cuda"))
    with pytest.raises(OsteoSegError, match="unknown backend 'onnx'"):
        choose_backend("onnx", CPU)
    monkeypatch.setattr(backends, "is_installed", lambda module: module != "openvino")
    assert choose_backend("auto", CPU) == "torch"
    with pytest.raises(OsteoSegError, match="OpenVINO is not installed.*pip install 'openvino"):
        choose_backend("openvino", CPU)


def test_segment_gives_the_same_masks_with_either_backend_and_says_which_ran():
    ct, mask = oblique_ct_with_mask()
    models = [identity_model("id", "A")]
    by_backend = {name: segment_images(ct, None, models, device="cpu", precision="fp32", backend=name)
                  for name in ("torch", "openvino")}
    np.testing.assert_array_equal(by_backend["openvino"].masks["id"], by_backend["torch"].masks["id"])
    assert by_backend["openvino"].masks["id"].sum() > 0.9 * mask.sum()
    assert by_backend["openvino"].backend.startswith("OpenVINO 20") and by_backend["torch"].backend == "torch"
    assert by_backend["openvino"].device == "cpu"


def test_inference_networks_keep_each_models_input_channels(tmp_path):
    models = [random_model(seed=9), identity_model("ct only", "B")]
    networks = inference_networks(models, ("ct", "pet"), CPU, "openvino", None, cache_folder=tmp_path)
    assert [indices for _, indices in networks] == [[0, 1], [0]]


def test_segment_command_runs_either_backend_and_refuses_openvino_where_it_is_missing(tmp_path, monkeypatch,
                                                                                      capsys):
    ct, _ = oblique_ct_with_mask()
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    write_package(tmp_path / "set", "A", inputs=("ct",))
    command = ["segment", "--ct", str(tmp_path / "ct.nii.gz"), "--models", str(tmp_path / "set")]
    assert main([*command, "--out", str(tmp_path / "ov"), "--backend", "openvino"]) == 0
    assert "OpenVINO 20" in capsys.readouterr().out
    monkeypatch.setattr(backends, "is_installed", lambda module: module != "openvino")
    assert main([*command, "--out", str(tmp_path / "missing"), "--backend", "openvino"]) == 2
    assert "OpenVINO is not installed" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()
    assert main([*command, "--out", str(tmp_path / "auto")]) == 0          # auto: torch, said so
    assert "cpu, torch" in capsys.readouterr().out


def test_bench_refuses_a_backend_that_cannot_run(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(backends, "is_installed", lambda module: module != "openvino")
    cache = tmp_path / "bench-cache"
    assert main(["bench", "--device", "cpu", "--backend", "openvino", "--cache", str(cache)]) == 2
    assert "OpenVINO is not installed" in capsys.readouterr().err
    assert not cache.exists()                 # refused before any work


def test_a_failed_write_into_the_cache_leaves_no_partial_entry(tmp_path, monkeypatch):
    def disk_full(*_, **__):
        raise RuntimeError("Exception from src/core/src/pass/serialize.cpp: write failed")

    monkeypatch.setattr(openvino, "save_model", disk_full)
    model, batch, messages = random_model(seed=10), torch.rand(1, 2, 32, 32), Messages()
    result = openvino_network(model, None, cache_folder=tmp_path, progress=messages)(batch)
    torch.testing.assert_close(result, torch_logits(model, batch), atol=2e-4, rtol=1e-4)
    assert any("could not keep" in text for text in messages.texts)
    assert list(tmp_path.iterdir()) == []
