"""Label transfer, measured: known deformations on phantom cases (lesion TRE, lesion and bone Dice,
folding; rigid against deformable), the CT visibility check against structures of known visibility,
and the real STS patients (PET-grid contour onto the CT; a known deformation of a patient's own CT undone).

    .venv/bin/python benchmarks/transfer.py [--cases 20] [--seed 300] [--sts ../shared/data/sts-petct/nifti]

Prints tables; writes nothing but a scratch phantom in a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from OsteoSegLib.alignment.registration import mask_centroid, move_geometry
from OsteoSegLib.data.cohort import load_cohort
from OsteoSegLib.data.io import read_image
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.imaging import resample_onto
from OsteoSegLib.labels.transfer import transfer_label, warp_labels
from OsteoSegLib.labels.visibility import SUPPORTED, UNDETERMINED, ct_visibility
from OsteoSegLib.metrics import dice
from OsteoSegLib.phantom import generate_cohort, settings_for
from OsteoSegLib.phantom.anatomy import _Builder, build_anatomy
from OsteoSegLib.phantom.deformation import deformed, smooth_deformation
from OsteoSegLib.phantom.spec import draw_case
from OsteoSegLib.phantom.writer import case_seed
from scipy import ndimage

AMPLITUDE_MM = 8.0
BONE_HU = 600.0


def array(image):
    return sitk.GetArrayFromImage(image)


def scored(result, label, source_bone, ct, truth, to_ct, centroid):
    """TRE at the lesion centroid, lesion and bone Dice of the rigid and the final transform."""
    rows = {}
    for step, transform in (("rigid", result.rigid_transform), ("final", result.transform)):
        lesion = warp_labels(label, [1], ct, transform) > 0
        bone = warp_labels(source_bone, [1], ct, transform) > 0
        tre = float(np.linalg.norm(np.subtract(to_ct(transform.TransformPoint(centroid)), centroid)))
        rows[step] = {"tre": tre, "lesion_dice": dice(lesion, truth), "bone_dice": dice(bone, array(ct) > BONE_HU)}
    return rows


def phantom_scenarios(root: Path, cases, amplitude_mm: float):
    """Per case: follow-up CT deformed, follow-up CT rigidly moved only, PET outline deformed."""
    results = []
    for index, case in enumerate(cases):
        ct, pet = read_image(root / case.ct), read_image(root / case.pet)
        truth_image = read_image(root / case.truth)
        truth = array(truth_image) > 0
        if not truth.any():
            continue
        centroid = mask_centroid(truth_image)
        ct_to_pet = sitk.ReadTransform(str(root / case.case_id / "ct_to_pet.tfm"))
        pet_to_ct = ct_to_pet.GetInverse()
        motion = sitk.Euler3DTransform(ct_to_pet)
        bone = sitk.Cast(ct > BONE_HU, sitk.sitkUInt8)
        for scenario, kind in (("CT deformed", "ct"), ("CT rigid only", "ct"), ("PET deformed", "pet")):
            if kind == "ct":    # what was at x in the CT is at motion(x) in the follow-up
                source, label, source_bone = (move_geometry(image, motion) for image in (ct, truth_image, bone))
            else:
                source = pet
                label = sitk.Cast(resample_onto(truth_image, pet, transform=pet_to_ct) >= 0.5, sitk.sitkUInt8)
                source_bone = sitk.Cast(resample_onto(bone, pet, transform=pet_to_ct) >= 0.5, sitk.sitkUInt8)
            warp = smooth_deformation(source, amplitude_mm if "deformed" in scenario else 0.0, seed=index)
            source, label, source_bone = (deformed(source, warp), deformed(label, warp, label=True),
                                          deformed(source_bone, warp, label=True))

            def to_ct(point, warp=warp, back=pet_to_ct):   # a source point's place in the CT
                return back.TransformPoint(warp.TransformPoint(point))

            start = time.perf_counter()
            try:
                result = transfer_label(source, label, ct, source_kind=kind, steps="deformable", case=case.case_id)
            except OsteoSegError as error:   # a refusal is a result too: count it, and score the rigid answer
                rigid = transfer_label(source, label, ct, source_kind=kind, steps="rigid", case=case.case_id)
                row = scored(rigid, label, source_bone, ct, truth, to_ct, centroid)["rigid"]
                results.append({"case": case.case_id, "scenario": scenario, "refused": str(error), "rigid": row})
                print(f"  {case.case_id} {scenario:14s} TRE {row['tre']:.2f} mm rigid, lesion Dice "
                      f"{row['lesion_dice']:.3f}, bone {row['bone_dice']:.3f}; deformable refused: {error}", flush=True)
                continue
            seconds = time.perf_counter() - start
            row = scored(result, label, source_bone, ct, truth, to_ct, centroid)
            row.update({"case": case.case_id, "scenario": scenario, "seconds": seconds,
                        "folding": result.report["deformable"]["folding_fraction"],
                        "kept_rigid": not result.report["deformable"]["used"]})
            results.append(row)
            print(f"  {case.case_id} {scenario:14s} TRE {row['rigid']['tre']:.2f} -> {row['final']['tre']:.2f} mm, "
                  f"lesion Dice {row['rigid']['lesion_dice']:.3f} -> {row['final']['lesion_dice']:.3f}, "
                  f"bone {row['rigid']['bone_dice']:.3f} -> {row['final']['bone_dice']:.3f}, {seconds:.0f} s",
                  flush=True)
    return results


def summarise_scenarios(results) -> None:
    print("\n| scenario | step | median TRE (mm) | TRE < 2 mm | median lesion Dice | median bone Dice | "
          "lesion Dice >= 0.85 | bone Dice >= 0.9 |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario in ("CT deformed", "CT rigid only", "PET deformed"):
        every = [r for r in results if r["scenario"] == scenario]
        rows = [r for r in every if "refused" not in r]
        if len(rows) < len(every):
            rigid = [r["rigid"] for r in every]
            print(f"| {scenario} | rigid, all {len(every)} cases | {statistics.median(r['tre'] for r in rigid):.2f} | "
                  f"{sum(r['tre'] < 2 for r in rigid)}/{len(every)} | "
                  f"{statistics.median(r['lesion_dice'] for r in rigid):.3f} | "
                  f"{statistics.median(r['bone_dice'] for r in rigid):.3f} | "
                  f"{sum(r['lesion_dice'] >= 0.85 for r in rigid)}/{len(every)} | "
                  f"{sum(r['bone_dice'] >= 0.9 for r in rigid)}/{len(every)} |")
            print(f"|  | {scenario}: deformable refused in {len(every) - len(rows)}/{len(every)} |  |  |  |  |  |  |")
        if not rows:
            continue
        for step in ("rigid", "final"):
            tre = [r[step]["tre"] for r in rows]
            lesion = [r[step]["lesion_dice"] for r in rows]
            bone = [r[step]["bone_dice"] for r in rows]
            n = len(rows)
            print(f"| {scenario} | {'rigid' if step == 'rigid' else 'deformable'} | {statistics.median(tre):.2f} | "
                  f"{sum(t < 2 for t in tre)}/{n} | {statistics.median(lesion):.3f} | {statistics.median(bone):.3f} | "
                  f"{sum(d >= 0.85 for d in lesion)}/{n} | {sum(d >= 0.9 for d in bone)}/{n} |")
        worse = sum(r["final"]["lesion_dice"] < r["rigid"]["lesion_dice"] - 0.01 for r in rows)
        kept = sum(r["kept_rigid"] for r in rows)
        folding = max(r["folding"] for r in rows)
        seconds = statistics.median(r["seconds"] for r in rows)
        print(f"|  | {scenario}: deformation not kept (matched worse) in {kept}/{len(rows)}; "
              f"final worse than rigid (Dice down > 0.01) in {worse}/{len(rows)}; "
              f"largest folding {100 * folding:.3f}%; median {seconds:.0f} s per transfer |  |  |  |  |  |  |")


def known_structures(spec, settings):
    """Masks of structures whose CT visibility is known by construction, with the expected verdict."""
    anatomy = build_anatomy(spec, settings)
    plain = build_anatomy(dataclasses.replace(spec, confounders=[]), settings)
    builder = _Builder(spec, settings)
    for limb in spec.limbs:
        builder.limb(limb)
    tissue = builder.hu   # the anatomy before any lesion: 40 HU is muscle, -100 fat
    z_mm = builder.c.z
    structures = {"bone destruction (visible)": (anatomy.destruction >= 0.5, True)}
    if spec.implant:
        structures["nail (visible)"] = (anatomy.ct_hu > 2500, True)
    ct_change = np.abs(anatomy.ct_hu.astype(np.float32) - plain.ct_hu) > 100
    uptake = (anatomy.activity_suv - plain.activity_suv) > 0.5
    for confounder in spec.confounders:
        near = np.abs(z_mm - confounder.z_mm) <= confounder.size_mm   # not the partial-volume rim along the bone
        if confounder.kind == "healed_fracture":
            structures["healed fracture (visible)"] = (ct_change & near, True)
        else:
            structures["non-infectious uptake (PET only)"] = (uptake & ~ct_change, False)
    edema = anatomy.edema >= 0.5
    # Not within 4 mm of the bone: the periosteal reaction (600 HU) lies there, inside the edema's halo.
    away = ndimage.distance_transform_edt(builder.bone < 0.5, sampling=builder.c.spacing_zyx) > 4.0
    structures["edema in muscle (PET only)"] = (edema & away & (np.abs(tissue - 40.0) < 5), False)
    structures["edema in fat (phantom: fat stranding, visible)"] = (edema & (np.abs(tissue + 100.0) < 5), True)
    return anatomy.ct_hu, {name: (mask, visible) for name, (mask, visible) in structures.items()
                           if mask.sum() >= 20}


def visibility_check(seed: int, cases: int) -> None:
    settings = settings_for("small")
    spacing_zyx = tuple(reversed(settings.grid.spacing))
    rows = []
    for index in range(cases):
        spec = draw_case(f"case_{index:03d}", case_seed(seed, index), settings)
        ct, structures = known_structures(spec, settings)
        for name, (mask, visible) in structures.items():
            verdict = ct_visibility(ct, mask, spacing_zyx)
            rows.append((name, visible, verdict, index < cases // 2))
    print("\n| structure | expected | n | said supported | median score | median shell effect |")
    print("|---|---|---|---|---|---|")
    for name in sorted({r[0] for r in rows}):
        group = [r for r in rows if r[0] == name]
        scores = [r[2].score for r in group if r[2].score is not None] or [float("nan")]
        shells = [abs(r[2].shell_effect) for r in group if r[2].shell_effect is not None] or [float("nan")]
        print(f"| {name} | {'visible' if group[0][1] else 'not visible'} | {len(group)} | "
              f"{sum(r[2].verdict == SUPPORTED for r in group)} | "
              f"{statistics.median(scores):.2f} | {statistics.median(shells):.2f} |")
    decided = [r for r in rows if r[2].verdict != UNDETERMINED]
    for part, calibration in (("first half (the threshold was chosen on these)", True), ("held-out half", False)):
        these = [r for r in decided if r[3] == calibration]
        right = sum((r[2].verdict == SUPPORTED) == r[1] for r in these)
        print(f"verdicts right, {part}: {right}/{len(these)}")
    for r in decided:
        if (r[2].verdict == SUPPORTED) != r[1]:
            print(f"  wrong: {r[0]}, score {r[2].score}, basis {r[2].basis}")
    print(f"undetermined: {len(rows) - len(decided)}")
    for cut in (0.6, 0.8):   # the shell effect size as a verdict, for comparison
        shell_right = sum((abs(r[2].shell_effect) >= cut) == r[1] for r in decided if r[2].shell_effect is not None)
        print(f"shell effect |delta| >= {cut} as the verdict: {shell_right}/{len(decided)} right")


def sts(folder: Path, limit: int, pet_only: bool = False) -> None:
    patients = sorted(p for p in folder.iterdir() if (p / "PET_mask.nii.gz").exists())[:limit]
    print("\n| patient | PET contour onto CT: Dice resampled | rigid | --deformable | CT contour volume (ml) "
          "| verdict (resampled) | own CT deformed: TRE rigid -> deformable (mm) |")
    print("|---|---|---|---|---|---|---|")
    resample_dice, rigid_dice, deformable_dice, tres, refusals = [], [], [], [], []
    for index, patient in enumerate(patients):
        ct, pet = read_image(patient / "CT_image.nii.gz"), read_image(patient / "PET_image.nii.gz")
        pet_mask = sitk.Cast(read_image(patient / "PET_mask.nii.gz") > 0, sitk.sitkUInt8)
        ct_mask_image = read_image(patient / "CT_mask.nii.gz")
        ct_mask = array(ct_mask_image) > 0
        resampled = transfer_label(pet, pet_mask, ct, source_kind="pet", steps="resample", case=patient.name)
        resample = dice(array(resampled.labels) > 0, ct_mask)
        default = transfer_label(pet, pet_mask, ct, source_kind="pet", steps="rigid", case=patient.name)
        rigid = dice(array(default.labels) > 0, ct_mask)
        verdict = resampled.report["labels"][0]["visibility"]["verdict"].split(":")[0]
        try:
            if pet_only:
                raise OsteoSegError("not run (--sts-pet-only)")
            forced = transfer_label(pet, pet_mask, ct, source_kind="pet", steps="deformable", case=patient.name)
            final = dice(array(forced.labels) > 0, ct_mask)
        except OsteoSegError as error:
            final = float("nan")
            refusals.append(str(error).split("(")[0].split(": ")[-1].strip())
        resample_dice.append(resample)
        rigid_dice.append(rigid)
        deformable_dice.append(final)
        warp = smooth_deformation(ct, AMPLITUDE_MM, seed=index)
        source = deformed(ct, warp)
        label = deformed(sitk.Cast(ct_mask_image > 0, sitk.sitkUInt8), warp, label=True)
        centroid = mask_centroid(ct_mask_image)
        try:
            if pet_only:
                raise OsteoSegError("not run (--sts-pet-only)")
            own = transfer_label(source, label, ct, source_kind="ct", case=patient.name)
            errors = [float(np.linalg.norm(np.subtract(warp.TransformPoint(t.TransformPoint(centroid)), centroid)))
                      for t in (own.rigid_transform, own.transform)]
            tres.append(errors)
            own_text = f"{errors[0]:.2f} -> {errors[1]:.2f}"
        except OsteoSegError as error:
            own_text = f"refused ({str(error)[:60]})"
        volume_ml = ct_mask.sum() * np.prod(ct.GetSpacing()) / 1000
        print(f"| {patient.name} | {resample:.3f} | {rigid:.3f} | {final:.3f} | {volume_ml:.1f} | "
              f"{verdict} | {own_text} |", flush=True)
    print(f"median Dice, PET contour onto CT: resampled {np.median(resample_dice):.3f}, "
          f"rigid {np.nanmedian(rigid_dice):.3f}; deformable (--deformable) "
          f"refused in {len(refusals)}/{len(patients)} ({', '.join(sorted(set(refusals)))})"
          + (f", median Dice of the others {np.nanmedian(deformable_dice):.3f}"
             if len(refusals) < len(patients) else ""))
    if tres:
        print(f"own CT deformed: median TRE rigid {np.median([t[0] for t in tres]):.2f} mm, "
              f"deformable {np.median([t[1] for t in tres]):.2f} mm, deformable < 2 mm in "
              f"{sum(t[1] < 2 for t in tres)}/{len(tres)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--amplitude-mm", type=float, default=AMPLITUDE_MM)
    parser.add_argument("--sts", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/sts-petct/nifti")
    parser.add_argument("--sts-patients", type=int, default=20)
    parser.add_argument("--sts-pet-only", action="store_true",
                        help="real data: only the PET contour resampled and registered rigidly (minutes, not an hour)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["phantom", "visibility", "sts"])
    arguments = parser.parse_args()
    if "visibility" not in arguments.skip:
        visibility_check(arguments.seed, arguments.cases)
    if "phantom" not in arguments.skip:
        with tempfile.TemporaryDirectory() as scratch:
            generate_cohort(Path(scratch) / "phantom", arguments.cases, arguments.seed, settings_for("small"))
            cohort = load_cohort(Path(scratch) / "phantom")
            summarise_scenarios(phantom_scenarios(cohort.root, cohort.cases, arguments.amplitude_mm))
    if "sts" not in arguments.skip:
        if arguments.sts.is_dir():
            sts(arguments.sts, arguments.sts_patients, arguments.sts_pet_only)
        else:
            print(f"\nreal STS data not found at {arguments.sts}: skipped")


if __name__ == "__main__":
    main()
