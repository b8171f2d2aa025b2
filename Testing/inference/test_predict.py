"""Whole-volume prediction: the resize mapping, BatchNorm folding, body-only work, out-of-memory fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import Messages, random_model
from OsteoSegLib.inference.predict import (
    body_box,
    paste,
    predict_probabilities,
    predict_with_fallback,
    prepare_network,
    resize_slices,
)
from OsteoSegLib.inference.segment import body_slices
from OsteoSegLib.model.preprocess import from_training_size, to_training_size


def test_device_resize_is_the_same_mapping_as_preprocessing():
    slices = np.random.default_rng(0).random((3, 2, 50, 70)).astype(np.float32)
    on_device = resize_slices(torch.from_numpy(slices), (96, 96)).numpy()
    np.testing.assert_allclose(on_device, to_training_size(slices, 96), atol=1e-5)
    back = resize_slices(torch.from_numpy(on_device), (50, 70)).numpy()
    np.testing.assert_allclose(back, from_training_size(on_device, (50, 70)), atol=1e-5)


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


def test_slices_without_tissue_are_skipped():
    ct = np.full((6, 8, 8), -1000.0, np.float32)
    ct[2:4, 3, 3] = 40.0
    assert body_slices(ct).tolist() == [2, 3]
    channels = np.ones((6, 2, 8, 8), np.float32)
    probability, = predict_probabilities([(random_model().network, [0, 1])], channels, size=16,
                                         device=torch.device("cpu"), slices=body_slices(ct))
    assert not probability[[0, 1, 4, 5]].any() and probability[[2, 3]].all()


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


class OutOfMemoryAbove(torch.nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than `limit` slices."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return x[:, :1] - 0.5


def test_out_of_memory_retries_with_smaller_batches():
    messages = Messages()
    channels = np.random.default_rng(0).random((10, 1, 16, 16)).astype(np.float32)
    (probability,), device = predict_with_fallback([(OutOfMemoryAbove(2), [0])], channels, size=16,
                                                   device=torch.device("cpu"), batch_size=8, dtype=None,
                                                   progress=messages)
    assert probability.shape == (10, 16, 16) and device == "cpu"
    assert messages.texts == ["out of GPU memory: retrying with 4 slices per batch",
                              "out of GPU memory: retrying with 2 slices per batch"]


def test_out_of_gpu_memory_at_one_slice_continues_on_the_cpu_with_the_same_answer(monkeypatch):
    """Driven through every step: halve the batch on the GPU down to one slice, then the CPU in fp32."""
    from OsteoSegLib.inference import predict

    real, calls = predict.predict_probabilities, []

    def gpu_always_full(networks, channels, *, device, batch_size, dtype, **options):
        calls.append((device.type, batch_size, dtype, {next(n.parameters()).device.type for n, _ in networks}))
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(networks, channels, device=device, batch_size=batch_size, dtype=dtype, **options)

    monkeypatch.setattr(predict, "predict_probabilities", gpu_always_full)
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    model = random_model(seed=3)
    channels = np.random.default_rng(2).random((3, 2, 20, 24)).astype(np.float32)
    messages = Messages()
    (probability,), where = predict_with_fallback([(model.network, [0, 1])], channels, size=32,
                                                  device=torch.device("cuda"), batch_size=4,
                                                  dtype=torch.bfloat16, progress=messages)
    assert where == "cpu"
    assert [c[:3] for c in calls] == [("cuda", 4, torch.bfloat16), ("cuda", 2, torch.bfloat16),
                                      ("cuda", 1, torch.bfloat16), ("cpu", 1, None)]
    assert calls[-1][3] == {"cpu"}
    assert len(emptied) == 3                               # the GPU's cache given back after each of its failures
    assert messages.texts == ["out of GPU memory: retrying with 2 slices per batch",
                              "out of GPU memory: retrying with 1 slices per batch",
                              "out of GPU memory even one slice at a time: continuing on the CPU"]
    expected, = real([(model.network, [0, 1])], channels, size=32, device=torch.device("cpu"), batch_size=3)
    np.testing.assert_allclose(probability, expected, atol=1e-6)


def test_out_of_memory_on_the_cpu_at_one_slice_is_raised_not_retried_forever(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        predict_with_fallback([(OutOfMemoryAbove(0), [0])], np.zeros((2, 1, 16, 16), np.float32), size=16,
                              device=torch.device("cpu"), batch_size=2, dtype=None)
    assert not emptied                                     # no GPU cache to give back on the CPU


def test_the_fallback_passes_the_slices_and_box_on():
    channels = np.ones((6, 1, 32, 32), np.float32)
    (probability,), _ = predict_with_fallback([(OutOfMemoryAbove(8), [0])], channels, size=32,
                                              device=torch.device("cpu"), batch_size=4, dtype=None,
                                              slices=np.array([1, 4]), box=(0, 16, 16, 32))
    assert not probability[[0, 2, 3, 5]].any() and probability[[1, 4]].any()
    assert probability[1, :16, 16:].min() > 0.5 and probability[1, 20:, :12].max() < 1e-6


def test_a_network_is_prepared_on_the_device_asked_for():
    network = random_model().network
    for fold in (True, False):
        prepared = prepare_network(network, torch.device("meta"), fold_batchnorm=fold)
        assert {p.device.type for p in prepared.parameters()} == {"meta"}
    assert {p.device.type for p in network.parameters()} == {"cpu"}


def test_the_body_box_s_area_is_its_height_times_its_width():
    body = np.zeros((32, 32), bool)
    body[:, 20:28] = True                                  # all rows, columns 20-27: half the slice with margins
    assert body_box(body, 32, margin=4, multiple=16) == (0, 32, 16, 32)


def test_body_box_by_hand():
    body = np.zeros((10, 20), bool)
    body[3:6, 2:18] = True
    # rows 3..5 at 3.2 network pixels each: centres 10.7 .. 17.1, so pixels 10 .. 18 (+2 margin: 8 .. 20),
    # snapped out to 8 .. 24; columns 2..17 at 1.6: 3.5 .. 27.5, pixels 3 .. 28 (1 .. 30), snapped 0 .. 32.
    assert body_box(body, 32, margin=2, multiple=8) == (8, 24, 0, 32)
    assert body_box(body, 32, margin=0, multiple=1) == (10, 19, 3, 29)
    narrow = np.zeros((10, 20), bool)
    narrow[3:6, 10:18] = True                         # columns 10..17: 16.3 .. 27.5, pixels 14 .. 30 with margin
    assert body_box(narrow, 32, margin=2, multiple=8) == (8, 24, 8, 32)
    assert body_box(body, 32, margin=2, multiple=8, worthwhile=0.5) == (8, 24, 0, 32)   # half the slice: kept
    assert body_box(body, 32, margin=2, multiple=8, worthwhile=0.49) is None


def test_paste_puts_the_box_back_and_air_elsewhere():
    logits = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    full = paste(logits, (1, 3, 2, 4), 4)
    assert full.tolist() == [[[[-20.0] * 4, [-20.0, -20.0, 1.0, 2.0], [-20.0, -20.0, 3.0, 4.0], [-20.0] * 4]]]
    assert paste(logits, None, 4) is logits


def test_body_box_default_margin_is_8_network_pixels():
    body = np.zeros((10, 20), bool)
    body[3:6, 2:18] = True
    assert body_box(body, 32, multiple=1) == (2, 27, 0, 32)      # pixels 10 .. 18 and 3 .. 28, 8 more each side


def test_preparing_a_network_leaves_the_original_as_it_was():
    network = random_model().network
    x = torch.rand(2, 2, 48, 48)
    kinds = [type(m) for m in network.modules()]
    with torch.no_grad():
        expected = network(x)
        plain = prepare_network(network, torch.device("cpu"), fold_batchnorm=False, channels_last=False)
        fast = prepare_network(network, torch.device("cpu"))
        torch.testing.assert_close(plain(x), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(network(x), expected)
    assert [type(m) for m in network.modules()] == kinds
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    first = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)][0].weight
    assert first.is_contiguous() and not first.is_contiguous(memory_format=torch.channels_last)
    first = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)][0].weight
    assert first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()


class InputSpy(torch.nn.Module):
    """A stand-in network that records what it is given and answers with the mean of its channels."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last), x.is_contiguous(),
                          x[:, :, 0, 0].clone()))
        return x.mean(dim=1, keepdim=True)


