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
from .integrity import check_input_path, check_nifti, is_nifti

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_image(path: str | os.PathLike, *, case: str | None = None, dimension: int = 3) -> sitk.Image:
    """Read a scalar image file; raise OsteoSegError naming the file when it is missing, not a file,
    unreadable, cut short, of the wrong dimension or holds NaN/infinite voxels."""
    path = check_input_path(path, case=case)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise OsteoSegError(f"cannot read the image ({reason})", case=case, path=path) from None
    check_image(image, case=case, path=path, dimension=dimension)
    if is_nifti(path):
        check_nifti(path, case=case)
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
    """Write an image atomically; the format follows the extension. The file is read back before it
    takes its final name: ITK reports a failed write (a full disk) only on its console, and a file
    cut short reads back as zeros, so what is read must equal what was written."""
    path = Path(path)
    if not path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise OsteoSegError(f"unknown image extension; use one of {', '.join(IMAGE_EXTENSIONS)}", path=path)
    with atomic_path(path, verify=lambda written: check_written(image, written, path)) as temporary:
        try:
            sitk.WriteImage(image, str(temporary), compress)
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
            raise OsteoSegError(f"cannot write the image ({reason})", path=path) from None
    return path


def check_written(image: sitk.Image, written: Path, path: Path) -> None:
    """Raise unless `written` holds exactly `image` (voxels and geometry)."""
    problem = "the file on disk is incomplete"
    try:
        again = sitk.ReadImage(str(written))
        same = (again.GetSize() == image.GetSize()
                and np.array_equal(sitk.GetArrayViewFromImage(again), sitk.GetArrayViewFromImage(image))
                and np.allclose(again.GetOrigin(), image.GetOrigin(), atol=1e-4)
                and np.allclose(again.GetSpacing(), image.GetSpacing(), atol=1e-6))
    except RuntimeError:
        same = False
    if not same:
        raise OsteoSegError(f"writing failed: {problem} (is the disk full?); nothing was written", path=path)


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV text, a header line first: every key of any row, in the order first seen (a row
    without a key leaves its cell empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
