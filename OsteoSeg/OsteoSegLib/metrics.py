"""Patient-level agreement metrics on binary 3D masks (pure numpy).

Empty-mask convention: two empty masks agree perfectly (Dice 1, kappa 1); an empty mask against a
non-empty one scores 0.
"""

from __future__ import annotations

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
