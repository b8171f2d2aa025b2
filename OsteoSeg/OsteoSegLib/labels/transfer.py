"""Label transfer: a label drawn on one image (a PET, an earlier CT, an MRI) carried onto a CT by
registration (rigid, then a B-spline deformation around the label), warped as per-label probability
maps and thresholded, with a quality report and a CT visibility verdict per label."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..alignment.registration import anatomy_mask, pet_coverage, register_rigid
from ..errors import OsteoSegError
from ..imaging import check_overlap, resample_onto, same_grid
from .deformable import GRID_SPACING_MM, label_region, register_deformable
from .visibility import ct_visibility

SOURCE_KINDS = ("pet", "ct", "other")
# How each kind of source and the CT are shown to the metric: PET clipped at SUV 3 against a blurred
# soft-tissue CT (as the PET-to-CT alignment does); CT against CT in a wide window that keeps bone;
# anything else (MRI) against a soft-tissue CT, shifted so its background is 0 (the rigid step pads with 0).
CT_WINDOWS = {"pet": (-200.0, 300.0), "ct": (-1000.0, 2000.0), "other": (-200.0, 300.0)}
CT_BLUR_MM = {"pet": 2.5, "ct": 0.0, "other": 1.0}
PET_CEILING_SUV = 3.0
STEPS = ("resample", "rigid", "deformable")
# What runs when not asked. A PET shares the CT's frame of reference on a combined PET/CT scanner (as
# in Align): on the 20 real STS patients, the PET-grid contour resampled onto the CT agreed with the
# CT-grid contour at median Dice 0.954, and after rigid registration at 0.822. The B-spline step runs
# CT to CT only: on phantom PET with a known deformation it folded in every case, and the settings
# tried moved the lesion further from the truth than the rigid answer (benchmarks/transfer.py).
DEFAULT_STEPS = {"pet": "resample", "ct": "deformable", "other": "rigid"}
DEFORMABLE_METRIC = {"ct": "correlation", "pet": "mattes", "other": "mattes"}
MAX_LABELS = 255   # each label is warped as its own full-size probability map
SOURCE_NAMES = {"pet": "PET", "ct": "prior-scan", "other": "source-image"}   # "... treat as a PET-only finding"


@dataclass
class TransferResult:
    """The labels on the target grid, the transform that carried them, and the report."""

    labels: sitk.Image                 # uint16 label map on the target's grid (0 = background)
    transform: sitk.Transform          # target points to source points (rigid, then the deformation)
    rigid_transform: sitk.Transform    # the rigid step alone
    report: dict = field(default_factory=dict)


def check_label_on_source(label: sitk.Image, source: sitk.Image, case: str | None) -> list[int]:
    """The label values to carry (> 0), after refusing a label that is not on its source's grid or empty."""
    if not same_grid(label, source):
        raise OsteoSegError(f"the label is not on its source image's grid (label {label.GetSize()} voxels of "
                            f"{tuple(round(s, 3) for s in label.GetSpacing())} mm, source {source.GetSize()} of "
                            f"{tuple(round(s, 3) for s in source.GetSpacing())} mm, or other origin/direction); "
                            "give the image the label was drawn on", case=case)
    values = np.unique(sitk.GetArrayViewFromImage(label))
    if np.any(values < 0) or not np.all(np.equal(np.mod(values, 1), 0)):
        raise OsteoSegError("the label must hold non-negative whole numbers (0 = background)", case=case)
    values = [int(v) for v in values if v > 0]
    if not values:
        raise OsteoSegError("the label is empty: nothing to transfer", case=case)
    if len(values) > MAX_LABELS or values[-1] > np.iinfo(np.uint16).max:
        raise OsteoSegError(f"the label holds {len(values)} different values up to {values[-1]}: this looks like an "
                            f"image, not a label (at most {MAX_LABELS} labels, values up to 65535); check that "
                            "--label and --source are not swapped", case=case)
    return values


