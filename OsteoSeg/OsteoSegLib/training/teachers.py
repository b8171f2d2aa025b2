"""The teachers of semi-supervised training and the unlabelled pool they label.

A teacher is OsteoSeg's own CT-only or PET-only model of the student's label source (trained here on
the labelled patients, or an earlier one given by its folder), or a user's network through a plug-in:
`python:MODULE:FUNCTION=CHECKPOINT` calls MODULE.FUNCTION(Path(CHECKPOINT)), which must return a
torch module mapping the student's normalised input slices (N, 2, S, S; CT then PET) to lesion
logits (N, 1, S, S). Nothing is downloaded; the checkpoint's sha256 goes into the model card.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..data.cohort import Cohort
from ..data.fingerprint import cohort_fingerprint, sha256_file
from ..errors import OsteoSegError
from ..inference.predict import predict_probabilities
from ..model.package import CARD_FILE, ModelPackage, load_model_package
from ..model.preprocess import CHANNEL_ORDER, to_training_size
from ..model.slice_data import load_patient
from ..progress import Progress
from .semi_supervised import TEACHER_INPUTS, UnlabelledSlices

PLUGIN_PREFIX = "python:"


@dataclass
class Teacher:
    """A frozen network that labels unlabelled slices, the input channels it reads, and what it is."""

    role: str
    network: torch.nn.Module
    channels: tuple[int, ...]
    record: dict


def package_teacher(package: ModelPackage, role: str, settings) -> Teacher:
    """An OsteoSeg model as the `role` teacher: same label source and preprocessing, the role's input."""
    card, where = package.card, package.folder
    if card["label_source"] != settings.label:
        raise OsteoSegError(f"the {role} teacher was trained on label {card['label_source']!r}, not "
                            f"{settings.label!r}: a teacher must share the student's annotation philosophy", path=where)
    if tuple(card["inputs"]) != TEACHER_INPUTS[role]:
        raise OsteoSegError(f"the {role} teacher must read {role} alone; it reads {'+'.join(card['inputs'])}",
                            path=where)
    if card["preprocessing"] != json.loads(json.dumps(settings.preprocess.as_dict())):   # as it reads back
        raise OsteoSegError(f"the {role} teacher was trained with other preprocessing than the student's", path=where)
    return Teacher(role, package.network, (CHANNEL_ORDER.index(role),),
                   {"role": role, "kind": "osteoseg", "name": package.name, "weights_sha256": card["weights_sha256"]})


def plugin_teacher(spec: str, role: str) -> Teacher:
    """A user's network: `python:MODULE:FUNCTION=CHECKPOINT` (the checkpoint must be a local file)."""
    entry, _, checkpoint = spec.removeprefix(PLUGIN_PREFIX).partition("=")
    module_name, _, function_name = entry.partition(":")
    if not (module_name and function_name and checkpoint):
        raise OsteoSegError(f"teacher plug-in {spec!r} is not python:MODULE:FUNCTION=CHECKPOINT")
    path = Path(checkpoint)
    if not path.is_file():
        raise OsteoSegError(f"the {role} teacher's checkpoint is not a file here (nothing is downloaded)", path=path)
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise OsteoSegError(f"teacher plug-in {entry!r} cannot be loaded ({error})") from None
    network = factory(path)
    if not isinstance(network, torch.nn.Module):
        raise OsteoSegError(f"teacher plug-in {entry!r} returned {type(network).__name__}, not a torch module")
    return Teacher(role, network.eval(), tuple(range(len(CHANNEL_ORDER))),
                   {"role": role, "kind": "plugin", "entry": entry, "checkpoint": str(path.resolve()),
                    "checkpoint_sha256": sha256_file(path)})


def given_teacher(spec: str, role: str, settings) -> Teacher:
    """A teacher named on the command line: a model package folder or a plug-in."""
    if spec.startswith(PLUGIN_PREFIX):
        return plugin_teacher(spec, role)
    return package_teacher(load_model_package(Path(spec)), role, settings)


