"""`osteoseg transfer` and `osteoseg cohort transfer`: a label drawn on another image (a PET, an
earlier CT, an MRI) carried onto the CT by registration, with a quality report and a CT visibility
verdict per label."""

from __future__ import annotations

from .command import add_command

KIND_HELP = "what the source image is: pet (SUV), ct (e.g. an earlier scan) or other (e.g. MRI)"
STEPS_HELP = ("by default: resample for a PET (a combined PET/CT shares one frame of reference), rigid then "
              "B-spline for a CT, rigid for other sources")


def label_and_names(label_path: str, source, context):
    """The label map to transfer and its segment names: a label map file as it is, or a .seg.nrrd
    whose segments become the values 1, 2, ... on the source image's grid."""
    from ..data.io import read_image

    if not label_path.lower().endswith(".seg.nrrd"):
        return read_image(label_path), {}
    from ..scene import mrml
    from ..scene.transfer_in_scene import label_from_segments

    with mrml.temporary_nodes(context):
        reference = mrml.volume_node_from_image(context, source, "source")
        segmentation = mrml.load_segmentation(context, label_path)
        return label_from_segments(context, segmentation, reference, source)


def run_transfer(arguments) -> int:
    from ..data.io import read_image
    from ..errors import OsteoSegError
    from ..labels.transfer import transfer_label
    from ..labels.transfer_files import SEGMENTATION_FILE, TRANSFER_OUTPUTS, write_transfer
    from ..outputs import OutputFolder
    from ..scene import mrml
    from ..scene.transfer_in_scene import transferred_segmentation_node

    inputs = [arguments.label, arguments.source, arguments.target]
    with OutputFolder(arguments.out, inputs=inputs, command="transfer") as folder:
        earlier = folder.earlier_result(TRANSFER_OUTPUTS, arguments.force, "transfer")
        source, target = read_image(arguments.source), read_image(arguments.target)
        context = mrml.create_headless_context()
        label, names = label_and_names(arguments.label, source, context)
        try:
            result = transfer_label(source, label, target, source_kind=arguments.source_kind,
                                    steps=arguments.steps)
        except OsteoSegError as error:   # name the label when the problem names no file of its own
            raise OsteoSegError(error.problem, case=error.case, path=error.path or arguments.label) from None
        for name in earlier:
            folder.remove(name)   # only now, and refused for a file OsteoSeg did not write
        folder.record(*TRANSFER_OUTPUTS)
        with mrml.temporary_nodes(context):
            reference = mrml.volume_node_from_image(context, target, "target")
            node = transferred_segmentation_node(context, reference, result, names, "transferred")
            segmentation = mrml.save_segmentation(context, node, folder.path / SEGMENTATION_FILE)
        write_transfer(result, folder.path, inputs={"label": arguments.label, "source": arguments.source,
                                                    "target": arguments.target},
                       names=names, extra={"segmentation": segmentation})
    print_report(result.report, names)
    print(f"Wrote {', '.join(TRANSFER_OUTPUTS)} to {arguments.out}")
    return 0


def print_report(report: dict, names: dict[int, str]) -> None:
    rigid, deformable = report["rigid"], report["deformable"]
    if rigid is None:
        print("resampled: the source and the CT share one frame of reference (no registration)")
    else:
        print(f"rigid: Mattes MI {rigid['metric_before']:.4f} -> {rigid['metric_after']:.4f}, "
              f"translation {rigid['translation_mm']} mm, rotation {rigid['rotation_deg']} degrees")
    if deformable:
        print(f"deformable ({deformable['metric']}): {deformable['metric_rigid']:.4f} -> "
              f"{deformable['metric_deformable']:.4f}, folding {100 * deformable['folding_fraction']:.3f}%, "
              f"displacement at the label {deformable['displacement_mean_mm']:.1f} mm mean, "
              f"{deformable['displacement_max_mm']:.1f} mm max")
    for entry in report["labels"]:
        name = names.get(entry["value"], f"label {entry['value']}")
        visibility = entry["visibility"]
        verdict = visibility["verdict"] if visibility else "nothing was carried onto the CT"
        print(f"{name}: {entry['source_ml']:.2f} ml on the source, {entry['target_ml']:.2f} ml on the CT; {verdict}")


