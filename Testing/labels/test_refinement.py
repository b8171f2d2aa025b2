"""The refinement, on hand-made clusters so the answers are known: the rough input's clusters seed a
flood fill over whole pieces (a fill more than twice its component dropped); A is seeded by the
PET-high clusters and the warm ones beside them, B by the PET-high clusters that lost bone density
inside the bone's outline. Nothing is decided voxel by voxel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from OsteoSegLib.labels.clustering import ClusteringSettings
from OsteoSegLib.labels.refinement import RefinementSettings, bridged, cluster_pieces, refine

SPACING = (3.0, 2.0, 2.0)


def bone_case(edema_suv=3.0):
    """A bone (cortex ring, marrow) whose lesion broke through the cortex at one point, warm soft tissue
    just outside that point, and a hot spot in the corner; the clusters are each tissue."""
    z, y, x = np.indices((6, 24, 24))
    r = np.hypot(y - 10, x - 10)
    cortex, marrow = (r > 4) & (r <= 6), r <= 4
    lesion = (z >= 1) & (z <= 4) & (r <= 6) & (x >= 12) & ((r <= 5) | (np.abs(y - 10) <= 1))
    edema = (z >= 1) & (z <= 4) & (x >= 17) & (x <= 18) & (np.abs(y - 10) <= 2)
    confounder = (y >= 21) & (x <= 3)
    hu = np.select([lesion, cortex, marrow], [80.0, 1200.0, 300.0], default=40.0)
    suv = np.select([lesion, confounder, edema, marrow], [8.0, 8.0, edema_suv, 1.2], default=1.0)
    clusters = np.select([lesion, edema, confounder, cortex, marrow], [3, 4, 5, 1, 2], default=0)
    rough = (lesion | edema) & (z >= 2) & (z <= 3)
    return clusters, hu, suv, rough, {"lesion": lesion, "edema": edema, "marrow": marrow}


def run(clusters, hu, suv, rough, settings=None):
    return refine(clusters, hu, suv, rough, np.ones(hu.shape, bool), SPACING, settings or RefinementSettings())


def test_a_is_the_hot_pieces_filled_beyond_the_rough_input_plus_the_warm_ones_beside_them_b_the_lost_bone():
    clusters, hu, suv, rough, regions = bone_case()
    refined = run(clusters, hu, suv, rough)
    assert np.array_equal(refined.label_a, regions["lesion"] | regions["edema"])   # slices 1 and 4 filled in
    assert np.array_equal(refined.label_b, regions["lesion"])                      # the hot edema lies outside bone
    assert refined.background_suv == 1.0 and refined.peak_suv == 8.0
    assert list(refined.seeds_a) == [3, 4] and list(refined.seeds_b) == [3]


def test_soft_tissue_no_warmer_than_its_surroundings_does_not_seed_a():
    clusters, hu, suv, rough, regions = bone_case(edema_suv=1.0)
    assert np.array_equal(run(clusters, hu, suv, rough).label_a, regions["lesion"])


def test_a_piece_mixing_hot_and_cold_voxels_is_kept_whole():
    clusters, hu, suv, rough, regions = bone_case()
    suv = suv.copy()
    cold = regions["lesion"] & (np.indices(suv.shape).sum(axis=0) % 2 == 0)    # every other lesion voxel cold
    suv[cold] = 1.0                                                             # the piece's mean is still 4.5
    refined = run(clusters, hu, suv, rough)
    assert refined.label_a[cold].all() and refined.label_b[cold].all()


def test_the_proposal_follows_the_clusters_not_the_uptake():
    """The hot block is split between two clusters: X = its left half and a little cold tissue (hot on
    average), Y = its right half and much cold tissue (cold on average). A is exactly X's piece: its cold
    voxels in, Y's hot voxels out."""
    z, y, x = np.indices((4, 20, 30))
    hot = (y >= 8) & (y < 12) & (x >= 10) & (x < 18)
    suv = np.where(hot, 6.0, 1.0)
    hu = np.full(suv.shape, 40.0)
    clusters = np.zeros(suv.shape, int)
    cluster_x = (y >= 7) & (y < 13) & (x >= 9) & (x < 14)                     # hot left half + a rim of cold
    cluster_y = (y >= 6) & (y < 14) & (x >= 14) & (x < 22)                    # hot right half + more cold
    clusters[cluster_x], clusters[cluster_y] = 1, 2
    rough = (y >= 7) & (y < 13) & (x >= 11) & (x < 16)
    refined = run(clusters, hu, suv, rough)
    assert suv[cluster_x].mean() > 3 and suv[cluster_y].mean() < 3             # not one SUV region
    assert np.array_equal(refined.label_a, cluster_x)
    assert (refined.label_a & (suv < 2)).any() and not refined.label_a[hot & (x >= 14)].any()


