"""Patient-level cross-validation: train every (fold, label source, inputs) model, predict every test
patient exactly once per model (all of a fold's models share one input pass), and score every
prediction in 3D against every label source (and the phantom's hidden truth when there is one).

Finished models are re-used, so an interrupted cross-validation continues where it stopped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..data.cohort import Cohort
from ..data.cohort_validate import check_cohort
from ..data.io import write_image
from ..data.splits import Split, kfold_splits
from ..errors import OsteoSegError
from ..imaging import body_mask
from ..inference.predict import predict_probabilities
from ..metrics import cohens_kappa, dice, patient_metrics
from ..model.devices import autocast_dtype, choose_device
from ..model.ensemble import ModelGroup, group_models
from ..model.package import CARD_FILE, ModelPackage, load_model_package
from ..model.preprocess import CHANNEL_ORDER
from ..model.slice_data import TRUTH, load_patient
from ..progress import Progress
from ..training.semi_supervised import SemiSupervisedSettings
from ..training.teachers import UnlabelledCases
from ..training.train import TrainingSettings, train_model

SUPERVISED, SEMI_SUPERVISED = "supervised", "semi-supervised"


@dataclass(frozen=True)
class ModelKey:
    """One model of the cross-validation."""

    fold: int
    label: str
    inputs: tuple[str, ...]
    method: str = SUPERVISED

    @property
    def inputs_name(self) -> str:
        return "+".join(self.inputs)

    @property
    def folder_name(self) -> str:
        semi = "_semi" if self.method == SEMI_SUPERVISED else ""
        return f"fold{self.fold}/{self.label}_{self.inputs_name}{semi}"


def check_not_empty(cohort: Cohort) -> None:
    if not cohort.cases:
        raise OsteoSegError("the cohort has no cases", path=cohort.path("cohort.json"))


def check_plan(cohort: Cohort, labels, inputs_list, folds: int, split_seed: int = 0) -> list[Split]:
    """Refuse what cannot be cross-validated before anything is trained; the folds when it can."""
    check_not_empty(cohort)
    known = set(cohort.label_sources())
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise OsteoSegError(f"label source(s) {', '.join(unknown)} appear in no case "
                            f"(sources in this cohort: {', '.join(sorted(known)) or 'none'})",
                            path=cohort.path("cohort.json"))
    if not labels or not inputs_list:
        raise OsteoSegError("name at least one label source and one set of inputs")
    check_cohort(cohort, [case.case_id for case in cohort.cases])   # every problem, before any training
    # raises when there are too few patients
    return kfold_splits([case.case_id for case in cohort.cases], folds, seed=split_seed)


def training_split(cohort: Cohort, split: Split, label: str, progress: Progress) -> Split:
    """The fold's split without the training/validation patients that lack this label source."""
    def having(ids):
        return tuple(i for i in ids if label in cohort.case(i).labels)

    train, validation = having(split.train), having(split.validation)
    dropped = len(split.train) + len(split.validation) - len(train) - len(validation)
    if dropped:
        progress.message(f"warning: {dropped} patient(s) without label {label!r} left out of training")
    if not validation:
        raise OsteoSegError(f"no validation patient of this fold has label {label!r}", path=cohort.path("cohort.json"))
    return Split(train, validation, split.test)


def train_or_load(cohort: Cohort, key: ModelKey, split: Split, settings: TrainingSettings, folds: int,
                  models_folder: Path, progress: Progress, unlabelled: UnlabelledCases | None = None) -> ModelPackage:
    """A finished model package is loaded as it is; otherwise it is trained (or resumed)."""
    folder = models_folder / key.folder_name
    run = replace(settings, label=key.label, inputs=key.inputs, fold=key.fold, folds=folds)
    if not (folder / CARD_FILE).is_file():
        progress.message(f"training {key.folder_name}")
        semi = "_semi" if key.method == SEMI_SUPERVISED else ""
        train_model(cohort, run, folder, resume=folder.exists(), progress=progress,
                    name=f"{key.label}_{key.inputs_name}{semi}_fold{key.fold}",
                    split=training_split(cohort, split, key.label, progress), unlabelled=unlabelled)
    package = load_model_package(folder)
    differences = settings_differences(package.card["training"]["settings"], run.as_dict())
    if differences or tuple(package.card["training"]["split"]["test"]) != tuple(split.test):
        raise OsteoSegError(f"holds a model trained with other settings ({', '.join(differences) or 'split'}); "
                            "use another output folder or --force", path=folder)
    return package


def settings_differences(recorded: dict, requested: dict) -> list[str]:
    """Settings that change what a model computes (where it ran does not count)."""
    return sorted(k for k in requested if k not in ("device", "precision") and recorded.get(k) != requested[k])


