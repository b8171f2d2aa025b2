"""Build a cohort description from common layouts without moving the user's files.

- Folders: one folder per case with file-name patterns, e.g. the IBSI layout
  `nifti/<case>/CT_image.nii.gz`, `PET_image.nii.gz`, `CT_mask.nii.gz`.
- DICOM: one folder per case holding a CT and a PET series (found by Modality and
  SeriesInstanceUID) and optionally an RTSTRUCT contour. DICOM is converted once into NIfTI beside
  cohort.json (CT in HU, PET in SUVbw, the label on the CT grid), with the SUV conversion recorded
  per case.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk

from ..errors import OsteoSegError
from ..outputs import OutputFolder
from .cohort import COHORT_FILE, Case, Cohort, save_cohort
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
                   pet_units: str = "SUVbw", force: bool = False) -> Cohort:
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
    with OutputFolder(out, inputs=[root], command="cohort import-folders") as folder:
        prepare_cohort_folder(folder, force)
        cohort = Cohort(root=out, cases=cases, name=root.name, description=f"Imported from {root}")
        folder.record(COHORT_FILE)   # noted before it is written: a kill right after leaves it OsteoSeg's
        save_cohort(cohort)
    return cohort


def prepare_cohort_folder(folder: OutputFolder, force: bool) -> None:
    """An existing cohort is replaced only with `force`, and then only what OsteoSeg wrote."""
    if force:
        folder.clear()
    if (folder.path / COHORT_FILE).exists():
        raise OsteoSegError("a cohort is already there; choose another folder or pass --force to replace it",
                            path=folder.path / COHORT_FILE)
    folder.refuse_foreign("cohort folder")


def import_dicom(root: str | os.PathLike, out: str | os.PathLike, *, label_source: str = "A",
                 roi: str | None = None, series_uids=(), force: bool = False) -> Cohort:
    """A cohort from one DICOM folder per case: CT + PET series (chosen by `series_uids` where a case
    has several), and the RTSTRUCT that references the CT's frame of reference as label
    `label_source` (ROI `roi`, or its only ROI). Every case is converted into a temporary folder
    first: a case that fails leaves nothing behind. An import that was interrupted (no cohort.json
    yet) is replaced by the next one."""
    root, out = Path(root).resolve(), Path(out).resolve()
    folders = _case_folders(root)
    with OutputFolder(out, inputs=[root], command="cohort import-dicom") as folder:
        prepare_cohort_folder(folder, force)
        remove_interrupted_import(folder, [case_folder.name for case_folder in folders])
        staging = Path(tempfile.mkdtemp(prefix=".import.partial-", dir=out))
        try:
            cases = [convert_dicom_case(case_folder, staging, label_source, roi, series_uids)
                     for case_folder in folders]
            for case in cases:
                folder.record(case.case_id)   # noted before it is moved: a kill right after leaves it OsteoSeg's
                os.replace(staging / case.case_id, out / case.case_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        cohort = Cohort(root=out, cases=cases, name=root.name, description=f"Imported from DICOM in {root}")
        folder.record(COHORT_FILE)
        save_cohort(cohort)
    return cohort


def remove_interrupted_import(folder: OutputFolder, case_ids) -> None:
    """Case folders an interrupted import had moved into place (OsteoSeg's, listed in its manifest;
    without cohort.json the import did not finish) are removed before this import moves its own."""
    for case_id in case_ids:
        if (folder.path / case_id).exists() and folder.owns(case_id):
            folder.remove(case_id)


def convert_dicom_case(source: Path, staging: Path, label_source: str, roi: str | None, series_uids) -> Case:
    """One DICOM case as NIfTI in `staging/<case>`: CT in HU, PET in SUVbw, the RTSTRUCT contour."""
    from .dicom import choose_series, find_series, read_pet_suv, read_series
    from .rtstruct import rtstruct_to_mask

    case_id = source.name
    series = find_series(source)
    ct_series = choose_series(series, "CT", source, uids=series_uids, case=case_id)
    ct_image = read_series(ct_series, case=case_id)
    pet_image, conversion = read_pet_suv(choose_series(series, "PT", source, uids=series_uids, case=case_id),
                                         case=case_id)
    case_folder = staging / case_id
    write_image(sitk.Cast(sitk.Round(ct_image), sitk.sitkInt16), case_folder / "ct.nii.gz")
    write_image(pet_image, case_folder / "pet.nii.gz")
    labels = {}
    all_structures = [s for s in series if s.modality == "RTSTRUCT"]
    structures = [s for s in all_structures if _references_frame(s, ct_series.frame_of_reference)]
    if all_structures and not structures:
        frames = sorted({f for s in all_structures for f in _referenced_frames(s)})
        raise OsteoSegError(f"the RTSTRUCT here is drawn on another frame of reference ({', '.join(frames) or 'none'}) "
                            f"than the CT ({ct_series.frame_of_reference}); it cannot become a label on the CT",
                            case=case_id, path=all_structures[0].files[0])
    if structures:
        # Prefer the structure set drawn on the CT when several share the frame of reference.
        chosen = next((s for s in structures if "CT" in s.description.upper()), structures[0])
        mask = rtstruct_to_mask(chosen.files[0], ct_image, roi=roi,
                                frame_of_reference=ct_series.frame_of_reference, case=case_id)
        write_image(mask, case_folder / f"label_{label_source.lower()}.nii.gz")
        labels[label_source] = f"{case_id}/label_{label_source.lower()}.nii.gz"
    return Case(case_id=case_id, ct=f"{case_id}/ct.nii.gz", pet=f"{case_id}/pet.nii.gz", labels=labels,
                metadata={"source": str(source), "suv_conversion": conversion.as_dict(), "ct_series": ct_series.uid})


def _referenced_frames(series) -> set[str]:
    return {str(f.FrameOfReferenceUID) for f in series.header.get("ReferencedFrameOfReferenceSequence", [])}


def _references_frame(series, frame_of_reference: str) -> bool:
    return frame_of_reference in _referenced_frames(series)
