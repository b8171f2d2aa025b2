"""`osteoseg crossval`: k-fold cross-validation of every (label source x inputs) model, then the report."""

from __future__ import annotations

import shlex
import sys

from ..model.devices import DEVICE_CHOICES
from .command import add_command
from .train import add_training_options, training_settings_from

REPORT_FOLDER = "report"


CROSSVAL_OUTPUTS = ("models", "predictions", REPORT_FOLDER)


def run_crossval(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..evaluation.cross_validation import cross_validate
    from ..evaluation.report import write_report
    from ..model.slice_data import parse_inputs
    from ..outputs import OutputFolder
    from ..progress import TerminalProgress

    inputs = [parse_inputs(text) for text in arguments.inputs]
    settings = training_settings_from(arguments)
    cohort = load_cohort(arguments.cohort)
    with OutputFolder(arguments.out, inputs=[cohort.root], command="crossval") as folder:
        if arguments.force:
            folder.clear()
        folder.refuse_foreign("cross-validation folder")
        if (folder.path / REPORT_FOLDER).exists():
            raise OsteoSegError("a report is already there; pass --force to start the cross-validation over",
                                path=folder.path / REPORT_FOLDER)
        folder.record(*CROSSVAL_OUTPUTS)
        result = cross_validate(cohort, arguments.labels, inputs, arguments.folds, settings, folder.path,
                                split_seed=settings.split_seed, progress=TerminalProgress())
        report = write_report(result, folder.path / REPORT_FOLDER,
                              command=shlex.join(["osteoseg", *sys.argv[1:]]))
    print(f"report: {report / 'report.md'}")
    print(f"models: {folder.path / 'models'}   predictions: {folder.path / 'predictions'}")
    return 0


def run_evaluate(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..evaluation.cross_validation import evaluate_model_set
    from ..evaluation.report import write_report
    from ..model.package import load_model_set
    from ..outputs import OutputFolder
    from ..progress import TerminalProgress

    cohort = load_cohort(arguments.cohort)
    models = load_model_set(arguments.models)
    with OutputFolder(arguments.out, inputs=[cohort.root, arguments.models], command="evaluate") as folder:
        if arguments.force:
            folder.clear()
        folder.refuse_foreign("evaluation folder")
        if (folder.path / REPORT_FOLDER).exists():   # before hours of prediction, not after
            raise OsteoSegError("a report is already there; pass --force to replace it",
                                path=folder.path / REPORT_FOLDER)
        folder.record("predictions", REPORT_FOLDER)
        result = evaluate_model_set(cohort, models, folder.path, device=arguments.device, progress=TerminalProgress())
        report = write_report(result, folder.path / REPORT_FOLDER, command=shlex.join(["osteoseg", *sys.argv[1:]]))
    print(f"report: {report / 'report.md'}")
    return 0


def add_evaluate_command(commands) -> None:
    evaluate = add_command(
        commands, "evaluate", summary="Score a fixed model set on every case of a cohort (an external evaluation).",
        details="Every case is segmented by every model and scored in 3D against every label source; the report "
                "has the same tables as cross-validation.",
        examples=["osteoseg evaluate new-site-cohort --models model-set --out evaluation"])
    evaluate.add_argument("cohort", help="cohort folder (with cohort.json)")
    evaluate.add_argument("--models", required=True, help="model set: a folder of model packages")
    evaluate.add_argument("--out", required=True, help="folder for predictions/ and report/")
    evaluate.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                          help="cuda, mps or cpu; auto takes the first present")
    evaluate.add_argument("--force", action="store_true",
                          help="replace an earlier evaluation in --out (only what OsteoSeg wrote)")
    evaluate.set_defaults(run=run_evaluate)


def add_crossval_command(commands) -> None:
    crossval = add_command(
        commands, "crossval", summary="k-fold cross-validation: the modality table and the cross-evaluation matrix.",
        details="Trains every (fold, label source, inputs) model, predicts every test patient once per model, "
                "scores each prediction in 3D against every label source, and writes OUT/report (report.md, "
                "report.json, patients.csv, figures). Finished models in OUT/models are re-used, so running the "
                "same command again continues an interrupted cross-validation.",
        examples=["osteoseg crossval my-cohort --labels A B --inputs ct pet ct+pet --folds 5 --out cv",
                  "osteoseg crossval sts --labels tumour --folds 5 --width 8 --size 128 --epochs 10 --out sts-cv"])
    crossval.add_argument("cohort", help="cohort folder (with cohort.json)")
    crossval.add_argument("--labels", nargs="+", default=["A", "B"], help="label sources to train on")
    crossval.add_argument("--inputs", nargs="+", default=["ct", "pet", "ct+pet"], help="input sets to compare")
    crossval.add_argument("--folds", type=int, default=5, help="number of folds")
    crossval.add_argument("--out", required=True, help="folder for models/, predictions/ and report/")
    crossval.add_argument("--force", action="store_true",
                          help="start over: remove what OsteoSeg wrote in --out (nothing else)")
    add_training_options(crossval)
    crossval.set_defaults(run=run_crossval)
