"""Patient-wise splits (no patient in two parts) and the choice of slices for training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OsteoSegError


@dataclass(frozen=True)
class Split:
    """Case ids for training, validation (early stopping) and testing."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]


def _shuffled(case_ids, seed: int) -> list[str]:
    ids = sorted(set(case_ids))
    if len(ids) != len(list(case_ids)):
        raise OsteoSegError("case ids must be unique to split by patient")
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def holdout_split(case_ids, ratios=(7, 1, 2), seed: int = 0) -> Split:
    """One patient-wise train / validation / test split in the given ratios (the method's 7:1:2)."""
    ids = _shuffled(case_ids, seed)
    if len(ids) < 3:
        raise OsteoSegError(f"a train/validation/test split needs at least 3 patients, the cohort has {len(ids)}")
    total = float(sum(ratios))
    n_test = max(1, round(len(ids) * ratios[2] / total))
    n_validation = max(1, round(len(ids) * ratios[1] / total))
    n_train = len(ids) - n_test - n_validation
    if n_train < 1:
        raise OsteoSegError(f"{len(ids)} patients are too few for ratios {ratios}")
    return Split(tuple(ids[:n_train]), tuple(ids[n_train:n_train + n_validation]), tuple(ids[n_train + n_validation:]))


def kfold_splits(case_ids, folds: int, seed: int = 0, validation_fraction: float = 1 / 8) -> list[Split]:
    """K patient-wise folds: each patient is tested exactly once; of the rest, a fraction (default 1/8,
    as 7:1) validates and the remainder trains."""
    ids = _shuffled(case_ids, seed)
    if folds < 2:
        raise OsteoSegError(f"cross-validation needs at least 2 folds, got {folds}")
    if len(ids) < folds + 2:
        raise OsteoSegError(f"{folds}-fold cross-validation needs at least {folds + 2} patients "
                            f"(each fold keeps one to validate and one to train); the cohort has {len(ids)}")
    parts = np.array_split(np.array(ids, dtype=object), folds)
    splits = []
    for k in range(folds):
        rest = [i for j, part in enumerate(parts) if j != k for i in part]
        n_validation = max(1, round(len(rest) * validation_fraction))
        splits.append(Split(tuple(rest[n_validation:]), tuple(rest[:n_validation]), tuple(parts[k])))
    return splits


def all_patients_split(case_ids, seed: int = 0, validation_fraction: float = 1 / 8) -> Split:
    """Every patient trains a deployment model ("fold all"): a share of them (as in the folds, 1/8,
    at least one) validates for early stopping, and none is held out to test."""
    ids = _shuffled(case_ids, seed)
    if len(ids) < 2:
        raise OsteoSegError(f"training on every patient needs at least 2 (one of them validates); "
                            f"the cohort has {len(ids)}")
    n_validation = max(1, round(len(ids) * validation_fraction))
    return Split(tuple(ids[n_validation:]), tuple(ids[:n_validation]), ())


def lesion_slices(label: np.ndarray) -> np.ndarray:
    """Indices of the axial slices (axis 0) holding any lesion voxel: the training slices."""
    return np.flatnonzero(np.asarray(label).reshape(label.shape[0], -1).any(axis=1))
