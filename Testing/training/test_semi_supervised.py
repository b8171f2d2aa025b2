"""Semi-supervised training's pieces against hand-computed answers: the ramp, the agreement filter,
the mixed target, the consistency loss, the unlabelled batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from OsteoSegLib.model.losses import soft_dice_loss
from OsteoSegLib.training.semi_supervised import (
    NO_PROMPT,
    SemiSupervisedSettings,
    UnlabelledSlices,
    agreement,
    consistency_loss,
    consistency_weight,
    kept_samples,
    mixed_target,
    soft_iou,
)


def maps_of(*pairs) -> torch.Tensor:
    """(N, 2, 1, K) maps from (ct values, pet values) pairs."""
    return torch.tensor([[[ct], [pet]] for ct, pet in pairs], dtype=torch.float32)


def test_the_weight_ramps_up_as_a_sigmoid_to_lambda_max_at_the_last_epoch():
    assert consistency_weight(0, 20, 0.1) == pytest.approx(0.1 * math.exp(-5))          # 6.7e-4
    assert consistency_weight(10, 20, 0.1) == pytest.approx(0.1 * math.exp(-1.25))      # 0.0287
    assert consistency_weight(15, 20, 0.1) == pytest.approx(0.1 * math.exp(-5 / 16))    # 0.0732
    assert consistency_weight(20, 20, 0.1) == 0.1 and consistency_weight(25, 20, 0.1) == 0.1
    assert consistency_weight(-1, 20, 0.1) == consistency_weight(0, 20, 0.1)
    assert consistency_weight(10, 20, 0.3) == pytest.approx(3 * consistency_weight(10, 20, 0.1))


def test_soft_iou_and_agreement_by_hand():
    first = torch.tensor([[[[1.0, 0.5, 0.0, 0.0]]], [[[0.0, 0.0, 0.0, 0.0]]]])
    second = torch.tensor([[[[0.5, 0.5, 0.0, 1.0]]], [[[0.0, 0.0, 0.0, 0.0]]]])
    # sum(pq) = 0.75; sum p = 1.5; sum q = 2.0; union = 2.75
    assert soft_iou(first, second)[0] == pytest.approx(0.75 / 2.75, rel=1e-5)
    maps = maps_of(([1.0, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 1.0]),     # agree partly
                   ([0.4, 0.3, 0.0, 0.0], [0.2, 0.0, 0.1, 0.0]),     # neither marks a voxel: no prompt
                   ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.9, 0.0]))     # only PET marks one
    scores = agreement(maps)
    assert scores[0] == pytest.approx(0.75 / 2.75, rel=1e-5) and scores[1] == NO_PROMPT
    assert scores[2] == pytest.approx(0.0, abs=1e-5)
    alone = agreement(maps[:, 1:])                  # PET teacher alone: how decided its map is
    # map [0.5, 0.5, 0, 1] against its mask [1, 1, 0, 1]: 2.0 / (2.0 + 3 - 2.0)
    assert alone[0] == pytest.approx(2.0 / 3.0, rel=1e-5) and alone[1] == NO_PROMPT


def test_kept_samples_top_half_threshold_or_all_never_unprompted():
    scores = torch.tensor([0.9, NO_PROMPT, 0.2, 0.5, 0.7])
    assert kept_samples(scores, "top_half", 0.5).tolist() == [True, False, False, False, True]
    assert kept_samples(scores, "threshold", 0.5).tolist() == [True, False, False, True, True]
    assert kept_samples(scores, "all", 0.5).tolist() == [True, False, True, True, True]
    one = torch.tensor([NO_PROMPT, 0.1, NO_PROMPT])
    assert kept_samples(one, "top_half", 0.5).tolist() == [False, True, False]      # at least one
    assert not kept_samples(torch.full((3,), NO_PROMPT), "top_half", 0.5).any()


def test_mixed_target_weighs_the_teachers_by_alpha_per_sample():
    maps = maps_of(([0.9], [0.3]), ([0.2], [0.8])).view(2, 2, 1, 1)
    # alpha 0.25: 0.45 -> 0 and 0.65 -> 1; alpha 0.75: 0.75 -> 1 and 0.35 -> 0
    assert mixed_target(maps, torch.tensor([0.25, 0.25])).flatten().tolist() == [0.0, 1.0]
    assert mixed_target(maps, torch.tensor([0.75, 0.75])).flatten().tolist() == [1.0, 0.0]
    assert mixed_target(maps, torch.tensor([0.75, 0.25])).flatten().tolist() == [1.0, 1.0]
    assert mixed_target(maps[:, :1], torch.tensor([0.0, 0.0])).flatten().tolist() == [1.0, 0.0]   # one teacher


def test_consistency_loss_is_the_soft_dice_on_the_kept_samples_only():
    maps = maps_of(([0.9, 0.9, 0.0, 0.0], [0.9, 0.8, 0.0, 0.0]),     # agree well: kept
                   ([0.9, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.9]),     # disagree: dropped (top half of 2)
                   ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]))     # no prompt
    logits = torch.tensor([[[[2.0, -1.0, 0.5, -3.0]]], [[[5.0, 5.0, 5.0, 5.0]]], [[[5.0, 5.0, 5.0, 5.0]]]])
    loss, kept = consistency_loss(logits, maps, SemiSupervisedSettings(), torch.Generator().manual_seed(0))
    expected = soft_dice_loss(logits[:1], torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]]))   # any alpha: both >= 0.8
    assert kept == 1 and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    none, kept = consistency_loss(logits, maps[2:3].repeat(3, 1, 1, 1), SemiSupervisedSettings(),
                                  torch.Generator().manual_seed(0))
    assert kept == 0 and none.item() == 0.0 and none.requires_grad is logits.requires_grad


def test_settings_problems_are_named():
    assert SemiSupervisedSettings().problems() == []
    problems = SemiSupervisedSettings(lambda_max=-1, teachers=("mri",), selection="best", min_agreement=2).problems()
    assert len(problems) == 4 and "ct, pet or both" in problems[1] and "'best'" in problems[2]
    assert SemiSupervisedSettings(teachers=("ct", "ct")).problems()


def test_unlabelled_batches_are_fixed_by_seed_epoch_and_rank_and_wrap_around():
    pool = UnlabelledSlices(np.zeros((5, 2, 4, 4), np.float32), np.zeros((5, 2, 4, 4), np.float16), list("abcde"))
    first = pool.batch_indices(0, 3, 0, 4, 0)
    assert len(first) == 4 and len(set(first)) == 4 and (first == pool.batch_indices(0, 3, 0, 4, 0)).all()
    following = pool.batch_indices(0, 3, 1, 4, 0)          # continues the permutation, wrapping after five
    order = np.random.default_rng([0, 3, 0, 2]).permutation(5)
    assert sorted(first) == sorted(order[:4]) and sorted(following) == sorted(np.resize(np.roll(order, -4), 4))
    larger = UnlabelledSlices(pool.images.repeat(4, 0), pool.maps.repeat(4, 0), list("abcde") * 4)
    reference = larger.batch_indices(0, 3, 0, 4, 0)
    assert set(larger.batch_indices(0, 4, 0, 4, 0)) != set(reference)       # another epoch
    assert set(larger.batch_indices(0, 3, 0, 4, 1)) != set(reference)       # another rank
    assert set(larger.batch_indices(1, 3, 0, 4, 0)) != set(reference)       # another seed
