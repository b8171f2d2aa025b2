"""`osteoseg propose`: proposed Label A and Label B from a rough input (a mask, a box or points) for one
patient, or for every case of a cohort into a new cohort; and how much editing a proposal needed to
reach the label the expert saved."""

from __future__ import annotations

import math
from pathlib import Path

from .command import add_command

SOURCES = ("A", "B")


def parse_comparisons(entries) -> dict[str, str]:
    """`A=FILE` / `B=FILE` pairs of --compare-with, by label source."""
    from ..errors import OsteoSegError

    comparisons = {}
    for entry in entries or []:
        source, separator, path = entry.partition("=")
        if not separator or source not in SOURCES or not path:
            raise OsteoSegError(f"--compare-with takes A=FILE or B=FILE (the label the expert saved), got {entry!r}")
        comparisons[source] = path
    return comparisons


def mask_on_grid(path, reference, *, what: str):
    """A saved label as a boolean array on the reference grid (resampled, nearest neighbour, when it was
    saved on another grid, e.g. a segmentation cropped to its extent; refused when it misses the grid)."""
    from ..data.io import read_image
    from ..imaging import check_overlap
    from ..model.slice_data import mask_on_grid as label_on_grid

    check_overlap(reference, read_image(path, case=what), case=what)
    return label_on_grid(path, reference, what) > 0


def rough_input(arguments, ct, case: str):
    """The one rough input given (--rough, --box or --points)."""
    from ..data.io import read_image
    from ..errors import OsteoSegError
    from ..labels.rough_input import rough_from_box, rough_from_mask, rough_from_points

    given = [flag for flag, value in (("--rough", arguments.rough), ("--box", arguments.box),
                                      ("--points", arguments.points)) if value]
    if len(given) != 1:
        raise OsteoSegError("give one rough input: --rough MASK, --box R A S R A S or --points R A S [R A S ...]"
                            + (f" (got {', '.join(given)})" if given else ""))
    if arguments.rough:
        return rough_from_mask(read_image(arguments.rough, case=case), ct, source=Path(arguments.rough).name,
                               case=case)
    if arguments.box:
        return rough_from_box(ct, arguments.box[:3], arguments.box[3:], case=case)
    if len(arguments.points) % 3:
        raise OsteoSegError(f"--points takes R A S coordinates, three numbers per point (got {len(arguments.points)})",
                            case=case)
    return rough_from_points(ct, [arguments.points[i:i + 3] for i in range(0, len(arguments.points), 3)], case=case)


def efforts(proposal, rough, comparisons: dict[str, str], ct) -> dict:
    """Per compared source: the edits from the proposal and from the rough input to the saved label."""
    from ..labels.editing_effort import editing_effort, effort_saving

    result = {}
    for source, path in comparisons.items():
        final = mask_on_grid(path, ct, what=f"label {source}")
        proposed = editing_effort(getattr(proposal, f"label_{source.lower()}"), final)
        start = editing_effort(rough, final)
        saving = effort_saving(start, proposed)   # NaN when the rough input needed no edit: JSON null
        result[source] = {"final": str(Path(path).resolve()), "proposal": proposed.as_dict(),
                          "rough_input": start.as_dict(),
                          "voxels_saved": None if math.isnan(saving) else round(saving, 4)}
    return result


def print_effort(rows: dict) -> None:
    print(f"{'label':<8}{'start':<14}{'voxels added':>14}{'removed':>10}{'changed':>10}{'slices':>8}{'Dice':>8}")
    for source, entry in rows.items():
        for start in ("proposal", "rough_input"):
            if start not in entry:
                continue
            e = entry[start]
            print(f"{source:<8}{start.replace('_', ' '):<14}{e['voxels_added']:>14}{e['voxels_removed']:>10}"
                  f"{e['voxels_changed']:>10}{e['slices_changed']:>8}{e['dice']:>8.3f}")
        if entry.get("voxels_saved") is not None:
            print(f"{source:<8}the proposal spares {100 * entry['voxels_saved']:.1f}% of the voxel edits")


