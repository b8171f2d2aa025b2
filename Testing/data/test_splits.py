"""Patient-wise splits and the choice of training slices."""

from __future__ import annotations

import numpy as np
import pytest
from OsteoSegLib.data.splits import holdout_split, kfold_splits, lesion_slices
from OsteoSegLib.errors import OsteoSegError


def test_holdout_split_is_patient_wise_7_1_2():
    ids = [f"P{i:02d}" for i in range(20)]
    split = holdout_split(ids, seed=3)
    assert (len(split.train), len(split.validation), len(split.test)) == (14, 2, 4)
    assert sorted(split.train + split.validation + split.test) == ids
    assert holdout_split(ids, seed=3) == split and holdout_split(ids, seed=4) != split


def test_kfold_tests_each_patient_once_and_never_mixes_parts():
    ids = [f"P{i:02d}" for i in range(20)]
    folds = kfold_splits(ids, 5, seed=1)
    tested = [i for fold in folds for i in fold.test]
    assert sorted(tested) == ids
    for fold in folds:
        parts = [set(fold.train), set(fold.validation), set(fold.test)]
        assert all(not (a & b) for n, a in enumerate(parts) for b in parts[n + 1:])
        assert fold.validation and set().union(*parts) == set(ids)


def test_too_few_patients_are_refused():
    with pytest.raises(OsteoSegError, match="5-fold cross-validation needs at least 7 patients"):
        kfold_splits(["a", "b", "c", "d"], 5)
    with pytest.raises(OsteoSegError, match="at least 3 patients"):
        holdout_split(["a", "b"])


def test_lesion_slices():
    label = np.zeros((6, 4, 4), np.uint8)
    label[[1, 4], 2, 2] = 1
    assert lesion_slices(label).tolist() == [1, 4]
