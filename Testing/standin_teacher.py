"""A stand-in for a user's own teacher network (the plug-in point of semi-supervised training): reads
a threshold from a local "checkpoint" and outlines PET above it, as a foundation model's adapter would
return lesion logits for OsteoSeg's input slices."""

from __future__ import annotations

import json
from pathlib import Path

import torch


class PetAboveThreshold(torch.nn.Module):
    def __init__(self, threshold: float):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(threshold))

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        return 20.0 * (slices[:, 1:2] - self.threshold)   # channel 1 is PET (OsteoSeg's order: CT, PET)


def make_teacher(checkpoint: Path) -> torch.nn.Module:
    return PetAboveThreshold(json.loads(Path(checkpoint).read_text())["threshold"])
