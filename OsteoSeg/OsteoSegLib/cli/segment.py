"""`osteoseg segment`: one patient's CT and PET (or every case of a cohort) through a model set, into
`.seg.nrrd` files and, on request, NIfTI masks and probability maps."""

from __future__ import annotations

from pathlib import Path

from ..inference.backends import BACKEND_CHOICES
from ..model.devices import DEVICE_CHOICES
from .command import add_command


def segment_one(context, ct_path, pet_path, models, arguments, folder, name: str, transform=None,
                case: str | None = None) -> bool:
    """Read, align, segment and write one patient; prints what was made. A finished result of the same
    name is kept (False: skipped in a batch, an error for one patient) unless --force; an unfinished
    one (interrupted) is replaced."""
    from ..alignment.registration import register_rigid
    from ..data.cohort_validate import check_images
    from ..data.io import read_image
    from ..errors import OsteoSegError
    from ..inference.segment import segment_images
    from ..model.ensemble import group_models
    from ..scene.segment_output import clear_result, finished_outputs, write_segmentation

    model_names = [group.name for group in group_models(models)]   # the outputs are named per group
    if finished_outputs(folder.path, name) and not arguments.force:
        if arguments.cohort:
            print(f"{name}: already segmented in {folder.path} (kept; --force redoes it)")
            return False
        raise OsteoSegError(f"an earlier result {name!r} is in the way; choose another output folder or name, "
                            "or pass --force to replace it", path=folder.path)
    ct = read_image(ct_path, case=case) if ct_path else None
    pet = read_image(pet_path, case=case) if pet_path else None
    check_images(ct, pet, case=case, ct_path=ct_path, pet_path=pet_path)   # before removing or registering
    clear_result(folder, name, model_names)
    if arguments.align == "rigid" and ct is not None and pet is not None:
        transform = register_rigid(ct, pet, case=case).transform
    elif arguments.transform:
        transform = read_transform(arguments.transform)
    result = segment_images(ct, pet, models, transform=transform, device=arguments.device,
                            threshold=arguments.threshold, batch_size=arguments.batch_size, case=case,
                            backend=arguments.backend)
    paths = write_segmentation(context, ct if ct is not None else pet, result, folder.path, name,
                               nifti=arguments.nifti, probabilities=arguments.probabilities, folder=folder)
    volumes = ", ".join(f"{g.name} {int(result.masks[g.name].sum())} voxels" for g in result.models)
    where = f"{result.device}, {result.backend}"
    print(f"{name}: {volumes} (threshold {result.threshold}, {where}, {result.seconds:.1f} s)")
    for role, path in paths.items():
        print(f"  {role}: {path}")
    return True


def check_cases_first(cohort, folder, force: bool) -> None:
    """Every case still to segment is checked as `cohort validate` checks its CT and PET before the
    first is segmented, so a bad case late in a batch stops it before any output is written."""
    from ..data.cohort_validate import check_cohort
    from ..scene.segment_output import finished_outputs

    pending = [case.case_id for case in cohort.cases if force or not finished_outputs(folder.path, case.case_id)]
    check_cohort(cohort, pending, labels=False)


def read_transform(path):
    """A transform file, or one clear error naming it."""
    import SimpleITK as sitk

    from ..data.integrity import check_input_path
    from ..errors import OsteoSegError

    path = check_input_path(path, kind="transform file")
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError as error:
        raise OsteoSegError(f"not a readable transform ({str(error).strip().splitlines()[-1]})", path=path) from None


def run_segment(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..model.package import load_model_set
    from ..model.slice_data import recorded_transform
    from ..outputs import OutputFolder
    from ..scene.mrml import create_headless_context

    if arguments.cohort and (arguments.ct or arguments.pet):
        raise OsteoSegError("give either --cohort or --ct/--pet, not both")
    if not arguments.cohort and arguments.ct is None and arguments.pet is None:
        raise OsteoSegError("give --ct, --pet or both (or --cohort for every case of a cohort)")
    cohort = load_cohort(arguments.cohort) if arguments.cohort else None
    inputs = [arguments.ct, arguments.pet, arguments.models, arguments.transform, cohort and cohort.root,
              *([cohort.path(f) for case in cohort.cases for f in (case.ct, case.pet)] if cohort else [])]
    models = load_model_set(arguments.models)
    context = create_headless_context()
    with OutputFolder(arguments.out, inputs=inputs, command="segment") as folder:
        if not cohort:
            name = arguments.name or Path(arguments.ct or arguments.pet).name.split(".")[0]
            segment_one(context, arguments.ct, arguments.pet, models, arguments, folder, name)
            return 0
        check_cases_first(cohort, folder, arguments.force)
        done = 0
        for case in cohort.cases:
            transform = None if arguments.transform else recorded_transform(cohort, case)
            done += segment_one(context, cohort.path(case.ct), cohort.path(case.pet), models, arguments, folder,
                                case.case_id, transform=transform, case=case.case_id)
        print(f"{done} case(s) segmented, {len(cohort.cases) - done} kept from an earlier run, into {folder.path}")
    return 0


def add_segment_command(commands) -> None:
    segment = add_command(
        commands, "segment", summary="Segment a patient (or every case of a cohort) with a model set (A and B).",
        details="Writes <name>.seg.nrrd (Model A, Model B and where they disagree) and <name>.provenance.json "
                "(written last: it marks the result finished). A finished result is kept unless --force; "
                "with --cohort, a run that was stopped continues with the cases not yet finished.",
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
    segment.add_argument("--force", action="store_true", help="replace finished results (only files OsteoSeg wrote)")
    segment.set_defaults(run=run_segment)
