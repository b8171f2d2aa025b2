"""Patient-level metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from OsteoSegLib.metrics import (
    cohens_kappa,
    dice,
    iou,
    lesion_components,
    lesion_detection,
    patient_metrics,
    sensitivity,
    specificity,
    surface_distances,
)


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


# ---------------------------------------------------------------- asymmetric cases, counted by hand


def test_overlap_metrics_where_the_sums_could_cancel():
    """Counts where tp + fp - fn or tp - fp + fn is 0 (a sign slip would take the empty-mask branch)."""
    prediction, truth = np.zeros(12, bool), np.zeros(12, bool)
    prediction[0] = True
    truth[:2] = True                                      # TP 1, FP 0, FN 1: tp + fp - fn = 0
    assert dice(prediction, truth) == pytest.approx(2 / 3) and iou(prediction, truth) == pytest.approx(1 / 2)
    prediction[5:7] = True                                # TP 1, FP 2, FN 1: tp - fp + fn = 0
    assert dice(prediction, truth) == pytest.approx(2 / 5) and iou(prediction, truth) == pytest.approx(1 / 4)
    empty = np.zeros(12, bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0 and cohens_kappa(empty, empty) == 1.0


def test_kappa_by_hand_on_raters_that_disagree_unevenly():
    a, b = np.zeros(20, bool), np.zeros(20, bool)
    a[:6] = True                                          # rater A: 6 positives
    b[4:7] = True                                         # rater B: 3; TP 2, FP 4, FN 1, TN 13
    observed = (2 + 13) / 20
    expected = ((2 + 4) * (2 + 1) + (1 + 13) * (4 + 13)) / 20**2
    assert cohens_kappa(a, b) == pytest.approx((observed - expected) / (1 - expected))
    assert cohens_kappa(a, b) == pytest.approx(cohens_kappa(b, a))


def test_masks_of_any_integer_coding_count_as_masks():
    """0/255 labels, 0/1 or 0/2 predictions and 0/0.8 probabilities compare as masks (bitwise & of 2
    and 1 would be 0)."""
    truth = np.zeros((4, 5, 6), np.uint8)
    truth[1:3, 1:4, 2:5] = 255
    prediction = np.zeros((4, 5, 6), np.uint8)
    prediction[1:3, 2:4, 2:6] = 1
    as_bool = (prediction > 0, truth > 0)
    region = np.ones(truth.shape, np.uint8)               # a region given as 0/1, not booleans
    region[0] = 0
    assert dice(prediction, truth) == pytest.approx(dice(*as_bool)) and dice(*as_bool) < 1
    assert specificity(prediction, truth, region) == pytest.approx(specificity(*as_bool, region > 0))
    assert lesion_detection(prediction, truth, (1, 1, 1)) == lesion_detection(*as_bool, (1, 1, 1))
    assert surface_distances(prediction, truth, (1, 1, 1)) == pytest.approx(surface_distances(*as_bool, (1, 1, 1)))
    label_two = prediction * 2                             # a label map's value 2 against a 0/1 truth: 2 & 1 == 0
    ones = (truth > 0).astype(np.uint8)
    assert dice(label_two, ones) == pytest.approx(dice(*as_bool)) == pytest.approx(dice(ones * 2, label_two // 2))
    assert dice(ones, label_two) == pytest.approx(dice(*as_bool[::-1]))
    assert lesion_detection(label_two, ones, (1, 1, 1)) == lesion_detection(*as_bool, (1, 1, 1))
    assert surface_distances(label_two * 0.4, ones, (1, 1, 1)) == pytest.approx(surface_distances(*as_bool, (1, 1, 1)))
    with pytest.raises(ValueError, match=r"mask shapes differ: \(4, 5, 6\) and \(4, 5, 5\)"):
        dice(prediction, truth[..., :5])


def test_specificity_edges_counted_by_hand():
    prediction, truth = np.zeros(10, bool), np.zeros(10, bool)
    prediction[:2] = True                                 # FP 2 ...
    region = np.zeros(10, bool)
    region[:4] = True                                     # ... and TN 2 inside the region: 0.5
    assert specificity(prediction, truth, region) == pytest.approx(0.5)
    one = np.zeros(10, bool)
    one[5] = True                                         # a region of one true negative
    assert specificity(prediction, truth, one) == 1.0
    assert math.isnan(specificity(prediction, truth, np.zeros(10, bool)))       # nothing to count in


def edges(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask)


def directed(from_mask: np.ndarray, to_mask: np.ndarray, spacing) -> np.ndarray:
    """Distances (mm) from each surface voxel of one mask to the other mask's surface."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(~edges(to_mask), sampling=spacing)[edges(from_mask)]


