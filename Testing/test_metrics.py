"""Patient-level metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from OsteoSegLib.metrics import iou, lesion_detection, patient_metrics, sensitivity, specificity, surface_distances


def test_surface_distances_use_the_anisotropic_spacing():
    a, b = np.zeros((5, 5, 5), bool), np.zeros((5, 5, 5), bool)
    a[0, 0, 0], b[2, 0, 0] = True, True                 # two slices apart, 3 mm slices
    assert surface_distances(a, b, (3.0, 1.0, 1.0)) == pytest.approx((6.0, 6.0))
    assert surface_distances(a, b, (1.0, 1.0, 1.0)) == pytest.approx((2.0, 2.0))


def test_surface_distances_of_a_cube_shifted_by_one_slice():
    a, b = np.zeros((10, 10, 10), bool), np.zeros((10, 10, 10), bool)
    a[2:6, 2:6, 2:6], b[3:7, 2:6, 2:6] = True, True
    hd95, assd = surface_distances(a, b, (3.0, 1.0, 1.0))
    # Each 4x4x4 cube has 56 surface voxels; per direction 16 lie 3 mm from the other surface (the
    # face that moved), 4 lie 1 mm from it (face centres inside the other cube), 36 lie on it.
    assert hd95 == pytest.approx(3.0)
    assert assd == pytest.approx((16 * 3 + 4 * 1) / 56)


def test_empty_mask_conventions():
    empty, full = np.zeros((4, 4, 4), bool), np.ones((4, 4, 4), bool)
    assert patient_metrics(empty, empty, (1, 1, 1), full)["dice"] == 1.0
    assert surface_distances(empty, empty, (1, 1, 1)) == (0.0, 0.0)
    one_empty = patient_metrics(full, empty, (1, 1, 1), full)
    assert one_empty["dice"] == 0.0 and math.isnan(one_empty["hd95_mm"]) and math.isnan(one_empty["sensitivity"])
    assert one_empty["false_positive_volume_ml"] == pytest.approx(64 / 1000)


def test_overlap_metrics_by_hand():
    truth, prediction = np.zeros(10, bool), np.zeros(10, bool)
    truth[:4], prediction[2:7] = True, True              # TP 2, FP 3, FN 2
    region = np.ones(10, bool)
    region[9] = False                                     # TN 2 inside the region (7, 8), not 9
    assert iou(prediction, truth) == pytest.approx(2 / 7)
    assert sensitivity(prediction, truth) == pytest.approx(2 / 4)
    assert specificity(prediction, truth, region) == pytest.approx(2 / 5)


def test_lesion_detection_by_connected_components():
    truth, prediction = np.zeros((6, 10, 10), bool), np.zeros((6, 10, 10), bool)
    truth[1:3, 1:3, 1:3] = True                           # lesion 1: 8 voxels, found
    truth[1:3, 6:9, 6:9] = True                           # lesion 2: 18 voxels, missed
    prediction[2:4, 2:4, 2:4] = True                      # touches lesion 1
    prediction[5, 0, 9] = True                            # a false-positive component of 1 voxel
    detection = lesion_detection(prediction, truth, (2.0, 1.0, 1.0))
    assert detection["true_lesions"] == 2 and detection["detected_lesions"] == 1
    assert detection["predicted_components"] == 2 and detection["false_positive_components"] == 1
    assert detection["false_negative_volume_ml"] == pytest.approx(18 * 2 / 1000)
    assert detection["false_positive_volume_ml"] == pytest.approx(2 / 1000)
