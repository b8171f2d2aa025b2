"""`osteoseg crossval`: k-fold cross-validation of every (label source x inputs) model, then the report."""

from __future__ import annotations

import shlex
import sys

from ..model.devices import DEVICE_CHOICES
from .command import add_command
from .train import add_semi_supervised_options, add_training_options, training_settings_from

REPORT_FOLDER = "report"


CROSSVAL_OUTPUTS = ("models", "predictions", REPORT_FOLDER)


def run_crossval(arguments) -> int:
    from dataclasses import replace

    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..evaluation.cross_validation import cross_validate
    from ..evaluation.report import write_report
    from ..model.slice_data import parse_inputs
    from ..outputs import OutputFolder, check_not_over_inputs, check_writable
    from ..progress import TerminalProgress

    inputs = [parse_inputs(text) for text in arguments.inputs]
    exported = export_inputs(arguments, inputs)
    settings = training_settings_from(arguments)
    cohort = load_cohort(arguments.cohort)
    if arguments.export_set:
        check_not_over_inputs(arguments.export_set, [cohort.root, arguments.out])
        check_writable(arguments.export_set)   # a read-only share is refused now, not after the training
    with OutputFolder(arguments.out, inputs=[cohort.root], command="crossval") as folder:
        report_exists = (folder.path / REPORT_FOLDER).exists()
        if arguments.force:
            folder.clear()
        folder.refuse_foreign("cross-validation folder")
        if report_exists and not arguments.force and not arguments.export_set:
            raise OsteoSegError("a report is already there; pass --force to start the cross-validation over",
                                path=folder.path / REPORT_FOLDER)
        if not report_exists or arguments.force:
            folder.record(*CROSSVAL_OUTPUTS)
            others = [load_cohort(path) for path in arguments.unlabelled or []]
            result = cross_validate(cohort, arguments.labels, inputs, arguments.folds,
                                    replace(settings, semi_supervised=None), folder.path,
                                    split_seed=settings.split_seed, progress=TerminalProgress(),
                                    semi_supervised=settings.semi_supervised, unlabelled_cohorts=others)
            report = write_report(result, folder.path / REPORT_FOLDER,
                                  command=shlex.join(["osteoseg", *sys.argv[1:]]))
            print(f"report: {report / 'report.md'}")
            print(f"models: {folder.path / 'models'}   predictions: {folder.path / 'predictions'}")
        if arguments.export_set:
            export_set(arguments, settings, exported, folder.path, cohort)
    return 0


