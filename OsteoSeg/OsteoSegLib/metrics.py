"""Patient-level agreement metrics on binary 3D masks.

Empty-mask conventions: two empty masks agree perfectly (Dice 1, IoU 1, kappa 1, surface distances 0);
an empty mask against a non-empty one scores Dice 0 and has undefined (NaN) surface distances; an
empty truth leaves sensitivity undefined (NaN). Surface distances come from MONAI; the rest is numpy.
"""

from __future__ import annotations

import warnings

import numpy as np


def _counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """True positives, false positives, false negatives, true negatives of `a` against `b`."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} and {b.shape}")
    tp = int(np.count_nonzero(a & b))
    fp = int(np.count_nonzero(a)) - tp
    fn = int(np.count_nonzero(b)) - tp
    return tp, fp, fn, a.size - tp - fp - fn


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity coefficient 2|A and B| / (|A| + |B|); 1.0 when both are empty."""
    tp, fp, fn, _ = _counts(a, b)
    return 1.0 if tp + fp + fn == 0 else 2.0 * tp / (2.0 * tp + fp + fn)


def cohens_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Voxel-wise Cohen's kappa between two raters; 1.0 when they agree on every voxel."""
    tp, fp, fn, tn = _counts(a, b)
    n = float(tp + fp + fn + tn)
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def volume_ml(mask: np.ndarray, spacing_mm) -> float:
    """Volume of a mask in millilitres for voxels of the given spacing (mm)."""
    return float(np.count_nonzero(mask)) * float(np.prod(spacing_mm)) / 1000.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union (Jaccard) |A and B| / |A or B|; 1.0 when both are empty."""
    tp, fp, fn, _ = _counts(a, b)
    return 1.0 if tp + fp + fn == 0 else tp / float(tp + fp + fn)


def sensitivity(prediction: np.ndarray, truth: np.ndarray) -> float:
    """TP / (TP + FN); NaN when the truth is empty (there is nothing to find)."""
    tp, _, fn, _ = _counts(prediction, truth)
    return float("nan") if tp + fn == 0 else tp / float(tp + fn)


def specificity(prediction: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """TN / (TN + FP) counted inside `region` only (e.g. the body): over the whole field of view,
    air makes every specificity ~1.0 and says nothing."""
    region = np.asarray(region, dtype=bool)
    _, fp, _, tn = _counts(np.asarray(prediction, bool)[region], np.asarray(truth, bool)[region])
    return float("nan") if tn + fp == 0 else tn / float(tn + fp)


def surface_distances(prediction: np.ndarray, truth: np.ndarray, spacing_zyx) -> tuple[float, float]:
    """95th-percentile Hausdorff distance and average symmetric surface distance, in mm (MONAI's
    implementations, with the voxel spacing). Both empty: 0 and 0. Exactly one empty: NaN and NaN
    (undefined: no surface to measure to); callers count these cases rather than averaging them."""
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    if not prediction.any() and not truth.any():
        return 0.0, 0.0
    if not prediction.any() or not truth.any():
        return float("nan"), float("nan")
    y_pred, y = prediction[None, None], truth[None, None]
    spacing = [float(s) for s in spacing_zyx]
    with warnings.catch_warnings():   # MONAI 1.6 warns about an argument its own code passes
        warnings.simplefilter("ignore", FutureWarning)
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
        assd = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True,
                                                spacing=spacing)
    return float(hd95.item()), float(assd.item())


def lesion_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected lesions (26-connectivity in 3D) labelled 1..n."""
    from scipy import ndimage

    return ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3, 3), bool))


def lesion_detection(prediction: np.ndarray, truth: np.ndarray, spacing_zyx) -> dict:
    """Lesion-wise figures by connected components, autoPET-style: a true lesion is detected when any
    predicted voxel touches it; a predicted component touching no true lesion is a false positive.
    False-positive volume = volume of those components; false-negative volume = volume of true
    lesions that no prediction touches (both in mL)."""
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    true_labels, true_count = lesion_components(truth)
    predicted_labels, predicted_count = lesion_components(prediction)
    detected = set(np.unique(true_labels[prediction])) - {0}
    hits = set(np.unique(predicted_labels[truth])) - {0}
    missed_voxels = np.isin(true_labels, [k for k in range(1, true_count + 1) if k not in detected])
    false_voxels = np.isin(predicted_labels, [k for k in range(1, predicted_count + 1) if k not in hits])
    return {"true_lesions": int(true_count), "detected_lesions": len(detected),
            "predicted_components": int(predicted_count), "false_positive_components": predicted_count - len(hits),
            "false_positive_volume_ml": volume_ml(false_voxels, spacing_zyx),
            "false_negative_volume_ml": volume_ml(missed_voxels, spacing_zyx)}


def patient_metrics(prediction: np.ndarray, truth: np.ndarray, spacing_zyx, region: np.ndarray) -> dict:
    """Every per-patient figure of the evaluation, on one patient's 3D masks."""
    hd95, assd = surface_distances(prediction, truth, spacing_zyx)
    return {"dice": dice(prediction, truth), "iou": iou(prediction, truth),
            "sensitivity": sensitivity(prediction, truth), "specificity": specificity(prediction, truth, region),
            "hd95_mm": hd95, "assd_mm": assd,
            "predicted_ml": volume_ml(prediction, spacing_zyx), "reference_ml": volume_ml(truth, spacing_zyx),
            **lesion_detection(prediction, truth, spacing_zyx)}
