"""Benchmark: rigid PET-to-CT registration accuracy (target registration error at the lesion).

    .venv/bin/python benchmarks/registration.py [--sts ../shared/data/sts-petct/nifti]

Phantom: 7 small cases (seeds 11 and 21), truth = each case's recorded CT-to-PET transform.
Real STS (when the folder exists): a known rigid perturbation (2, -3, 2 degrees; 4, -3, 5 mm about
the lesion) applied to the PET's geometry, truth = that perturbation (the scanner's own PET/CT
alignment is taken as exact).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OsteoSeg"))

from OsteoSegLib.errors import OsteoSegError  # noqa: E402
from OsteoSegLib.phantom import generate_cohort, settings_for  # noqa: E402
from OsteoSegLib.registration import move_geometry, register_rigid, target_registration_error  # noqa: E402


def centroid(mask: sitk.Image):
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    return statistics.GetCentroid(1)


def tre_after(ct, pet, truth, point) -> str:
    try:
        return f"{target_registration_error(register_rigid(ct, pet).transform, truth, point):.2f}"
    except OsteoSegError:
        return "refused"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sts", default=str(Path(__file__).resolve().parents[2] / "shared/data/sts-petct/nifti"))
    sts = Path(parser.parse_args().sts)
    print(f"{'data':<22}{'TRE before (mm)':>16}{'after (mm)':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for seed, cases in ((11, 3), (21, 4)):
            cohort = generate_cohort(Path(folder) / str(seed), cases, seed, settings_for("small"))
            for case in cohort.cases:
                ct, pet = (sitk.ReadImage(str(cohort.path(f))) for f in (case.ct, case.pet))
                truth = sitk.ReadTransform(str(cohort.path(case.metadata["ct_to_pet_transform"])))
                point = centroid(sitk.ReadImage(str(cohort.path(case.truth))))
                name = f"phantom {seed}/{case.case_id}" + (" nail" if case.metadata["phantom"]["implant"] else "")
                before = target_registration_error(sitk.Euler3DTransform(), truth, point)
                print(f"{name:<22}{before:>16.2f}{tre_after(ct, pet, truth, point):>12}", flush=True)
    for folder in sorted(sts.iterdir()) if sts.is_dir() else []:
        ct, pet = (sitk.ReadImage(str(folder / f)) for f in ("CT_image.nii.gz", "PET_image.nii.gz"))
        point = centroid(sitk.ReadImage(str(folder / "CT_mask.nii.gz")))
        truth = sitk.Euler3DTransform()
        truth.SetCenter(point)
        truth.SetRotation(*[math.radians(a) for a in (2, -3, 2)])
        truth.SetTranslation((4, -3, 5))
        before = target_registration_error(sitk.Euler3DTransform(), truth, point)
        print(f"{'STS ' + folder.name:<22}{before:>16.2f}{tre_after(ct, move_geometry(pet, truth), truth, point):>12}",
              flush=True)


if __name__ == "__main__":
    main()