def score_patient(cohort: Cohort, case_id: str, fold: int, models: dict[ModelKey, ModelPackage | ModelGroup],
                  device, dtype, predictions_folder: Path | None) -> tuple[list[dict], dict]:
    """Predict one test patient with every model of its fold (an ensemble's members averaged; all
    networks in one input pass) and score each against every source. Returns the metric rows and
    the patient's volumes (for figures)."""
    case = cohort.case(case_id)
    patient = load_patient(cohort, case_id, CHANNEL_ORDER, tuple(sorted(case.labels)), with_truth=True)
    sources = sorted(patient.labels)
    groups = {key: model if isinstance(model, ModelGroup) else ModelGroup([model]) for key, model in models.items()}
    settings = next(iter(groups.values())).card
    networks = [(member.network.to(device), [CHANNEL_ORDER.index(n) for n in key.inputs])
                for key, group in groups.items() for member in group.members]
    probabilities = iter(predict_probabilities(networks, patient.channels, size=settings["preprocessing"]["size"],
                                               device=device, dtype=dtype))
    region = body_mask(patient.ct_hu)
    rows, predictions = [], {}
    for key, group in groups.items():
        members = [next(probabilities) for _ in group.members]
        probability = members[0] if len(members) == 1 else np.mean(members, axis=0)
        mask = (probability >= group.threshold).astype(np.uint8)
        predictions[key] = mask
        if predictions_folder is not None:
            save_prediction(patient.ct, mask, predictions_folder / case_id / f"{key.label}_{key.inputs_name}.nii.gz")
        for source in sources:
            metrics = patient_metrics(mask, patient.labels[source], patient.spacing_zyx, region)
            rows.append({"case": case_id, "fold": fold, "model_label": key.label, "inputs": key.inputs_name,
                         "reference": source, **({"method": key.method} if key.method != SUPERVISED else {}),
                         **metrics})
    return rows, {"ct_hu": patient.ct_hu, "pet_suv": patient.pet_suv, "labels": patient.labels,
                  "predictions": predictions}


def save_prediction(ct: sitk.Image, mask: np.ndarray, path: Path) -> None:
    """A predicted mask on its CT's geometry, as NIfTI."""
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(ct)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, path)


