"""Is an input file whole and readable? Checked before any work, with a message that names the file.

ITK reads a NIfTI file that was cut short (a copy or download that stopped) without an error, filling
the missing part with zeros, and turns NaN and infinite voxels into 0; so NIfTI files are also read
with nibabel, the format's reference reader, which reports both: the data size the header promises
against what the file holds (and an incomplete gzip stream), and the raw floating-point values.
"""

from __future__ import annotations

import errno
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import OsteoSegError

NIFTI_EXTENSIONS = (".nii", ".nii.gz")


def check_input_path(path: str | os.PathLike, *, case: str | None = None, kind: str = "file") -> Path:
    """The path of an existing, readable file; otherwise one clear reason (not found, a folder, a
    symbolic link loop, no permission)."""
    path = Path(path)
    try:
        status = path.stat()
    except OSError as error:
        reason = {errno.ENOENT: f"{kind} not found", errno.ELOOP: "a symbolic link loop, not a file",
                  errno.EACCES: "no permission to read it", errno.ENOTDIR: f"{kind} not found (a part of the "
                  "path is a file, not a folder)"}.get(error.errno, f"cannot be opened ({error.strerror})")
        raise OsteoSegError(reason, case=case, path=path) from None
    if path.is_dir():
        raise OsteoSegError(f"this is a folder; expected an image {kind}", case=case, path=path)
    if not os.access(path, os.R_OK):
        raise OsteoSegError("no permission to read it", case=case, path=path)
    if status.st_size == 0:
        raise OsteoSegError("the file is empty", case=case, path=path)
    return path


def check_nifti(path: str | os.PathLike, *, case: str | None = None) -> None:
    """Refuse a NIfTI file that is cut short or holds NaN / infinite voxels."""
    import nibabel

    path = Path(path)
    try:
        image = nibabel.load(str(path))
        voxels = np.asanyarray(image.dataobj)
    except (EOFError, zlib.error) as error:
        raise OsteoSegError(f"the file is cut short (its compressed data ends early: {error}); copy or "
                            "download it again", case=case, path=path) from None
    except OSError as error:
        detail = str(error).splitlines()[0]
        raise OsteoSegError(f"the file is cut short or damaged ({detail}); copy or download it again",
                            case=case, path=path) from None
    except (ValueError, nibabel.filebasedimages.ImageFileError) as error:
        raise OsteoSegError(f"not a readable NIfTI file ({error})", case=case, path=path) from None
    if voxels.dtype.kind in "fc":
        bad = int(voxels.size - np.count_nonzero(np.isfinite(voxels)))
        if bad:
            raise OsteoSegError(f"{bad} voxels are NaN or infinite", case=case, path=path)


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_EXTENSIONS)