def given_record(spec: str) -> dict:
    """What identifies a given teacher before it is loaded (for the run record: a resumed run must
    have the same teachers)."""
    if spec.startswith(PLUGIN_PREFIX):
        checkpoint = Path(spec.partition("=")[2])
        return {"plugin": spec.partition("=")[0], "sha256": sha256_file(checkpoint) if checkpoint.is_file() else None}
    card = Path(spec) / CARD_FILE
    return {"package": str(Path(spec).resolve()), "card_sha256": sha256_file(card) if card.is_file() else None}


def prepare_teachers(cohort: Cohort, split, settings, folder: Path, given: dict[str, str],
                     progress: Progress) -> list[Teacher]:
    """The teachers in settings order: given ones loaded, the others trained on the student's
    labelled split (or re-used from `folder` when an earlier run finished them)."""
    from .train import train_model  # train imports this module

    teachers = []
    for role in settings.semi_supervised.teachers:
        if role in given:
            teachers.append(given_teacher(given[role], role, settings))
            continue
        target = folder / role
        if not (target / CARD_FILE).is_file():
            progress.message(f"training the {role} teacher on {len(split.train)} labelled patients")
            train_model(cohort, replace(settings, inputs=TEACHER_INPUTS[role], semi_supervised=None), target,
                        resume=target.exists(), split=split, progress=progress,
                        name=f"teacher-{role}-{settings.label}")
        teachers.append(package_teacher(load_model_package(target), role, settings))
    return teachers


def teacher_maps(teachers: list[Teacher], images: np.ndarray, device, batch_size: int) -> np.ndarray:
    """Every teacher's probability maps of slices already at the training size: (N, T, S, S) float16."""
    networks = [(teacher.network.to(device), teacher.channels) for teacher in teachers]
    maps = predict_probabilities(networks, images, size=images.shape[-1], device=device, batch_size=batch_size,
                                 channels_last=False)
    return np.stack(maps, axis=1).astype(np.float16)


def unlabelled_pool(pool: list[tuple[Cohort, str]], teachers: list[Teacher], settings, device,
                    progress: Progress) -> UnlabelledSlices:
    """The unlabelled cases' slices that some teacher marks, with the teachers' maps."""
    size, images, maps, case_ids = settings.preprocess.size, [], [], []
    names = " and ".join(f"{teacher.role.upper()}" for teacher in teachers)
    progress.message(f"labelling {len(pool)} unlabelled patients with the {names} teacher{'s' * (len(teachers) > 1)}")
    for cohort, case_id in pool:
        patient = load_patient(cohort, case_id, settings.inputs, (), settings.preprocess)
        slices = to_training_size(patient.channels, size, order=1)
        labelled = teacher_maps(teachers, slices, device, max(settings.batch_size, 8))
        marked = np.flatnonzero((labelled >= 0.5).reshape(len(slices), -1).any(axis=1))
        images.append(slices[marked])
        maps.append(labelled[marked])
        case_ids += [case_id] * len(marked)
    channels, count = len(settings.inputs), len(teachers)
    return UnlabelledSlices(np.concatenate(images) if images else np.zeros((0, channels, size, size), np.float32),
                            np.concatenate(maps) if maps else np.zeros((0, count, size, size), np.float16), case_ids)


def by_cohort(pool: list[tuple[Cohort, str]]) -> list[tuple[Cohort, list[str]]]:
    """The pool's case ids grouped by their cohort, cohorts in a fixed (folder) order."""
    groups: dict[str, tuple[Cohort, list[str]]] = {}
    for cohort, case_id in pool:
        groups.setdefault(str(cohort.root), (cohort, []))[1].append(case_id)
    return [groups[key] for key in sorted(groups)]


def pool_fingerprint(pool: list[tuple[Cohort, str]]) -> str:
    """sha256 over every unlabelled case's id and CT and PET bytes (by cohort, in a fixed order)."""
    digest = hashlib.sha256()
    for cohort, ids in by_cohort(pool):
        digest.update(cohort_fingerprint(cohort, ids, None).encode())
    return digest.hexdigest()


