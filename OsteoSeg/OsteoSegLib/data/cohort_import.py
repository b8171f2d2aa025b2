"""Build a cohort description from common layouts without moving the user's files.

- Folders: one folder per case with file-name patterns, e.g. the IBSI layout
  `nifti/<case>/CT_image.nii.gz`, `PET_image.nii.gz`, `CT_mask.nii.gz`.
- DICOM: one folder per case holding a CT and a PET series (found by Modality and
  SeriesInstanceUID) and optionally RTSTRUCT / DICOM SEG contours. DICOM is converted once into
  NIfTI beside cohort.json (CT in HU, PET in SUVbw, labels on the CT grid), with the SUV conversion
  recorded per case.
"""

from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from ..errors import OsteoSegError
from .cohort import Case, Cohort, save_cohort
from .io import write_image


def _case_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise OsteoSegError("folder not found", path=root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise OsteoSegError("no case folders here (expected one folder per case)", path=root)
    return folders


def _one_match(folder: Path, pattern: str, role: str) -> Path:
    matches = sorted(folder.glob(pattern))
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches) or "nothing"
        raise OsteoSegError(f"{role}: pattern {pattern!r} matched {found} (expected exactly one file)",
                            case=folder.name, path=folder)
    return matches[0].resolve()


def import_folders(root: str | os.PathLike, out: str | os.PathLike, *, ct: str, pet: str,
                   labels: dict[str, str] | None = None, pet_grid_labels: dict[str, str] | None = None,
                   pet_units: str = "SUVbw") -> Cohort:
    """A cohort of one folder per case under `root`, files found by glob patterns; cohort.json is
    written into `out` with absolute paths (the data may be read-only)."""
    root, out = Path(root).resolve(), Path(out).resolve()
    problems, cases = [], []
    for folder in _case_folders(root):
        try:
            case = Case(case_id=folder.name, ct=str(_one_match(folder, ct, "CT")),
                        pet=str(_one_match(folder, pet, "PET")), pet_units=pet_units,
                        labels={source: str(_one_match(folder, pattern, f"label {source}"))
                                for source, pattern in (labels or {}).items()})
            if pet_grid_labels:
                case.metadata["pet_grid_labels"] = {source: str(_one_match(folder, pattern, f"PET-grid label {source}"))
                                                    for source, pattern in pet_grid_labels.items()}
            cases.append(case)
        except OsteoSegError as error:
            problems.append(str(error))
    if problems:
        raise OsteoSegError(f"{len(problems)} case(s) could not be imported:\n  " + "\n  ".join(problems), path=root)
    cohort = Cohort(root=out, cases=cases, name=root.name, description=f"Imported from {root}")
    save_cohort(cohort)
    return cohort


def import_dicom(root: str | os.PathLike, out: str | os.PathLike, *, label_source: str = "A",
                 roi: str | None = None) -> Cohort:
    """A cohort from one DICOM folder per case: CT + PET series, and the RTSTRUCT that references
    the CT's frame of reference as label `label_source` (ROI `roi`, or its only ROI)."""
    from .dicom import choose_series, find_series, read_pet_suv, read_series
    from .rtstruct import rtstruct_to_mask

    root, out = Path(root).resolve(), Path(out).resolve()
    cases = []
    for folder in _case_folders(root):
        series = find_series(folder)
        ct_series = choose_series(series, "CT", folder, case=folder.name)
        ct_image = read_series(ct_series, case=folder.name)
        pet_image, conversion = read_pet_suv(choose_series(series, "PT", folder, case=folder.name), case=folder.name)
        case_folder = out / folder.name
        write_image(sitk.Cast(sitk.Round(ct_image), sitk.sitkInt16), case_folder / "ct.nii.gz")
        write_image(pet_image, case_folder / "pet.nii.gz")
        labels = {}
        structures = [s for s in series if s.modality == "RTSTRUCT"
                      and _references_frame(s, ct_series.frame_of_reference)]
        if structures:
            # Prefer the structure set drawn on the CT when several share the frame of reference.
            chosen = next((s for s in structures if "CT" in s.description.upper()), structures[0])
            mask = rtstruct_to_mask(chosen.files[0], ct_image, roi=roi,
                                    frame_of_reference=ct_series.frame_of_reference, case=folder.name)
            write_image(mask, case_folder / f"label_{label_source.lower()}.nii.gz")
            labels[label_source] = f"{folder.name}/label_{label_source.lower()}.nii.gz"
        cases.append(Case(case_id=folder.name, ct=f"{folder.name}/ct.nii.gz", pet=f"{folder.name}/pet.nii.gz",
                          labels=labels, metadata={"source": str(folder), "suv_conversion": conversion.as_dict(),
                                                   "ct_series": ct_series.uid}))
    cohort = Cohort(root=out, cases=cases, name=root.name, description=f"Imported from DICOM in {root}")
    save_cohort(cohort)
    return cohort


def _references_frame(series, frame_of_reference: str) -> bool:
    frames = {str(f.FrameOfReferenceUID) for f in series.header.get("ReferencedFrameOfReferenceSequence", [])}
    return frame_of_reference in frames