def write_single(context, folder, name: str, ct, proposal, record: dict) -> dict:
    """<name>.seg.nrrd (Proposed A and B), one NIfTI mask per proposal, <name>.proposal.json (last)."""
    import json

    import SimpleITK as sitk

    from ..atomic import write_text
    from ..data.io import write_image
    from ..scene import mrml
    from ..scene.propose_in_scene import proposal_node

    paths = output_paths(folder.path, name)
    folder.record(*(path.name for path in paths.values()))   # noted first: a kill after a rename leaves it ours
    with mrml.temporary_nodes(context):
        reference = mrml.volume_node_from_image(context, ct, f"{name} CT")
        mrml.save_segmentation(context, proposal_node(context, reference, proposal, f"{name} proposals"),
                               paths["segmentation"])
    for source in SOURCES:
        image = sitk.GetImageFromArray(getattr(proposal, f"label_{source.lower()}"))
        image.CopyInformation(ct)
        write_image(image, paths[source])
    write_text(paths["record"], json.dumps(record, indent=1) + "\n")
    return paths


def output_paths(out: Path, name: str) -> dict[str, Path]:
    return {"segmentation": out / f"{name}.seg.nrrd", "A": out / f"{name}_proposed_A.nii.gz",
            "B": out / f"{name}_proposed_B.nii.gz", "record": out / f"{name}.proposal.json"}


def run_single(arguments) -> int:
    from ..data.io import read_image
    from ..errors import OsteoSegError
    from ..labels.propose import propose
    from ..outputs import OutputFolder
    from ..scene.mrml import create_headless_context
    from .segment import read_transform

    if not arguments.ct or not arguments.out:
        raise OsteoSegError("give --ct, --pet, a rough input and --out (or a COHORT with --rough-label)")
    comparisons = parse_comparisons(arguments.compare_with)
    name = arguments.name or Path(arguments.ct).name.split(".")[0]
    ct = read_image(arguments.ct, case=name)
    pet = read_image(arguments.pet, case=name) if arguments.pet else None
    rough = rough_input(arguments, ct, name)
    transform = read_transform(arguments.transform) if arguments.transform else None
    inputs = [arguments.ct, arguments.pet, arguments.rough, arguments.transform, *comparisons.values()]
    with OutputFolder(arguments.out, inputs=inputs, command="propose") as folder:
        paths = output_paths(folder.path, name)
        earlier = folder.earlier_result([path.name for path in paths.values()], arguments.force, "proposal",
                                        elsewhere="another folder or --name")
        # refused input: nothing written
        proposal = propose(ct, pet, rough, transform=transform, case=name, pet_path=arguments.pet)
        record = {"ct": str(Path(arguments.ct).resolve()), "pet": str(Path(arguments.pet).resolve()),
                  "rough_input": {"kind": rough.kind, "source": rough.source, "voxels": int(rough.region.sum())},
                  **proposal.summary()}
        if comparisons:
            record["editing_effort"] = efforts(proposal, rough.region, comparisons, ct)
        for file in earlier:
            folder.remove(file)   # refused for a file OsteoSeg did not write
        written = write_single(create_headless_context(), folder, name, ct, proposal, record)
    print(f"{name}: Proposed A {record['voxels']['A']} voxels, Proposed B {record['voxels']['B']} voxels "
          f"({proposal.clusters} clusters, {proposal.iterations} iterations, {proposal.seconds:.1f} s)")
    for lesion in proposal.lesions:
        print(f"  lesion {lesion.lesion}: {lesion.volume_ml} mL, SUVmax {lesion.suv_max}, confidence "
              f"{lesion.confidence} (contrast {lesion.contrast}, edge on clusters {lesion.cluster_edge})")
    if not proposal.lesions:
        print("  no PET-active region at the rough input: the proposals are empty")
    for role, path in written.items():
        print(f"  {role}: {path}")
    if comparisons:
        print_effort(record["editing_effort"])
    return 0


def run_compare(arguments) -> int:
    """Compare an earlier proposal (a mask file) with the label the expert saved; writes nothing."""
    import SimpleITK as sitk

    from ..data.io import read_image
    from ..errors import OsteoSegError
    from ..labels.editing_effort import editing_effort

    finals = arguments.compare_with or []
    if len(finals) != 1:
        raise OsteoSegError("with --proposal, give the saved label once: --compare-with FILE")
    proposal_image = read_image(arguments.proposal)
    proposed = sitk.GetArrayFromImage(proposal_image) != 0
    final_path = finals[0].partition("=")[2] if finals[0][:2] in ("A=", "B=") else finals[0]
    effort = editing_effort(proposed, mask_on_grid(final_path, proposal_image, what="the saved label"))
    print_effort({Path(arguments.proposal).name.split(".")[0]: {"proposal": effort.as_dict()}})
    return 0


