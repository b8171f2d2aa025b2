"""The self-trained clustering network: it separates what differs in CT or PET, merges clusters as it
trains, stops when told, and gives the same clusters for the same input."""

from __future__ import annotations

import numpy as np
import torch
from OsteoSegLib.labels.clustering import ClusteringSettings, build_network, cluster_crop, continuity


def two_modality_crop():
    """CT dark on the left, bright on the right; PET cold except a hot block in the right half."""
    rng = np.random.default_rng(3)
    ct = np.full((8, 16, 16), 0.2, np.float32)
    ct[:, :, 8:] = 0.8
    pet = np.full(ct.shape, 0.1, np.float32)
    pet[1:7, 2:9, 9:15] = 1.0
    noise = rng.normal(0, 0.02, (2, *ct.shape)).astype(np.float32)
    return np.stack([ct, pet]) + noise


def majority(labels: np.ndarray, region: np.ndarray) -> tuple[int, float]:
    values, counts = np.unique(labels[region], return_counts=True)
    return int(values[counts.argmax()]), float(counts.max() / counts.sum())


def test_clusters_do_not_straddle_regions_that_differ_in_either_modality():
    crop = two_modality_crop()
    clusters = cluster_crop(crop, ClusteringSettings(max_iterations=30))
    hot = crop[1] > 0.5
    regions = np.select([hot, crop[0] < 0.5], [2, 0], default=1)    # hot block, dark CT, bright CT
    pure = sum(np.bincount(regions[clusters.labels == k], minlength=3).max() for k in range(clusters.count))
    assert pure / regions.size >= 0.9                               # a cluster lies in one region
    hot_label, share = majority(clusters.labels, hot)
    assert share >= 0.5 and (regions[clusters.labels == hot_label] == 2).mean() >= 0.9
    assert clusters.labels.shape == crop.shape[1:] and clusters.labels.max() == clusters.count - 1
    assert clusters.history[-1] == clusters.count and clusters.count < clusters.history[0]


def test_the_same_input_gives_the_same_clusters_and_leaves_torch_s_random_state_alone():
    crop = two_modality_crop()
    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    first = cluster_crop(crop, ClusteringSettings(max_iterations=8))
    after = torch.rand(1).item()
    second = cluster_crop(crop, ClusteringSettings(max_iterations=8))
    assert np.array_equal(first.labels, second.labels) and first.history == second.history
    assert before == after


def test_it_stops_when_few_enough_clusters_are_left_or_the_count_stops_falling():
    crop = two_modality_crop()
    assert cluster_crop(crop, ClusteringSettings(min_clusters=16)).iterations == 1
    stalled = cluster_crop(crop, ClusteringSettings(learning_rate=0.0, max_iterations=40, min_iterations=10,
                                                    patience=3))
    assert stalled.iterations == 10                                # never falls: stops at the first allowed check
    assert len(set(stalled.history)) == 1


def test_each_cluster_is_a_joint_class_of_both_modalities():
    network = build_network(2, ClusteringSettings(features=4, clusters=6))
    responses = network(torch.rand(1, 2, 4, 6, 6))
    assert responses.shape == (1, 6, 4, 6, 6)                      # one set of clusters, not one per modality


def test_continuity_is_the_mean_absolute_step_between_neighbours_along_each_axis():
    responses = torch.zeros(1, 1, 2, 2, 2)
    responses[0, 0, 1] = 3.0            # a step of 3 along z only
    responses[0, 0, :, :, 1] += 1.0     # and a step of 1 along x
    assert continuity(responses).item() == 3.0 + 0.0 + 1.0
