"""The U-Net, the loss, batched augmentation, devices and the model package (no training here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from OsteoSegLib.augment import AugmentationSettings, augment_batch
from OsteoSegLib.devices import autocast_dtype, choose_device
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference import predict_probabilities, resize_slices
from OsteoSegLib.losses import dice_bce_loss, soft_dice_loss
from OsteoSegLib.models import CARD_FILE, WEIGHTS_FILE, load_model_package, load_model_set, save_model_package
from OsteoSegLib.network import Architecture, build_network, check_input_size, count_parameters
from OsteoSegLib.preprocess import from_training_size, to_training_size


def test_paper_width_is_the_default_and_width_scales_the_network():
    assert Architecture().widths() == [64, 128, 256, 512, 1024]
    wide, narrow = build_network(Architecture(2, 64)), build_network(Architecture(2, 8))
    # Parameters grow with the square of the width (convolutions dominate).
    assert count_parameters(wide) / count_parameters(narrow) == pytest.approx(64, rel=0.02)
    assert count_parameters(wide) == pytest.approx(31.0e6, rel=0.02)   # the classic U-Net's ~31 M


@pytest.mark.parametrize("channels", [1, 2])
def test_network_maps_slices_to_one_logit_per_pixel(channels):
    network = build_network(Architecture(channels, 4)).eval()
    with torch.no_grad():
        logits = network(torch.rand(3, channels, 48, 64))
    assert logits.shape == (3, 1, 48, 64)
    # Starts near the foreground prior, not at probability 0.5.
    assert float(torch.sigmoid(logits).mean()) < 0.1


def test_input_size_must_survive_four_halvings():
    check_input_size(224, Architecture())
    with pytest.raises(ValueError, match="not divisible by 16"):
        check_input_size(100, Architecture())


def test_loss_is_lambda_weighted_dice_plus_bce():
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    confident = (target * 2 - 1) * 20.0          # logits that agree with the target
    assert float(dice_bce_loss(confident, target)) < 1e-3
    logits = torch.randn(2, 1, 16, 16)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    dice = soft_dice_loss(logits, target)
    assert float(dice_bce_loss(logits, target, 0.3)) == pytest.approx(float(0.3 * dice + 0.7 * bce), rel=1e-5)
    assert float(dice_bce_loss(logits, target, 1.0)) == pytest.approx(float(dice), rel=1e-6)
    with pytest.raises(ValueError, match="dice_weight"):
        dice_bce_loss(logits, target, 1.5)


def _generator(seed=0):
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def test_flips_are_exact_and_shared_by_channels_and_mask():
    flips_only = AugmentationSettings(flip_probability=1.0, rotation_degrees=0.0, scale_range=(1.0, 1.0),
                                      shift_fraction=0.0)
    images = torch.rand(2, 2, 12, 10)
    masks = (torch.rand(2, 1, 12, 10) > 0.5).float()
    warped, warped_masks = augment_batch(images, masks, flips_only, _generator())
    torch.testing.assert_close(warped, torch.flip(images, dims=(2, 3)))
    torch.testing.assert_close(warped_masks, torch.flip(masks, dims=(2, 3)))


def test_random_transforms_move_image_and_mask_together():
    mask = torch.zeros(4, 1, 32, 32)
    mask[:, :, 8:20, 10:18] = 1
    images = torch.cat([mask, 1 - mask], dim=1)   # channels that are the mask itself
    warped, warped_masks = augment_batch(images, mask, AugmentationSettings(), _generator(3))
    assert set(torch.unique(warped_masks).tolist()) <= {0.0, 1.0}
    assert not torch.equal(warped_masks, mask)
    agreement = ((warped[:, :1] > 0.5).float() == warped_masks).float().mean()
    assert float(agreement) > 0.99
    same, _ = augment_batch(images, mask, AugmentationSettings(), _generator(3))
    torch.testing.assert_close(same, warped)          # the generator alone decides
    untouched = augment_batch(images, mask, AugmentationSettings(enabled=False), _generator(3))
    assert untouched[0] is images


def test_device_choice_never_falls_back_silently():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in {"cuda", "mps", "cpu"}
    with pytest.raises(OsteoSegError, match="unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(OsteoSegError, match="no usable CUDA GPU"):
            choose_device("cuda")
    assert autocast_dtype(torch.device("cpu")) is None
    assert autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16


def test_device_resize_is_the_same_mapping_as_preprocessing():
    slices = np.random.default_rng(0).random((3, 2, 50, 70)).astype(np.float32)
    on_device = resize_slices(torch.from_numpy(slices), (96, 96)).numpy()
    np.testing.assert_allclose(on_device, to_training_size(slices, 96), atol=1e-5)
    back = resize_slices(torch.from_numpy(on_device), (50, 70)).numpy()
    np.testing.assert_allclose(back, from_training_size(on_device, (50, 70)), atol=1e-5)


def _package(tmp_path, width=4):
    network = build_network(Architecture(2, width)).eval()
    card = {"name": "test", "label_source": "A", "inputs": ["ct", "pet"],
            "architecture": Architecture(2, width).as_dict()}
    return network, save_model_package(tmp_path / "set" / "model-A", network.state_dict(), card)


def test_model_package_round_trip_gives_the_same_predictions(tmp_path):
    network, folder = _package(tmp_path)
    loaded = load_model_package(folder)
    assert loaded.card["weights_sha256"] and loaded.inputs == ("ct", "pet")
    volume = np.random.default_rng(1).random((5, 2, 40, 40)).astype(np.float32)
    a, b = predict_probabilities([(network, (0, 1)), (loaded.network, (0, 1))], volume, size=48,
                                 device=torch.device("cpu"), batch_size=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 40, 40)
    assert [p.name for p in load_model_set(folder.parent)] == ["test"]


def test_corrupt_weights_are_refused(tmp_path):
    _, folder = _package(tmp_path)
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(OsteoSegError, match="do not match the model card"):
        load_model_package(folder)


def test_card_that_does_not_fit_the_weights_is_refused(tmp_path):
    _, folder = _package(tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    card["architecture"]["base_width"] = 8
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(OsteoSegError, match="do not fit the architecture"):
        load_model_package(folder)


def test_folders_that_are_not_packages_are_refused(tmp_path):
    with pytest.raises(OsteoSegError, match="model.json is missing"):
        load_model_package(tmp_path)
    with pytest.raises(OsteoSegError, match="no model packages"):
        load_model_set(tmp_path)
