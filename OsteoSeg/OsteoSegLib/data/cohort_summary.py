"""Per-case measurements of a cohort: grids, label volumes, uptake inside each label (PET resampled
onto the CT grid) and, where a case also has a label drawn on the PET grid, how well the two agree."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..imaging import resample_onto
from ..metrics import dice, volume_ml
from .cohort import Cohort
from .io import read_image


def summarise_case(cohort: Cohort, case) -> dict:
    """Geometry, and per label: volume (mL), SUVmax and SUVmean on the CT grid, and the Dice between
    the CT-grid label and its PET-grid twin resampled onto the CT grid (nearest neighbour)."""
    ct = read_image(cohort.path(case.ct), case=case.case_id)
    pet = read_image(cohort.path(case.pet), case=case.case_id)
    pet_on_ct = sitk.GetArrayFromImage(resample_onto(pet, ct))
    row = {"case": case.case_id, "ct_size": list(ct.GetSize()), "ct_spacing": [round(s, 3) for s in ct.GetSpacing()],
           "pet_size": list(pet.GetSize()), "pet_spacing": [round(s, 3) for s in pet.GetSpacing()], "labels": {}}
    twins = case.metadata.get("pet_grid_labels", {})
    for source, relative in case.labels.items():
        label_image = read_image(cohort.path(relative), case=case.case_id)
        label = sitk.GetArrayFromImage(label_image) > 0
        entry = {"volume_ml": round(volume_ml(label, ct.GetSpacing()), 3),
                 "suv_max": round(float(pet_on_ct[label].max()), 3) if label.any() else None,
                 "suv_mean": round(float(pet_on_ct[label].mean()), 3) if label.any() else None}
        if source in twins:
            twin = read_image(cohort.path(twins[source]), case=case.case_id)
            on_ct = sitk.GetArrayFromImage(resample_onto(twin, ct, interpolator="nearest")) > 0
            entry["dice_with_pet_grid_label"] = round(dice(label, on_ct), 4)
            twin_values = sitk.GetArrayFromImage(twin) > 0
            entry["suv_max_on_pet_grid"] = round(float(sitk.GetArrayFromImage(pet)[twin_values].max()), 3) \
                if twin_values.any() and twin.GetSize() == pet.GetSize() else None
        row["labels"][source] = entry
    return row


def summarise_cohort(cohort: Cohort) -> list[dict]:
    return [summarise_case(cohort, case) for case in cohort.cases]


def format_summary(rows: list[dict]) -> str:
    """A plain-text table of the summary."""
    lines = [f"{'case':<12}{'label':<10}{'mL':>9}{'SUVmax':>9}{'SUVmean':>9}{'Dice CT/PET grid':>18}"]
    dices = []
    for row in rows:
        for source, entry in row["labels"].items():
            d = entry.get("dice_with_pet_grid_label")
            dices += [d] if d is not None else []
            lines.append(f"{row['case']:<12}{source:<10}{entry['volume_ml']:>9.1f}"
                         f"{entry['suv_max'] if entry['suv_max'] is not None else float('nan'):>9.2f}"
                         f"{entry['suv_mean'] if entry['suv_mean'] is not None else float('nan'):>9.2f}"
                         f"{'' if d is None else f'{d:.3f}':>18}")
    if dices:
        lines.append(f"Dice between CT-grid and PET-grid contours: mean {np.mean(dices):.3f}, "
                     f"min {np.min(dices):.3f}, max {np.max(dices):.3f} over {len(dices)} labels")
    return "\n".join(lines)
