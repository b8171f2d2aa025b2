"""The `osteoseg` command. Also reached from Slicer's headless Python through OsteoSegTrain.py."""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__
from .cli_bench import add_bench_command
from .cli_evaluate import add_crossval_command, add_evaluate_command
from .cli_segment import add_segment_command
from .cli_train import add_train_command
from .errors import OsteoSegError


def _phantom(arguments) -> int:
    from tqdm import tqdm

    from .figures import write_cohort_case_overview
    from .phantom import generate_cohort, settings_for
    from .phantom.writer import check_request

    settings = settings_for(arguments.size, shape=arguments.shape, spacing=arguments.spacing)
    check_request(arguments.out, arguments.cases, arguments.seed, arguments.force)
    started = time.perf_counter()
    with tqdm(total=arguments.cases, unit="case", desc="phantom") as bar:
        cohort = generate_cohort(arguments.out, arguments.cases, arguments.seed, settings, force=arguments.force,
                                 workers=arguments.workers, progress=lambda done, total: bar.update(1))
    print(f"Wrote {len(cohort.cases)} cases to {cohort.root} in {time.perf_counter() - started:.1f} s")
    print(f"{'case':<10}{'kappa A-B':>10}{'Dice A-B':>10}{'A mL':>9}{'B mL':>9}{'truth mL':>10}  notes")
    for case in cohort.cases:
        agreement, spec = case.metadata["agreement"], case.metadata["phantom"]
        notes = [c["kind"] for c in spec["confounders"]] + (["implant"] if spec["implant"] else [])
        if spec["lesion"] is None:
            notes.insert(0, "no lesion")
        volumes = agreement["volume_ml"]
        print(f"{case.case_id:<10}{agreement['kappa_A_B']:>10.3f}{agreement['dice_A_B']:>10.3f}"
              f"{volumes['A']:>9.1f}{volumes['B']:>9.1f}{volumes['truth']:>10.1f}  {', '.join(notes)}")
    lesion_case = next((c for c in cohort.cases if c.metadata["phantom"]["lesion"] is not None), None)
    if lesion_case is not None and not arguments.no_overview:
        path = cohort.root / "overview.png"
        write_cohort_case_overview(cohort, lesion_case, path)
        print(f"Overview of {lesion_case.case_id}: {path}")
    return 0


def _demo(arguments) -> int:
    from .demo import describe, quick_settings, run_demo
    from .progress import TerminalProgress

    settings = quick_settings(cases=arguments.cases, folds=arguments.folds, epochs=arguments.epochs)
    print(describe(run_demo(arguments.out, force=arguments.force, settings=settings, progress=TerminalProgress())))
    return 0


def _cohort_import_folders(arguments) -> int:
    from .cohort_import import import_folders

    labels = _pairs(arguments.label, "--label")
    cohort = import_folders(arguments.root, arguments.out, ct=arguments.ct, pet=arguments.pet, labels=labels,
                            pet_grid_labels=_pairs(arguments.pet_label, "--pet-label"))
    print(f"Imported {len(cohort.cases)} cases into {cohort.root / 'cohort.json'}")
    return 0


def _cohort_import_dicom(arguments) -> int:
    from .cohort_import import import_dicom

    cohort = import_dicom(arguments.root, arguments.out, label_source=arguments.label_source, roi=arguments.roi)
    for case in cohort.cases:
        conversion = case.metadata["suv_conversion"]
        print(f"{case.case_id}: PET units {conversion['units']}, SUV factor {conversion['factor']:.6g}, "
              f"labels {sorted(case.labels) or 'none'}")
    print(f"Imported {len(cohort.cases)} cases into {cohort.root / 'cohort.json'}")
    return 0


def _cohort_validate(arguments) -> int:
    from .cohort import load_cohort
    from .cohort_validate import validate_cohort

    cohort = load_cohort(arguments.cohort)
    problems = validate_cohort(cohort, arguments.require_labels or ())
    for problem in problems:
        print(f"  {problem}")
    print(f"{len(cohort.cases)} cases checked: " + (f"{len(problems)} problem(s)" if problems else "no problems"))
    return 1 if problems else 0


def _cohort_summary(arguments) -> int:
    import json

    from .atomic import write_text
    from .cohort import load_cohort
    from .cohort_summary import format_summary, summarise_cohort

    rows = summarise_cohort(load_cohort(arguments.cohort))
    print(format_summary(rows))
    if arguments.json:
        write_text(arguments.json, json.dumps(rows, indent=2) + "\n")
    return 0


def _suv(arguments) -> int:
    import SimpleITK as sitk

    from .dicom import choose_series, find_series, read_pet_suv
    from .io import write_image

    series = choose_series(find_series(arguments.folder), "PT", arguments.folder, uid=arguments.series)
    image, conversion = read_pet_suv(series)
    for key, value in conversion.as_dict().items():
        print(f"  {key:<18}{value}")
    print(f"  {'SUVmax':<18}{float(sitk.GetArrayViewFromImage(image).max()):.3f}")
    if arguments.out:
        write_image(image, arguments.out)
        print(f"Wrote {arguments.out}")
    return 0