def run_cohort(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..errors import OsteoSegError
    from ..labels.propose_cohort import propose_cohort
    from ..progress import TerminalProgress

    if not arguments.rough_label or not arguments.out:
        raise OsteoSegError("with a COHORT, give --rough-label SOURCE (the label used as the rough input) and --out")
    if any((arguments.ct, arguments.pet, arguments.rough, arguments.box, arguments.points, arguments.compare_with)):
        raise OsteoSegError("a COHORT takes --rough-label and --out only (--ct, --pet, --rough, --box, --points and "
                            "--compare-with are for one patient)")
    cohort = load_cohort(arguments.cohort)
    proposed = propose_cohort(cohort, arguments.rough_label, arguments.out, force=arguments.force,
                              progress=TerminalProgress())
    print(f"Wrote {len(proposed.cases)} cases with Proposed A and B as labels A and B to {proposed.root}")
    print("Review them first (on phantoms, models trained on unreviewed proposals scored below models trained on "
          "the rough input: docs/label-proposals.md), then train: "
          f"osteoseg train {arguments.out} --label A --out models/A")
    return 0


def run_propose(arguments) -> int:
    if arguments.proposal:
        return run_compare(arguments)
    if arguments.cohort:
        return run_cohort(arguments)
    return run_single(arguments)


def add_propose_command(commands) -> None:
    propose = add_command(
        commands, "propose", summary="Propose Label A and Label B from a rough outline, a box or a few points.",
        details="Clusters CT and PET around the rough input (an unsupervised network trained on the case itself), "
                "then keeps the clusters that fit each philosophy: A, the PET-active region with its soft-tissue "
                "involvement; B, the core where uptake meets bone destruction. Writes <name>.seg.nrrd (segments "
                "'Proposed A' and 'Proposed B', tagged as proposals), one NIfTI mask per proposal and "
                "<name>.proposal.json (each lesion with its confidence). Box and points are RAS millimetres, as "
                "Slicer shows them. With a COHORT, every case's label --rough-label is the rough input and a new "
                "cohort with the proposals as labels A and B is written, ready for 'osteoseg train'.",
        examples=["osteoseg propose --ct ct.nii.gz --pet pet.nii.gz --rough rough.nii.gz --out proposals",
                  "osteoseg propose --ct ct.nii.gz --pet pet.nii.gz --box -40 10 -30 0 45 10 --out proposals",
                  "osteoseg propose --ct ct.nii.gz --pet pet.nii.gz --points -20 25 -12 --out proposals",
                  "osteoseg propose --ct ct.nii.gz --pet pet.nii.gz --rough rough.nii.gz --out proposals "
                  "--compare-with A=saved_a.nii.gz B=saved_b.nii.gz",
                  "osteoseg propose --proposal proposals/ct_proposed_A.nii.gz --compare-with saved_a.nii.gz",
                  "osteoseg propose my-cohort --rough-label rough --out my-cohort-proposed"])
    propose.add_argument("cohort", nargs="?", help="a cohort: propose for every case into a new cohort")
    propose.add_argument("--ct", help="CT image (the reference grid)")
    propose.add_argument("--pet", help="PET image (SUV), resampled onto the CT grid")
    propose.add_argument("--rough", help="rough mask on the CT grid: a drawn outline or a model's prediction")
    propose.add_argument("--box", type=float, nargs=6, metavar=("R1", "A1", "S1", "R2", "A2", "S2"),
                         help="a box around the lesion: two opposite corners, RAS mm")
    propose.add_argument("--points", type=float, nargs="+", metavar="R A S",
                         help="points on the lesion, RAS mm (three numbers each)")
    propose.add_argument("--transform", help="a CT-to-PET transform file (e.g. from osteoseg align)")
    propose.add_argument("--rough-label", help="with a COHORT: the label source used as the rough input")
    propose.add_argument("--out", help="output folder (one patient) or the new cohort's folder")
    propose.add_argument("--name", help="base name of the outputs (default: the CT file's name)")
    propose.add_argument("--compare-with", nargs="+", metavar="SOURCE=FILE",
                         help="the label the expert saved (A=FILE, B=FILE): voxels and slices edited from the "
                              "proposal and from the rough input")
    propose.add_argument("--proposal", help="compare this earlier proposal (a mask) with --compare-with FILE only")
    propose.add_argument("--force", action="store_true", help="replace an earlier result (only files OsteoSeg wrote)")
    propose.set_defaults(run=run_propose)
