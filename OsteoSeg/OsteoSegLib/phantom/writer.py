"""Write a phantom cohort: one folder per case (CT, PET, Label A, Label B, truth, the known
CT-to-PET transform) and cohort.json with every parameter, the seed and each case's agreement."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_path
from ..data.cohort import COHORT_FILE, Case, Cohort, save_cohort
from ..data.io import write_image
from ..errors import OsteoSegError
from ..metrics import cohens_kappa, dice, volume_ml
from ..outputs import LOCK_FILE, MANIFEST_FILE, OutputFolder
from .anatomy import build_anatomy, origin_of
from .annotators import annotate
from .pet import ct_to_pet_transform, simulate_pet
from .spec import PhantomSettings, draw_case

GENERATOR_NAME = "OsteoSegLib.phantom"
GENERATOR_VERSION = 1


def case_seed(cohort_seed: int, index: int) -> int:
    """The seed of case `index`: independent of how many cases are generated."""
    return int(np.random.SeedSequence(cohort_seed, spawn_key=(index,)).generate_state(1)[0])


def _on_ct_grid(array: np.ndarray, settings: PhantomSettings) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(settings.grid.spacing)
    image.SetOrigin(origin_of(settings.grid))
    return image


def generate_case(case_id: str, seed: int, settings: PhantomSettings, folder: Path) -> Case:
    """Generate one case into `folder` (relative file names in the returned Case)."""
    spec = draw_case(case_id, seed, settings)
    anatomy = build_anatomy(spec, settings)
    rng = np.random.default_rng(spec.annotator_seed)
    activity = _on_ct_grid(anatomy.activity_suv, settings)
    pet, seen_pet = simulate_pet(activity, spec, settings, rng)
    spacing_zyx = tuple(reversed(settings.grid.spacing))
    label_a, label_b = annotate(anatomy, seen_pet, spacing_zyx, rng)
    truth = anatomy.truth.astype(np.uint8)

    folder.mkdir(parents=True, exist_ok=True)
    files = {"ct": "ct.nii.gz", "pet": "pet.nii.gz", "A": "label_a.nii.gz", "B": "label_b.nii.gz",
             "truth": "truth.nii.gz"}
    write_image(_on_ct_grid(anatomy.ct_hu, settings), folder / files["ct"])
    write_image(pet, folder / files["pet"])
    for key, mask in (("A", label_a), ("B", label_b), ("truth", truth)):
        write_image(_on_ct_grid(mask, settings), folder / files[key])
    with atomic_path(folder / "ct_to_pet.tfm") as temporary:
        sitk.WriteTransform(ct_to_pet_transform(spec), str(temporary))

    spacing = settings.grid.spacing
    agreement = {
        "kappa_A_B": round(cohens_kappa(label_a, label_b), 4),
        "dice_A_B": round(dice(label_a, label_b), 4),
        "fraction_of_B_inside_A": round(float((label_a & label_b).sum()) / max(int(label_b.sum()), 1), 4),
        "volume_ml": {name: round(volume_ml(mask, spacing), 3)
                      for name, mask in (("A", label_a), ("B", label_b), ("truth", truth))},
    }
    relative = f"{folder.name}/"
    return Case(case_id=case_id, ct=relative + files["ct"], pet=relative + files["pet"],
                labels={"A": relative + files["A"], "B": relative + files["B"]},
                truth=relative + files["truth"], pet_units="SUVbw",
                metadata={"phantom": asdict(spec), "ct_to_pet_transform": relative + "ct_to_pet.tfm",
                          "agreement": agreement})


def _generate_indexed(arguments) -> Case:
    index, cohort_seed, settings, root, unlabelled = arguments
    case_id = f"case_{index:03d}"
    case = generate_case(case_id, case_seed(cohort_seed, index), settings, Path(root) / case_id)
    return without_labels(case, Path(root)) if unlabelled else case


def without_labels(case: Case, root: Path) -> Case:
    """An unlabelled case: its label files removed and none listed (the hidden true extent is kept,
    for evaluation only, as for every phantom case)."""
    for relative in case.labels.values():
        (root / relative).unlink()
    case.labels = {}
    case.metadata["unlabelled"] = True
    return case


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse to write into an existing non-empty folder unless forced (what forcing may remove is
    decided by the output folder's manifest: only what OsteoSeg wrote)."""
    if out.exists() and not out.is_dir():
        raise OsteoSegError("the output exists and is not a folder", path=out)
    if out.is_dir() and any(p.name not in (MANIFEST_FILE, LOCK_FILE) for p in out.iterdir()) and not force:
        raise OsteoSegError("the output folder is not empty; choose another or pass --force to replace it",
                            path=out)


def check_request(out: str | os.PathLike, cases: int, seed: int, force: bool) -> Path:
    """Refuse impossible requests before anything is written; returns the absolute output path."""
    if int(cases) < 1:
        raise OsteoSegError(f"the number of cases must be at least 1, got {cases}")
    if int(seed) < 0:
        raise OsteoSegError(f"the seed must be zero or positive, got {seed}")
    out = Path(out).resolve()
    check_output_folder(out, force)
    return out


def generate_cohort(out: str | os.PathLike, cases: int, seed: int, settings: PhantomSettings,
                    *, force: bool = False, workers: int | None = None, progress=None, unlabelled: int = 0) -> Cohort:
    """Generate `cases` cases into `out`, then `unlabelled` more without labels (for semi-supervised
    training; the first `cases` are the same with or without them). The cohort is built in a
    temporary folder inside `out` and moved into place at the end, so an interrupted run leaves no
    half-written cohort; `force` replaces an earlier cohort OsteoSeg wrote there, never anything else."""
    out = check_request(out, cases, seed, force)
    if int(unlabelled) < 0:
        raise OsteoSegError(f"the number of unlabelled cases must be zero or positive, got {unlabelled}")
    with OutputFolder(out, command="phantom") as folder:
        if force:
            folder.clear()
        folder.refuse_foreign()
        staging = Path(tempfile.mkdtemp(prefix=".cohort.partial-", dir=out))
        try:
            results = _generate_cases(staging, cases, seed, settings, workers, progress, unlabelled)
            cohort = Cohort(
                root=staging, cases=results, name=f"OsteoSeg phantom (seed {seed})",
                description="Synthetic osteomyelitis PET-CT cohort with two annotation sources "
                            "(A: high sensitivity, B: high specificity) and the hidden true extent.",
                generator={"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": int(seed),
                           "cases": int(cases), "unlabelled_cases": int(unlabelled), "settings": asdict(settings)})
            save_cohort(cohort)
            for entry in [case.case_id for case in results] + [COHORT_FILE]:
                folder.record(entry)   # noted before it is moved: a kill right after leaves it OsteoSeg's
                os.replace(staging / entry, out / entry)
            cohort.root = out
            return cohort
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _generate_cases(root: Path, cases: int, seed: int, settings: PhantomSettings, workers, progress,
                    unlabelled: int = 0) -> list[Case]:
    """Every case into `root`, in parallel processes when there are several cores."""
    jobs = [(index, seed, settings, str(root), index >= cases) for index in range(cases + unlabelled)]
    cases = len(jobs)
    workers = max(1, min(workers or os.cpu_count() or 1, cases))
    results = []
    if workers == 1:
        for job in jobs:
            results.append(_generate_indexed(job))
            if progress:
                progress(len(results), cases)
        return results
    with ProcessPoolExecutor(workers) as pool:
        for case in pool.map(_generate_indexed, jobs):
            results.append(case)
            if progress:
                progress(len(results), cases)
    return results
