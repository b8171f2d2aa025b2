"""The `osteoseg` command. Also reached from Slicer's headless Python through OsteoSegTrain.py."""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__
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
    from .demo import describe, run_demo

    print(describe(run_demo(arguments.out, force=arguments.force)))
    return 0


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

    demo = commands.add_parser("demo", help="run everything that exists end to end on the phantom")
    demo.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--force", action="store_true", help="replace a non-empty output folder")
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
