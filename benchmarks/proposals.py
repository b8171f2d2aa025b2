"""Benchmark: does a label proposal beat the rough input it starts from?

    .venv/bin/python benchmarks/proposals.py phantom COHORT --out DIR [--threads 1]
    .venv/bin/python benchmarks/proposals.py sts ../shared/data/sts-petct/nifti --out DIR
    .venv/bin/python benchmarks/proposals.py phantom COHORT --out DIR --clusters suv-bins   # a baseline

Rough inputs are made from a known extent (the phantom's true extent of infection; the real STS
tumour contour) in four ways: dilated by 2-6 mm, eroded by 2-6 mm (the amount drawn per case, seeded),
its bounding box, and only every third axial slice of it. Each rough input goes through `propose`,
and the rough input and both proposals are scored against the references (phantom: Label A, Label B
and the truth; STS: the contour): Dice, and the voxels an expert would edit to reach the reference.
Prints per input kind and reference: how often the proposal beats its rough input, the median Dice
gain, and the saving in voxels edited (pooled over cases, and the median per case); writes rows.csv
and summary.json (with the settings and the git revision) into DIR.

--clusters replaces the clustering network by a trivial grouping, to measure what the network adds:
"voxel" (every voxel its own cluster) or "suv-bins" (the crop's PET range in equal steps).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OsteoSeg"))

from OsteoSegLib.atomic import write_text
from OsteoSegLib.data.cohort import load_cohort
from OsteoSegLib.data.io import csv_text, read_image
from OsteoSegLib.labels.editing_effort import editing_effort
from OsteoSegLib.labels.propose import ProposalSettings, propose
from OsteoSegLib.labels.rough_input import rough_from_mask
from OsteoSegLib.model.slice_data import recorded_transform

KINDS = ("dilated", "eroded", "box", "every 3rd slice")


def degraded(extent: np.ndarray, kind: str, amount_mm: float, spacing_zyx) -> np.ndarray:
    """A rough input made from a known extent."""
    if kind == "dilated":
        return ndimage.distance_transform_edt(~extent, sampling=spacing_zyx) <= amount_mm
    if kind == "eroded":
        return ndimage.distance_transform_edt(extent, sampling=spacing_zyx) > amount_mm
    if kind == "box":
        box = np.zeros_like(extent)
        box[ndimage.find_objects(extent.astype(np.uint8))[0]] = True
        return box
    slices = np.flatnonzero(extent.any(axis=(1, 2)))
    kept = np.zeros_like(extent)
    kept[slices[::3]] = extent[slices[::3]]
    return kept


def git_revision() -> str:
    """The repository's commit (with "+changes" when the working tree differs), or "unknown"."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def score_case(case_id: str, ct, pet, transform, extent: np.ndarray, references: dict, rng,
               settings: ProposalSettings) -> list[dict]:
    """Every rough input of one case through `propose`, scored against every reference."""
    spacing_zyx = tuple(reversed(ct.GetSpacing()))
    rows = []
    for kind in KINDS:
        amount = float(rng.uniform(2.0, 6.0)) if kind in ("dilated", "eroded") else 0.0
        region = degraded(extent, kind, amount, spacing_zyx)
        if not region.any():
            print(f"{case_id} {kind} {amount:.1f} mm: nothing left of the lesion; skipped")
            continue
        proposal = propose(ct, pet, rough_from_mask(region, ct, source=kind), transform=transform, case=case_id,
                           settings=settings)
        for reference, mask in references.items():
            rough_effort = editing_effort(region, mask)
            for name, proposed in (("A", proposal.label_a), ("B", proposal.label_b)):
                effort = editing_effort(proposed, mask)
                rows.append({"case": case_id, "input": kind, "amount_mm": round(amount, 2), "reference": reference,
                             "proposal": name, "dice_rough": rough_effort.dice, "dice_proposal": effort.dice,
                             "voxels_rough": rough_effort.voxels_changed, "voxels_proposal": effort.voxels_changed,
                             "slices_rough": rough_effort.slices_changed, "slices_proposal": effort.slices_changed,
                             "clusters": proposal.clusters, "iterations": proposal.iterations,
                             "seconds": round(proposal.seconds, 2),
                             "confidence": min((lesion.confidence for lesion in proposal.lesions), default=0.0)})
        print(f"{case_id} {kind:<16}{amount:4.1f} mm  clusters {proposal.clusters:2d}  "
              f"{proposal.seconds:5.1f} s  " + "  ".join(
                  f"{r['proposal']} vs {r['reference']}: {r['dice_rough']:.2f}->{r['dice_proposal']:.2f}"
                  for r in rows[-2 * len(references):]), flush=True)
    return rows


