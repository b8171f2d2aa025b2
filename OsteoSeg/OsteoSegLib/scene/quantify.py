"""Per-segment PET quantification on the CT grid: volume, SUVmax, SUVmean, total lesion glycolysis."""

from __future__ import annotations

import numpy as np


def segment_statistics(masks: dict[str, np.ndarray], pet_suv: np.ndarray, spacing_zyx) -> list[dict]:
    """One row per segment. TLG = SUVmean x volume (mL), in g as usual; an empty segment has volume
    0 and NaN SUV figures (there is no uptake to measure)."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    rows = []
    for name, mask in masks.items():
        inside = np.asarray(pet_suv)[np.asarray(mask) > 0]
        volume = inside.size * voxel_ml
        suv_max = float(inside.max()) if inside.size else float("nan")
        suv_mean = float(inside.mean()) if inside.size else float("nan")
        rows.append({"segment": name, "volume_ml": volume, "suv_max": suv_max, "suv_mean": suv_mean,
                     "tlg_g": suv_mean * volume if inside.size else 0.0})
    return rows