def run_cohort_transfer(arguments) -> int:
    from ..errors import OsteoSegError
    from ..labels.transfer_cohort import SUMMARY_FILE, transfer_cohort

    if arguments.source_kind is None and arguments.source != "pet":
        raise OsteoSegError(f"say what the source images ({arguments.source}) are with --source-kind ct or other")

    outcome = transfer_cohort(arguments.cohort, arguments.out, label_pattern=arguments.label,
                              source=arguments.source, name=arguments.name,
                              source_kind=arguments.source_kind or "pet",
                              steps=arguments.steps, force=arguments.force)
    print(f"Transferred {outcome['transferred']} case(s) as label source {arguments.name!r} into {arguments.out}")
    for case, reason in outcome["refused"].items():
        print(f"  {case}: refused ({reason})")
    print(f"Per-case figures and verdicts: {arguments.out}/{SUMMARY_FILE}")
    return 0


def add_step_options(parser, kind_default: str | None = "pet") -> None:
    parser.add_argument("--source-kind", choices=("pet", "ct", "other"), default=kind_default,
                        help=KIND_HELP if kind_default else f"{KIND_HELP}; needed unless --source is pet")
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--resample-only", dest="steps", action="store_const", const="resample", default=None,
                       help=f"no registration: the source shares the CT's frame of reference ({STEPS_HELP})")
    steps.add_argument("--rigid-only", dest="steps", action="store_const", const="rigid",
                       help="rigid registration, no B-spline step (separately acquired scans)")
    steps.add_argument("--deformable", dest="steps", action="store_const", const="deformable",
                       help="rigid registration, then the B-spline step around the label, whatever the source")
    parser.add_argument("--force", action="store_true", help="replace an earlier transfer OsteoSeg wrote in --out")


def add_transfer_command(commands) -> None:
    transfer = add_command(
        commands, "transfer", summary="Carry a label from another image onto the CT (resample, rigid, B-spline).",
        details="Writes transferred.seg.nrrd (one segment per label, tagged with its CT visibility verdict), "
                "transferred_labels.nii.gz, the transforms (target_to_source.h5: CT points to source points) and "
                "transfer.json (metric before/after, folding, displacement, verdicts).",
        examples=["osteoseg transfer --label pet_outline.nii.gz --source pet.nii.gz --target ct.nii.gz --out moved",
                  "osteoseg transfer --label earlier.seg.nrrd --source earlier_ct.nii.gz --source-kind ct "
                  "--target ct.nii.gz --out follow-up"])
    transfer.add_argument("--label", required=True, help="label map (NIfTI/NRRD, 0 = background) or .seg.nrrd "
                                                          "drawn on --source")
    transfer.add_argument("--source", required=True, help="the image the label was drawn on")
    transfer.add_argument("--target", required=True, help="the CT to carry the label onto")
    transfer.add_argument("--out", required=True, help="output folder")
    add_step_options(transfer)
    transfer.set_defaults(run=run_transfer)


def add_cohort_transfer(actions) -> None:
    transfer = add_command(
        actions, "transfer", summary="Add a label source to a cohort by transferring labels drawn on other images.",
        details="For each case, --label names the label file (a pattern in the folder of the case's CT) and "
                "--source the image it was drawn on (pet: the case's PET). The new cohort in --out names the "
                "original files where they are and holds the transferred labels and transfer.csv.",
        examples=["osteoseg cohort transfer my-cohort --label PET_mask.nii.gz --source pet --as pet_outline "
                  "--out my-cohort-transferred"])
    transfer.add_argument("cohort", help="cohort folder (or its cohort.json)")
    transfer.add_argument("--label", required=True, help="file pattern of each case's label, e.g. PET_mask.nii.gz")
    transfer.add_argument("--source", default="pet", help="pet (the case's PET) or a file pattern of the source image")
    transfer.add_argument("--as", dest="name", required=True, help="name of the new label source")
    transfer.add_argument("--out", required=True, help="folder of the new cohort")
    add_step_options(transfer, kind_default=None)
    transfer.set_defaults(run=run_cohort_transfer)
