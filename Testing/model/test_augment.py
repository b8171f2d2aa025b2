"""Batched augmentation on the training device."""

from __future__ import annotations

import torch
from OsteoSegLib.model.augment import AugmentationSettings, augment_batch


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
