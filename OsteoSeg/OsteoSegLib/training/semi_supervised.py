"""Semi-supervised training from unlabelled patients, after MuDuo (Mao et al., 2026): a structural
(CT-side) and a functional (PET-side) teacher, frozen, label the unlabelled slices; where they agree,
a random mix of their maps supervises the dual-channel student through a soft-Dice consistency loss
whose weight ramps up over training.

As MuDuo does it, and where this differs:
- target = (alpha * P_ct + (1 - alpha) * P_pet >= 0.5), alpha ~ U(0, 1) per sample;
- agreement = soft IoU of the two teachers' maps; the top half of each unlabelled batch is kept, a
  sample with no prompt (neither teacher marks a voxel) scoring lowest and never kept;
- weight lambda(t) = lambda_max * exp(-5 (1 - t / T)^2), lambda_max 0.1, t in epochs (fractional);
- the teachers are OsteoSeg networks of the same label source trained on the labelled patients
  (CT-only and PET-only), or a user's own network through a plug-in (no foundation-model weights are
  downloaded); MuDuo's teachers are SAM-Med3D and SegAnyPET prompted by masks;
- each step adds an unlabelled batch as large as the labelled one (MuDuo halves one batch), so the
  supervised part of a step is exactly the supervised-only run's;
- the unlabelled pool is the slices where a teacher marks something (MuDuo's prompted samples), as
  supervised training uses the lesion slices.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..model.losses import soft_dice_loss

TEACHER_INPUTS = {"ct": ("ct",), "pet": ("pet",)}
SELECTIONS = ("top_half", "threshold", "all")
NO_PROMPT = -1.0   # the agreement of a sample neither teacher marks: lowest, never kept


@dataclass(frozen=True)
class SemiSupervisedSettings:
    """The method's choices; recorded in the run and the model card."""

    lambda_max: float = 0.1
    teachers: tuple[str, ...] = ("ct", "pet")   # which teachers make the target (one alone: an ablation)
    selection: str = "top_half"                 # top_half (MuDuo), threshold (agreement >= min_agreement), all
    min_agreement: float = 0.5

    def as_dict(self) -> dict:
        return asdict(self)

    def problems(self) -> list[str]:
        found = []
        if self.lambda_max < 0:
            found.append("the consistency weight (lambda max) must not be negative")
        if not self.teachers or any(t not in TEACHER_INPUTS for t in self.teachers) or \
                len(set(self.teachers)) != len(self.teachers):
            found.append(f"teachers {self.teachers} are not valid: use ct, pet or both")
        if self.selection not in SELECTIONS:
            found.append(f"selection {self.selection!r} is not one of {', '.join(SELECTIONS)}")
        if not 0.0 <= self.min_agreement <= 1.0:
            found.append("the minimum agreement must lie in [0, 1]")
        return found


def consistency_weight(epoch: float, epochs: int, lambda_max: float) -> float:
    """lambda_max * exp(-5 (1 - t/T)^2): about 0.7% of lambda_max at the start, lambda_max at the end."""
    fraction = min(max(epoch / epochs, 0.0), 1.0)
    return lambda_max * math.exp(-5.0 * (1.0 - fraction) ** 2)


def soft_iou(first: torch.Tensor, second: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per sample of (N, 1, S, S) probability maps: sum(p q) / (sum p + sum q - sum(p q))."""
    product = (first * second).flatten(1).sum(1)
    union = first.flatten(1).sum(1) + second.flatten(1).sum(1) - product
    return product / (union + eps)


def agreement(maps: torch.Tensor) -> torch.Tensor:
    """Per sample of (N, T, S, S) teacher maps: the soft IoU of the two teachers (one teacher: of its
    map with its own 0.5 mask, i.e. how decided it is); NO_PROMPT where no teacher marks a voxel."""
    if maps.shape[1] == 2:
        scores = soft_iou(maps[:, :1], maps[:, 1:])
    else:
        scores = soft_iou(maps[:, :1], (maps[:, :1] >= 0.5).to(maps.dtype))
    prompted = (maps >= 0.5).flatten(1).any(1)
    return torch.where(prompted, scores, torch.full_like(scores, NO_PROMPT))


def kept_samples(scores: torch.Tensor, selection: str, min_agreement: float) -> torch.Tensor:
    """Which samples supervise the student: the better half of the prompted ones (at least one),
    those agreeing at least `min_agreement`, or every prompted one."""
    prompted = scores > NO_PROMPT
    if selection == "all":
        return prompted
    if selection == "threshold":
        return prompted & (scores >= min_agreement)
    count = int(prompted.sum())
    keep = torch.zeros_like(prompted)
    if count:
        ranked = torch.argsort(torch.where(prompted, scores, torch.full_like(scores, -math.inf)), descending=True)
        keep[ranked[:max(1, count // 2)]] = True
    return keep


def mixed_target(maps: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(alpha * P_ct + (1 - alpha) * P_pet >= 0.5) per sample; one teacher: its own 0.5 mask."""
    if maps.shape[1] == 1:
        return (maps >= 0.5).to(maps.dtype)
    mix = alpha.view(-1, 1, 1, 1) * maps[:, :1] + (1 - alpha.view(-1, 1, 1, 1)) * maps[:, 1:]
    return (mix >= 0.5).to(maps.dtype)


def consistency_loss(student_logits: torch.Tensor, maps: torch.Tensor, settings: SemiSupervisedSettings,
                     generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Soft Dice of the student against the mixed target on the kept samples; (0, 0) if none is kept."""
    maps = maps.float()
    alpha = torch.rand(maps.shape[0], generator=generator).to(maps.device)
    keep = kept_samples(agreement(maps), settings.selection, settings.min_agreement)
    if not bool(keep.any()):
        return student_logits.sum() * 0.0, 0
    target = mixed_target(maps[keep], alpha[keep])
    return soft_dice_loss(student_logits[keep], target), int(keep.sum())


@dataclass
class UnlabelledSlices:
    """The unlabelled pool at the training size: images (N, C, S, S) float32 and the teachers' maps
    (N, T, S, S) float16, one channel per teacher in SemiSupervisedSettings.teachers order."""

    images: np.ndarray
    maps: np.ndarray
    case_ids: list[str]

    def __len__(self) -> int:
        return len(self.case_ids)

    def batch_indices(self, seed: int, epoch: int, step: int, batch_size: int, rank: int) -> np.ndarray:
        """The unlabelled slices of one step: a permutation per (seed, epoch, rank), taken in turn and
        wrapped, so a resumed run draws the same ones."""
        order = np.random.default_rng([seed, epoch, rank, 2]).permutation(len(self))
        start = step * batch_size
        return np.sort(np.resize(np.roll(order, -(start % len(self))), batch_size))
