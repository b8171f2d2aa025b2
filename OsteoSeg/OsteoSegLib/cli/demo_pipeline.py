"""The demo: the whole product, end to end, on the embedded phantom.

phantom cohort -> cross-validation of Model A / Model B with CT-only, PET-only and dual-channel
inputs (narrow network, few epochs) -> report (both tables, figures) -> a model set -> Segment one
held-out case into a Slicer segmentation (.seg.nrrd) and scene (.mrb).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data.cohort import Cohort
from ..data.io import read_image
from ..data.overview import write_cohort_case_overview
from ..errors import OsteoSegError
from ..evaluation.cross_validation import cross_validate
from ..evaluation.report import write_report
from ..inference.segment import segment_images
from ..model.package import copy_model_package, load_model_set
from ..model.preprocess import PreprocessSettings
from ..model.slice_data import recorded_transform
from ..outputs import OutputFolder
from ..phantom import generate_cohort, settings_for
from ..phantom.writer import check_output_folder
from ..progress import Progress
from ..scene import mrml
from ..scene.display import load_case
from ..scene.segment_output import write_segmentation
from ..training.train import TrainingSettings

DEMO_OUTPUTS = ("cohort", "crossval", "model-set", "segmentation")


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is; the defaults run in minutes on a 2-core laptop CPU."""

    cases: int = 16
    seed: int = 0
    folds: int = 3
    epochs: int = 10
    width: int = 8
    learning_rate: float = 1e-3   # the paper's 1e-4 needs more epochs than a demo has

    def training(self) -> TrainingSettings:
        return TrainingSettings(base_width=self.width, epochs=self.epochs, learning_rate=self.learning_rate,
                                preprocess=PreprocessSettings(size=96))


@dataclass
class DemoResult:
    cohort_folder: Path
    overview_png: Path
    report_folder: Path
    model_set: Path
    segmentation_files: dict
    scene_file: Path
    report: dict


def make_model_set(models_folder: Path, fold: int, out: Path) -> Path:
    """Fold `fold`'s dual-channel Model A and Model B, copied into one model-set folder."""
    for label in "AB":
        copy_model_package(models_folder / f"fold{fold}" / f"{label}_ct+pet", out / f"model-{label}")
    return out


def segment_case(cohort: Cohort, case_id: str, model_set: Path, out: Path) -> tuple[dict, Path]:
    """Segment a case the models never saw, as a user would, and save the scene with the result."""
    case = cohort.case(case_id)
    ct, pet = read_image(cohort.path(case.ct), case=case_id), read_image(cohort.path(case.pet), case=case_id)
    result = segment_images(ct, pet, load_model_set(model_set), transform=recorded_transform(cohort, case),
                            case=case_id)
    context = mrml.create_headless_context()
    paths = write_segmentation(context, ct, result, out, case_id, nifti=True)
    load_case(context, cohort, case)
    scene = mrml.save_scene_bundle(context, out / f"{case_id}_scene.mrb")
    return paths, scene


def run_demo(out: str | Path, *, force: bool = False, settings: DemoSettings = DemoSettings(),
             progress: Progress | None = None, log=print) -> DemoResult:
    """Run the demo into `out`: a non-empty folder is refused unless forced, and forcing removes only
    an earlier demo (what OsteoSeg wrote there)."""
    out = Path(out).resolve()
    check_output_folder(out, force)
    with OutputFolder(out, command="demo") as folder:
        if force:
            folder.clear()
        folder.refuse_foreign()
        folder.record(*DEMO_OUTPUTS)
        return _run_demo(out, folder, settings, progress, log)


def _run_demo(out: Path, folder: OutputFolder, settings: DemoSettings, progress, log) -> DemoResult:
    log(f"1/4 Generating a phantom cohort of {settings.cases} small cases (seed {settings.seed}) ...")
    cohort = generate_cohort(out / "cohort", settings.cases, settings.seed, settings_for("small"), force=True)
    case = next((c for c in cohort.cases if c.metadata["agreement"]["volume_ml"]["truth"] > 0), None)
    if case is None:
        raise OsteoSegError("the demo cohort has no case with a lesion", path=cohort.root)
    folder.record(overview_path(case.case_id, out).name)   # noted before it is written
    overview = write_overview(cohort, case.case_id, out)

    log(f"2/4 {settings.folds}-fold cross-validation: Model A and Model B x CT / PET / CT+PET "
        f"(width {settings.width}, {settings.epochs} epochs) ...")
    crossval = cross_validate(cohort, ("A", "B"), (("ct",), ("pet",), ("ct", "pet")), settings.folds,
                              settings.training(), out / "crossval", progress=progress)
    log("3/4 Writing the report ...")
    report_folder = write_report(crossval, out / "crossval" / "report", command="osteoseg demo")

    log("4/4 Segmenting a held-out case with fold 0's Model A and Model B ...")
    model_set = make_model_set(out / "crossval" / "models", 0, out / "model-set")
    held_out = next(row["case"] for row in crossval.rows if row["fold"] == 0 and row["reference_ml"] > 0)
    paths, scene = segment_case(cohort, held_out, model_set, out / "segmentation")
    import json

    report = json.loads((report_folder / "report.json").read_text())
    return DemoResult(cohort.root, overview, report_folder, model_set, paths, scene, report)


def overview_path(case_id: str, out: Path) -> Path:
    return out / f"{case_id}_overview.png"


def write_overview(cohort: Cohort, case_id: str, out: Path) -> Path:
    overview = overview_path(case_id, out)
    write_cohort_case_overview(cohort, cohort.case(case_id), overview)
    return overview


def _cell(summary: dict) -> str:
    if not summary or summary.get("n", 0) == 0:
        return "n/a"
    return f"{100 * summary['mean']:5.1f} +- {100 * summary['sd']:4.1f}"


def describe(result: DemoResult) -> str:
    """The two tables and where everything is."""
    report = result.report
    lines = ["", "Modality comparison (3D Dice %, each model tested on its own label source):",
             f"{'':<10}" + "".join(f"{name:>16}" for name in report["inputs"])]
    for label, by_inputs in report["modality_table"].items():
        lines.append(f"{'Model ' + label:<10}"
                     + "".join(f"{_cell(by_inputs[n]['dice']):>16}" for n in report["inputs"]))
    references = report["references"]
    lines += ["", f"Cross-evaluation matrix (3D Dice %, {report['matrix_inputs']} models):",
              f"{'':<10}" + "".join(f"{('on ' + r if r != 'truth' else 'on truth'):>16}" for r in references)]
    for model, row in report["cross_matrix"].items():
        lines.append(f"{'Model ' + model:<10}" + "".join(f"{_cell(row[r]):>16}" for r in references))
    lines += ["", "Produced:",
              f"  cohort (cohort.json + one folder per case): {result.cohort_folder}",
              f"  overview figure (CT, PET, A, B, truth):     {result.overview_png}",
              f"  cross-validation report:                    {result.report_folder / 'report.md'}",
              f"  model set (Model A + Model B packages):     {result.model_set}",
              f"  segmentation for Slicer (.seg.nrrd):        {result.segmentation_files['segmentation']}",
              f"  Slicer scene (open in Slicer):              {result.scene_file}"]
    return "\n".join(lines)


def quick_settings(**changes) -> DemoSettings:
    return replace(DemoSettings(), **{k: v for k, v in changes.items() if v is not None})
