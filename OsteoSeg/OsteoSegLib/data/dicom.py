"""DICOM series: find them in a folder by SeriesInstanceUID and Modality, read one as a 3D image
(CT in HU, PET in SUVbw). Headers come from pydicom, voxels from SimpleITK/GDCM."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import OsteoSegError
from .suv import SuvConversion, suv_conversion

IMAGE_MODALITIES = ("CT", "PT", "MR")


@dataclass
class Series:
    """One DICOM series found on disk: its identity, a header and its files."""

    uid: str
    modality: str
    description: str
    frame_of_reference: str
    files: list[Path] = field(default_factory=list)
    header: object = None          # pydicom dataset of the first file (no pixel data)
    positions: list[float] = field(default_factory=list)   # each file's position along the slice normal

    def summary(self) -> str:
        return f"{self.modality} '{self.description}' ({len(self.files)} files, UID {self.uid})"


def find_series(folder: str | os.PathLike) -> list[Series]:
    """All DICOM series under `folder` (recursively); files that are not DICOM are ignored."""
    import pydicom

    folder = Path(folder)
    if not folder.is_dir():
        raise OsteoSegError("DICOM folder not found", path=folder)
    found: dict[str, Series] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError):
            continue
        uid = str(header.get("SeriesInstanceUID", ""))
        if not uid:
            continue
        series = found.setdefault(uid, Series(uid, str(header.get("Modality", "")),
                                              str(header.get("SeriesDescription", "")),
                                              str(header.get("FrameOfReferenceUID", "")), header=header))
        series.files.append(path)
        series.positions.append(_slice_position(header))
    return list(found.values())


def _slice_position(header) -> float:
    """Where a slice lies along its normal (mm); 0 for files without image geometry (SEG, RTSTRUCT)."""
    if "ImageOrientationPatient" not in header or "ImagePositionPatient" not in header:
        return 0.0
    orientation = np.array(header.ImageOrientationPatient, dtype=float)
    return float(np.dot(np.cross(orientation[:3], orientation[3:]),
                        np.array(header.ImagePositionPatient, dtype=float)))


def choose_series(series: list[Series], modality: str, folder, *, uid: str | None = None, uids=(),
                  case: str | None = None) -> Series:
    """The one series of a modality, or the one with the UID `uid`; among several of the modality, the
    one whose UID is in `uids` (the --series option). Several without a way to choose is an error
    that lists them."""
    matches = [s for s in series if (s.uid == uid if uid else s.modality == modality)]
    if len(matches) > 1 and uids:
        matches = [s for s in matches if s.uid in set(uids)] or matches
    if not matches:
        available = "; ".join(s.summary() for s in series) or "no DICOM series at all"
        wanted = f"series {uid}" if uid else f"{modality} series"
        raise OsteoSegError(f"no {wanted} here (found: {available})", case=case, path=folder)
    if len(matches) > 1:
        listing = "; ".join(s.summary() for s in matches)
        raise OsteoSegError(f"{len(matches)} {modality} series here; choose one with --series and its "
                            f"SeriesInstanceUID: {listing}", case=case, path=folder)
    return matches[0]


def _sorted_slices(series: Series) -> list[str]:
    """Slice files ordered along the slice normal (not by file name), from positions read by find_series."""
    return [str(path) for _, path in sorted(zip(series.positions, series.files, strict=True))]


def read_series(series: Series, *, case: str | None = None) -> sitk.Image:
    """Read an image series as a float32 3D image (each slice's rescale slope/intercept applied)."""
    if series.modality not in IMAGE_MODALITIES:
        raise OsteoSegError(f"series {series.uid} is {series.modality}, not an image", case=case,
                            path=series.files[0].parent)
    if len(series.files) < 2:
        raise OsteoSegError(f"series {series.uid} has {len(series.files)} slice: a 3D image needs several",
                            case=case, path=series.files[0].parent)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(_sorted_slices(series))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        return reader.Execute()
    except RuntimeError as error:
        culprit = unreadable_file(series)
        raise OsteoSegError(f"cannot read DICOM series {series.uid} ({str(error).strip().splitlines()[-1]})",
                            case=case, path=culprit or series.files[0].parent) from None


def unreadable_file(series: Series) -> Path | None:
    """The first file of a series whose pixels cannot be decoded (named in the error), or None."""
    import pydicom

    for path in series.files:
        try:
            _ = pydicom.dcmread(path).pixel_array
        except Exception:   # pydicom raises many types for damaged or cut-short pixel data
            return path
    return None


def read_pet_suv(series: Series, *, case: str | None = None) -> tuple[sitk.Image, SuvConversion]:
    """A PET series in SUVbw, with the conversion that was applied."""
    try:
        conversion = suv_conversion(series.header)
    except OsteoSegError as error:
        raise OsteoSegError(error.problem, case=case, path=series.files[0].parent) from None
    image = read_series(series, case=case)
    return (image * conversion.factor if conversion.factor != 1.0 else image), conversion
