"""Reading and writing 3D images (NIfTI, NRRD, MHA) through SimpleITK, with clear errors."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_path
from ..errors import OsteoSegError

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_image(path: str | os.PathLike, *, case: str | None = None, dimension: int = 3) -> sitk.Image:
    """Read a scalar image file; raise OsteoSegError naming the file when it is missing,
    unreadable, of the wrong dimension or holds NaN/infinite voxels."""
    path = Path(path)
    if not path.is_file():
        raise OsteoSegError("file not found", case=case, path=path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise OsteoSegError(f"cannot read the image ({reason})", case=case, path=path) from None
    check_image(image, case=case, path=path, dimension=dimension)
    return image


def check_image(image: sitk.Image, *, case: str | None = None, path: str | os.PathLike | None = None,
                dimension: int = 3) -> None:
    """Refuse images that are not `dimension`-D scalar volumes or hold NaN/infinite voxels."""
    if image.GetDimension() != dimension or (dimension == 3 and min(image.GetSize()) < 1):
        raise OsteoSegError(f"expected a {dimension}D image, found {image.GetDimension()}D "
                            f"of size {image.GetSize()}", case=case, path=path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise OsteoSegError(f"expected one value per voxel, found {image.GetNumberOfComponentsPerPixel()}",
                            case=case, path=path)
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        voxels = sitk.GetArrayViewFromImage(image)
        if not np.isfinite(voxels).all():
            bad = int(np.size(voxels) - np.count_nonzero(np.isfinite(voxels)))
            raise OsteoSegError(f"{bad} voxels are NaN or infinite", case=case, path=path)


def write_image(image: sitk.Image, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Write an image atomically; the format follows the extension."""
    path = Path(path)
    if not path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise OsteoSegError(f"unknown image extension; use one of {', '.join(IMAGE_EXTENSIONS)}", path=path)
    with atomic_path(path) as temporary:
        sitk.WriteImage(image, str(temporary), compress)
    return path


def csv_text(rows: list[dict]) -> str:
    """Rows of equal keys as CSV text, a header line first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