def metric_image(image: sitk.Image, kind: str) -> sitk.Image:
    """The source as the metric sees it (see CT_WINDOWS): background 0, float."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    if kind == "pet":
        return sitk.Clamp(image, lowerBound=0.0, upperBound=PET_CEILING_SUV)
    if kind == "ct":
        low, high = CT_WINDOWS["ct"]
        return sitk.Clamp(image, lowerBound=low, upperBound=high) - low
    return image - float(sitk.GetArrayViewFromImage(image).min())


def metric_ct(ct: sitk.Image, kind: str) -> sitk.Image:
    """The target CT as the metric sees it for this kind of source (see CT_WINDOWS)."""
    low, high = CT_WINDOWS[kind]
    fixed = sitk.Cast(sitk.Clamp(ct, lowerBound=low, upperBound=high), sitk.sitkFloat32)
    return sitk.SmoothingRecursiveGaussian(fixed, CT_BLUR_MM[kind]) if CT_BLUR_MM[kind] > 0 else fixed


def rigid_step(target: sitk.Image, source: sitk.Image, kind: str, case: str | None):
    """The rigid registration of the PET-to-CT alignment, with the CT window and source scaling of this
    kind of source."""
    moving = source if kind == "pet" else metric_image(source, kind)
    return register_rigid(target, moving, case=case, ct_window=CT_WINDOWS[kind], blur_mm=CT_BLUR_MM[kind],
                          pet_ceiling_suv=PET_CEILING_SUV if kind == "pet" else None)


def warp_labels(label: sitk.Image, values: list[int], target: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """(z, y, x) label map on the target: each value warped as a probability map (linear), the most
    probable value wherever it reaches 0.5 (so labels keep their size and do not overlap)."""
    array = sitk.GetArrayViewFromImage(label)
    probabilities = []
    for value in values:
        one = sitk.GetImageFromArray((array == value).astype(np.float32))
        one.CopyInformation(label)
        probabilities.append(sitk.GetArrayFromImage(resample_onto(one, target, transform=transform)))
    stacked = np.stack(probabilities)
    best = np.argmax(stacked, axis=0)
    out = np.asarray(values, np.uint16)[best]
    out[stacked.max(axis=0) < 0.5] = 0
    return out


def transfer_label(source: sitk.Image, label: sitk.Image, target: sitk.Image, *, source_kind: str = "pet",
                   steps: str | None = None, case: str | None = None,
                   grid_spacing_mm: float = GRID_SPACING_MM) -> TransferResult:
    """Carry `label` (on `source`'s grid) onto the CT `target` by `steps` (None: DEFAULT_STEPS for the
    source kind): "resample" (a shared frame of reference), "rigid" registration, or "deformable"
    (rigid, then a B-spline around the label, kept only where it matches the images better). The
    report holds the metric before and after each step, the deformation's folding and displacement,
    and each label's CT visibility."""
    if source_kind not in SOURCE_KINDS:
        raise OsteoSegError(f"unknown source kind {source_kind!r}; use one of {', '.join(SOURCE_KINDS)}", case=case)
    steps = DEFAULT_STEPS[source_kind] if steps is None else steps
    if steps not in STEPS:
        raise OsteoSegError(f"unknown registration {steps!r}; use one of {', '.join(STEPS)}", case=case)
    values = check_label_on_source(label, source, case)
    check_overlap(target, source, case=case, names=("source image", "target CT"))
    report = {"source_kind": source_kind, "steps": steps, "rigid": None, "deformable": None}
    rigid_transform: sitk.Transform = sitk.Euler3DTransform()   # resample: one frame of reference
    if steps != "resample":
        rigid = rigid_step(target, source, source_kind, case)
        rigid_transform, report["rigid"] = rigid.transform, rigid_report(rigid)
    transform = rigid_transform
    labels = warp_labels(label, values, target, transform)
    if not labels.any():
        raise OsteoSegError("on the target CT the label lies outside it; check that source and target show the "
                            "same part of the patient", case=case)
    if steps == "deformable":
        deformable = deformable_step(target, source, source_kind, rigid_transform, labels > 0, grid_spacing_mm, case)
        report["deformable"] = deformable_report(deformable, grid_spacing_mm)
        if deformable.improved:
            transform = deformable.transform
            labels = warp_labels(label, values, target, transform)
    report["labels"] = label_reports(label, values, target, labels, SOURCE_NAMES[source_kind])
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(target)
    return TransferResult(image, transform, rigid_transform, report)


def deformable_step(target, source, kind, rigid, label_on_target, grid_spacing_mm, case):
    """The B-spline step on the target's region around the (rigidly carried) label: the metric samples
    body and the air next to it that the source covers, away from metal."""
    region = label_region(label_on_target, target.GetSpacing())
    box = tuple(reversed(region))   # SimpleITK slices x, y, z
    fixed = metric_ct(target, kind)[box]
    mask_array = (anatomy_mask(target) & pet_coverage(target, source, 0.0, rigid))[region]
    mask = sitk.GetImageFromArray(mask_array.astype(np.uint8))
    mask.CopyInformation(fixed)
    return register_deformable(fixed, metric_image(source, kind), rigid, mask, label_on_target[region],
                               metric=DEFORMABLE_METRIC[kind], case=case, grid_spacing_mm=grid_spacing_mm)


def rigid_report(rigid) -> dict:
    transform = rigid.transform
    angles = (transform.GetAngleX(), transform.GetAngleY(), transform.GetAngleZ())
    return {"metric_before": round(rigid.metric_before, 5), "metric_after": round(rigid.metric_after, 5),
            "translation_mm": [round(t, 3) for t in transform.GetTranslation()],
            "rotation_deg": [round(float(np.degrees(a)), 3) for a in angles]}


def deformable_report(result, grid_spacing_mm: float) -> dict:
    return {"metric": result.metric, "metric_rigid": round(result.metric_rigid, 5),
            "metric_deformable": round(result.metric_deformable, 5),
            "folding_fraction": result.folding_fraction,
            "displacement_mean_mm": round(result.displacement_mean_mm, 3),
            "displacement_max_mm": round(result.displacement_max_mm, 3),
            "grid_spacing_mm": grid_spacing_mm, "iterations": result.iterations, "used": result.improved,
            **({} if result.improved else {"note": "the deformation matched the images worse than the rigid answer "
                                                   "at full resolution; the rigid answer is kept"})}


def label_reports(label: sitk.Image, values: list[int], target: sitk.Image, labels: np.ndarray,
                  source_name: str = "PET") -> list[dict]:
    """Per label: voxels and volume on source and target, and the CT visibility verdict."""
    source_array = sitk.GetArrayViewFromImage(label)
    source_ml = float(np.prod(label.GetSpacing())) / 1000.0
    target_ml = float(np.prod(target.GetSpacing())) / 1000.0
    ct = sitk.GetArrayViewFromImage(target)
    spacing_zyx = tuple(reversed(target.GetSpacing()))
    reports = []
    for value in values:
        carried = labels == value
        entry = {"value": value, "source_ml": round(float((source_array == value).sum()) * source_ml, 3),
                 "target_ml": round(float(carried.sum()) * target_ml, 3)}
        entry["visibility"] = (ct_visibility(ct, carried, spacing_zyx, source_name=source_name).as_dict()
                               if carried.any() else None)
        reports.append(entry)
    return reports
