"""Benchmark: which model to deploy, and how far a cross-validation estimate can be trusted.

    .venv/bin/python benchmarks/deployment.py COHORT --label tumour --out DIR \
        [--outer 5] [--parts N] [--folds 5] [--width 8] [--size 128] [--epochs 10] [--learning-rate 1e-3] [--threads N]

Nested: the cohort's patients are cut into `--outer` parts; each part in turn is held out and never
used, and on the other patients (the "site's cohort") are trained
  - a k-fold cross-validation (`osteoseg crossval`): its estimate is the mean 3D Dice over those patients,
  - the k fold models as one ensemble (`crossval --export-set`),
  - the default hold-out split model (`osteoseg train`, 7:1:2),
  - the every-patient model (`osteoseg train --fold all`, 7:1 for early stopping, no test share).
The three deployable models are scored on the held-out patients. Printed: per outer part the
estimate and the held-out means; over all held-out patients each model's Dice, the paired Wilcoxon
tests between models (by patient), and each model's held-out Dice minus the estimate of the
cross-validation that could have been quoted for it (mean over patients, 95% bootstrap CI).
Every model is kept under DIR; running the same command again re-uses them (a killed run resumes).
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
from OsteoSegLib.evaluation.cross_validation import ModelKey, cross_validate, score_patient
from OsteoSegLib.evaluation.statistics import bootstrap_ci, paired_wilcoxon
from OsteoSegLib.model.devices import autocast_dtype, choose_device
from OsteoSegLib.model.ensemble import ModelGroup
from OsteoSegLib.model.package import CARD_FILE, load_model_package
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.progress import TerminalProgress
from OsteoSegLib.training.train import ALL_PATIENTS, TrainingSettings, train_model

MODELS = ("ensemble", "default_split", "fold_all")


def sub_cohort(cohort: Cohort, case_ids) -> Cohort:
    """The same cohort restricted to some patients (files stay where they are)."""
    keep = set(case_ids)
    return replace(cohort, cases=[case for case in cohort.cases if case.case_id in keep])


def trained(cohort: Cohort, settings: TrainingSettings, folder: Path, progress):
    """A finished model is loaded; otherwise trained (or resumed)."""
    if not (folder / CARD_FILE).is_file():
        train_model(cohort, settings, folder, resume=folder.exists(), progress=progress)
    return load_model_package(folder)


def outer_part(cohort: Cohort, held_out, settings: TrainingSettings, folds: int, out: Path, device, progress) -> dict:
    """One outer part: the cross-validation's estimate, and each deployable model's held-out Dice."""
    inner = sub_cohort(cohort, [c.case_id for c in cohort.cases if c.case_id not in held_out])
    result = cross_validate(inner, [settings.label], [settings.inputs], folds, settings, out / "crossval",
                            progress=progress)
    estimate = float(np.mean([row["dice"] for row in result.rows]))
    inputs_name = "+".join(settings.inputs)
    fold_models = [load_model_package(out / "crossval" / "models" / f"fold{k}" / f"{settings.label}_{inputs_name}")
                   for k in range(folds)]
    models = {"ensemble": ModelGroup(fold_models),
              "default_split": trained(inner, settings, out / "default_split", progress),
              "fold_all": trained(inner, replace(settings, fold=ALL_PATIENTS), out / "fold_all", progress)}
    dtype = autocast_dtype(device, settings.precision)
    held_out_dice = {}
    for name, model in models.items():
        key = ModelKey(0, settings.label, tuple(settings.inputs))
        held_out_dice[name] = {}
        for case_id in held_out:
            rows, _ = score_patient(cohort, case_id, 0, {key: model}, device, dtype, None)
            held_out_dice[name][case_id] = next(r["dice"] for r in rows if r["reference"] == settings.label)
    return {"held_out": list(held_out), "crossval_estimate": estimate,
            "crossval_patients": len(result.rows), "held_out_dice": held_out_dice}


def summary(parts: list[dict]) -> dict:
    """Pooled over every held-out patient: Dice per model, paired tests, gap to the estimate."""
    dice = {name: {c: d for part in parts for c, d in part["held_out_dice"][name].items()} for name in MODELS}
    gaps = {name: np.array([d - part["crossval_estimate"] for part in parts
                            for d in part["held_out_dice"][name].values()]) for name in MODELS}
    return {"patients": len(dice["ensemble"]),
            "crossval_estimate_mean": float(np.mean([p["crossval_estimate"] for p in parts])),
            "held_out_mean": {n: float(np.mean(list(dice[n].values()))) for n in MODELS},
            "gap_to_estimate": {n: {"mean": float(gaps[n].mean()), "ci95": bootstrap_ci(gaps[n])} for n in MODELS},
            "paired": {f"{a} vs {b}": paired_wilcoxon(dice[a], dice[b])
                       for a, b in (("ensemble", "fold_all"), ("ensemble", "default_split"),
                                    ("fold_all", "default_split"))}}


def print_table(parts: list[dict], pooled: dict) -> None:
    print("\n| outer part | held out | CV estimate | ensemble | default split | fold all |")
    print("|---|---|---|---|---|---|")
    for index, part in enumerate(parts):
        means = [np.mean(list(part["held_out_dice"][n].values())) for n in MODELS]
        print(f"| {index} | {len(part['held_out'])} | {100 * part['crossval_estimate']:.1f} | "
              + " | ".join(f"{100 * m:.1f}" for m in means) + " |")
    print(f"\nheld-out patients: {pooled['patients']}; mean CV estimate {100 * pooled['crossval_estimate_mean']:.1f}")
    for name in MODELS:
        gap = pooled["gap_to_estimate"][name]
        print(f"  {name}: held-out Dice {100 * pooled['held_out_mean'][name]:.1f}; minus estimate "
              f"{100 * gap['mean']:+.1f} (95% CI {100 * gap['ci95'][0]:+.1f} to {100 * gap['ci95'][1]:+.1f})")
    for pair, test in pooled["paired"].items():
        print(f"  {pair}: median difference {100 * test['median_difference']:+.1f}, Wilcoxon p = {test['p_value']:.3g} "
              f"(n = {test['n']})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort")
    parser.add_argument("--label", required=True)
    parser.add_argument("--inputs", default="ct+pet")
    parser.add_argument("--out", required=True)
    parser.add_argument("--outer", type=int, default=5)
    parser.add_argument("--parts", type=int, default=None, help="run only the first N outer parts (default: all)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    arguments = parser.parse_args(argv)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    cohort = load_cohort(arguments.cohort)
    settings = TrainingSettings(label=arguments.label, inputs=tuple(arguments.inputs.split("+")),
                                base_width=arguments.width, epochs=arguments.epochs,
                                learning_rate=arguments.learning_rate, device=arguments.device,
                                preprocess=PreprocessSettings(size=arguments.size))
    device, progress, out = choose_device(arguments.device), TerminalProgress(), Path(arguments.out)
    outer = kfold_splits([case.case_id for case in cohort.cases], arguments.outer, seed=1)
    parts = []
    for index, split in enumerate(outer[:arguments.parts]):
        part_file = out / f"outer{index}" / "scores.json"
        if part_file.is_file():
            parts.append(json.loads(part_file.read_text()))
            continue
        progress.message(f"outer part {index}: holding out {', '.join(split.test)}")
        part = outer_part(cohort, split.test, settings, arguments.folds, out / f"outer{index}", device, progress)
        part_file.write_text(json.dumps(part, indent=1))
        parts.append(part)
    pooled = summary(parts)
    print_table(parts, pooled)
    print(json.dumps({"parts": parts, "summary": pooled}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
