"""`osteoseg segment`: one patient's CT and PET (or every case of a cohort) through a model set, into
`.seg.nrrd` files and, on request, NIfTI masks and probability maps."""

from __future__ import annotations

from pathlib import Path

from ..inference.backends import BACKEND_CHOICES
from ..model.devices import DEVICE_CHOICES
from .command import add_command


def segment_one(context, ct_path, pet_path, models, arguments, name: str, transform=None, case: str | None = None):
    """Read, align, segment and write one patient; prints what was made."""
    import SimpleITK as sitk

    from ..alignment.registration import register_rigid
    from ..data.io import read_image
    from ..inference.segment import segment_images
    from ..scene.segment_output import write_segmentation

    ct = read_image(ct_path, case=case) if ct_path else None
    pet = read_image(pet_path, case=case) if pet_path else None
    if arguments.align == "rigid" and ct is not None and pet is not None:
        transform = register_rigid(ct, pet, case=case).transform
    elif arguments.transform:
        transform = sitk.ReadTransform(arguments.transform)
    result = segment_images(ct, pet, models, transform=transform, device=arguments.device,
                            threshold=arguments.threshold, batch_size=arguments.batch_size, case=case,
                            backend=arguments.backend)
    paths = write_segmentation(context, ct if ct is not None else pet, result, arguments.out, name,
                               nifti=arguments.nifti, probabilities=arguments.probabilities)
    volumes = ", ".join(f"{m.name} {int(result.masks[m.name].sum())} voxels" for m in models)
    where = f"{result.device}, {result.backend}"
    print(f"{name}: {volumes} (threshold {result.threshold}, {where}, {result.seconds:.1f} s)")
    for role, path in paths.items():
        print(f"  {role}: {path}")


def run_segment(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..model.package import load_model_set
    from ..model.slice_data import recorded_transform
    from ..scene.mrml import create_headless_context

    if arguments.cohort and (arguments.ct or arguments.pet):
        raise OsteoSegError("give either --cohort or --ct/--pet, not both")
    if not arguments.cohort and arguments.ct is None and arguments.pet is None:
        raise OsteoSegError("give --ct, --pet or both (or --cohort for every case of a cohort)")
    models = load_model_set(arguments.models)
    context = create_headless_context()
    if not arguments.cohort:
        name = arguments.name or Path(arguments.ct or arguments.pet).name.split(".")[0]
        segment_one(context, arguments.ct, arguments.pet, models, arguments, name)
        return 0
    cohort = load_cohort(arguments.cohort)
    for case in cohort.cases:
        transform = None if arguments.transform else recorded_transform(cohort, case)
        segment_one(context, cohort.path(case.ct), cohort.path(case.pet), models, arguments, case.case_id,
                    transform=transform, case=case.case_id)
    return 0


def add_segment_command(commands) -> None:
    segment = add_command(
        commands, "segment", summary="Segment a patient (or every case of a cohort) with a model set (A and B).",
        details="Writes <name>.seg.nrrd (Model A, Model B and where they disagree) and <name>.provenance.json; "
                "an existing result is never overwritten.",
        examples=["osteoseg segment --ct ct.nii.gz --pet pet.nii.gz --models model-set --out results",
                  "osteoseg segment --cohort new-cases --models model-set --out results --nifti"])
    segment.add_argument("--ct", help="CT image (the reference grid)")
    segment.add_argument("--pet", help="PET image (SUV), resampled onto the CT grid")
    segment.add_argument("--cohort", help="segment every case of this cohort instead (batch)")
    segment.add_argument("--models", required=True, help="model set: a folder of model packages")
    segment.add_argument("--out", required=True, help="output folder (existing results are never overwritten)")
    segment.add_argument("--name", help="base name of the outputs (default: the CT file's name)")
    segment.add_argument("--align", choices=("resample", "rigid"), default="resample",
                         help="resample (combined PET/CT, default) or rigid registration first")
    segment.add_argument("--transform", help="a CT-to-PET transform file to apply instead (e.g. from osteoseg align)")
    segment.add_argument("--threshold", type=float, help="probability threshold (default: each model's card, 0.5)")
    segment.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                         help="cuda, mps or cpu; auto takes the first present")
    segment.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                         help="network engine: auto (OpenVINO on the CPU when installed, else torch), torch, openvino")
    segment.add_argument("--batch-size", type=int, help="slices per network batch (default: 4 on CPU, 32 on CUDA)")
    segment.add_argument("--nifti", action="store_true", help="also write each model's mask as NIfTI")
    segment.add_argument("--probabilities", action="store_true", help="also write probability maps as NIfTI")
    segment.set_defaults(run=run_segment)
