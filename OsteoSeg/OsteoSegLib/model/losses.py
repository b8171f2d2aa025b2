"""The method's loss: lambda * soft Dice + (1 - lambda) * BCE, both on logits."""

from __future__ import annotations

import torch
from torch.nn import functional


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch ("batch Dice", as nnU-Net offers): one small lesion on one
    slice does not swing the loss as much as a per-slice Dice would. `eps` smooths empty slices."""
    probability = torch.sigmoid(logits.float())
    target = target.float()
    intersection = (probability * target).sum()
    return 1.0 - (2.0 * intersection + eps) / (probability.sum() + target.sum() + eps)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.5,
                  eps: float = 1.0) -> torch.Tensor:
    """lambda * Dice + (1 - lambda) * BCE-with-logits (computed in float32 under mixed precision)."""
    if not 0.0 <= dice_weight <= 1.0:
        raise ValueError(f"dice_weight must lie in [0, 1], got {dice_weight}")
    bce = functional.binary_cross_entropy_with_logits(logits.float(), target.float())
    return dice_weight * soft_dice_loss(logits, target, eps) + (1.0 - dice_weight) * bce