def summarise(rows: list[dict], pairs) -> list[dict]:
    """Per input kind (and all together) and per (proposal, reference) pair: the headline figures."""
    table = []
    for kind in (*KINDS, "all"):
        for proposal, reference in pairs:
            chosen = [r for r in rows if r["proposal"] == proposal and r["reference"] == reference
                      and (kind == "all" or r["input"] == kind)]
            if not chosen:
                continue
            gain = np.array([r["dice_proposal"] - r["dice_rough"] for r in chosen])
            per_case = [1 - r["voxels_proposal"] / r["voxels_rough"] for r in chosen if r["voxels_rough"]]
            table.append({
                "input": kind, "proposal": proposal, "reference": reference, "n": len(chosen),
                "beats_rough_pct": round(100 * float(np.mean(gain > 0)), 1),
                "median_dice_rough": round(float(np.median([r["dice_rough"] for r in chosen])), 3),
                "median_dice_proposal": round(float(np.median([r["dice_proposal"] for r in chosen])), 3),
                "median_dice_gain": round(float(np.median(gain)), 3),
                "voxels_saved_pct": round(100 * (1 - sum(r["voxels_proposal"] for r in chosen)
                                                 / max(sum(r["voxels_rough"] for r in chosen), 1)), 1),
                "median_case_voxels_saved_pct": round(100 * float(np.median(per_case)), 1) if per_case else None,
                "slices_saved_pct": round(100 * (1 - sum(r["slices_proposal"] for r in chosen)
                                                 / max(sum(r["slices_rough"] for r in chosen), 1)), 1)})
    return table


def print_table(table: list[dict]) -> None:
    print(f"\n{'input':<17}{'proposal':<12}{'reference':<11}{'n':>4}{'beats %':>9}{'Dice rough':>12}"
          f"{'Dice prop.':>12}{'gain':>8}{'voxels saved %':>16}{'median case %':>15}{'slices saved %':>16}")
    for row in table:
        print(f"{row['input']:<17}{'Proposed ' + row['proposal']:<12}{row['reference']:<11}{row['n']:>4}"
              f"{row['beats_rough_pct']:>9.1f}{row['median_dice_rough']:>12.3f}{row['median_dice_proposal']:>12.3f}"
              f"{row['median_dice_gain']:>8.3f}{row['voxels_saved_pct']:>16.1f}"
              f"{row['median_case_voxels_saved_pct'] if row['median_case_voxels_saved_pct'] is not None else '-':>15}"
              f"{row['slices_saved_pct']:>16.1f}")


def mask_of(path, case_id) -> np.ndarray:
    return sitk.GetArrayFromImage(read_image(path, case=case_id)) > 0


def phantom_rows(cohort_path: str, rng, settings: ProposalSettings) -> list[dict]:
    """Every phantom case with a lesion: rough inputs from the true extent, scored against A, B, truth."""
    cohort = load_cohort(cohort_path)
    rows = []
    for case in cohort.cases:
        truth = mask_of(cohort.path(case.truth), case.case_id)
        if not truth.any() or not case.labels:
            continue
        ct, pet = read_image(cohort.path(case.ct)), read_image(cohort.path(case.pet))
        references = {"A": mask_of(cohort.path(case.labels["A"]), case.case_id),
                      "B": mask_of(cohort.path(case.labels["B"]), case.case_id), "truth": truth}
        rows += score_case(case.case_id, ct, pet, recorded_transform(cohort, case), truth, references, rng, settings)
    return rows


def sts_rows(folder: str, rng, settings: ProposalSettings) -> list[dict]:
    """Every STS patient: rough inputs from the tumour contour (on the CT grid), scored against it."""
    rows = []
    for patient in sorted(Path(folder).iterdir()):
        if not (patient / "CT_image.nii.gz").is_file():
            continue
        ct = read_image(patient / "CT_image.nii.gz")
        pet = read_image(patient / "PET_image.nii.gz")
        contour = mask_of(patient / "CT_mask.nii.gz", patient.name)
        rows += score_case(patient.name, ct, pet, None, contour, {"contour": contour}, rng, settings)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", choices=("phantom", "sts"))
    parser.add_argument("source", help="a phantom cohort folder, or the STS nifti folder")
    parser.add_argument("--out", required=True, help="folder for rows.csv and summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dilation and erosion amounts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--clusters", choices=("network", "voxel", "suv-bins"), default="network",
                        help="the clustering network, or a trivial grouping in its place (a baseline)")
    arguments = parser.parse_args()
    import torch

    torch.set_num_threads(arguments.threads)
    rng = np.random.default_rng(arguments.seed)
    settings = ProposalSettings(grouping=arguments.clusters)
    started = time.perf_counter()
    if arguments.data == "phantom":
        rows = phantom_rows(arguments.source, rng, settings)
        pairs = [("A", "A"), ("B", "B"), ("A", "truth"), ("B", "truth")]
    else:
        rows = sts_rows(arguments.source, rng, settings)
        pairs = [("A", "contour"), ("B", "contour")]
    table = summarise(rows, pairs)
    print_table(table)
    seconds = [r["seconds"] for r in rows if r["reference"] == rows[0]["reference"] and r["proposal"] == "A"]
    timing = {"proposals": len(seconds), "median_seconds": round(float(np.median(seconds)), 2),
              "max_seconds": round(float(np.max(seconds)), 2),
              "total_minutes": round((time.perf_counter() - started) / 60, 1)}
    print(f"\n{timing['proposals']} proposals, median {timing['median_seconds']} s, "
          f"max {timing['max_seconds']} s each; {timing['total_minutes']} min in all")
    out = Path(arguments.out)
    write_text(out / "rows.csv", csv_text(rows))
    write_text(out / "summary.json", json.dumps({"data": arguments.data, "source": arguments.source,
                                                 "seed": arguments.seed, "clusters": arguments.clusters,
                                                 "settings": asdict(settings), "revision": git_revision(),
                                                 "timing": timing, "table": table}, indent=1))
    print(json.dumps({"timing": timing, "all": [r for r in table if r["input"] == "all"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
