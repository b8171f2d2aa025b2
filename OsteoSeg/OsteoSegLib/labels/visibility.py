"""Does the CT show what a transferred label outlines? A label carried over from PET (or from another
scan) may mark something the CT has no trace of, such as edema only PET shows. The check compares the
CT inside the label with the same columns of the CT just above and below it: a limb's anatomy changes
slowly along its axis, so a lesion stands out against its own column where it would not against a
shell around it (a region beside the cortex differs from its shell with no lesion at all)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

GAP_MM = 3.0        # the reference starts this far beyond the label's ends (its blurred edge stays out)
SLAB_MM = 12.0      # and reaches this far
SHELL_MM = 5.0      # the shell of the secondary, shell-based effect size
# A median |CT - its column's expectation| of this many noise standard deviations or more is CT
# evidence; noise alone gives about 0.7, PET-only phantom structures 1.2-2.7, CT-visible ones 9.8 and
# more. Chosen on phantom structures of known visibility (benchmarks/transfer.py, first 10 cases of
# seed 300); see docs/label-transfer.md.
VISIBLE_SCORE = 4.0
# Where the label fills its image's whole length (a nail), there is no column to compare with, and
# the shell effect size decides, at this |Cliff's delta|.
SHELL_VISIBLE = 0.6
MIN_NOISE_HU = 5.0   # a floor for the noise estimate (a noise-free CT would make every change "visible")

SUPPORTED = "supported by the CT"
UNDETERMINED = "undetermined: the CT gives nothing to compare the label with"


def not_supported(source_name: str = "PET") -> str:
    """The verdict for a label the CT gives no evidence of, naming where the label came from."""
    return f"no CT evidence: treat as a {source_name}-only finding"


NOT_SUPPORTED = not_supported("PET")


@dataclass
class Visibility:
    """The verdict on one label and the figures behind it."""

    verdict: str
    basis: str                     # "column" (CT above and below) or "shell" (the label fills the image's length)
    score: float | None            # median |CT - expected| / noise inside the label (None: no column)
    median_change_hu: float | None  # median signed CT - expected (negative: lower density, e.g. lysis)
    noise_hu: float | None
    shell_effect: float | None     # Cliff's delta, CT inside vs a shell around it (secondary)
    voxels: int

    def as_dict(self) -> dict:
        return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def ct_visibility(ct_hu: np.ndarray, label: np.ndarray, spacing_zyx, *, threshold: float = VISIBLE_SCORE,
                  source_name: str = "PET") -> Visibility:
    """The verdict for `label` ((z, y, x) bool) on `ct_hu` (same grid), voxel spacing in mm (z, y, x);
    `source_name` is where the label was drawn (named in the verdict when the CT does not show it)."""
    label = np.asarray(label, bool)
    ct = np.asarray(ct_hu, np.float32)
    voxels = int(label.sum())
    shell = shell_effect(ct, label, spacing_zyx)
    residuals, noise = column_residuals(ct, label, spacing_zyx)
    if residuals is None:
        absent = not_supported(source_name)
        verdict = UNDETERMINED if shell is None else SUPPORTED if abs(shell) >= SHELL_VISIBLE else absent
        return Visibility(verdict, "shell", None, None, None, shell, voxels)
    score = float(np.median(np.abs(residuals)) / noise)
    verdict = SUPPORTED if score >= threshold else not_supported(source_name)
    return Visibility(verdict, "column", score, float(np.median(residuals)), noise, shell, voxels)


def column_residuals(ct: np.ndarray, label: np.ndarray, spacing_zyx) -> tuple[np.ndarray | None, float]:
    """CT minus its expectation at each label voxel, and the CT noise (HU). The expectation at (z, y, x)
    interpolates linearly in z between the mean of slab (y, x) below and above the label's z range
    (one side when the other is outside the image); noise is the slice-to-slice spread within them."""
    slices = np.flatnonzero(label.any(axis=(1, 2)))
    gap = int(np.ceil(GAP_MM / spacing_zyx[0]))
    depth = max(int(np.ceil(SLAB_MM / spacing_zyx[0])), 2)
    below = (max(slices[0] - gap - depth, 0), max(slices[0] - gap, 0))
    above = (min(slices[-1] + 1 + gap, ct.shape[0]), min(slices[-1] + 1 + gap + depth, ct.shape[0]))
    slabs = [(bounds, ct[bounds[0]:bounds[1]]) for bounds in (below, above) if bounds[1] - bounds[0] >= 2]
    if not slabs:
        return None, float("nan")
    footprint = label.any(axis=0)
    # Noise from neighbouring slices' differences, robustly (median absolute difference): a column
    # crossing an edge that moves along z would otherwise count as noise.
    steps = np.concatenate([np.abs(np.diff(slab[:, footprint], axis=0)).ravel() for _, slab in slabs])
    noise = max(float(1.4826 * np.median(steps) / np.sqrt(2)), MIN_NOISE_HU)
    levels = [(np.mean(bounds) - 0.5, slab.mean(axis=0)) for bounds, slab in slabs]
    z, y, x = np.nonzero(label)
    if len(levels) == 1:
        expected = levels[0][1][y, x]
    else:
        (z0, low), (z1, high) = levels
        weight = (z - z0) / (z1 - z0)
        expected = (1 - weight) * low[y, x] + weight * high[y, x]
    return ct[z, y, x] - expected, noise


def shell_effect(ct: np.ndarray, label: np.ndarray, spacing_zyx, shell_mm: float = SHELL_MM) -> float | None:
    """Cliff's delta between the CT inside the label and in a shell `shell_mm` around it: the usual
    effect size, reported beside the verdict (it cannot tell a lesion from anatomy next to it)."""
    from scipy import ndimage

    outside = ndimage.distance_transform_edt(~label, sampling=spacing_zyx)
    shell = (outside > 0) & (outside <= shell_mm)
    inside, around = ct[label], ct[shell]
    if inside.size == 0 or around.size == 0:
        return None
    u = stats.mannwhitneyu(inside, around).statistic
    return float(2 * u / (inside.size * around.size) - 1)
