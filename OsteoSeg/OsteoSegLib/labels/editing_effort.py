"""How much an expert had to edit a proposal to reach the label they saved: voxels added and removed,
and the axial slices touched (a slice is edited when any of its voxels changed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..metrics import dice

__all__ = ["EditingEffort", "editing_effort", "effort_saving"]


@dataclass(frozen=True)
class EditingEffort:
    """The edits from a starting mask to the final one."""

    voxels_added: int
    voxels_removed: int
    voxels_changed: int
    slices_changed: int
    slices_with_label: int     # axial slices the final label occupies
    dice: float                # agreement of the start with the final label

    def as_dict(self) -> dict:
        return asdict(self)


def editing_effort(start: np.ndarray, final: np.ndarray) -> EditingEffort:
    """The edits that turn `start` into `final` (binary (z, y, x) masks on one grid)."""
    start, final = np.asarray(start, bool), np.asarray(final, bool)
    if start.shape != final.shape:
        raise ValueError(f"mask shapes differ: {start.shape} and {final.shape}")
    added, removed = final & ~start, start & ~final
    changed = added | removed
    return EditingEffort(int(added.sum()), int(removed.sum()), int(changed.sum()),
                         int(changed.any(axis=(1, 2)).sum()), int(final.any(axis=(1, 2)).sum()),
                         round(dice(start, final), 4))


def effort_saving(baseline: EditingEffort, proposal: EditingEffort) -> float:
    """The share of the baseline's changed voxels that the proposal spares (negative: it costs more);
    NaN when the baseline needed no edit."""
    if baseline.voxels_changed == 0:
        return float("nan")
    return 1.0 - proposal.voxels_changed / baseline.voxels_changed
