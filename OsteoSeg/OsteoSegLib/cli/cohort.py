"""`osteoseg cohort ...`: import a cohort from folders or DICOM, validate it, summarise it."""

from __future__ import annotations

from ..errors import OsteoSegError
from .command import HelpFormatter, add_command
from .transfer import add_cohort_transfer


def run_import_folders(arguments) -> int:
    from ..data.cohort_import import import_folders

    cohort = import_folders(arguments.root, arguments.out, ct=arguments.ct, pet=arguments.pet,
                            labels=pairs(arguments.label, "--label"),
                            pet_grid_labels=pairs(arguments.pet_label, "--pet-label"), force=arguments.force)
    print(f"Imported {len(cohort.cases)} cases into {cohort.root / 'cohort.json'}")
    return 0


def run_import_dicom(arguments) -> int:
    from ..data.cohort_import import import_dicom

    cohort = import_dicom(arguments.root, arguments.out, label_source=arguments.label_source, roi=arguments.roi,
                          series_uids=arguments.series or (), force=arguments.force)
    for case in cohort.cases:
        conversion = case.metadata["suv_conversion"]
        print(f"{case.case_id}: PET units {conversion['units']}, SUV factor {conversion['factor']:.6g}, "
              f"labels {sorted(case.labels) or 'none'}")
    print(f"Imported {len(cohort.cases)} cases into {cohort.root / 'cohort.json'}")
    return 0


def run_validate(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..data.cohort_validate import validate_cohort

    cohort = load_cohort(arguments.cohort)
    problems = validate_cohort(cohort, arguments.require_labels or ())
    for problem in problems:
        print(f"  {problem}")
    print(f"{len(cohort.cases)} cases checked: " + (f"{len(problems)} problem(s)" if problems else "no problems"))
    return 1 if problems else 0


def run_summary(arguments) -> int:
    import json

    from ..atomic import write_text
    from ..data.cohort import COHORT_FILE, load_cohort
    from ..data.cohort_summary import format_summary, summarise_cohort
    from ..outputs import refuse_existing_file

    cohort = load_cohort(arguments.cohort)
    if arguments.json:   # refused before the work, not after
        refuse_existing_file(arguments.json, arguments.force, inputs=[cohort.path(COHORT_FILE)])
    rows = summarise_cohort(cohort)
    print(format_summary(rows))
    if arguments.json:
        write_text(arguments.json, json.dumps(rows, indent=2) + "\n")
    return 0


def pairs(items, option: str) -> dict[str, str]:
    """SOURCE=PATTERN options as a dictionary; anything else is a one-line error."""
    found = {}
    for item in items or []:
        source, separator, pattern = item.partition("=")
        if not separator or not source or not pattern:
            raise OsteoSegError(f"{option} takes SOURCE=PATTERN, got {item!r}")
        found[source] = pattern
    return found


def add_cohort_commands(commands) -> None:
    cohort = commands.add_parser("cohort", help="Import, validate and summarise cohorts.",
                                 description="Import, validate and summarise cohorts (a cohort is a folder with "
                                             "cohort.json naming each case's files by role).",
                                 epilog="examples:\n  osteoseg cohort validate my-cohort --require-labels A B",
                                 formatter_class=HelpFormatter)
    actions = cohort.add_subparsers(dest="action", required=True, metavar="ACTION")
    folders = add_command(
        actions, "import-folders", summary="Describe one folder per case as a cohort (files found by name patterns).",
        details="Your files are not moved or copied: cohort.json names them with absolute paths.",
        examples=["osteoseg cohort import-folders nifti/ --out my-cohort --ct CT_image.nii.gz "
                  "--pet PET_image.nii.gz --label tumour=CT_mask.nii.gz"])
    folders.add_argument("root", help="folder holding one sub-folder per case")
    folders.add_argument("--out", required=True, help="where cohort.json is written (data is not moved)")
    folders.add_argument("--ct", required=True, help="CT file pattern, e.g. CT_image.nii.gz")
    folders.add_argument("--pet", required=True, help="PET file pattern (SUV), e.g. PET_image.nii.gz")
    folders.add_argument("--label", action="append", metavar="SOURCE=PATTERN", help="a label source on the CT grid")
    folders.add_argument("--pet-label", action="append", metavar="SOURCE=PATTERN",
                         help="the same contour drawn on the PET grid (compared by 'cohort summary')")
    folders.add_argument("--force", action="store_true",
                         help="replace a cohort OsteoSeg wrote in --out (nothing else is removed)")
    folders.set_defaults(run=run_import_folders)
    dicom = add_command(
        actions, "import-dicom", summary="Convert one DICOM folder per case (CT, PET, RTSTRUCT) into a cohort.",
        details="CT and PET series are found by Modality and SeriesInstanceUID; the PET is converted to SUVbw "
                "and the RTSTRUCT on the CT's frame of reference becomes a label on the CT grid.",
        examples=["osteoseg cohort import-dicom dicom/ --out my-cohort --label-source tumour --roi GTV"])
    dicom.add_argument("root", help="folder holding one DICOM folder per case")
    dicom.add_argument("--out", required=True, help="folder for cohort.json and the converted NIfTI files")
    dicom.add_argument("--label-source", default="A", help="label source name for the RTSTRUCT contour")
    dicom.add_argument("--roi", help="ROI name in the RTSTRUCT (needed when it holds several)")
    dicom.add_argument("--series", nargs="+", metavar="UID",
                       help="SeriesInstanceUIDs to use where a case holds several CT or PET series")
    dicom.add_argument("--force", action="store_true",
                       help="replace a cohort OsteoSeg wrote in --out (nothing else is removed)")
    dicom.set_defaults(run=run_import_dicom)
    validate = add_command(
        actions, "validate", summary="Check every case of a cohort and list all problems at once.",
        details="Exit status 1 when there is any problem; each is one line naming the case, the file and what "
                "is wrong.",
        examples=["osteoseg cohort validate my-cohort --require-labels A B"])
    validate.add_argument("cohort", help="cohort folder (with cohort.json)")
    validate.add_argument("--require-labels", nargs="+", metavar="SOURCE", help="label sources every case must have")
    validate.set_defaults(run=run_validate)
    summary = add_command(
        actions, "summary", summary="Per case: label volumes, SUVmax / SUVmean, CT- vs PET-grid contour Dice.",
        examples=["osteoseg cohort summary my-cohort --json summary.json"])
    summary.add_argument("cohort", help="cohort folder (with cohort.json)")
    summary.add_argument("--json", help="also write the figures as JSON here")
    summary.add_argument("--force", action="store_true", help="replace the --json file if it exists")
    summary.set_defaults(run=run_summary)
    add_cohort_transfer(actions)