def test_batches_are_16_slices_channels_last_and_each_network_gets_its_channels():
    channels = np.zeros((40, 3, 8, 8), np.float32)
    channels[:, 1] = np.arange(40)[:, None, None]          # channel 1 numbers the slices
    channels[:, 2] = -1.0
    every, second = InputSpy(), InputSpy()
    predict_probabilities([(every, [0, 1, 2]), (second, [1])], channels, size=16, device=torch.device("cpu"))
    assert [shape for shape, *_ in every.seen] == [(16, 3, 16, 16), (16, 3, 16, 16), (8, 3, 16, 16)]
    assert all(channels_last and not plain for _, channels_last, plain, _ in every.seen)
    assert [shape for shape, *_ in second.seen] == [(16, 1, 16, 16), (16, 1, 16, 16), (8, 1, 16, 16)]
    assert torch.cat([values[:, 0] for *_, values in second.seen]).tolist() == list(range(40))
    plain = InputSpy()
    predict_probabilities([(plain, [0, 1, 2])], channels, size=16, device=torch.device("cpu"), batch_size=32,
                          channels_last=False)
    assert [(shape, channels_last, contiguous) for shape, channels_last, contiguous, _ in plain.seen] == [
        ((32, 3, 16, 16), False, True), ((8, 3, 16, 16), False, True)]