def source_agreement(cohort: Cohort, case_id: str, labels: dict[str, np.ndarray]) -> dict:
    """Between the label sources of one patient: pairwise Dice and Cohen's kappa, and STAPLE's
    estimate of each source's sensitivity and specificity (SimpleITK; needs two sources or more)."""
    sources = sorted(s for s in labels if s != TRUTH)
    result = {"case": case_id, "pairs": {}, "staple": {}}
    for i, a in enumerate(sources):
        for b in sources[i + 1:]:
            result["pairs"][f"{a}-{b}"] = {"dice": dice(labels[a], labels[b]),
                                           "kappa": cohens_kappa(labels[a], labels[b])}
    if len(sources) >= 2 and all(labels[s].any() for s in sources):
        staple = sitk.STAPLEImageFilter()
        staple.SetForegroundValue(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            staple.Execute([sitk.GetImageFromArray(labels[s].astype(np.uint8)) for s in sources])
        estimates = zip(sources, staple.GetSensitivity(), staple.GetSpecificity(), strict=True)
        result["staple"] = {s: {"sensitivity": se, "specificity": sp} for s, se, sp in estimates}
    return result


@dataclass
class Scores:
    """Per-patient results as they accumulate."""

    rows: list[dict] = field(default_factory=list)
    agreement: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    volumes: dict[str, dict] = field(default_factory=dict)
    semi_rows: list[dict] = field(default_factory=list)

    def add_patient(self, cohort: Cohort, case_id: str, fold: int, models: dict, device, dtype, out: Path,
                    labels, progress: Progress) -> None:
        """Predict and score one patient; count the label sources it lacks."""
        rows, volumes = score_patient(cohort, case_id, fold, models, device, dtype, out / "predictions")
        self.rows += [row for row in rows if "method" not in row]
        self.semi_rows += [row for row in rows if "method" in row]
        self.volumes[case_id] = volumes
        self.agreement.append(source_agreement(cohort, case_id, volumes["labels"]))
        for label in (label for label in labels if label not in cohort.case(case_id).labels):
            self.skipped.append({"case": case_id, "reference": label, "reason": "label source missing"})
            progress.message(f"warning: {case_id} has no label {label!r}: not scored against it")


@dataclass
class CrossValidation:
    """Everything the report needs: per-patient metric rows, agreement, volumes for figures, models."""

    rows: list[dict]
    agreement: list[dict]
    skipped: list[dict]
    volumes: dict[str, dict]
    model_cards: dict[str, dict]
    labels: tuple[str, ...]
    inputs: tuple[str, ...]
    folds: int
    cohort_name: str
    semi_rows: list[dict] = field(default_factory=list)   # semi-supervised students, scored like the others


def cases_to_validate(cohort: Cohort, labels, progress: Progress) -> tuple[Cohort, list[str]]:
    """For semi-supervised cross-validation: the cohort without the cases that have none of the label
    sources (unlabelled training data of every fold, never scored), and those cases' ids."""
    unlabelled = [case.case_id for case in cohort.cases if not any(label in case.labels for label in labels)]
    if unlabelled:
        progress.message(f"{len(unlabelled)} case(s) without any of the label sources are not cross-validated")
    return replace(cohort, cases=[c for c in cohort.cases if c.case_id not in unlabelled]), unlabelled


def fold_pool(cohort: Cohort, split: Split, label: str, unlabelled_ids: list[str], others) -> UnlabelledCases:
    """A fold's unlabelled patients for one label source: its training patients without that source,
    the cohort's cases without any source, and the other cohorts (never the fold's test patients).
    `cohort` is the whole cohort, unlabelled cases included."""
    lacking = [i for i in split.train + split.validation if label not in cohort.case(i).labels]
    return UnlabelledCases([(cohort, i) for i in lacking + unlabelled_ids]
                           + [(other, case.case_id) for other in others for case in other.cases])


def fold_teachers(models: dict, fold: int, label: str, models_folder: Path) -> dict[str, str]:
    """This fold's CT-only and PET-only models of the label source, when cross-validated: the teachers."""
    return {inputs[0]: str(models_folder / key.folder_name) for key in models
            if key.fold == fold and key.label == label and key.method == SUPERVISED
            for inputs in [key.inputs] if inputs in (("ct",), ("pet",))}


def cross_validate(cohort: Cohort, labels, inputs_list, folds: int, settings: TrainingSettings, out: Path, *,
                   split_seed: int = 0, progress: Progress | None = None,
                   semi_supervised: SemiSupervisedSettings | None = None, unlabelled_cohorts=()) -> CrossValidation:
    """Train, predict and score every fold; models and predictions are kept under `out`. With
    `semi_supervised`, each fold also trains a dual-channel student per label source from the fold's
    labelled patients plus the unlabelled ones, scored on the same test patients."""
    progress = progress or Progress()
    out = Path(out)
    labels, inputs_list = tuple(labels), tuple(tuple(i) for i in inputs_list)
    whole = cohort
    unlabelled_ids = []
    if semi_supervised is not None:   # cases with no label source are the students' unlabelled data
        cohort, unlabelled_ids = cases_to_validate(cohort, labels, progress)
    splits = check_plan(cohort, labels, inputs_list, folds, split_seed)
    device = choose_device(settings.device)
    dtype = autocast_dtype(device, settings.precision)
    scores, cards = Scores(), {}
    settings = replace(settings, split_seed=split_seed)
    for fold, split in enumerate(splits):
        models = {}
        for label in labels:
            for inputs in inputs_list:
                key = ModelKey(fold, label, inputs)
                models[key] = train_or_load(cohort, key, split, settings, folds, out / "models", progress)
                cards[key.folder_name] = models[key].card
            if semi_supervised is not None:
                key = ModelKey(fold, label, CHANNEL_ORDER, SEMI_SUPERVISED)
                pool = fold_pool(whole, split, label, unlabelled_ids, unlabelled_cohorts)
                pool.teachers = fold_teachers(models, fold, label, out / "models")
                models[key] = train_or_load(cohort, key, split, replace(settings, semi_supervised=semi_supervised),
                                            folds, out / "models", progress, unlabelled=pool)
                cards[key.folder_name] = models[key].card
        for case_id in split.test:
            progress.message(f"fold {fold}: predicting {case_id}")
            scores.add_patient(cohort, case_id, fold, models, device, dtype, out, labels, progress)
    return CrossValidation(scores.rows, scores.agreement, scores.skipped, scores.volumes, cards, labels,
                           tuple("+".join(i) for i in inputs_list), folds, cohort.name, scores.semi_rows)


def evaluate_model_set(cohort: Cohort, models: list[ModelPackage], out: Path, *, device: str = "auto",
                       progress: Progress | None = None) -> CrossValidation:
    """A fixed model set (e.g. trained elsewhere) on every case of a cohort, scored against every
    label source: an external evaluation, with the same tables as cross-validation (folds = 0)."""
    progress = progress or Progress()
    check_not_empty(cohort)
    check_cohort(cohort, [case.case_id for case in cohort.cases])
    groups = group_models(models)   # several models of one label source and inputs: an ensemble
    keyed = {ModelKey(0, group.label_source, tuple(group.inputs)): group for group in groups}
    compute = choose_device(device)
    labels = tuple(dict.fromkeys(key.label for key in keyed))
    scores = Scores()
    for case in cohort.cases:
        progress.message(f"predicting {case.case_id}")
        scores.add_patient(cohort, case.case_id, 0, keyed, compute, autocast_dtype(compute), Path(out), labels,
                           progress)
    inputs = tuple(dict.fromkeys(key.inputs_name for key in keyed))
    return CrossValidation(scores.rows, scores.agreement, scores.skipped, scores.volumes,
                           {group.name: group.card for group in groups}, labels, inputs, 0, cohort.name)
