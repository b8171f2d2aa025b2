"""The demo: everything that exists, end to end, on the embedded phantom.

phantom cohort -> overview figure -> a headless Slicer scene for one case (CT in the bone window,
PET on the CT grid, labels as editable segments) -> .seg.nrrd (re-read and checked) and a .mrb scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import mrml
from .errors import OsteoSegError
from .figures import write_cohort_case_overview
from .phantom import generate_cohort, settings_for
from .phantom.writer import check_output_folder
from .scene import load_case

DEMO_CASES = 8
DEMO_SEED = 0


@dataclass
class DemoResult:
    cohort_folder: Path
    overview_png: Path
    segmentation_file: Path
    scene_file: Path
    agreement: list[tuple[str, dict]] = field(default_factory=list)


def run_demo(out: str | Path, *, force: bool = False, log=print) -> DemoResult:
    """Run the demo into `out` (refuses a non-empty folder unless forced)."""
    out = Path(out).resolve()
    check_output_folder(out, force)
    log(f"1/3 Generating a phantom cohort of {DEMO_CASES} small cases (seed {DEMO_SEED}) ...")
    cohort = generate_cohort(out / "cohort", DEMO_CASES, DEMO_SEED, settings_for("small"), force=True)
    case = next((c for c in cohort.cases if c.metadata["agreement"]["volume_ml"]["truth"] > 0), None)
    if case is None:
        raise OsteoSegError("the demo cohort has no case with a lesion", path=cohort.root)
    overview = out / f"{case.case_id}_overview.png"
    write_cohort_case_overview(cohort, case, overview)

    log(f"2/3 Loading {case.case_id} into a headless Slicer scene ...")
    context = mrml.create_headless_context()
    nodes = load_case(context, cohort, case)
    segmentation_file = mrml.save_segmentation(context, nodes.labels, out / f"{case.case_id}_labels.seg.nrrd")
    reloaded = mrml.masks_from_segmentation(
        context, mrml.load_segmentation(context, segmentation_file), nodes.ct)
    original = mrml.masks_from_segmentation(context, nodes.labels, nodes.ct)
    if reloaded.keys() != original.keys() or any((reloaded[k] != original[k]).any() for k in original):
        raise OsteoSegError("the segmentation read back differs from what was written", path=segmentation_file)

    log("3/3 Saving the scene ...")
    scene_file = mrml.save_scene_bundle(context, out / f"{case.case_id}_scene.mrb")
    return DemoResult(cohort.root, overview, segmentation_file, scene_file,
                      [(c.case_id, c.metadata["agreement"]) for c in cohort.cases])


def describe(result: DemoResult) -> str:
    """A short report of what the demo produced."""
    lines = ["", "Inter-source agreement per case (Label A vs Label B, voxel-wise on the CT grid):",
             f"{'case':<10}{'kappa':>8}{'Dice':>8}{'A mL':>9}{'B mL':>9}{'truth mL':>10}"]
    for case_id, agreement in result.agreement:
        volumes = agreement["volume_ml"]
        if volumes["truth"] == 0:
            lines.append(f"{case_id:<10}{'(no lesion: both labels empty)':>44}")
            continue
        lines.append(f"{case_id:<10}{agreement['kappa_A_B']:>8.3f}{agreement['dice_A_B']:>8.3f}"
                     f"{volumes['A']:>9.1f}{volumes['B']:>9.1f}{volumes['truth']:>10.1f}")
    lines += ["", "Produced:",
              f"  cohort (cohort.json + one folder per case): {result.cohort_folder}",
              f"  overview figure (CT, PET, A, B, truth):     {result.overview_png}",
              f"  segmentation for Slicer (.seg.nrrd):        {result.segmentation_file}",
              f"  Slicer scene (open in Slicer):              {result.scene_file}",
              "", "Training, evaluation and the Segment button arrive with the next issues; "
              "this demo runs everything that exists today."]
    return "\n".join(lines)
