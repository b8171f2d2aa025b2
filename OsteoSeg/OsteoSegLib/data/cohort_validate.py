"""Check every case of a cohort and report all problems in one run, each naming case, file and problem.
The checks of a case's images are also run by segment, align and train before they do any work."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import OsteoSegError
from ..imaging import check_overlap, same_grid
from .cohort import Cohort
from .io import read_image


@dataclass(frozen=True)
class Problem:
    case: str
    path: str | None
    message: str

    def __str__(self) -> str:
        return str(OsteoSegError(self.message, case=self.case, path=self.path))


def ct_problem(ct: sitk.Image) -> str | None:
    """Why a volume does not look like a CT in Hounsfield units, or None."""
    values = sitk.GetArrayViewFromImage(ct)
    low, high = float(values.min()), float(values.max())
    if high - low < 200:
        return (f"does not look like a CT in HU: values span only {low:.3g} to {high:.3g} "
                "(a PET or a mask in the CT slot?)")
    if low >= 0:
        return (f"does not look like a CT in HU: no value below 0 (range {low:.0f} to {high:.0f}); "
                "air is -1000 HU, so the rescale slope/intercept was probably not applied")
    if low < -3000 or high > 40000:
        return f"does not look like a CT in HU: values from {low:.0f} to {high:.0f}"
    return None


def pet_problem(pet: sitk.Image) -> str | None:
    """Why a volume does not look like a PET in SUV, or None."""
    values = sitk.GetArrayViewFromImage(pet)
    low, high = float(values.min()), float(values.max())
    if low < -0.5:
        return (f"PET has negative values down to {low:.3g}: not SUV (a CT in the PET slot, or a PET not "
                "converted to SUV?)")
    if high <= 0:
        return "PET is all zero (an empty or unreconstructed series?)"
    return None


def image_problems(ct: sitk.Image | None, pet: sitk.Image | None, *, case: str | None,
                   ct_path=None, pet_path=None) -> list[Problem]:
    """What is wrong with a case's CT and PET (either may be absent): CT in HU, PET in SUV, overlap."""
    problems = []
    if ct is not None and (reason := ct_problem(ct)):
        problems.append(Problem(case, str(ct_path) if ct_path else None, reason))
    if pet is not None and (reason := pet_problem(pet)):
        problems.append(Problem(case, str(pet_path) if pet_path else None, reason))
    if ct is not None and pet is not None:
        try:
            check_overlap(ct, pet, case=case)
        except OsteoSegError as error:
            problems.append(Problem(case, str(pet_path) if pet_path else None, error.problem))
    return problems


def check_images(ct: sitk.Image | None, pet: sitk.Image | None, *, case: str | None = None, ct_path=None,
                 pet_path=None) -> None:
    """Refuse a case whose images fail the checks of `cohort validate` (all problems in one error)."""
    problems = image_problems(ct, pet, case=case, ct_path=ct_path, pet_path=pet_path)
    if len(problems) == 1:
        problem = problems[0]
        raise OsteoSegError(problem.message, case=problem.case, path=problem.path)
    if problems:
        raise OsteoSegError(f"{len(problems)} problems:\n  " + "\n  ".join(map(str, problems)), case=case)


def label_problem(label: sitk.Image) -> str | None:
    """Why a label is not a binary mask (0/1 or 0/255), or None."""
    values = np.unique(sitk.GetArrayViewFromImage(label))
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (" ..." if len(values) > 6 else "")
        return f"label values must be 0/1 (or 0/255), found {shown}"
    return None


def _read(path, case, problems):
    try:
        return read_image(path, case=case)
    except OsteoSegError as error:
        problems.append(Problem(case, error.path, error.problem))
        return None


def validate_case(cohort: Cohort, case, required_labels=(), *, labels: bool = True) -> list[Problem]:
    """All problems of one case (of its CT and PET only, without `labels`)."""
    problems: list[Problem] = []
    ct_path, pet_path = cohort.path(case.ct), cohort.path(case.pet)
    ct = _read(ct_path, case.case_id, problems)
    pet = _read(pet_path, case.case_id, problems)
    problems += image_problems(ct, pet, case=case.case_id, ct_path=ct_path, pet_path=pet_path)
    if not labels:
        return problems
    for source in required_labels:
        if source not in case.labels:
            problems.append(Problem(case.case_id, None, f"label source {source!r} is missing from this case"))
    for source, relative in case.labels.items():
        path = cohort.path(relative)
        label = _read(path, case.case_id, problems)
        if label is None:
            continue
        if reason := label_problem(label):
            problems.append(Problem(case.case_id, str(path), reason))
        if ct is not None and not same_grid(label, ct):
            problems.append(Problem(case.case_id, str(path), f"label {source}'s grid differs from its CT "
                                    f"(size {label.GetSize()} vs {ct.GetSize()}, origin or spacing differ)"))
        if source in required_labels and not sitk.GetArrayViewFromImage(label).any():
            problems.append(Problem(case.case_id, str(path), f"label {source} is empty but is required"))
    return problems


def validate_cohort(cohort: Cohort, required_labels=()) -> list[Problem]:
    """All problems of all cases (an empty list means the cohort is usable)."""
    if not cohort.cases:
        return [Problem("-", str(cohort.root), "the cohort has no cases")]
    problems = []
    for case in cohort.cases:
        problems.extend(validate_case(cohort, case, required_labels))
    return problems


def check_cohort(cohort: Cohort, case_ids, required_labels=(), *, labels: bool = True) -> None:
    """Refuse to start work on cases that `cohort validate` would flag (every problem listed; without
    `labels`, only those of the CT and PET, for work that reads no label)."""
    problems = [problem for case_id in case_ids
                for problem in validate_case(cohort, cohort.case(case_id), required_labels, labels=labels)]
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise OsteoSegError(f"{len(problems)} problem(s) in the cohort; nothing was started "
                            f"(see 'osteoseg cohort validate'):\n  " + "\n  ".join(map(str, shown)) + more,
                            path=cohort.path("cohort.json"))
