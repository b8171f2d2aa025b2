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


def _pixel_centre_resize(values, n_out):
    """Linear resize of a 1-D profile with pixel centres aligned and edge values held (the oracle)."""
    coords = (np.arange(n_out) + 0.5) * len(values) / n_out - 0.5
    return np.interp(coords, np.arange(len(values)), values)


def test_settings_record_the_methods_numbers():
    assert preprocess.PreprocessSettings().as_dict() == {
        "ct_window_hu": (-400.0, 1100.0), "pet_normalisation": "minmax", "pet_suv_range": (0.0, 10.0),
        "size": 224, "eps": 1e-8}


def test_min_max_scaling_is_low_and_span_plus_eps_after_the_clip():
    assert preprocess.min_max_scaling(np.array([2.0, 5.0, 12.0]), 0.5) == preprocess.ChannelScaling(2.0, 10.5)
    clipped = preprocess.min_max_scaling(np.array([-3.0, 5.0, 12.0]), 0.25, (0.0, 10.0))
    assert clipped == preprocess.ChannelScaling(0.0, 10.25, (0.0, 10.0))
    inside = preprocess.min_max_scaling(np.array([1.0, 4.0]), 0.0, (0.0, 10.0))   # the clip leaves both ends
    assert (inside.low, inside.span) == (1.0, 3.0)
    # eps is 1e-8 by default: it matters only for a near-constant volume.
    np.testing.assert_allclose(preprocess.min_max(np.array([0.0, 1e-6])), [0.0, 1e-6 / (1e-6 + 1e-8)], rtol=1e-5)


def test_ct_and_pet_scalings_use_the_settings():
    settings = preprocess.PreprocessSettings(ct_window_hu=(-100.0, 300.0), eps=0.0,
                                             pet_normalisation="fixed", pet_suv_range=(1.0, 5.0))
    ct = np.array([-1000.0, 0.0, 200.0, 2000.0])
    assert preprocess.ct_scaling(ct, settings) == preprocess.ChannelScaling(-100.0, 400.0, (-100.0, 300.0))
    np.testing.assert_allclose(preprocess.normalise_ct(ct, settings), [0.0, 0.25, 0.75, 1.0])
    pet = np.array([0.0, 2.0, 4.0, 9.0])
    assert preprocess.pet_scaling(pet, settings) == preprocess.ChannelScaling(1.0, 4.0, None, True)
    np.testing.assert_allclose(preprocess.normalise_pet(pet, settings), [0.0, 0.25, 0.75, 1.0])
    minmax = preprocess.PreprocessSettings(eps=0.0)
    assert preprocess.pet_scaling(pet, minmax) == preprocess.ChannelScaling(0.0, 9.0)
    with pytest.raises(ValueError, match=r"unknown PET normalisation 'zscore'; use one of \('minmax', 'fixed'\)"):
        preprocess.pet_scaling(pet, preprocess.PreprocessSettings(pet_normalisation="zscore"))


def test_scaling_writes_float32_into_the_given_array_and_clips_only_when_asked():
    values = np.array([[-2, 0, 6, 10]], np.int16)
    out = np.full((1, 4), 99.0, np.float32)
    result = preprocess.ChannelScaling(-2.0, 8.0).apply(values, out=out)
    assert result is out and out.tolist() == [[0.0, 0.25, 1.0, 1.5]]
    unit = preprocess.ChannelScaling(-2.0, 8.0, clip_unit=True).apply(values)
    assert unit.dtype == np.float32 and unit.tolist() == [[0.0, 0.25, 1.0, 1.0]]
    clipped = preprocess.ChannelScaling(0.0, 4.0, clip=(0.0, 4.0)).apply(values)
    assert clipped.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_input_volume_normalises_only_the_slices_asked_for():
    ct = np.arange(3 * 2 * 2, dtype=np.float64).reshape(3, 2, 2) * 100.0 - 400.0   # -400 ... 700 HU
    pet = np.arange(3 * 2 * 2, dtype=np.float64).reshape(3, 2, 2)[::-1].copy()       # 11 ... 0
    settings = preprocess.PreprocessSettings(eps=0.0)
    volume = preprocess.InputVolume(ct, pet, ("pet", "ct"), settings)
    assert volume.shape == (3, 2, 2, 2)
    one = volume[1]
    assert one.shape == (2, 2, 2) and one.dtype == np.float32
    np.testing.assert_allclose(one[0], (ct[1] + 400.0) / 1100.0, rtol=1e-6)   # channel 0 is CT
    np.testing.assert_allclose(one[1], pet[1] / 11.0, rtol=1e-6)
    np.testing.assert_allclose(volume[[2, 0]][:, 1], pet[[2, 0]] / 11.0, rtol=1e-6)
    np.testing.assert_allclose(volume[1:], preprocess.input_channels(ct, pet, ("ct", "pet"), settings)[1:])
    only_ct = preprocess.InputVolume(ct, None, ("ct",))
    assert only_ct.shape == (3, 1, 2, 2)
    with pytest.raises(ValueError, match=r"no known input among \('mri',\); use \('ct', 'pet'\)"):
        preprocess.InputVolume(ct, pet, ("mri",))
    with pytest.raises(ValueError, match="input 'pet' was requested but not given"):
        preprocess.InputVolume(ct, None, ("ct", "pet"))


