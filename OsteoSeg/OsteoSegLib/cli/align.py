"""`osteoseg align`: the PET onto the CT grid, with the transform, a report and a before/after figure."""

from __future__ import annotations

from .command import add_command


def run_align(arguments) -> int:
    from ..alignment.align import ALIGN_OUTPUTS, align_to_folder
    from ..data.io import read_image
    from ..errors import OsteoSegError
    from ..outputs import OutputFolder

    with OutputFolder(arguments.out, inputs=[arguments.ct, arguments.pet], command="align") as folder:
        earlier = [name for name in ALIGN_OUTPUTS if (folder.path / name).exists()]
        if earlier and not arguments.force:
            raise OsteoSegError(f"an earlier alignment is there ({', '.join(earlier)}); choose another folder or "
                                "pass --force to replace it", path=folder.path)
        for name in earlier:
            folder.remove(name)   # refused for a file OsteoSeg did not write
        ct, pet = read_image(arguments.ct), read_image(arguments.pet)
        folder.record(*ALIGN_OUTPUTS)
        report = align_to_folder(ct, pet, folder.path, arguments.method)
    if "metric_after" in report:
        print(f"Mattes MI {report['metric_before']:.4f} -> {report['metric_after']:.4f} "
              f"({report['iterations']} iterations)")
    print(f"Wrote pet_on_ct.nii.gz, ct_to_pet.tfm, alignment.json and alignment.png to {arguments.out}")
    return 0


def add_align_command(commands) -> None:
    align = add_command(commands, "align", summary="Bring the PET onto the CT grid (resample or rigid registration).",
                        details="resample: combined PET/CT scanners (one frame of reference). rigid: separately "
                                "acquired scans (Mattes mutual information, PET in SUV); check alignment.png after.",
                        examples=["osteoseg align --ct ct.nii.gz --pet pet.nii.gz --out aligned",
                                  "osteoseg align --ct ct.nii.gz --pet pet.nii.gz --method rigid --out aligned"])
    align.add_argument("--ct", required=True, help="CT image (the reference grid)")
    align.add_argument("--pet", required=True, help="PET image in SUV")
    align.add_argument("--method", default="resample", help="resample (one frame of reference) or rigid")
    align.add_argument("--out", required=True, help="output folder")
    align.add_argument("--force", action="store_true", help="replace an earlier alignment OsteoSeg wrote in --out")
    align.set_defaults(run=run_align)
