"""Weights for the speed benchmark: the paper's network width, briefly trained on small phantom cases
so that its masks are not empty (two empty masks would agree trivially). Trained at 96 x 96 to stay
within minutes on a CPU, then declared at the paper's 224 x 224 for the benchmark; not a clinical
model, and its card says so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..model.package import load_model_package, save_model_package
from ..model.preprocess import PreprocessSettings
from ..phantom import generate_cohort, settings_for
from ..training.train import TrainingSettings, train_model

BENCH_NOTE = "benchmark weights: a few epochs at 96 x 96 on phantom cases, run at 224 x 224; not for patients"


def train_bench_models(folder: Path, width: int = 64, epochs: int = 3) -> Path:
    folder = Path(folder)
    cohort = generate_cohort(folder / "cohort", 6, 13, settings_for("small"), force=True)
    settings = TrainingSettings(base_width=width, epochs=epochs, learning_rate=1e-3,
                                preprocess=PreprocessSettings(size=96))
    for label in "AB":
        run = train_model(cohort, replace(settings, label=label), folder / f"run-{label}", force=True)
        package = load_model_package(run.folder)
        card = {key: value for key, value in package.card.items() if key not in ("weights_sha256", "weights_file")}
        card["preprocessing"] = {**card["preprocessing"], "size": 224}
        card["note"] = BENCH_NOTE
        save_model_package(folder / "model-set" / f"model-{label}", package.network.state_dict(), card)
    return folder / "model-set"
