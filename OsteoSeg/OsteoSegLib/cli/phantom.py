"""`osteoseg phantom`: a synthetic PET-CT cohort with Label A, Label B and the true extent."""

from __future__ import annotations

import time

from .command import add_command


def run_phantom(arguments) -> int:
    from tqdm import tqdm

    from ..data.overview import write_cohort_case_overview
    from ..outputs import OutputFolder
    from ..phantom import generate_cohort, settings_for
    from ..phantom.writer import check_request

    settings = settings_for(arguments.size, shape=arguments.shape, spacing=arguments.spacing)
    check_request(arguments.out, arguments.cases, arguments.seed, arguments.force)
    started = time.perf_counter()
    with tqdm(total=arguments.cases + arguments.unlabelled, unit="case", desc="phantom") as bar:
        cohort = generate_cohort(arguments.out, arguments.cases, arguments.seed, settings, force=arguments.force,
                                 workers=arguments.workers, progress=lambda done, total: bar.update(1),
                                 unlabelled=arguments.unlabelled)
    print(f"Wrote {len(cohort.cases)} cases to {cohort.root} in {time.perf_counter() - started:.1f} s")
    print(f"{'case':<10}{'kappa A-B':>10}{'Dice A-B':>10}{'A mL':>9}{'B mL':>9}{'truth mL':>10}  notes")
    for case in cohort.cases:
        if not case.labels:
            print(f"{case.case_id:<10}{'unlabelled':>10}")
            continue
        agreement, spec = case.metadata["agreement"], case.metadata["phantom"]
        notes = [c["kind"] for c in spec["confounders"]] + (["implant"] if spec["implant"] else [])
        if spec["lesion"] is None:
            notes.insert(0, "no lesion")
        volumes = agreement["volume_ml"]
        print(f"{case.case_id:<10}{agreement['kappa_A_B']:>10.3f}{agreement['dice_A_B']:>10.3f}"
              f"{volumes['A']:>9.1f}{volumes['B']:>9.1f}{volumes['truth']:>10.1f}  {', '.join(notes)}")
    lesion_case = next((c for c in cohort.cases if c.labels and c.metadata["phantom"]["lesion"] is not None), None)
    if lesion_case is not None and not arguments.no_overview:
        with OutputFolder(cohort.root, command="phantom") as folder:
            path = cohort.root / "overview.png"
            folder.record(path.name)   # before it is written, so a kill cannot leave it unlisted
            write_cohort_case_overview(cohort, lesion_case, path)
        print(f"Overview of {lesion_case.case_id}: {path}")
    return 0


def add_phantom_command(commands) -> None:
    phantom = add_command(
        commands, "phantom", summary="Generate a synthetic osteomyelitis PET-CT cohort with Label A and Label B.",
        details="Each case has a CT (HU), a PET (SUVbw) on its own grid with a known small misalignment, both "
                "annotators' labels and the true extent of infection. The same seed gives identical files.",
        examples=["osteoseg phantom my-phantom --cases 20 --seed 0",
                  "osteoseg phantom semi --cases 6 --unlabelled 24   # 6 labelled and 24 unlabelled cases",
                  "osteoseg phantom big --cases 1 --size full"])
    phantom.add_argument("out", help="output folder (created; must be empty unless --force)")
    phantom.add_argument("--cases", type=int, default=20, help="number of cases")
    phantom.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    phantom.add_argument("--unlabelled", type=int, default=0,
                         help="this many more cases without Label A or B (for semi-supervised training)")
    phantom.add_argument("--size", default="small", help="small (96 x 96 x 40, for tests) or full (512 x 512 x 160)")
    phantom.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="custom CT grid in voxels")
    phantom.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="custom CT spacing, mm")
    phantom.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    phantom.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    phantom.add_argument("--no-overview", action="store_true", help="do not write overview.png")
    phantom.set_defaults(run=run_phantom)