def test_resizing_is_linear_between_pixel_centres_with_edges_held():
    y, x = np.array([0.0, 10.0]), np.array([0.0, 1.0, 3.0])
    image = (y[:, None] + x[None, :])[None]                     # (1, 2, 3), separable
    big = preprocess.to_training_size(image, 4)
    expected = _pixel_centre_resize(y, 4)[:, None] + _pixel_centre_resize(x, 4)[None, :]
    np.testing.assert_allclose(big[0], expected, atol=1e-6)
    back = preprocess.from_training_size(big, (2, 3))
    expected_back = (_pixel_centre_resize(_pixel_centre_resize(y, 4), 2)[:, None]
                     + _pixel_centre_resize(_pixel_centre_resize(x, 4), 3)[None, :])
    np.testing.assert_allclose(back[0], expected_back, atol=1e-6)
    assert big.dtype == image.dtype and back.shape == (1, 2, 3)


def test_labels_resize_by_nearest_neighbour_and_keep_their_type():
    labels = np.array([[[0, 1], [2, 3]]], np.uint8)
    big = preprocess.to_training_size(labels, 4, order=0)
    assert big.dtype == np.uint8
    assert big[0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert preprocess.from_training_size(big, (2, 2), order=0)[0].tolist() == [[0, 1], [2, 3]]


def test_mapping_back_works_per_axis_on_non_square_slices():
    y, x = np.array([0.0, 10.0]), np.array([0.0, 1.0, 3.0, 7.0])
    network_size = (y[:, None] + x[None, :])[None].astype(np.float32)     # (1, 2, 4): y up, x down
    back = preprocess.from_training_size(network_size, (4, 3))
    expected = _pixel_centre_resize(y, 4)[:, None] + _pixel_centre_resize(x, 3)[None, :]
    assert back.shape == (1, 4, 3) and back.dtype == np.float32
    np.testing.assert_allclose(back[0], expected, atol=1e-5)


def test_fixed_pet_is_clipped_inside_the_networks_input_too():
    ct = np.full((2, 1, 3), 100.0)
    ct[0, 0, :2] = 1000.0, -1000.0        # the window (-100, 300) clips both: 100 HU is then 0.5
    pet = np.array([[[0.0, 5.0, 25.0]], [[10.0, 20.0, 2.5]]])
    settings = preprocess.PreprocessSettings(pet_normalisation="fixed", pet_suv_range=(0.0, 10.0),
                                             ct_window_hu=(-100.0, 300.0))
    volume = preprocess.input_channels(ct, pet, ("ct", "pet"), settings)
    np.testing.assert_allclose(volume[:, 1, 0], [[0.0, 0.5, 1.0], [1.0, 1.0, 0.25]])
    np.testing.assert_allclose(volume[:, 0, 0], [[1.0, 0.0, 0.5], [0.5, 0.5, 0.5]], atol=1e-6)
    out = np.zeros((1, 3), np.float32)
    result = preprocess.ChannelScaling(0.0, 10.0, clip_unit=True).apply(np.array([[-5.0, 5.0, 50.0]]), out=out)
    assert result is out and out.tolist() == [[0.0, 0.5, 1.0]]
