"""Benchmark: does semi-supervised training (modality teachers, after MuDuo) help, and which parts matter.

    .venv/bin/python benchmarks/semi_supervised.py phantom --out DIR [--seeds 0 1 2] [--threads N]
    .venv/bin/python benchmarks/semi_supervised.py sts COHORT --label tumour --out DIR [--labelled 5] [--folds-run N]

phantom: per seed, 6 labelled cases (each with a lesion) and 96 unlabelled ones (the first 24 of them for the middle
setting); Model A and Model B each trained supervised only (0 unlabelled), and semi-supervised with
24 and 96 unlabelled cases; ablations at 96 (seed 0 only unless --ablation-seeds): the CT teacher
alone, the PET teacher alone, no filter (all prompted slices), a fixed agreement threshold (0.5)
instead of the top half. Every model is tested on the same 12 held-out cases (another seed) against
its own label source and the phantom's true extent. Width 8, 96 x 96, 20 epochs, lr 1e-3;
`--fold all` splits (5 train, 1 validates).

sts: the real cohort, 5 folds; in each fold `--labelled` training patients keep their contour and
the others are unlabelled; semi-supervised against supervised on the same labelled patients and
against supervised on every training patient, all tested on the fold's test patients. Width 8,
128 x 128, 10 epochs, lr 1e-3, as the cross-validation in the docs.

Models are kept under DIR and re-used, so a killed run continues. Prints tables and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OsteoSeg"))

from OsteoSegLib.data.cohort import Cohort, load_cohort
from OsteoSegLib.data.splits import kfold_splits
from OsteoSegLib.evaluation.cross_validation import ModelKey, score_patient
from OsteoSegLib.evaluation.statistics import bootstrap_ci, paired_wilcoxon
from OsteoSegLib.model.devices import autocast_dtype, choose_device
from OsteoSegLib.model.package import CARD_FILE, load_model_package
from OsteoSegLib.model.preprocess import CHANNEL_ORDER, PreprocessSettings
from OsteoSegLib.phantom import generate_cohort, settings_for
from OsteoSegLib.progress import TerminalProgress
from OsteoSegLib.training.semi_supervised import SemiSupervisedSettings
from OsteoSegLib.training.teachers import UnlabelledCases
from OsteoSegLib.training.train import TrainingSettings, train_model

PHANTOM = TrainingSettings(base_width=8, epochs=20, learning_rate=1e-3, fold="all",
                           preprocess=PreprocessSettings(size=96))
STS = TrainingSettings(base_width=8, epochs=10, learning_rate=1e-3, preprocess=PreprocessSettings(size=128))
ABLATIONS = {"ct teacher alone": SemiSupervisedSettings(teachers=("ct",)),
             "pet teacher alone": SemiSupervisedSettings(teachers=("pet",)),
             "no filter": SemiSupervisedSettings(selection="all"),
             "fixed threshold 0.5": SemiSupervisedSettings(selection="threshold")}


def trained(cohort: Cohort, settings: TrainingSettings, folder: Path, progress, split=None, unlabelled=None):
    """A finished model is loaded; otherwise trained (or resumed)."""
    if not (folder / CARD_FILE).is_file():
        train_model(cohort, settings, folder, resume=folder.exists(), progress=progress, split=split,
                    unlabelled=unlabelled)
    return load_model_package(folder)


def scores(model, test: Cohort, case_ids, label: str, device) -> dict[str, dict[str, dict]]:
    """reference -> case -> metrics of one model on the test cases."""
    key = ModelKey(0, label, CHANNEL_ORDER)
    found: dict[str, dict[str, dict]] = {}
    for case_id in case_ids:
        rows, _ = score_patient(test, case_id, 0, {key: model}, device, autocast_dtype(device), None)
        for row in rows:
            found.setdefault(row["reference"], {})[case_id] = {m: row[m] for m in ("dice", "sensitivity")}
    return found


def mean(values: dict[str, dict], metric: str) -> float:
    """Mean over cases where the metric is defined (sensitivity is not on a lesion-free case)."""
    defined = [v[metric] for v in values.values() if v[metric] is not None and not np.isnan(v[metric])]
    return float(np.mean(defined)) if defined else float("nan")


# ---------------------------------------------------------------- phantom


def with_lesion(cases):
    """The phantom's labelled cases that have a lesion: a site outlines patients with the disease, and a
    lesion-free validation patient would make early stopping meaningless with 6 labelled cases."""
    return [case for case in cases if case.metadata["phantom"]["lesion"] is not None]


def phantom_seed(seed: int, test: Cohort, out: Path, device, progress, ablations: bool) -> dict:
    """Every variant of one seed: label -> variant -> reference -> case -> metrics."""
    cohort_folder = out / f"seed{seed}" / "cohort"
    cohort = load_cohort(cohort_folder) if (cohort_folder / "cohort.json").is_file() else generate_cohort(
        cohort_folder, 12, 100 + seed, settings_for("small"), unlabelled=96)
    labelled = replace(cohort, cases=with_lesion([c for c in cohort.cases if c.labels])[:6])
    unlabelled = [(cohort, c.case_id) for c in cohort.cases if not c.labels]
    results = {}
    for label in "AB":
        folder = out / f"seed{seed}" / label
        base = replace(PHANTOM, label=label, seed=seed)
        models = {"supervised": trained(labelled, base, folder / "supervised", progress)}
        semi = replace(base, semi_supervised=SemiSupervisedSettings())
        models["semi 96"] = trained(labelled, semi, folder / "semi96", progress, unlabelled=UnlabelledCases(unlabelled))
        teachers = {role: str(folder / "semi96" / "training" / "teachers" / role) for role in ("ct", "pet")}
        models["semi 24"] = trained(labelled, semi, folder / "semi24", progress,
                                    unlabelled=UnlabelledCases(unlabelled[:24], teachers))
        for name, variant in (ABLATIONS if ablations else {}).items():
            models[name] = trained(labelled, replace(base, semi_supervised=variant), folder / name.replace(" ", "-"),
                                   progress, unlabelled=UnlabelledCases(unlabelled, teachers))
        results[label] = {name: scores(model, test, [c.case_id for c in test.cases], label, device)
                          for name, model in models.items()}
    return results


def phantom_summary(per_seed: dict[int, dict]) -> dict:
    """Per label and variant: mean Dice against the label source and the truth, sensitivity, and the
    gain over supervised-only per seed (paired by test case)."""
    summary = {}
    for label in "AB":
        variants = dict.fromkeys(v for result in per_seed.values() for v in result[label])
        for variant in variants:
            entry = summary.setdefault(label, {}).setdefault(variant, {})
            for reference in (label, "truth"):
                by_seed = {seed: result[label][variant][reference] for seed, result in per_seed.items()
                           if variant in result[label]}
                supervised = {seed: result[label]["supervised"][reference] for seed, result in per_seed.items()}
                entry[reference] = {
                    "dice_per_seed": [mean(v, "dice") for v in by_seed.values()],
                    "sensitivity_per_seed": [mean(v, "sensitivity") for v in by_seed.values()],
                    "gain_per_seed": [mean(by_seed[s], "dice") - mean(supervised[s], "dice") for s in by_seed]}
    return summary


def print_phantom(summary: dict) -> None:
    for label, variants in summary.items():
        print(f"\nModel {label} (12 held-out phantom cases; per seed)")
        print("| variant | Dice vs Label | gain vs supervised | Dice vs truth | gain vs truth | sensitivity vs truth |")
        print("|---|---|---|---|---|---|")
        for variant, entry in variants.items():
            own, truth = entry[label], entry["truth"]

            def cell(values):
                return " / ".join(f"{100 * v:.1f}" for v in values)

            print(f"| {variant} | {cell(own['dice_per_seed'])} | {cell(own['gain_per_seed'])} | "
                  f"{cell(truth['dice_per_seed'])} | {cell(truth['gain_per_seed'])} | "
                  f"{cell(truth['sensitivity_per_seed'])} |")


def run_phantom(arguments) -> dict:
    out, progress, device = Path(arguments.out), TerminalProgress(), choose_device(arguments.device)
    test_folder = out / "test"
    test = load_cohort(test_folder) if (test_folder / "cohort.json").is_file() else generate_cohort(
        test_folder, 12, 999, settings_for("small"))
    per_seed = {}
    for seed in arguments.seeds:
        part = out / f"seed{seed}" / "scores.json"
        if not part.is_file():
            part.parent.mkdir(parents=True, exist_ok=True)
            ablations = seed in arguments.ablation_seeds
            part.write_text(json.dumps(phantom_seed(seed, test, out, device, progress, ablations)))
        per_seed[seed] = json.loads(part.read_text())
    summary = phantom_summary(per_seed)
    print_phantom(summary)
    return summary


# ---------------------------------------------------------------- real STS


def sts_fold(cohort: Cohort, split, fold: int, arguments, out: Path, device, progress) -> dict:
    """One fold: supervised on the labelled few, semi-supervised with the rest unlabelled, supervised on all."""
    training = list(split.train) + list(split.validation)
    few, rest = training[:arguments.labelled], training[arguments.labelled:]
    base = replace(STS, label=arguments.label, folds=None, fold="all")
    few_cohort = replace(cohort, cases=[cohort.case(i) for i in few])
    all_cohort = replace(cohort, cases=[cohort.case(i) for i in training])
    folder = out / f"fold{fold}"
    models = {
        "supervised, labelled few": trained(few_cohort, base, folder / "few", progress),
        "semi-supervised": trained(few_cohort, replace(base, semi_supervised=SemiSupervisedSettings()),
                                   folder / "semi", progress, unlabelled=UnlabelledCases([(cohort, i) for i in rest])),
        "supervised, every training patient": trained(all_cohort, base, folder / "all", progress)}
    return {"labelled": few, "unlabelled": rest, "test": list(split.test),
            "scores": {name: scores(model, cohort, split.test, arguments.label, device)[arguments.label]
                       for name, model in models.items()}}


def run_sts(arguments) -> dict:
    out, progress, device = Path(arguments.out), TerminalProgress(), choose_device(arguments.device)
    cohort = load_cohort(arguments.cohort)
    folds = []
    for fold, split in enumerate(kfold_splits([c.case_id for c in cohort.cases], 5, seed=0)[:arguments.folds_run]):
        part = out / f"fold{fold}" / "scores.json"
        if not part.is_file():
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_text(json.dumps(sts_fold(cohort, split, fold, arguments, out, device, progress)))
        folds.append(json.loads(part.read_text()))
    dice = {name: {c: v["dice"] for f in folds for c, v in f["scores"][name].items()} for name in folds[0]["scores"]}
    semi, few, every = (dice[n] for n in ("semi-supervised", "supervised, labelled few",
                                          "supervised, every training patient"))
    gains = np.array([semi[c] - few[c] for c in sorted(semi)])
    summary = {"patients": len(semi), "mean_dice": {n: float(np.mean(list(d.values()))) for n, d in dice.items()},
               "gain_over_few": {"mean": float(gains.mean()), "ci95": bootstrap_ci(gains),
                                 "wilcoxon": paired_wilcoxon(semi, few)},
               "semi_vs_every": paired_wilcoxon(semi, every)}
    print(f"\nreal STS, {arguments.labelled} labelled patients per fold, {summary['patients']} test patients")
    for name, value in summary["mean_dice"].items():
        print(f"  {name}: Dice {100 * value:.1f}")
    gain = summary["gain_over_few"]
    print(f"  semi-supervised minus supervised (same labelled): {100 * gain['mean']:+.1f} "
          f"(95% CI {100 * gain['ci95'][0]:+.1f} to {100 * gain['ci95'][1]:+.1f}), "
          f"Wilcoxon p = {gain['wilcoxon']['p_value']:.3g}")
    return {"folds": folds, "summary": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    phantom = commands.add_parser("phantom")
    phantom.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    phantom.add_argument("--ablation-seeds", type=int, nargs="*", default=[0],
                         help="seeds that also train the ablations (each adds 8 models)")
    sts = commands.add_parser("sts")
    sts.add_argument("cohort")
    sts.add_argument("--label", required=True)
    sts.add_argument("--labelled", type=int, default=5)
    sts.add_argument("--folds-run", type=int, default=None, help="run only the first N of the 5 folds")
    for command in (phantom, sts):
        command.add_argument("--out", required=True)
        command.add_argument("--device", default="auto")
        command.add_argument("--threads", type=int)
    arguments = parser.parse_args(argv)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    figures = run_phantom(arguments) if arguments.command == "phantom" else run_sts(arguments)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