def test_surface_distances_against_an_independent_computation_on_an_uneven_pair():
    """A small off-centre blob against a large one, anisotropic voxels: the two directions differ and
    the distances spread, so the 95th percentile, the maximum and a one-sided mean all differ."""
    spacing = (3.0, 1.2, 0.8)
    z, y, x = np.mgrid[:12, :30, :30]
    truth = ((z - 6) * 3.0) ** 2 + ((y - 15) * 1.2) ** 2 + ((x - 14) * 0.8) ** 2 < 12.0 ** 2
    prediction = ((z - 5) * 3.0) ** 2 + ((y - 12) * 1.2) ** 2 + ((x - 19) * 0.8) ** 2 < 6.5 ** 2
    there, back = directed(prediction, truth, spacing), directed(truth, prediction, spacing)
    hd95 = max(np.percentile(there, 95), np.percentile(back, 95))
    assd = (there.sum() + back.sum()) / (there.size + back.size)
    assert hd95 < max(there.max(), back.max()) - 1 and abs(np.percentile(back, 96) - np.percentile(back, 95)) > 0.05
    assert abs(assd - there.mean()) > 0.5                 # one direction alone would be far off
    assert surface_distances(prediction, truth, spacing) == pytest.approx((hd95, assd), rel=1e-6)


def test_one_empty_mask_has_undefined_distances_either_way_round():
    full, empty = np.ones((3, 3, 3), bool), np.zeros((3, 3, 3), bool)
    for pair in ((full, empty), (empty, full)):
        assert all(math.isnan(value) for value in surface_distances(*pair, (1, 1, 1)))


def test_lesions_touching_only_at_a_corner_are_one_lesion():
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True                  # a corner, not a face: 26-connected
    labels, count = lesion_components(mask)
    assert count == 1 and labels[1, 1, 1] == labels[2, 2, 2] == 1


def test_a_missed_first_lesion_counts_towards_the_false_negative_volume():
    """Lesion 1 (first in raster order) missed, lesion 2 found: the missed one's volume is the first's."""
    truth, prediction = np.zeros((6, 10, 10), bool), np.zeros((6, 10, 10), bool)
    truth[0:2, 0:2, 0:2] = True                           # lesion 1: 8 voxels, missed
    truth[3:5, 6:9, 6:9] = True                           # lesion 2: 18 voxels, found
    prediction[4, 7, 7] = True
    detection = lesion_detection(prediction, truth, (1.0, 1.0, 2.0))
    assert detection["detected_lesions"] == 1 and detection["false_negative_volume_ml"] == pytest.approx(8 * 2 / 1000)
    assert detection["false_positive_components"] == 0 and detection["false_positive_volume_ml"] == 0


def test_patient_metrics_names_every_figure_and_computes_each_from_both_masks():
    truth, prediction = np.zeros((5, 6, 7), bool), np.zeros((5, 6, 7), bool)
    truth[1:4, 1:4, 1:4] = True                           # 27 voxels
    prediction[2:4, 1:4, 1:5] = True                      # 24 voxels, 18 of them in the truth
    region = np.ones(truth.shape, bool)
    region[0] = False
    spacing = (2.0, 1.0, 0.5)
    figures = patient_metrics(prediction, truth, spacing, region)
    assert set(figures) == {"dice", "iou", "sensitivity", "specificity", "hd95_mm", "assd_mm", "predicted_ml",
                            "reference_ml", "true_lesions", "detected_lesions", "predicted_components",
                            "false_positive_components", "false_positive_volume_ml", "false_negative_volume_ml"}
    assert figures["dice"] == pytest.approx(2 * 18 / (24 + 27)) and figures["iou"] == pytest.approx(18 / 33)
    assert figures["sensitivity"] == pytest.approx(18 / 27)
    assert figures["specificity"] == pytest.approx((4 * 6 * 7 - 27 - 6) / (4 * 6 * 7 - 27))
    assert figures["predicted_ml"] == pytest.approx(24 * 1e-3) and figures["reference_ml"] == pytest.approx(27e-3)
    assert (figures["hd95_mm"], figures["assd_mm"]) == pytest.approx(surface_distances(prediction, truth, spacing))
    assert figures["hd95_mm"] > 0
