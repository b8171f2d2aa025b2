"""Editing effort: voxels added and removed and slices touched, counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from OsteoSegLib.labels.editing_effort import EditingEffort, editing_effort, effort_saving


def test_edits_from_a_start_to_the_final_label_are_counted_per_voxel_and_per_slice():
    start = np.zeros((4, 5, 5), bool)
    final = np.zeros((4, 5, 5), bool)
    start[1, 1:3, 1:3] = True           # 4 voxels, all kept
    start[0, 4, 4] = True               # 1 more, kept
    start[3, 0, 0] = True               # 1 voxel the expert removed
    final[1, 1:3, 1:3] = True
    final[0, 4, 4] = True
    final[2, 2:4, 2:5] = True           # 6 voxels the expert added on slice 2
    effort = editing_effort(start, final)
    assert effort == EditingEffort(voxels_added=6, voxels_removed=1, voxels_changed=7, slices_changed=2,
                                   slices_with_label=3, dice=round(2 * 5 / (6 + 11), 4))


def test_the_saving_is_the_share_of_voxel_edits_spared_and_undefined_without_edits():
    baseline = editing_effort(np.zeros((1, 2, 5), bool), np.ones((1, 2, 5), bool))       # 10 edits
    proposal = editing_effort(np.eye(2, 5, dtype=bool)[None], np.ones((1, 2, 5), bool))  # 8 edits
    assert effort_saving(baseline, proposal) == pytest.approx(0.2)
    assert effort_saving(proposal, baseline) == pytest.approx(1 - 10 / 8)                # costs more
    none = editing_effort(np.ones((1, 2, 2)), np.ones((1, 2, 2)))
    assert math.isnan(effort_saving(none, proposal))


def test_masks_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        editing_effort(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))
