"""Benchmark: rigid PET-to-CT registration accuracy (target registration error at the lesion).

    .venv/bin/python benchmarks/registration.py [--sts ../shared/data/sts-petct/nifti] [--workers 2]

Phantom: 7 small cases (seeds 11 and 21); truth = each case's recorded CT-to-PET transform, exact.

Real STS (when the folder exists): the true alignment of these scans is not known. The scanner's
own PET/CT alignment is one candidate, but limbs move between the CT and the PET acquisition. So
each patient is registered as it is (T0), and then again after each of three known rigid
perturbations P of the PET's geometry (a few degrees and mm about the lesion); recovery is judged
against where the perturbation sends T0's answer, |T_P(x) - P(T0(x))| at the lesion centroid x,
which needs no assumption about the true alignment. It shows that the answer does not depend on
where the PET starts, not that the answer is the true alignment. The distance of T0 from the
scanner's alignment, |T0(x) - x|, is printed too: it is what the registration changes on
unperturbed data.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OsteoSeg"))

from OsteoSegLib.errors import OsteoSegError  # noqa: E402
from OsteoSegLib.phantom import generate_cohort, settings_for  # noqa: E402
from OsteoSegLib.registration import (  # noqa: E402
    mask_centroid,
    move_geometry,
    register_rigid,
    target_registration_error,
)

# (rotation about x, y, z in degrees; translation in mm), each about the lesion centroid
PERTURBATIONS = (((2, -3, 2), (4, -3, 5)), ((-3, 2, -2), (-5, 4, -3)), ((1, 3, -3), (3, 5, -4)))


def perturbation(point, angles, translation) -> sitk.Euler3DTransform:
    return sitk.Euler3DTransform(point, *[math.radians(a) for a in angles], translation)


def phantom_case(arguments) -> tuple[str, float, float | str]:
    """TRE at the lesion before and after registering one phantom case (truth: its recorded transform)."""
    ct_file, pet_file, truth_file, lesion_file, name = arguments
    ct, pet = sitk.ReadImage(ct_file), sitk.ReadImage(pet_file)
    truth, point = sitk.ReadTransform(truth_file), mask_centroid(sitk.ReadImage(lesion_file))
    before = target_registration_error(sitk.Euler3DTransform(), truth, point)
    try:
        return name, before, target_registration_error(register_rigid(ct, pet).transform, truth, point)
    except OsteoSegError:
        return name, before, "refused"


def sts_case(folder: Path) -> dict:
    """T0's distance from the scanner's alignment, and the recovery error of each known perturbation."""
    ct, pet = (sitk.ReadImage(str(folder / f)) for f in ("CT_image.nii.gz", "PET_image.nii.gz"))
    point = mask_centroid(sitk.ReadImage(str(folder / "CT_mask.nii.gz")))
    started = time.perf_counter()
    try:
        unperturbed = register_rigid(ct, pet).transform
    except OsteoSegError:
        return {"case": folder.name, "refused": True}
    seconds = time.perf_counter() - started
    recovery, against_scanner = [], []
    for angles, translation in PERTURBATIONS:
        moved = perturbation(point, angles, translation)
        try:
            found = register_rigid(ct, move_geometry(pet, moved)).transform
        except OsteoSegError:
            recovery.append(math.inf)
            against_scanner.append(math.inf)
            continue
        expected = moved.TransformPoint(unperturbed.TransformPoint(point))
        recovery.append(float(np.linalg.norm(np.subtract(found.TransformPoint(point), expected))))
        against_scanner.append(target_registration_error(found, moved, point))
    return {"case": folder.name, "refused": False, "seconds": seconds,
            "from_scanner": target_registration_error(unperturbed, sitk.Euler3DTransform(), point),
            "recovery": recovery, "against_scanner": against_scanner}


def run_phantom(pool: ProcessPoolExecutor, folder: Path) -> None:
    print(f"{'phantom case':<22}{'TRE before (mm)':>16}{'after (mm)':>12}")
    jobs = []
    for seed, cases in ((11, 3), (21, 4)):
        cohort = generate_cohort(folder / str(seed), cases, seed, settings_for("small"))
        for case in cohort.cases:
            name = f"{seed}/{case.case_id}" + (" nail" if case.metadata["phantom"]["implant"] else "")
            jobs.append((str(cohort.path(case.ct)), str(cohort.path(case.pet)),
                         str(cohort.path(case.metadata["ct_to_pet_transform"])), str(cohort.path(case.truth)), name))
    after = []
    for name, before, error in pool.map(phantom_case, jobs):
        print(f"{name:<22}{before:>16.2f}{error if isinstance(error, str) else f'{error:.2f}':>12}", flush=True)
        after.append(math.inf if isinstance(error, str) else error)
    print(f"phantom: median {statistics.median(after):.2f} mm, max {max(after):.2f} mm, "
          f"{sum(e < 2 for e in after)}/{len(after)} under 2 mm\n")


def run_sts(pool: ProcessPoolExecutor, folders: list[Path]) -> None:
    print(f"{'STS case':<10}{'T0 from scanner (mm)':>22}{'recovery of P1/P2/P3 (mm)':>28}"
          f"{'vs scanner (mm)':>20}{'seconds':>9}")
    rows = list(pool.map(sts_case, folders))
    recovery, from_scanner, refused = [], [], []
    for row in rows:
        if row["refused"]:
            refused.append(row["case"])
            print(f"{row['case']:<10}{'refused':>22}")
            continue
        recovery += row["recovery"]
        from_scanner.append(row["from_scanner"])
        print(f"{row['case']:<10}{row['from_scanner']:>22.2f}{' / '.join(f'{e:.2f}' for e in row['recovery']):>28}"
              f"{' / '.join(f'{e:.1f}' for e in row['against_scanner']):>20}{row['seconds']:>9.1f}", flush=True)
    if recovery:
        moved = float(np.linalg.norm(PERTURBATIONS[0][1]))   # about the lesion: it moves by the translation
        print(f"STS recovery of a known perturbation ({len(recovery)} registrations; P1 moves the lesion "
              f"{moved:.1f} mm): median {statistics.median(recovery):.2f} mm, "
              f"90th percentile {np.percentile(recovery, 90):.2f} mm, max {max(recovery):.2f} mm, "
              f"{sum(e < 2 for e in recovery)}/{len(recovery)} under 2 mm")
        print(f"STS unperturbed result's distance from the scanner's alignment: median "
              f"{statistics.median(from_scanner):.1f} mm, range {min(from_scanner):.1f}-{max(from_scanner):.1f} mm")
    if refused:
        print(f"refused as implausible: {', '.join(refused)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sts", default=str(Path(__file__).resolve().parents[2] / "shared/data/sts-petct/nifti"))
    parser.add_argument("--workers", type=int, default=2, help="registrations run in parallel (each one thread)")
    parser.add_argument("--skip-phantom", action="store_true")
    arguments = parser.parse_args()
    sts = Path(arguments.sts)
    with ProcessPoolExecutor(arguments.workers) as pool, tempfile.TemporaryDirectory() as folder:
        if not arguments.skip_phantom:
            run_phantom(pool, Path(folder))
        if sts.is_dir():
            run_sts(pool, sorted(path for path in sts.iterdir() if path.is_dir()))
        else:
            print(f"no real STS data at {sts}: skipped")


if __name__ == "__main__":
    main()
