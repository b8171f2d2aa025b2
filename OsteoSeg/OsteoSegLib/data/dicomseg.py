"""DICOM SEG -> one binary mask per segment, on a given image grid (highdicom reads the SEG)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import OsteoSegError


def _volume_to_image(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A (slice, row, column) array with highdicom's index-to-LPS affine as a SimpleITK image."""
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    columns = affine[:3, [2, 1, 0]]          # SimpleITK's index order is (column, row, slice)
    spacing = np.linalg.norm(columns, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((columns / spacing).ravel().tolist())
    image.SetOrigin(affine[:3, 3].tolist())
    return image


def dicom_seg_to_masks(path: str | os.PathLike, reference: sitk.Image | None = None, *,
                       frame_of_reference: str | None = None, case: str | None = None) -> dict[str, sitk.Image]:
    """Every segment of a DICOM SEG as a mask named '<number> <label>', resampled (nearest) onto
    `reference` when one is given, else on the SEG's own geometry. With `frame_of_reference` (the
    reference image's), a SEG drawn on another frame of reference is refused: its coordinates would
    not mean the same place."""
    import highdicom

    path = Path(path)
    if not path.is_file():
        raise OsteoSegError("DICOM SEG file not found", case=case, path=path)
    try:
        segmentation = highdicom.seg.segread(path)
    except Exception as error:  # highdicom raises many types for files that are not a SEG
        raise OsteoSegError(f"cannot read the DICOM SEG ({error})", case=case, path=path) from None
    seg_frame = str(segmentation.get("FrameOfReferenceUID", ""))
    if frame_of_reference and seg_frame != frame_of_reference:
        raise OsteoSegError(f"the DICOM SEG is drawn on frame of reference {seg_frame or '(none)'}, not the "
                            f"image's {frame_of_reference}", case=case, path=path)
    volume = segmentation.get_volume(combine_segments=False)
    masks = {}
    for channel, item in enumerate(segmentation.SegmentSequence):
        image = _volume_to_image(volume.array[..., channel] > 0, volume.affine)
        if reference is not None:
            image = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        masks[f"{item.SegmentNumber} {item.SegmentLabel}"] = image
    return masks
