"""Whole-volume prediction: the resize mapping, BatchNorm folding, body-only work, out-of-memory fallback."""

from __future__ import annotations

import numpy as np
import torch
from helpers import Messages, random_model
from OsteoSegLib.inference.predict import (
    body_box,
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
