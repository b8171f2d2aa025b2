"""The CT visibility check: a change the CT shows is supported, a region beside the cortex with no
change is not (where a shell comparison is fooled), and labels without a column to compare with."""

from __future__ import annotations

import numpy as np
import pytest
from OsteoSegLib.labels.visibility import NOT_SUPPORTED, SUPPORTED, UNDETERMINED, column_residuals, ct_visibility

SPACING = (3.0, 2.0, 2.0)   # z, y, x mm


def limb(shape=(30, 40, 40), noise_hu=15.0, seed=0) -> np.ndarray:
    """Muscle with a cortical ring (1500 HU) around marrow (300 HU) whose centre drifts 0.1 voxel per
    slice in x, plus Gaussian noise: anatomy that changes slowly along z, as a limb's does."""
    z, y, x = np.indices(shape, dtype=np.float32)
    radius = np.hypot(y - 20, x - 15 - 0.1 * z)
    ct = np.where(radius < 9, 1500.0, 40.0)
    ct = np.where(radius < 6, 300.0, ct).astype(np.float32)
    return ct + np.random.default_rng(seed).normal(0, noise_hu, shape).astype(np.float32)


def box(shape, z, y, x) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[z, y, x] = True
    return mask


def test_a_lytic_change_in_the_cortex_is_supported_with_its_size():
    ct = limb()
    region = box(ct.shape, slice(12, 18), slice(11, 14), slice(17, 21))   # in the ring, above the marrow
    ct[region] -= 300.0
    verdict = ct_visibility(ct, region, SPACING)
    assert verdict.verdict == SUPPORTED and verdict.basis == "column"
    assert verdict.median_change_hu == pytest.approx(-300, abs=40)
    assert verdict.noise_hu == pytest.approx(15, abs=5)


def test_unchanged_marrow_is_not_supported_though_it_differs_from_the_cortex_around_it():
    ct = limb()
    z, y, x = np.indices(ct.shape)
    region = (np.hypot(y - 20, x - 15 - 0.1 * z) < 5) & (z >= 12) & (z < 18)   # marrow (PET uptake), no change
    verdict = ct_visibility(ct, region, SPACING)
    assert verdict.verdict == NOT_SUPPORTED
    assert verdict.score < 2.0
    assert abs(verdict.shell_effect) > 0.3   # the shell comparison alone would have called it a finding


def test_a_subtle_change_below_the_threshold_is_not_supported_and_a_larger_one_is():
    ct = limb()
    region = box(ct.shape, slice(12, 18), slice(25, 32), slice(25, 32))   # muscle
    small, large = ct.copy(), ct.copy()
    small[region] += 15.0     # one noise standard deviation: edema in muscle
    large[region] += 150.0    # ten: an abscess wall, a sequestrum
    assert ct_visibility(small, region, SPACING).verdict == NOT_SUPPORTED
    assert ct_visibility(large, region, SPACING).verdict == SUPPORTED


def test_a_label_at_the_end_of_the_image_is_compared_with_one_side():
    ct = limb()
    region = box(ct.shape, slice(26, 30), slice(25, 32), slice(25, 32))
    residuals, noise = column_residuals(ct, region, SPACING)
    assert residuals.size == region.sum()
    assert ct_visibility(ct, region, SPACING).verdict == NOT_SUPPORTED
    ct[region] += 200.0
    assert ct_visibility(ct, region, SPACING).verdict == SUPPORTED


def test_a_label_through_the_whole_length_falls_back_to_the_shell():
    ct = limb()
    rod = box(ct.shape, slice(None), slice(18, 22), slice(13, 17))
    ct[rod] = 3000.0   # a nail down the marrow
    verdict = ct_visibility(ct, rod, SPACING)
    assert verdict.basis == "shell" and verdict.score is None
    assert verdict.verdict == SUPPORTED


def test_nothing_to_compare_with_is_undetermined():
    ct = np.zeros((4, 4, 4), np.float32)
    verdict = ct_visibility(ct, np.ones_like(ct, bool), SPACING)
    assert verdict.verdict == UNDETERMINED


def test_anatomy_that_changes_linearly_along_the_limb_is_expected_not_a_finding():
    ct = limb(noise_hu=5.0)
    ct += 40.0 * np.arange(ct.shape[0], dtype=np.float32)[:, None, None]   # +40 HU per slice
    # near the first slice: 2 slices below it, 4 above, so the label is not midway between them
    region = box(ct.shape, slice(3, 7), slice(25, 32), slice(25, 32))
    verdict = ct_visibility(ct, region, SPACING)
    assert verdict.verdict == NOT_SUPPORTED and abs(verdict.median_change_hu) < 5


def test_the_reference_leaves_out_the_slice_next_to_the_label():
    """A lesion's edge blurs into the next slice: that slice must not count as its surroundings."""
    ct = limb(noise_hu=5.0)
    region = box(ct.shape, slice(12, 18), slice(25, 32), slice(25, 32))
    ct[region] -= 300.0
    ct[11, 25:32, 25:32] -= 200.0   # partial volume, one slice (3 mm) beyond each end
    ct[18, 25:32, 25:32] -= 200.0
    assert ct_visibility(ct, region, SPACING).median_change_hu == pytest.approx(-300, abs=15)


def test_the_verdict_names_where_an_unsupported_label_came_from():
    ct = limb()
    region = box(ct.shape, slice(12, 18), slice(25, 32), slice(25, 32))
    assert ct_visibility(ct, region, SPACING).verdict == "no CT evidence: treat as a PET-only finding"
    verdict = ct_visibility(ct, region, SPACING, source_name="prior-scan").verdict
    assert verdict == "no CT evidence: treat as a prior-scan-only finding"
