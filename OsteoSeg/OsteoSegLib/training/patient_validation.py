"""Patient-level 3D figures of a freshly trained model on its validation patients, next to two
baselines any model must beat: predicting nothing, and thresholding PET at SUV 2.5."""

from __future__ import annotations

import numpy as np

from ..inference.predict import predict_probabilities
from ..metrics import dice

PET_SUV_THRESHOLD = 2.5   # the usual "metabolically active" cut-off


def summarise(values: dict[str, float]) -> dict:
    numbers = list(values.values())
    return {"dice_per_patient": values, "dice_mean": float(np.mean(numbers)) if numbers else float("nan"),
            "dice_sd": float(np.std(numbers)) if numbers else float("nan")}


def validate_patients(network, patients, settings, device, dtype) -> dict:
    """Predict every slice of each validation patient, threshold, Dice in 3D against its label."""
    ours, background, pet_threshold = {}, {}, {}
    for patient in patients:
        label = patient.labels[settings.label]
        probability, = predict_probabilities([(network, range(len(settings.inputs)))], patient.channels,
                                             size=settings.preprocess.size, device=device,
                                             batch_size=max(settings.batch_size, 8), dtype=dtype,
                                             channels_last=settings.channels_last)
        ours[patient.case_id] = dice(probability >= settings.threshold, label)
        background[patient.case_id] = dice(np.zeros_like(label), label)
        pet_threshold[patient.case_id] = dice(patient.pet_suv >= PET_SUV_THRESHOLD, label)
    return {**summarise(ours), "baselines": {"all_background": summarise(background),
                                             f"pet_suv_{PET_SUV_THRESHOLD}": summarise(pet_threshold)}}
