"""A segmentation as the user receives it: one segmentation node (Model A, Model B, and where they
disagree), named, coloured and tagged with provenance, saved as `.seg.nrrd`; optionally NIfTI masks
and probability maps. Existing results are never overwritten without --force, and then only the
files OsteoSeg wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import write_text
from ..data.fingerprint import sha256_file
from ..data.io import write_image
from ..errors import OsteoSegError
from ..inference.segment import Segmentation
from ..outputs import OutputFolder
from . import mrml
from .terminology import finding_tag

SEGMENT_STYLE = {"A": ("Model A (high sensitivity)", (0.894, 0.102, 0.110)),
                 "B": ("Model B (high specificity)", (0.216, 0.494, 0.722))}
DISAGREEMENT = ("A only (disagreement)", (1.0, 0.75, 0.0))
PROVENANCE_TAG = "OsteoSeg.provenance"


def provenance(segmentation: Segmentation) -> dict:
    """What made this result: models (name, label source, sha256, version; for an ensemble, every
    member's name and sha256), device and engine, threshold, time."""
    return {"models": [{"name": m.name, "label_source": m.card["label_source"], "inputs": m.card["inputs"],
                        "weights_sha256": m.card["weights_sha256"], "osteoseg": m.card["versions"]["osteoseg"],
                        **({"members": m.card["members"]} if len(m.card["members"]) > 1 else {})}
                       for m in segmentation.models],
            "device": segmentation.device, "backend": segmentation.backend, "threshold": segmentation.threshold,
            "seconds": round(segmentation.seconds, 3)}


def segment_specs(segmentation: Segmentation) -> list[mrml.SegmentSpec]:
    """One segment per model (A red, B blue, as in the paper), plus "A only" when both A and B ran."""
    by_source = {}
    for model in segmentation.models:
        by_source.setdefault(model.card["label_source"], []).append(model)
    specs = []
    for model in segmentation.models:
        source = model.card["label_source"]
        name, color = SEGMENT_STYLE.get(source, (f"Model {source}", (0.9, 0.9, 0.2)))
        if len(by_source[source]) > 1:
            name = f"{name} [{model.name}]"
        specs.append(mrml.SegmentSpec(name, color, segmentation.masks[model.name], finding_tag(source),
                                      tags={"OsteoSeg.model": model.name,
                                            "OsteoSeg.weights_sha256": model.card["weights_sha256"]}))
    if len(by_source.get("A", [])) == 1 and len(by_source.get("B", [])) == 1:
        a, b = (segmentation.masks[by_source[s][0].name] > 0 for s in "AB")
        specs.append(mrml.SegmentSpec(*DISAGREEMENT, (a & ~b).astype(np.uint8), finding_tag("disagreement")))
    return specs


def segmentation_node(context: mrml.MrmlContext, reference_node, segmentation: Segmentation,
                      specs: list[mrml.SegmentSpec], name: str):
    """The segmentation node of a result from its `segment_specs`, with its provenance as attributes."""
    node = mrml.segmentation_from_masks(context, reference_node, specs, name)
    record = provenance(segmentation)
    node.SetAttribute(PROVENANCE_TAG, json.dumps(record))
    for key in ("device", "threshold", "seconds"):
        node.SetAttribute(f"OsteoSeg.{key}", str(record[key]))
    node.SetAttribute("OsteoSeg.models", ", ".join(m["name"] for m in record["models"]))
    return node


def output_paths(out: Path, name: str, segmentation: Segmentation, nifti: bool, probabilities: bool) -> dict:
    paths = {"segmentation": out / f"{name}.seg.nrrd", "provenance": out / f"{name}.provenance.json"}
    for model in segmentation.models:
        if nifti:
            paths[f"mask {model.name}"] = out / f"{name}_{model.name}_mask.nii.gz"
        if probabilities:
            paths[f"probability {model.name}"] = out / f"{name}_{model.name}_probability.nii.gz"
    return paths


def finished_outputs(out: Path, name: str) -> dict[str, Path] | None:
    """The outputs of a finished result `name` in `out` by role, or None when there is none or it is
    incomplete. The provenance file is written last and lists every other output with its sha256, so
    a result whose writing was interrupted, or whose files changed since, is not taken as finished."""
    record = Path(out) / f"{name}.provenance.json"
    try:
        outputs = json.loads(record.read_text(encoding="utf-8"))["outputs"]
        paths = {role: Path(out) / entry["file"] for role, entry in outputs.items()}
        if all(sha256_file(paths[role]) == entry["sha256"] for role, entry in outputs.items()):
            return {**paths, "provenance": record}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):   # a provenance file that is not ours
        pass
    return None


def result_names(name: str, model_names) -> list[str]:
    """Every file name a result called `name` of these models can have (NIfTI or not)."""
    return [f"{name}.seg.nrrd", f"{name}.provenance.json",
            *(f"{name}_{model}_{kind}.nii.gz" for model in model_names for kind in ("mask", "probability"))]


def clear_result(folder: OutputFolder, name: str, model_names) -> None:
    """Remove an earlier (finished or interrupted) result `name` that OsteoSeg wrote; a file of that
    name that OsteoSeg did not write is refused, before anything is removed."""
    present = [file for file in result_names(name, model_names) if (folder.path / file).exists()]
    foreign = [file for file in present if not folder.owns(file)]
    if foreign:
        raise OsteoSegError(f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} in the way and "
                            "not written by OsteoSeg; choose another output folder or name", path=folder.path)
    for file in present:
        folder.remove(file)


def write_segmentation(context: mrml.MrmlContext, ct: sitk.Image, segmentation: Segmentation, out, name: str, *,
                       nifti: bool = False, probabilities: bool = False,
                       folder: OutputFolder | None = None) -> dict[str, Path]:
    """Write the result files; returns them by role. Without a `folder` (its manifest of what OsteoSeg
    wrote), any existing file of the result is refused; with one, the caller has cleared an earlier
    result first. The provenance file comes last (see `finished_outputs`)."""
    out = Path(out)
    paths = output_paths(out, name, segmentation, nifti, probabilities)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise OsteoSegError(f"an earlier result is in the way ({', '.join(existing)}); "
                            "choose another output folder or name, or pass --force to replace it", path=out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with mrml.temporary_nodes(context):
        reference = mrml.volume_node_from_image(context, ct, f"{name} CT")
        node = segmentation_node(context, reference, segmentation, segment_specs(segmentation),
                                 f"{name} osteomyelitis")
        _note(folder, paths["segmentation"])   # noted before it exists: a kill after the rename leaves it ours
        mrml.save_segmentation(context, node, paths["segmentation"])
        record = json.loads(node.GetAttribute(PROVENANCE_TAG))
    written["segmentation"] = paths["segmentation"]
    for model in segmentation.models:
        for kind, array in (("mask", segmentation.masks[model.name]),
                            ("probability", segmentation.probabilities[model.name])):
            role = f"{kind} {model.name}"
            if role in paths:
                image = sitk.GetImageFromArray(array)
                image.CopyInformation(ct)
                _note(folder, paths[role])
                written[role] = write_image(image, paths[role])
    record["outputs"] = {role: {"file": path.name, "sha256": sha256_file(path)} for role, path in written.items()}
    _note(folder, paths["provenance"])
    write_text(paths["provenance"], json.dumps(record, indent=1) + "\n")
    return paths


def _note(folder: OutputFolder | None, path: Path) -> None:
    if folder is not None:
        folder.record(path.name)