def export_inputs(arguments, inputs: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The input set whose fold models --export-set copies: --export-inputs, else dual-channel when
    cross-validated, else the only one."""
    from ..errors import OsteoSegError
    from ..model.slice_data import parse_inputs

    if arguments.export_inputs:
        chosen = parse_inputs(arguments.export_inputs)
        if chosen not in inputs:
            raise OsteoSegError(f"--export-inputs {arguments.export_inputs} is not among --inputs "
                                f"({' '.join(arguments.inputs)})")
        return chosen
    if ("ct", "pet") in inputs or len(inputs) == 1:
        return ("ct", "pet") if ("ct", "pet") in inputs else inputs[0]
    if arguments.export_set:
        raise OsteoSegError("several input sets were cross-validated and none is ct+pet; say which to export "
                            "with --export-inputs")
    return inputs[0]


def export_set(arguments, settings, inputs: tuple[str, ...], crossval_folder, cohort) -> None:
    from ..evaluation.model_export import export_fold_ensemble

    written = export_fold_ensemble(crossval_folder / "models", arguments.labels, inputs, arguments.folds,
                                   settings, arguments.export_set, force=arguments.force,
                                   inputs_of_run=[cohort.root, crossval_folder])
    print(f"model set: {arguments.export_set} ({len(written)} models: each label source's {arguments.folds} "
          f"fold models of {'+'.join(inputs)}, averaged when used)")


def run_evaluate(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..evaluation.comparison import check_comparable, compare_with_crossval, read_report
    from ..evaluation.cross_validation import evaluate_model_set
    from ..evaluation.report import write_report
    from ..model.ensemble import group_models
    from ..model.package import load_model_set
    from ..outputs import OutputFolder
    from ..progress import TerminalProgress

    cohort = load_cohort(arguments.cohort)
    models = load_model_set(arguments.models)
    crossval = None
    if arguments.compare_crossval:   # checked before hours of prediction, not after
        crossval = read_report(arguments.compare_crossval)
        check_comparable(crossval, sorted({(g.label_source, "+".join(g.inputs)) for g in group_models(models)}),
                         arguments.compare_crossval)
    with OutputFolder(arguments.out, inputs=[cohort.root, arguments.models], command="evaluate") as folder:
        if arguments.force:
            folder.clear()
        folder.refuse_foreign("evaluation folder")
        if (folder.path / REPORT_FOLDER).exists():
            raise OsteoSegError("a report is already there; pass --force to replace it",
                                path=folder.path / REPORT_FOLDER)
        folder.record("predictions", REPORT_FOLDER)
        result = evaluate_model_set(cohort, models, folder.path, device=arguments.device, progress=TerminalProgress())
        comparison = None if crossval is None else compare_with_crossval(result.rows, result.model_cards, crossval)
        report = write_report(result, folder.path / REPORT_FOLDER, command=shlex.join(["osteoseg", *sys.argv[1:]]),
                              comparison=comparison)
    print(f"report: {report / 'report.md'}")
    if comparison is not None:
        print_comparison(comparison)
    return 0


def print_comparison(comparison: dict) -> None:
    """The Dice lines of the comparison, for the terminal."""
    for entry in (e for e in comparison["entries"] if e["metric"] == "dice"):
        low, high = entry["ci95"]
        print(f"Model {entry['model']} {entry['inputs']}: Dice {100 * entry['external']['mean']:.1f} here, "
              f"{100 * entry['crossval']['mean']:.1f} in cross-validation; difference "
              f"{100 * entry['difference']:+.1f} (95% CI {100 * low:+.1f} to {100 * high:+.1f})")
    for line in comparison["settings_differences"]:
        print(f"note: not the same configuration: {line}")


def add_evaluate_command(commands) -> None:
    evaluate = add_command(
        commands, "evaluate", summary="Score a fixed model set on every case of a cohort (an external evaluation).",
        details="Every case is segmented by every model and scored in 3D against every label source; the report "
                "has the same tables as cross-validation.",
        examples=["osteoseg evaluate new-site-cohort --models model-set --out evaluation",
                  "osteoseg evaluate new-site-cohort --models cv-ensemble --compare-crossval cv/report --out external"])
    evaluate.add_argument("cohort", help="cohort folder (with cohort.json)")
    evaluate.add_argument("--models", required=True, help="model set: a folder of model packages")
    evaluate.add_argument("--out", required=True, help="folder for predictions/ and report/")
    evaluate.add_argument("--compare-crossval", metavar="REPORT",
                          help="a crossval report (folder or report.json) of the same configuration: its estimate "
                               "is shown beside this evaluation's, with the difference and its 95%% CI")
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
                "same command again continues an interrupted cross-validation. --export-set DIR then copies each "
                "label source's k fold models into DIR as one model set: segment, evaluate and the Slicer module "
                "average them (an ensemble); run again with --export-set after a finished cross-validation to "
                "export without retraining.",
        examples=["osteoseg crossval my-cohort --labels A B --inputs ct pet ct+pet --folds 5 --out cv",
                  "osteoseg crossval sts --labels tumour --folds 5 --width 8 --size 128 --epochs 10 --out sts-cv",
                  "osteoseg crossval my-cohort --out cv --export-set cv-ensemble",
                  "osteoseg crossval my-cohort --inputs ct pet ct+pet --semi-supervised --unlabelled more "
                  "--out cv-semi"])
    crossval.add_argument("cohort", help="cohort folder (with cohort.json)")
    crossval.add_argument("--labels", nargs="+", default=["A", "B"], help="label sources to train on")
    crossval.add_argument("--inputs", nargs="+", default=["ct", "pet", "ct+pet"], help="input sets to compare")
    crossval.add_argument("--folds", type=int, default=5, help="number of folds")
    crossval.add_argument("--out", required=True, help="folder for models/, predictions/ and report/")
    crossval.add_argument("--force", action="store_true",
                          help="start over: remove what OsteoSeg wrote in --out (nothing else)")
    crossval.add_argument("--export-set", metavar="DIR",
                          help="also write each label source's fold models into DIR as a model set (an ensemble)")
    crossval.add_argument("--export-inputs", metavar="INPUTS",
                          help="which input set's fold models --export-set copies (default: ct+pet when it was "
                               "cross-validated)")
    add_training_options(crossval)
    add_semi_supervised_options(crossval, given_teachers=False)
    crossval.set_defaults(run=run_crossval)
