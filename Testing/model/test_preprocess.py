"""The method's preprocessing on arrays."""

from __future__ import annotations

import numpy as np
import pytest
from OsteoSegLib.metrics import dice
from OsteoSegLib.model import preprocess


def test_ct_bone_window_and_min_max():
    ct = np.array([[[-1000.0, -400.0, 350.0, 1100.0, 3000.0]]])
    np.testing.assert_allclose(preprocess.normalise_ct(ct), [[[0.0, 0.0, 0.5, 1.0, 1.0]]], atol=1e-6)
    flat = preprocess.min_max(np.full((2, 2, 2), 7.0))
    assert np.all(flat == 0.0)                                   # eps keeps a constant volume finite


def test_pet_normalisations():
    pet = np.array([[[0.0, 2.0, 4.0, 40.0]]])
    np.testing.assert_allclose(preprocess.normalise_pet(pet), [[[0.0, 0.05, 0.1, 1.0]]], atol=1e-6)
    fixed = preprocess.PreprocessSettings(pet_normalisation="fixed", pet_suv_range=(0.0, 10.0))
    np.testing.assert_allclose(preprocess.normalise_pet(pet, fixed), [[[0.0, 0.2, 0.4, 1.0]]], atol=1e-6)


def test_input_channels_follow_the_channel_order():
    ct, pet = np.full((3, 4, 5), 1100.0), np.full((3, 4, 5), 2.0)
    ct[0, 0, 0], pet[0, 0, 0] = -400.0, 0.0
    both = preprocess.input_channels(ct, pet, ("pet", "ct"))
    assert both.shape == (3, 2, 4, 5) and both[1, 0, 1, 1] == pytest.approx(1.0)
    assert preprocess.input_channels(None, pet, ("pet",)).shape == (3, 1, 4, 5)
    with pytest.raises(ValueError, match="'ct' was requested but not given"):
        preprocess.input_channels(None, pet, ("ct", "pet"))


@pytest.mark.parametrize("shape", [(173, 219), (512, 512), (224, 224), (97, 300)])
def test_training_size_round_trip_does_not_shift(shape):
    mask = np.zeros((2, *shape), np.float32)
    y, x = shape[0] // 3, shape[1] // 2
    mask[:, y:y + shape[0] // 4, x:x + shape[1] // 5] = 1
    small = preprocess.to_training_size(mask, 224)
    assert small.shape == (2, 224, 224)
    back = preprocess.from_training_size(small, shape) >= 0.5
    assert dice(back, mask > 0) > 0.95
    centre = np.argwhere(mask[0] > 0).mean(axis=0)
    # No systematic shift: at most half a pixel of the coarser of the two grids (quantisation).
    tolerance = 0.5 * np.maximum(1.0, np.array(shape) / 224)
    assert np.all(np.abs(np.argwhere(back[0]).mean(axis=0) - centre) <= tolerance)
    if shape == (224, 224):
        np.testing.assert_array_equal(small, mask)