def test_a_fill_more_than_twice_its_component_is_dropped():
    z, y, x = np.indices((4, 30, 30))
    band = (y < 8) & (x >= 8) & (x < 22)               # one hot cluster: 448 voxels
    suv, clusters = np.where(band, 5.0, 1.0), band.astype(int)
    rough = (y >= 5) & (y < 11) & (x >= 12) & (x < 18)   # 144 voxels, 48 of them on the band
    refined = run(clusters, np.full(suv.shape, 40.0), suv, rough)
    assert refined.peak_suv == 5.0 and list(refined.seeds_a) == [1] and not refined.label_a.any()
    wider = run(clusters, np.full(suv.shape, 40.0), suv, rough, replace(RefinementSettings(), max_growth=3.2))
    assert np.array_equal(wider.label_a, band)


def test_an_outline_on_every_third_slice_stands_for_the_volume_it_spans():
    z, y, x = np.indices((7, 16, 16))
    lesion = (z >= 1) & (z <= 6) & (np.abs(y - 8) <= 2) & (np.abs(x - 8) <= 2)
    suv, hu = np.where(lesion, 6.0, 1.0), np.full(lesion.shape, 40.0)
    rough = lesion & np.isin(z, [1, 4])                 # 2 of its 6 slices: the lesion is 3 times that
    assert np.array_equal(bridged(rough, 2), lesion & (z <= 4))
    assert np.array_equal(run(lesion.astype(int), hu, suv, rough).label_a, lesion)
    unbridged = run(lesion.astype(int), hu, suv, rough, replace(RefinementSettings(), gap_slices=0))
    assert not unbridged.label_a.any()


def test_no_uptake_at_the_rough_input_proposes_nothing():
    clusters, hu, _, rough, _ = bone_case()
    refined = run(clusters, hu, np.ones(hu.shape), rough)
    assert not refined.label_a.any() and not refined.label_b.any() and not len(refined.seeds_a)


def test_each_connected_part_of_a_cluster_is_its_own_piece():
    labels = np.zeros((1, 3, 7), int)
    labels[0, 1, 1:3] = 1
    labels[0, 1, 4:6] = 1                               # cluster 1 in two parts
    pieces, count = cluster_pieces(labels)
    assert count == 3                                   # cluster 0 (one part) and cluster 1 (two)
    assert pieces[0, 1, 1] == pieces[0, 1, 2] != pieces[0, 1, 4] == pieces[0, 1, 5]
    assert len(np.unique(pieces)) == 3 and pieces.min() == 1
    single, many = cluster_pieces(np.arange(6).reshape(1, 2, 3))
    assert many == 6 and sorted(single.ravel()) == [1, 2, 3, 4, 5, 6]


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="max_iterations"):
        ClusteringSettings(max_iterations=0)
    with pytest.raises(ValueError, match="percentiles"):
        RefinementSettings(hot_percentile=120)
    with pytest.raises(ValueError, match="max_growth"):
        RefinementSettings(max_growth=0)


def test_warm_tissue_away_from_the_hot_clusters_does_not_seed_a():
    clusters, hu, suv, rough, regions = bone_case()
    z, y, x = np.indices(hu.shape)
    away = (z >= 2) & (z <= 3) & (y >= 19) & (y <= 20) & (x >= 18) & (x <= 19)   # warm, marked, touching no hot
    clusters, suv = np.where(away, 6, clusters), np.where(away, 1.4, suv)     # warm, not PET-high
    refined = run(clusters, hu, suv, rough | away)
    assert np.array_equal(refined.label_a, regions["lesion"] | regions["edema"]) and 6 not in refined.seeds_a
