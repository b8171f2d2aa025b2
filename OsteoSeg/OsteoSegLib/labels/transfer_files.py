"""A transfer's files: the label map on the target grid, the transform that carried it and the report,
each written atomically and read back; the report comes last and lists the others with their sha256,
so an interrupted transfer is never taken for a finished one."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from ..alignment.registration import save_transform
from ..atomic import write_text
from ..data.fingerprint import sha256_file
from ..data.io import write_image
from .transfer import TransferResult

LABELS_FILE = "transferred_labels.nii.gz"
TRANSFORM_FILE = "target_to_source.h5"
RIGID_TRANSFORM_FILE = "target_to_source_rigid.tfm"
REPORT_FILE = "transfer.json"
SEGMENTATION_FILE = "transferred.seg.nrrd"
TRANSFER_OUTPUTS = (LABELS_FILE, TRANSFORM_FILE, RIGID_TRANSFORM_FILE, SEGMENTATION_FILE, REPORT_FILE)


def write_transfer(result: TransferResult, out: Path, *, inputs: dict[str, str], names: dict[int, str],
                   extra: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write the label map, the transforms and (last) the report into `out`; `extra` are files the
    caller already wrote there (the .seg.nrrd), listed in the report too. Returns the files by role."""
    out = Path(out)
    written = dict(extra or {})
    written["labels"] = write_image(sitk.Cast(result.labels, sitk.sitkUInt16), out / LABELS_FILE)
    save_transform(result.transform, out / TRANSFORM_FILE)   # rigid, or rigid then B-spline (composite)
    written["transform"] = out / TRANSFORM_FILE
    save_transform(result.rigid_transform, out / RIGID_TRANSFORM_FILE)
    written["rigid transform"] = out / RIGID_TRANSFORM_FILE
    report = {**result.report, "inputs": inputs, "names": {str(k): v for k, v in names.items()},
              "outputs": {role: {"file": path.name, "sha256": sha256_file(path)} for role, path in written.items()}}
    write_text(out / REPORT_FILE, json.dumps(report, indent=1) + "\n")
    written["report"] = out / REPORT_FILE
    return written
