"""DICOM RTSTRUCT -> binary mask on a given image grid.

Each closed planar contour is rasterised on the slice it lies in (voxel centres inside the polygon);
contours on the same slice combine by even-odd, so inner contours cut holes as RT planning systems
draw them. No maintained library does exactly this for SimpleITK grids (rt-utils ties itself to its
own series loader), so it is done here with pydicom and matplotlib's point-in-polygon test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import OsteoSegError


def roi_names(path: str | os.PathLike) -> list[str]:
    """The ROI names an RTSTRUCT file holds."""
    return [roi.ROIName for roi in _read(path).StructureSetROISequence]


def _read(path):
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise OsteoSegError("RTSTRUCT file not found", path=path)
    try:
        dataset = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError) as error:
        raise OsteoSegError(f"cannot read the RTSTRUCT ({error})", path=path) from None
    if dataset.get("Modality") != "RTSTRUCT":
        raise OsteoSegError(f"not an RTSTRUCT (Modality {dataset.get('Modality')!r})", path=path)
    return dataset


def rtstruct_to_mask(path: str | os.PathLike, reference: sitk.Image, *, roi: str | None = None,
                     frame_of_reference: str | None = None, case: str | None = None) -> sitk.Image:
    """Rasterise one ROI (by name; may be omitted when the file has only one) onto `reference`'s grid.
    When `frame_of_reference` is given, an RTSTRUCT drawn in another frame is refused."""
    from matplotlib.path import Path as Polygon

    dataset = _read(path)
    rois = {r.ROINumber: r.ROIName for r in dataset.StructureSetROISequence}
    if roi is None and len(rois) != 1:
        raise OsteoSegError(f"the RTSTRUCT holds {len(rois)} ROIs ({', '.join(rois.values())}): name one",
                            case=case, path=path)
    number = next((n for n, name in rois.items() if roi is None or name == roi), None)
    if number is None:
        raise OsteoSegError(f"no ROI named {roi!r} (found: {', '.join(rois.values())})", case=case, path=path)
    if frame_of_reference:
        frames = {str(f.FrameOfReferenceUID) for f in dataset.get("ReferencedFrameOfReferenceSequence", [])}
        if frames and frame_of_reference not in frames:
            raise OsteoSegError("the RTSTRUCT was drawn in another frame of reference than its image",
                                case=case, path=path)
    contours = next((c for c in dataset.ROIContourSequence if c.ReferencedROINumber == number), None)
    size = reference.GetSize()
    mask = np.zeros(tuple(reversed(size)), np.uint8)
    jj, ii = np.mgrid[0:size[1], 0:size[0]]
    centres = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    for contour in getattr(contours, "ContourSequence", []):
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        indices = np.array([reference.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in points])
        k = int(round(float(np.median(indices[:, 2]))))
        if not 0 <= k < size[2]:
            continue
        inside = Polygon(indices[:, :2]).contains_points(centres).reshape(size[1], size[0])
        mask[k] ^= inside.astype(np.uint8)
    result = sitk.GetImageFromArray(mask)
    result.CopyInformation(reference)
    return result
