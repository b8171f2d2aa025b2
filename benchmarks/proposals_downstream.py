"""Benchmark: is a model trained on label proposals as good as one trained on the real labels?

    .venv/bin/python benchmarks/proposals_downstream.py --out DIR [--train-cases 32] [--test-cases 44]

The label-proposal paper's downstream experiment, on the phantom (where the truth is known). A
training cohort (seed --seed) gets one rough input per case made from the true extent, the four
kinds of benchmarks/proposals.py in turn (dilated or eroded by 2-6 mm, its box, every third slice;
a lesion-free case gets an empty one, as a site would mark nothing). From the same cohort, Model A
and Model B are each trained on:
  labels     the real Label A / Label B (the reference an expert would save),
  rough      the rough input itself, for both (what the expert gave),
  proposals  Proposed A / Proposed B from that rough input (`osteoseg propose COHORT --rough-label`),
  and, with --clusters, proposals from a trivial grouping in place of the network (a baseline).
Every model is scored on the same held-out cohort (seed --test-seed, the cases with a lesion)
against the truth and its own label source; each arm is compared with "labels" and with "rough"
by a two-sided Wilcoxon signed-rank test paired by case, with a 95% bootstrap CI of the mean
difference. Width 8, 96 x 96, 20 epochs, lr 1e-3, "fold all" (every training case trains, one in
eight of them, with the arm's own labels, also validates for early stopping).

Cohorts, proposals and models are kept under DIR and re-used, so a killed run continues. Prints
the tables and writes summary.json (settings, revision, per-case Dice) into DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent / "OsteoSeg"))
sys.path.insert(0, str(BENCHMARKS))

from OsteoSegLib.atomic import write_text  # noqa: E402
from OsteoSegLib.data.cohort import COHORT_FILE, Cohort, load_cohort, save_cohort, with_absolute_paths  # noqa: E402
from OsteoSegLib.data.io import read_image, write_image  # noqa: E402
from OsteoSegLib.evaluation.statistics import bootstrap_ci, paired_wilcoxon  # noqa: E402
from OsteoSegLib.labels.propose import ProposalSettings  # noqa: E402
from OsteoSegLib.labels.propose_cohort import propose_cohort  # noqa: E402
from OsteoSegLib.model.devices import choose_device  # noqa: E402
from OsteoSegLib.phantom import generate_cohort, settings_for  # noqa: E402
from OsteoSegLib.progress import TerminalProgress  # noqa: E402
from proposals import KINDS, degraded, git_revision  # noqa: E402
from semi_supervised import PHANTOM, scores, trained  # noqa: E402

ROUGH = "rough"


def phantom(folder: Path, cases: int, seed: int) -> Cohort:
    """A phantom cohort, generated once and re-used."""
    if (folder / COHORT_FILE).is_file():
        return load_cohort(folder)
    return generate_cohort(folder, cases, seed, settings_for("small"))


def with_rough_inputs(cohort: Cohort, out: Path, rng: np.random.Generator) -> Cohort:
    """A copy of the cohort (images referenced where they are) with a rough input per case as label
    "rough": kind by turn among the cases with a lesion, empty for a lesion-free case."""
    if (out / COHORT_FILE).is_file():
        return load_cohort(out)
    cases, turn = [], 0
    for case in cohort.cases:
        truth_image = read_image(cohort.path(case.truth), case=case.case_id)
        truth = sitk.GetArrayFromImage(truth_image) > 0
        rough = np.zeros_like(truth)
        if truth.any():
            kind = KINDS[turn % len(KINDS)]
            amount = float(rng.uniform(2.0, 6.0)) if kind in ("dilated", "eroded") else 0.0
            rough = degraded(truth, kind, amount, tuple(reversed(truth_image.GetSpacing())))
            turn += 1
            if not rough.any():   # eroded away: the expert would have drawn the lesion smaller, not nothing
                rough = truth
        image = sitk.GetImageFromArray(rough.astype(np.uint8))
        image.CopyInformation(truth_image)
        write_image(image, out / "rough" / f"{case.case_id}.nii.gz")
        absolute = with_absolute_paths(cohort, case)
        cases.append(replace(absolute, labels={**absolute.labels, ROUGH: f"rough/{case.case_id}.nii.gz"}))
    copy = Cohort(root=out, cases=cases, name=f"{cohort.name} with rough inputs", generator=cohort.generator)
    save_cohort(copy)
    return copy


def as_labels(cohort: Cohort, sources: dict[str, str]) -> Cohort:
    """The cohort with labels A and B taken from the named sources (e.g. both from "rough")."""
    cases = [replace(case, labels={label: case.labels[source] for label, source in sources.items()})
             for case in (with_absolute_paths(cohort, c) for c in cohort.cases)]
    return replace(cohort, cases=cases)


def training_cohorts(rough: Cohort, out: Path, groupings: list[str], progress) -> dict[str, Cohort]:
    """arm -> the cohort it trains on."""
    arms = {"labels": as_labels(rough, {"A": "A", "B": "B"}), "rough": as_labels(rough, {"A": ROUGH, "B": ROUGH})}
    for grouping in groupings:
        folder = out / f"proposed-{grouping}"
        if not (folder / COHORT_FILE).is_file():
            started = time.perf_counter()
            propose_cohort(rough, ROUGH, folder, settings=ProposalSettings(grouping=grouping), progress=progress)
            print(f"proposals ({grouping}): {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        arms["proposals" if grouping == "network" else f"proposals ({grouping})"] = load_cohort(folder)
    return arms


def folder_name(arm: str) -> str:
    """"proposals (suv-bins)" -> "proposals-suv-bins"."""
    return "-".join("".join(ch if ch.isalnum() else " " for ch in arm).split())


def compare(first: dict[str, float], second: dict[str, float]) -> dict:
    """Paired by case: mean difference with its 95% bootstrap CI, and the Wilcoxon test."""
    cases = sorted(set(first) & set(second))
    differences = np.array([first[c] - second[c] for c in cases])
    return {"mean_difference": float(differences.mean()), "ci95": bootstrap_ci(differences),
            "wilcoxon": paired_wilcoxon(first, second)}


def summarise(dice: dict) -> dict:
    """label -> reference -> arm -> mean Dice and the comparisons with "labels" and "rough"."""
    summary = {}
    for label, arms in dice.items():
        for reference in (label, "truth"):
            for arm, by_reference in arms.items():
                values = by_reference[reference]
                entry = {"mean_dice": float(np.mean(list(values.values()))), "cases": len(values)}
                for other in ("labels", "rough"):
                    if arm != other:
                        entry[f"vs {other}"] = compare(values, arms[other][reference])
                summary.setdefault(label, {}).setdefault(reference, {})[arm] = entry
    return summary


def print_summary(summary: dict, test_cases: int) -> None:
    def versus(entry, other):
        if f"vs {other}" not in entry:
            return "-"
        found = entry[f"vs {other}"]
        low, high = found["ci95"]
        return (f"{100 * found['mean_difference']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f}), "
                f"p = {found['wilcoxon']['p_value']:.2g}")

    for label, references in summary.items():
        for reference, arms in references.items():
            print(f"\nModel {label} against {'Label ' + label if reference == label else 'the truth'} "
                  f"({test_cases} held-out cases with a lesion; Dice x 100, difference with 95% CI)")
            print("| trained on | Dice | minus labels | minus rough |")
            print("|---|---|---|---|")
            for arm, entry in arms.items():
                cells = [arm, f"{100 * entry['mean_dice']:.1f}", versus(entry, "labels"), versus(entry, "rough")]
                print("| " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="working folder (cohorts, models, summary.json)")
    parser.add_argument("--train-cases", type=int, default=32)
    parser.add_argument("--test-cases", type=int, default=44)
    parser.add_argument("--seed", type=int, default=2026, help="the training cohort's phantom seed")
    parser.add_argument("--test-seed", type=int, default=2027, help="the held-out cohort's phantom seed")
    parser.add_argument("--clusters", nargs="*", default=[], choices=("voxel", "suv-bins"),
                        help="also train on proposals from these trivial groupings (baselines)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    arguments = parser.parse_args(argv)
    import torch

    torch.set_num_threads(arguments.threads)
    out, progress, device = Path(arguments.out), TerminalProgress(), choose_device(arguments.device)
    started = time.perf_counter()
    train = phantom(out / "train", arguments.train_cases, arguments.seed)
    test = phantom(out / "test", arguments.test_cases, arguments.test_seed)
    test_ids = [c.case_id for c in test.cases if c.metadata["phantom"]["lesion"] is not None]
    rough = with_rough_inputs(train, out / "train-rough", np.random.default_rng(arguments.seed))
    arms = training_cohorts(rough, out, ["network", *arguments.clusters], progress)
    dice = {}
    for label in "AB":
        for arm, cohort in arms.items():
            settings = replace(PHANTOM, label=label, seed=0)
            model = trained(cohort, settings, out / "models" / label / folder_name(arm), progress)
            found = scores(model, test, test_ids, label, device)
            dice.setdefault(label, {})[arm] = {reference: {c: v["dice"] for c, v in by_case.items()}
                                               for reference, by_case in found.items()}
    summary = summarise(dice)
    print_summary(summary, len(test_ids))
    minutes = round((time.perf_counter() - started) / 60, 1)
    print(f"\n{minutes} min in all")
    write_text(out / "summary.json", json.dumps({
        "train": {"cases": arguments.train_cases, "seed": arguments.seed},
        "test": {"cases": arguments.test_cases, "seed": arguments.test_seed, "with_lesion": len(test_ids)},
        "training": {"base_width": PHANTOM.base_width, "epochs": PHANTOM.epochs, "size": PHANTOM.preprocess.size},
        "revision": git_revision(), "minutes": minutes, "summary": summary, "dice": dice}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
