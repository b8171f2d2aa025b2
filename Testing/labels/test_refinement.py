"""The refinement of each philosophy, on hand-made clusters so the answers are known: A = the PET-active
pieces at the rough input plus the warm soft tissue beside them; B = the hottest of them inside bone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from OsteoSegLib.labels.refinement import RefinementSettings, cluster_pieces, refine

SPACING = (3.0, 2.0, 2.0)


def bone_case(edema_suv=3.0):
    """A bone (cortex ring, marrow) whose lesion broke through the cortex at one point, warm soft tissue
    just outside that point, and a hot spot in the corner; the clusters are each tissue."""
    z, y, x = np.indices((6, 20, 20))
    r = np.hypot(y - 10, x - 10)
    cortex, marrow = (r > 4) & (r <= 6), r <= 4
    lesion = (z >= 1) & (z <= 4) & (r <= 6) & (x >= 12) & ((r <= 5) | (np.abs(y - 10) <= 1))
    edema = (z >= 1) & (z <= 4) & (x >= 17) & (x <= 18) & (np.abs(y - 10) <= 2)
    confounder = (y <= 3) & (x <= 3)
    hu = np.select([lesion, cortex, marrow], [80.0, 1200.0, 300.0], default=40.0)
    suv = np.select([lesion, confounder, edema, marrow], [8.0, 8.0, edema_suv, 1.2], default=1.0)
    clusters = np.select([lesion, edema, confounder, cortex, marrow], [3, 4, 5, 1, 2], default=0)
    rough = (lesion | edema) & (z >= 2) & (z <= 3)
    return clusters, hu, suv, rough, {"lesion": lesion, "edema": edema, "marrow": marrow}


def run(case, settings=None):
    clusters, hu, suv, rough, _ = case
    return refine(clusters, hu, suv, rough, np.ones(hu.shape, bool), SPACING, settings or RefinementSettings())


def test_a_is_the_active_pieces_grown_beyond_the_rough_input_plus_the_warm_soft_tissue_beside_them():
    case = bone_case()
    regions = case[4]
    refined = run(case)
    assert np.array_equal(refined.label_a, regions["lesion"] | regions["edema"])   # slices 1 and 4 grown back
    assert refined.background_suv == 1.0 and refined.peak_suv == 8.0
    # B: the lesion where it lies inside the bone's outline; never the soft tissue
    assert not (refined.label_b & ~regions["lesion"]).any()
    z, y, x = np.indices(regions["lesion"].shape)
    assert refined.label_b[regions["lesion"] & (np.hypot(y - 10, x - 10) <= 5)].all()


def test_soft_tissue_barely_warmer_than_its_surroundings_is_not_involvement():
    case = bone_case(edema_suv=1.5)                     # uptake (1.5 - 1) / (8 - 1) = 0.07
    assert np.array_equal(run(case).label_a, case[4]["lesion"])


def test_hot_soft_tissue_is_in_a_but_not_in_b_which_needs_bone():
    case = bone_case(edema_suv=8.0)
    refined = run(case)
    assert refined.label_a[case[4]["edema"]].all()
    assert not refined.label_b[case[4]["edema"]].any() and refined.label_b.any()


def test_a_grows_no_further_than_its_reach_from_the_rough_input():
    case = bone_case()
    refined = run(case, replace(RefinementSettings(), reach_mm=2.0))   # slices 1 and 4 are 3 mm away
    regions = case[4]
    expected = (regions["lesion"] | regions["edema"]).copy()
    expected[[0, 1, 4, 5]] = False
    assert np.array_equal(refined.label_a, expected)
    assert refined.whole_a[1].any() and refined.whole_a[4].any()        # the pieces themselves went on


def test_no_uptake_at_the_rough_input_proposes_nothing():
    clusters, hu, _, rough, _ = bone_case()
    refined = refine(clusters, hu, np.ones(hu.shape), rough, np.ones(hu.shape, bool), SPACING)
    assert not refined.label_a.any() and not refined.label_b.any()


def test_each_connected_part_of_a_cluster_is_its_own_piece():
    labels = np.zeros((1, 3, 7), int)
    labels[0, 1, 1:3] = 1
    labels[0, 1, 4:6] = 1                               # cluster 1 in two parts
    pieces, count = cluster_pieces(labels)
    assert count == 3                                   # cluster 0 (one part) and cluster 1 (two)
    assert pieces[0, 1, 1] == pieces[0, 1, 2] != pieces[0, 1, 4] == pieces[0, 1, 5]
    assert len(np.unique(pieces)) == 3 and pieces.min() == 1