def _align(arguments) -> int:
    from .align import align_to_folder
    from .io import read_image

    report = align_to_folder(read_image(arguments.ct), read_image(arguments.pet), arguments.out, arguments.method)
    if "metric_after" in report:
        print(f"Mattes MI {report['metric_before']:.4f} -> {report['metric_after']:.4f} "
              f"({report['iterations']} iterations)")
    print(f"Wrote pet_on_ct.nii.gz, ct_to_pet.tfm, alignment.json and alignment.png to {arguments.out}")
    return 0


def _pairs(items, option: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        source, separator, pattern = item.partition("=")
        if not separator or not source or not pattern:
            raise OsteoSegError(f"{option} takes SOURCE=PATTERN, got {item!r}")
        pairs[source] = pattern
    return pairs


def _add_cohort_commands(commands) -> None:
    cohort = commands.add_parser("cohort", help="import, validate and summarise cohorts")
    actions = cohort.add_subparsers(dest="action", required=True, metavar="ACTION")
    folders = actions.add_parser("import-folders", help="one folder per case, files found by patterns")
    folders.add_argument("root", help="folder holding one sub-folder per case")
    folders.add_argument("--out", required=True, help="where cohort.json is written (data is not moved)")
    folders.add_argument("--ct", required=True, help="CT file pattern, e.g. CT_image.nii.gz")
    folders.add_argument("--pet", required=True, help="PET file pattern (SUV), e.g. PET_image.nii.gz")
    folders.add_argument("--label", action="append", metavar="SOURCE=PATTERN", help="a label source on the CT grid")
    folders.add_argument("--pet-label", action="append", metavar="SOURCE=PATTERN",
                         help="the same contour drawn on the PET grid (compared by 'cohort summary')")
    folders.set_defaults(run=_cohort_import_folders)
    dicom = actions.add_parser("import-dicom", help="one DICOM folder per case (CT, PET, RTSTRUCT)")
    dicom.add_argument("root")
    dicom.add_argument("--out", required=True, help="folder for cohort.json and the converted NIfTI files")
    dicom.add_argument("--label-source", default="A", help="label source name for the RTSTRUCT contour")
    dicom.add_argument("--roi", help="ROI name in the RTSTRUCT (needed when it holds several)")
    dicom.set_defaults(run=_cohort_import_dicom)
    validate = actions.add_parser("validate", help="check every case and list all problems")
    validate.add_argument("cohort")
    validate.add_argument("--require-labels", nargs="+", metavar="SOURCE", help="label sources every case must have")
    validate.set_defaults(run=_cohort_validate)
    summary = actions.add_parser("summary", help="per case: label volumes, SUVmax/mean, CT/PET-grid contour Dice")
    summary.add_argument("cohort")
    summary.add_argument("--json", help="also write the figures as JSON here")
    summary.set_defaults(run=_cohort_summary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osteoseg", description="Osteomyelitis segmentation in PET-CT.")
    parser.add_argument("--version", action="version", version=f"osteoseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    phantom = commands.add_parser("phantom", help="generate a synthetic PET-CT cohort with Label A and Label B")
    phantom.add_argument("out", help="output folder (created; must be empty unless --force)")
    phantom.add_argument("--cases", type=int, default=20, help="number of cases (default 20)")
    phantom.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    phantom.add_argument("--size", default="small", help="small (96x96x40, for tests) or full (512x512x160)")
    phantom.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="custom CT grid in voxels")
    phantom.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="custom CT spacing, mm")
    phantom.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    phantom.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    phantom.add_argument("--no-overview", action="store_true", help="do not write overview.png")
    phantom.set_defaults(run=_phantom)

    _add_cohort_commands(commands)
    add_train_command(commands)
    add_crossval_command(commands)
    add_evaluate_command(commands)
    add_segment_command(commands)
    add_bench_command(commands)

    suv = commands.add_parser("suv", help="convert a DICOM PET series to SUVbw and show how")
    suv.add_argument("folder", help="folder with the PET series")
    suv.add_argument("--series", help="SeriesInstanceUID, when the folder holds several PET series")
    suv.add_argument("--out", help="write the SUV image here (.nii.gz, .nrrd, ...)")
    suv.set_defaults(run=_suv)

    align = commands.add_parser("align", help="bring PET onto the CT grid (resample or rigid registration)")
    align.add_argument("--ct", required=True)
    align.add_argument("--pet", required=True)
    align.add_argument("--method", default="resample", help="resample (one frame of reference) or rigid")
    align.add_argument("--out", required=True, help="output folder")
    align.set_defaults(run=_align)

    demo = commands.add_parser("demo", help="the whole product end to end on the phantom (a few minutes on a CPU)")
    demo.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    demo.add_argument("--cases", type=int, help="phantom cases (default 16)")
    demo.add_argument("--folds", type=int, help="cross-validation folds (default 3)")
    demo.add_argument("--epochs", type=int, help="training epochs per model (default 10)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one clear line and exit with status 2."""
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except OsteoSegError as error:
        print(f"osteoseg: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
