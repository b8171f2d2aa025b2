"""On-the-fly augmentation of a whole batch on the training device, identical for channels and mask.

Flips (each axis with p 0.5), a rotation in [-15, 15] degrees and a small affine (scale, shift) are
folded into one 2x3 matrix per slice and applied by a single `grid_sample` on the device, so a GPU
is not left waiting for CPU-side transforms. The random numbers come from a CPU generator (a few per
slice), so a run draws the same augmentations on every device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.nn import functional


@dataclass(frozen=True)
class AugmentationSettings:
    """Ranges of the random transforms; `enabled=False` passes batches through untouched."""

    enabled: bool = True
    flip_probability: float = 0.5
    rotation_degrees: float = 15.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    shift_fraction: float = 0.05   # of the slice width, each axis

    def as_dict(self) -> dict:
        return asdict(self)


def random_matrices(count: int, settings: AugmentationSettings, generator: torch.Generator) -> torch.Tensor:
    """(count, 2, 3) affine matrices in normalised coordinates (output -> input sampling)."""
    uniform = torch.rand(count, 6, generator=generator, dtype=torch.float64)
    flips = torch.where(uniform[:, :2] < settings.flip_probability, -1.0, 1.0)
    angle = torch.deg2rad((2 * uniform[:, 2] - 1) * settings.rotation_degrees)
    low, high = settings.scale_range
    scale = low + (high - low) * uniform[:, 3]
    shift = (2 * uniform[:, 4:6] - 1) * 2 * settings.shift_fraction   # normalised units span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    matrices = torch.zeros(count, 2, 3, dtype=torch.float64)
    matrices[:, 0, 0], matrices[:, 0, 1] = cos * flips[:, 0], -sin * flips[:, 1]
    matrices[:, 1, 0], matrices[:, 1, 1] = sin * flips[:, 0], cos * flips[:, 1]
    matrices[:, :, 2] = shift
    return matrices


def augment_batch(images: torch.Tensor, masks: torch.Tensor, settings: AugmentationSettings,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random transform per slice for its channels (bilinear) and its mask (bilinear, then
    0.5 threshold, which keeps edges smoother than nearest neighbour). Outside the slice is 0."""
    if not settings.enabled:
        return images, masks
    matrices = random_matrices(images.shape[0], settings, generator).to(images.device, torch.float32)
    grid = functional.affine_grid(matrices, list(images.shape), align_corners=False)
    warped_images = functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped_masks = functional.grid_sample(masks.to(images.dtype), grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
    return warped_images, (warped_masks > 0.5).to(masks.dtype)

