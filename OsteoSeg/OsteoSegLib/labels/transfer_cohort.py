"""Transfer for a whole cohort: each case's label drawn on another image (its PET, an earlier scan) is
carried onto its CT and added, in a new cohort, as a new label source. The new cohort names the
original images where they are; only the transferred labels and their reports are written."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text
from ..data.cohort import COHORT_FILE, Cohort, load_cohort, save_cohort, with_absolute_paths
from ..data.fingerprint import sha256_file
from ..data.io import csv_text, read_image
from ..errors import OsteoSegError
from ..outputs import OutputFolder
from ..progress import Progress
from .transfer import transfer_label
from .transfer_files import LABELS_FILE, REPORT_FILE, write_transfer

SUMMARY_FILE = "transfer.csv"


def case_file(cohort: Cohort, case, pattern: str, what: str) -> Path:
    """The one file matching `pattern` in the folder of the case's CT."""
    folder = cohort.path(case.ct).parent
    matches = sorted(folder.glob(pattern))
    if len(matches) != 1:
        found = "no file" if not matches else f"{len(matches)} files ({', '.join(m.name for m in matches[:3])})"
        raise OsteoSegError(f"{what}: {found} matches {pattern!r}", case=case.case_id, path=folder)
    return matches[0]


def planned_inputs(cohort: Cohort, label_pattern: str, source: str) -> dict[str, tuple[Path, Path]]:
    """(source image, label) per case, every case checked before anything is written: all problems
    in one message."""
    plan, problems = {}, []
    for case in cohort.cases:
        try:
            image = cohort.path(case.pet) if source == "pet" else case_file(cohort, case, source, "source image")
            plan[case.case_id] = (image, case_file(cohort, case, label_pattern, "label"))
        except OsteoSegError as error:
            problems.append(str(error))
    if problems:
        raise OsteoSegError(f"{len(problems)} case(s) cannot be transferred:\n  " + "\n  ".join(problems),
                            path=cohort.root)
    return plan


def transfer_cohort(location, out, *, label_pattern: str, source: str, name: str, source_kind: str,
                    steps: str | None, force: bool = False, progress: Progress | None = None) -> dict:
    """Write a new cohort in `out`: the cases of `location` with label source `name` added from the
    transferred labels. A case whose transfer is refused keeps no label of that source; its reason is
    in transfer.csv. A rerun keeps the cases an interrupted run finished (--force: starts afresh).
    Returns {"transferred": n, "refused": {case: reason}}."""
    cohort = load_cohort(location)
    if any(name in case.labels for case in cohort.cases):
        raise OsteoSegError(f"the cohort already has a label source {name!r}; choose another name with --as",
                            path=cohort.root)
    plan = planned_inputs(cohort, label_pattern, source)
    progress = progress or Progress()
    rows, refused, cases = [], {}, []
    with OutputFolder(out, inputs=[cohort.root], command="cohort transfer") as folder:
        if force:
            folder.clear()   # refused, with nothing removed, when the folder holds files OsteoSeg did not write
        folder.refuse_foreign()
        for index, case in enumerate(cohort.cases):
            progress.message(f"{case.case_id} ({index + 1} of {len(cohort.cases)}): transferring")
            new_case = with_absolute_paths(cohort, case)
            cases.append(new_case)
            image_path, label_path = plan[case.case_id]
            request = {"source": str(image_path), "label": str(label_path), "target": new_case.ct,
                       "source_kind": source_kind, "steps": steps}
            report = earlier_transfer(folder.path / case.case_id, case.case_id, request)
            if report is None:
                try:   # only the transfer itself: a failed write (a full disk) ends the run
                    result = transfer_label(read_image(image_path, case=case.case_id),
                                            read_image(label_path, case=case.case_id),
                                            read_image(new_case.ct, case=case.case_id), source_kind=source_kind,
                                            steps=steps, case=case.case_id)
                except OsteoSegError as error:
                    refused[case.case_id] = error.problem
                    rows.append({"case": case.case_id, "status": "refused", "reason": error.problem})
                    continue
                report = write_case(folder, case.case_id, result, request)
            new_case.labels[name] = f"{case.case_id}/{LABELS_FILE}"
            rows.append(summary_row(case.case_id, report))
        folder.record(SUMMARY_FILE, COHORT_FILE)
        write_text(folder.path / SUMMARY_FILE, csv_text(rows))
        save_cohort(Cohort(folder.path, cases, name=f"{cohort.name} + {name}".strip(" +"),
                           description=f"{cohort.description} Label source {name!r} transferred from "
                                       f"{label_pattern} on {source}.".strip(),
                           generator={**cohort.generator, "transfer": {"label": label_pattern, "source": source,
                                                                       "as": name, "source_kind": source_kind}}))
    return {"transferred": len(cohort.cases) - len(refused), "refused": refused}


def earlier_transfer(case_folder: Path, case_id: str, request: dict) -> dict | None:
    """The report of a case an earlier run finished with the same request, or None; a finished case
    with another request (label, source, steps) is refused rather than silently kept."""
    report = finished_report(case_folder)
    if report is None:
        return None
    if report.get("inputs") != request:
        raise OsteoSegError(f"this case was transferred earlier with other inputs or settings "
                            f"({report.get('inputs')}); choose another output folder or pass --force to redo "
                            "every case",
                            case=case_id, path=case_folder)
    return report


def write_case(folder: OutputFolder, case_id: str, result, request: dict) -> dict:
    """Write one case's transfer into its folder (owned by the manifest before anything is written
    there; an interrupted earlier attempt is removed first); returns its report, as written."""
    if (folder.path / case_id).exists():
        folder.remove(case_id)   # refused if OsteoSeg did not write it
    folder.record(case_id)
    write_transfer(result, folder.path / case_id, inputs=request, names={})
    return {**result.report, "inputs": request}


def finished_report(case_folder: Path) -> dict | None:
    """The report of a finished transfer in `case_folder`: every output it lists is there with its
    sha256 (the report is written last), else None."""
    try:
        report = json.loads((case_folder / REPORT_FILE).read_text(encoding="utf-8"))
        if all(sha256_file(case_folder / entry["file"]) == entry["sha256"] for entry in report["outputs"].values()):
            return report
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def summary_row(case_id: str, report: dict) -> dict:
    """One line of transfer.csv: the step figures and the first label's verdict."""
    first = report["labels"][0]
    visibility = first["visibility"] or {}
    rigid, deformable = report["rigid"] or {}, report["deformable"] or {}
    return {"case": case_id, "status": "transferred", "reason": "", "steps": report["steps"],
            "rigid_metric_before": rigid.get("metric_before", ""), "rigid_metric_after": rigid.get("metric_after", ""),
            "deformable_folding": deformable.get("folding_fraction", ""),
            "deformable_displacement_max_mm": deformable.get("displacement_max_mm", ""),
            "source_ml": first["source_ml"], "target_ml": first["target_ml"],
            "verdict": visibility.get("verdict", ""), "visibility_score": visibility.get("score", "")}
