"""A tiny Model A / Model B set trained in about a minute on phantom cases: for the Slicer self-test
and for trying the Segment button before real models exist. Not for patients."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..model.package import copy_model_package
from ..model.preprocess import PreprocessSettings
from ..phantom import generate_cohort, settings_for
from .train import TrainingSettings, train_model

TINY_TRAINING = TrainingSettings(base_width=4, epochs=3, batch_size=4, learning_rate=1e-3,
                                 preprocess=PreprocessSettings(size=48))


def tiny_model_set(folder: Path, cases: int = 4, seed: int = 7) -> Path:
    """Train narrow Model A and Model B on a few coarse phantom cases into folder/model-set."""
    folder = Path(folder)
    coarse = settings_for("small", shape=(48, 48, 20), spacing=(4.0, 4.0, 6.0))
    cohort = generate_cohort(folder / "cohort", cases, seed, coarse, workers=1, force=True)
    model_set = folder / "model-set"
    for label in "AB":
        run = train_model(cohort, replace(TINY_TRAINING, label=label), folder / f"run-{label}", force=True)
        copy_model_package(run.folder, model_set / f"model-{label}")
    return model_set