@dataclass
class UnlabelledCases:
    """A semi-supervised run's unlabelled patients (cases of any cohort) and any teachers given
    (role -> package folder or plug-in) instead of trained."""

    cases: list[tuple[Cohort, str]]
    teachers: dict[str, str] | None = None

    @cached_property
    def fingerprint(self) -> str:
        """Hashed once: the run record and the model card both name it, and it reads every image."""
        return pool_fingerprint(self.cases)

    def record(self) -> dict:
        """What the run record and the model card say of them."""
        return {"cases": len(self.cases), "fingerprint": self.fingerprint,
                "teachers_given": {role: given_record(spec) for role, spec in sorted((self.teachers or {}).items())}}


def check_unlabelled(cohort: Cohort, unlabelled: UnlabelledCases | None, settings) -> None:
    """One clear error, before anything is written, for a pool that cannot be used (empty, a case's
    files unusable, every problem named as `cohort validate` does, or PET in other units than the
    labelled cohort's) or a given teacher that cannot teach this student."""
    from ..data.cohort_validate import check_cohort

    if unlabelled is None or not unlabelled.cases:
        raise OsteoSegError("semi-supervised training needs unlabelled patients: every case of the cohort has the "
                            "label source and no --unlabelled cohort was given", path=cohort.path("cohort.json"))
    units = {case.pet_units for case in cohort.cases}
    for other, ids in by_cohort(unlabelled.cases):
        check_cohort(other, ids)
        foreign = sorted({other.case(i).pet_units for i in ids} - units)
        if foreign:
            raise OsteoSegError(f"the unlabelled cases' PET is in {', '.join(map(str, foreign))}, the labelled "
                                f"cohort's in {', '.join(map(str, sorted(units, key=str)))}: convert them first",
                                path=other.path("cohort.json"))
    for role, spec in (unlabelled.teachers or {}).items():
        if role in settings.semi_supervised.teachers:
            given_teacher(spec, role, settings)


def semi_supervised_pool(cohort: Cohort, split, settings, unlabelled: UnlabelledCases, folder: Path, device,
                         progress: Progress) -> tuple[UnlabelledSlices, dict]:
    """Teachers ready, the unlabelled slices they mark, and what the model card records of both."""
    teachers = prepare_teachers(cohort, split, settings, folder, unlabelled.teachers or {}, progress)
    slices = unlabelled_pool(unlabelled.cases, teachers, settings, device, progress)
    for teacher in teachers:
        teacher.network.to("cpu")
    record = {"method": "modality teachers distilled into the student (after MuDuo)",
              "settings": settings.semi_supervised.as_dict(), "teachers": [t.record for t in teachers],
              "unlabelled": {**unlabelled.record(), "slices": len(slices)}}
    if len(slices) == 0:
        record["note"] = "the teachers marked nothing in the unlabelled patients: trained on the labelled ones only"
        progress.message(f"warning: the teachers mark nothing in the {len(unlabelled.cases)} unlabelled patients; "
                         "the student learns from the labelled patients only (the model card says so)")
    else:
        progress.message(f"{len(slices)} unlabelled slices from {len(unlabelled.cases)} patients")
    return slices, record


def labelled_and_unlabelled(cohort: Cohort, label: str, others: list[Cohort] = (),
                            teachers: dict[str, str] | None = None) -> tuple[Cohort, UnlabelledCases]:
    """The cohort's cases with the label source (to train on), and as the unlabelled pool its cases
    without it plus every case of the other cohorts."""
    labelled = replace(cohort, cases=[case for case in cohort.cases if label in case.labels])
    pool = [(cohort, case.case_id) for case in cohort.cases if label not in case.labels]
    pool += [(other, case.case_id) for other in others for case in other.cases]
    return labelled, UnlabelledCases(pool, teachers)
