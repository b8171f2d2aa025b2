"""`osteoseg segment`: one patient's CT and PET through a model set, into a `.seg.nrrd` and more."""

from __future__ import annotations

from pathlib import Path

from .devices import DEVICE_CHOICES


def run_segment(arguments) -> int:
    import SimpleITK as sitk

    from .errors import OsteoSegError
    from .io import read_image
    from .models import load_model_set
    from .mrml import create_headless_context
    from .registration import register_rigid
    from .segment import segment_images
    from .segment_output import write_segmentation

    if arguments.ct is None and arguments.pet is None:
        raise OsteoSegError("give --ct, --pet or both")
    ct = read_image(arguments.ct) if arguments.ct else None
    pet = read_image(arguments.pet) if arguments.pet else None
    models = load_model_set(arguments.models)
    transform = None
    if arguments.align == "rigid" and ct is not None and pet is not None:
        transform = register_rigid(ct, pet).transform
    elif arguments.transform:
        transform = sitk.ReadTransform(arguments.transform)
    result = segment_images(ct, pet, models, transform=transform, device=arguments.device,
                            threshold=arguments.threshold, batch_size=arguments.batch_size)
    name = arguments.name or Path(arguments.ct or arguments.pet).name.split(".")[0]
    reference = ct if ct is not None else pet
    paths = write_segmentation(create_headless_context(), reference, result, arguments.out, name,
                               nifti=arguments.nifti, probabilities=arguments.probabilities)
    for model in models:
        voxels = int(result.masks[model.name].sum())
        print(f"{model.name}: {voxels} voxels at threshold {result.threshold}")
    print(f"{len(models)} model(s) on {result.device} in {result.seconds:.1f} s")
    for role, path in paths.items():
        print(f"{role}: {path}")
    return 0


def add_segment_command(commands) -> None:
    segment = commands.add_parser("segment", help="segment one patient with a model set (A and B)")
    segment.add_argument("--ct", help="CT image (the reference grid)")
    segment.add_argument("--pet", help="PET image (SUV), resampled onto the CT grid")
    segment.add_argument("--models", required=True, help="model set: a folder of model packages")
    segment.add_argument("--out", required=True, help="output folder (existing results are never overwritten)")
    segment.add_argument("--name", help="base name of the outputs (default: the CT file's name)")
    segment.add_argument("--align", choices=("resample", "rigid"), default="resample",
                         help="resample (combined PET/CT, default) or rigid registration first")
    segment.add_argument("--transform", help="a CT-to-PET transform file to apply instead (e.g. from osteoseg align)")
    segment.add_argument("--threshold", type=float, help="probability threshold (default: each model's card, 0.5)")
    segment.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    segment.add_argument("--batch-size", type=int, default=16, help="slices per network batch")
    segment.add_argument("--nifti", action="store_true", help="also write each model's mask as NIfTI")
    segment.add_argument("--probabilities", action="store_true", help="also write probability maps as NIfTI")
    segment.set_defaults(run=run_segment)
