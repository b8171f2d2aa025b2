"""`osteoseg suv`: a DICOM PET series converted to SUV normalised by body weight, and how."""

from __future__ import annotations

from .command import add_command


def run_suv(arguments) -> int:
    import SimpleITK as sitk

    from ..data.dicom import choose_series, find_series, read_pet_suv
    from ..data.io import write_image
    from ..outputs import refuse_existing_file

    if arguments.out:   # refused before reading, not after
        refuse_existing_file(arguments.out, arguments.force)
    series = choose_series(find_series(arguments.folder), "PT", arguments.folder, uid=arguments.series)
    image, conversion = read_pet_suv(series)
    for key, value in conversion.as_dict().items():
        print(f"  {key:<18}{value}")
    print(f"  {'SUVmax':<18}{float(sitk.GetArrayViewFromImage(image).max()):.3f}")
    if arguments.out:
        write_image(image, arguments.out)
        print(f"Wrote {arguments.out}")
    return 0


def add_suv_command(commands) -> None:
    suv = add_command(commands, "suv", summary="Convert a DICOM PET series to SUVbw and show how.",
                      details="Units BQML are decay-corrected and divided by the injected dose per body weight; "
                              "GML is already SUVbw; other units are refused, never guessed.",
                      examples=["osteoseg suv patient1/PET", "osteoseg suv patient1/PET --out pet.nii.gz"])
    suv.add_argument("folder", help="folder with the PET series")
    suv.add_argument("--series", help="SeriesInstanceUID, when the folder holds several PET series")
    suv.add_argument("--out", help="write the SUV image here (.nii.gz, .nrrd, ...)")
    suv.add_argument("--force", action="store_true", help="replace the --out file if it exists")
    suv.set_defaults(run=run_suv)
