"""The method's loss."""

from __future__ import annotations

import pytest
import torch
from OsteoSegLib.model.losses import dice_bce_loss, soft_dice_loss


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
