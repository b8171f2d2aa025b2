"""`propose` end to end on a small patient: the lesion in A, B inside the bone, the PET-only hot spot
in neither, per-lesion confidence, the crop, reproducibility, and one clear refusal per bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import lesion_patient
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import padded_box
from OsteoSegLib.labels.propose import binned, propose, unbinned
from OsteoSegLib.labels.rough_input import rough_from_box, rough_from_mask, rough_from_points


@pytest.fixture(scope="module")
def patient():
    return lesion_patient()


@pytest.fixture(scope="module")
def proposal(patient):
    ct, pet, rough, _ = patient
    return propose(ct, pet, rough_from_mask(rough, ct))


def test_a_covers_the_lesion_b_keeps_to_the_bone_and_the_hot_spot_elsewhere_is_left_out(patient, proposal):
    _, _, _, regions = patient
    a, b = proposal.label_a > 0, proposal.label_b > 0
    involved = regions["lesion"] | regions["edema"]
    assert a[regions["lesion"]].mean() >= 0.9
    # measured 0.39 and 0.51: the network merges the thin edema with the normal soft tissue, whose fill
    # is too large to keep, and B takes whole pieces that reach beyond the bone
    assert 2 * (a & involved).sum() / (a.sum() + involved.sum()) >= 0.35
    assert (b & regions["lesion"]).sum() / b.sum() >= 0.45 and b[regions["lesion"]].mean() >= 0.5
    assert b.sum() <= a.sum() and not (a | b)[regions["confounder"]].any()
    assert proposal.label_a.dtype == np.uint8 and proposal.label_a.shape == regions["lesion"].shape


def test_each_lesion_comes_with_its_volume_uptake_and_confidence(proposal):
    assert len(proposal.lesions) == 1
    lesion = proposal.lesions[0]
    assert lesion.voxels == int(proposal.label_a.sum())
    assert lesion.volume_ml == pytest.approx(lesion.voxels * 12 / 1000, abs=1e-3)     # 2 x 2 x 3 mm voxels
    assert 0.3 < lesion.contrast <= 1 and 0 <= lesion.cluster_edge <= 1
    assert lesion.confidence == pytest.approx(np.sqrt(lesion.contrast * lesion.cluster_edge), abs=1e-3)
    summary = proposal.summary()
    assert summary["voxels"] == {"A": lesion.voxels, "B": int(proposal.label_b.sum())}
    assert summary["clusters"] == proposal.clusters >= 2


def test_the_work_is_done_in_a_crop_around_the_rough_input_and_repeats_exactly(patient, proposal):
    ct, pet, rough, _ = patient
    z, y, x = proposal.crop
    assert (z.start, z.stop) == (0, 12)                         # 15 mm = 5 slices around slices 4-7
    assert x.start > 0                                          # the far side of the limb is not worked on
    assert not proposal.label_a[:, :, : x.start].any()
    again = propose(ct, pet, rough_from_mask(rough, ct))
    assert np.array_equal(again.label_a, proposal.label_a) and np.array_equal(again.label_b, proposal.label_b)


def test_a_box_and_points_on_the_lesion_also_find_it(patient):
    ct, pet, _, regions = patient
    # the lesion: x 17-23, y 11-17 voxels, slices 4-7; LPS = origin + index * spacing; RAS flips x and y
    box = rough_from_box(ct, (30 - 2 * 16, 20 - 2 * 10, 5 + 3 * 3), (30 - 2 * 25, 20 - 2 * 19, 5 + 3 * 8))
    points = rough_from_points(ct, [(30 - 2 * 20, 20 - 2 * 14, 5 + 3 * 5.5)])
    for rough in (box, points):
        a = propose(ct, pet, rough).label_a > 0
        assert a[regions["lesion"]].mean() >= 0.8 and not a[regions["confounder"]].any()


def test_bad_input_is_refused_with_one_message(patient):
    ct, pet, rough, _ = patient
    with pytest.raises(OsteoSegError, match="need the PET"):
        propose(ct, None, rough_from_mask(rough, ct))
    with pytest.raises(OsteoSegError, match="empty"):
        propose(ct, pet, rough_from_mask(np.zeros_like(rough), ct))
    outside = np.zeros_like(rough)
    outside[5, 0, 0] = True
    with pytest.raises(OsteoSegError, match="outside the body"):
        propose(ct, pet, rough_from_mask(outside, ct))
    with pytest.raises(OsteoSegError, match="label proposals need the CT"):
        propose(None, pet, rough_from_mask(rough, ct))


def test_a_crop_is_its_region_grown_by_the_margin_and_binning_is_undone_exactly():
    region = np.zeros((10, 20, 30), bool)
    region[4, 5:7, 10] = True
    assert padded_box(region, 6.0, (3.0, 2.0, 2.0)) == (slice(2, 7), slice(2, 10), slice(7, 14))
    channels = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    pooled = binned(channels, 2)
    assert pooled.shape == (2, 3, 3, 4)
    assert pooled[0, 0, 0, 0] == channels[0, 0, :2, :2].mean()
    assert pooled[1, 2, 2, 3] == channels[1, 2, 4, 6]            # an edge block: the edge repeated
    labels = np.arange(3 * 3 * 4).reshape(3, 3, 4)
    back = unbinned(labels, 2, (3, 5, 7))
    assert back.shape == (3, 5, 7) and back[1, 3, 5] == labels[1, 1, 2] and back[2, 4, 6] == labels[2, 2, 3]


def test_a_large_crop_is_clustered_on_binned_voxels(patient):
    from dataclasses import replace

    from OsteoSegLib.labels.propose import ProposalSettings

    ct, pet, rough, regions = patient
    coarse = propose(ct, pet, rough_from_mask(rough, ct), settings=replace(ProposalSettings(), max_voxels=4100))
    assert coarse.binning == 2                                   # 12 x 28 x 24 voxels = 2 x 4032
    assert (coarse.label_a > 0)[regions["lesion"]].mean() >= 0.7     # 4 mm blocks on a 7-voxel-wide lesion
    assert sitk.GetArrayViewFromImage(ct).shape == coarse.label_a.shape
