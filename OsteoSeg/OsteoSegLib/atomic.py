"""Atomic file output: write under a temporary name in the target folder, then rename.

A crash or a kill never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def split_extension(path: Path) -> tuple[str, str]:
    """Split a file name into stem and full extension, keeping double extensions
    such as '.nii.gz' and '.seg.nrrd' together (writers choose their format from them)."""
    name = path.name
    for double in (".nii.gz", ".seg.nrrd", ".tar.gz"):
        if name.lower().endswith(double):
            return name[: -len(double)], name[-len(double):]
    return path.stem, path.suffix


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, verify=None):
    """Yield a temporary path beside `final_path` with the same extension; on success check it with
    `verify(temporary)` (which raises when the file is not what was meant to be written) and rename
    it onto `final_path`; on failure remove it."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    stem, extension = split_extension(final_path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{extension}",
                                             dir=final_path.parent)
    except OSError as error:
        raise naming(error, final_path, None) from None
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        if verify is not None:
            verify(temporary)
        # mkstemp creates files readable by their owner only; give the result the usual permissions.
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, final_path)
    except OSError as error:
        raise naming(error, final_path, temporary) from None
    finally:
        temporary.unlink(missing_ok=True)


def naming(error: OSError, final_path: Path, temporary: Path | None) -> OSError:
    """The same error naming the file the user asked for, not its hidden temporary (a write that fails
    on a full disk names no file at all); an error about another file is left as it is."""
    if error.errno is None or (temporary is not None and error.filename is not None
                               and Path(error.filename) != temporary):
        return error
    return OSError(error.errno, error.strerror, str(final_path))


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
