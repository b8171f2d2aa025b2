"""The phantom's two annotators, each drawing the lesion with its own philosophy and habits.

- Label A (high sensitivity, screening): the PET hypermetabolic region plus the surrounding edema,
  drawn generously.
- Label B (high specificity, surgical planning): only the core where CT bone destruction coincides
  with strong uptake, drawn conservatively; the annotator sometimes stops a slice early.
Both draw slice by slice on the CT grid from the aligned PET and the CT, with boundary jitter and
slice-to-slice inconsistency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..imaging import padded_box
from .anatomy import Anatomy

# Threshold as a fraction of the lesion's SUVmax that each annotator uses on the PET.
SENSITIVE_PET_FRACTION = 0.35
SPECIFIC_PET_FRACTION = 0.4
SENSITIVE_PET_FLOOR_SUV = 2.5   # below this, uptake is not called hypermetabolic (normal marrow is ~2)
NEIGHBOURHOOD_MM = 15.0   # how far from the infection an annotator looks for hot voxels


@dataclass(frozen=True)
class Habits:
    """How an annotator's hand deviates from the region they mean."""

    margin_mm: float          # drawn outside (+) or inside (-) the intended boundary
    jitter_mm: float          # in-plane boundary wobble
    slice_jitter_mm: float    # how much the margin changes from one slice to the next
    drop_end_slice: float     # probability of skipping each end slice of the lesion


SENSITIVE_HABITS = Habits(margin_mm=0.5, jitter_mm=1.2, slice_jitter_mm=1.0, drop_end_slice=0.0)
SPECIFIC_HABITS = Habits(margin_mm=0.0, jitter_mm=0.8, slice_jitter_mm=0.6, drop_end_slice=0.5)


def sensitive_region(anatomy: Anatomy, seen_pet: np.ndarray, spacing_zyx) -> np.ndarray:
    """What annotator A means to draw: hot on PET near the infection, plus the edema."""
    near = ndimage.distance_transform_edt(~anatomy.truth, sampling=spacing_zyx) <= NEIGHBOURHOOD_MM
    suv_max = float(seen_pet[anatomy.truth].max())
    hot = seen_pet >= max(SENSITIVE_PET_FRACTION * suv_max, SENSITIVE_PET_FLOOR_SUV)
    return (hot & near & anatomy.body) | (anatomy.edema >= 0.5) | anatomy.truth


def specific_region(anatomy: Anatomy, seen_pet: np.ndarray) -> np.ndarray:
    """What annotator B means to draw: bone destruction on CT where uptake is strong."""
    suv_max = float(seen_pet[anatomy.truth].max())
    return (anatomy.destruction >= 0.5) & (seen_pet >= SPECIFIC_PET_FRACTION * suv_max)


def draw(region: np.ndarray, habits: Habits, spacing_zyx, rng: np.random.Generator) -> np.ndarray:
    """Draw `region` slice by slice with an annotator's habits; returns a uint8 mask."""
    drawn = np.zeros(region.shape, np.uint8)
    slices = np.flatnonzero(region.any(axis=(1, 2)))
    if slices.size == 0:
        return drawn
    keep = list(slices)
    for end in (slices[0], slices[-1]):
        if len(keep) > 1 and rng.uniform() < habits.drop_end_slice:
            keep.remove(end)
    in_plane = spacing_zyx[1:]
    for k in keep:
        plane = region[k]
        signed = (ndimage.distance_transform_edt(~plane, sampling=in_plane)
                  - ndimage.distance_transform_edt(plane, sampling=in_plane))
        wobble = ndimage.gaussian_filter(rng.standard_normal(plane.shape), 3.0)
        wobble /= max(float(wobble.std()), 1e-6)
        margin = habits.margin_mm + habits.slice_jitter_mm * rng.standard_normal()
        outline = signed < margin + habits.jitter_mm * wobble
        drawn[k] = ndimage.binary_fill_holes(outline)
    return drawn


def annotate(anatomy: Anatomy, seen_pet: np.ndarray, spacing_zyx, rng: np.random.Generator):
    """Labels A and B (uint8 masks on the CT grid); both empty when the case has no infection."""
    label_a = np.zeros(anatomy.truth.shape, np.uint8)
    label_b = np.zeros(anatomy.truth.shape, np.uint8)
    if not anatomy.truth.any():
        return label_a, label_b
    # Annotators look only near the infection: work in that box (a whole clinical grid is slow).
    box = padded_box(anatomy.truth | (anatomy.edema >= 0.5), NEIGHBOURHOOD_MM + 5.0, spacing_zyx)
    local = Anatomy(ct_hu=anatomy.ct_hu[box], activity_suv=anatomy.activity_suv[box], truth=anatomy.truth[box],
                    destruction=anatomy.destruction[box], edema=anatomy.edema[box], body=anatomy.body[box])
    seen = seen_pet[box]
    label_a[box] = draw(sensitive_region(local, seen, spacing_zyx), SENSITIVE_HABITS, spacing_zyx, rng)
    label_b[box] = draw(specific_region(local, seen), SPECIFIC_HABITS, spacing_zyx, rng)
    return label_a, label_b

