"""A cross-validation's fold models as a model set for use: for each label source, the k fold models
of one input set, copied as k packages that `segment`, `evaluate` and the Slicer module group into one
ensemble (their probabilities averaged before the threshold, as nnU-Net averages its folds).

Each package is copied under a hidden partial name, verified (its weights against the sha256 in its
card) and only then renamed; the set's folder records what OsteoSeg wrote, so --force replaces only that.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from ..errors import OsteoSegError
from ..model.package import CARD_FILE, copy_model_package, load_model_package
from ..outputs import PARTIAL_MARK, OutputFolder
from ..training.train import TrainingSettings
from .cross_validation import ModelKey, settings_differences


def fold_model(models_folder: Path, key: ModelKey, settings: TrainingSettings, folds: int) -> Path:
    """The finished fold model's folder, checked to be trained with these settings."""
    folder = models_folder / key.folder_name
    if not (folder / CARD_FILE).is_file():
        raise OsteoSegError("this fold model is not finished; run the cross-validation to the end first", path=folder)
    card = load_model_package(folder).card
    run = replace(settings, label=key.label, inputs=key.inputs, fold=key.fold, folds=folds)
    differences = settings_differences(card["training"]["settings"], run.as_dict())
    if differences:
        raise OsteoSegError(f"was trained with other settings ({', '.join(differences)}) than these options ask for",
                            path=folder)
    return folder


def export_fold_ensemble(models_folder: Path, labels, inputs: tuple[str, ...], folds: int, settings: TrainingSettings,
                         destination: Path, *, force: bool = False, inputs_of_run=()) -> list[Path]:
    """Copy every label source's k fold models of `inputs` into `destination` as
    `{label}_{inputs}_fold{k}` packages; returns their folders."""
    keys = [ModelKey(fold, label, tuple(inputs)) for label in labels for fold in range(folds)]
    sources = [fold_model(Path(models_folder), key, settings, folds) for key in keys]   # all checked first
    written = []
    with OutputFolder(destination, inputs=inputs_of_run, command="crossval --export-set") as folder:
        if force:
            folder.clear()
        folder.refuse_foreign("model set folder")
        for key, source in zip(keys, sources, strict=True):
            name = f"{key.label}_{key.inputs_name}_fold{key.fold}"
            target = folder.path / name
            if target.exists():
                raise OsteoSegError("a model is already there; pass --force to replace the exported set", path=target)
            folder.record(name)   # noted before it is moved into place: a kill right after leaves it OsteoSeg's
            written.append(copy_verified(source, target))
    return written


def copy_verified(source: Path, target: Path) -> Path:
    """Copy a package under a partial name, load it (checksum verified), then rename it into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{PARTIAL_MARK}-", dir=target.parent))
    try:
        copied = copy_model_package(source, staging / "package")
        load_model_package(copied)
        copied.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
