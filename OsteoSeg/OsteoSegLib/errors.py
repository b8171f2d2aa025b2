"""The one exception type users see (it names the case, the file and what is wrong), and operating
system errors said the same way."""

from __future__ import annotations

import errno
from os import PathLike


class OsteoSegError(Exception):
    """A problem with the user's input or settings, phrased for the user (no traceback needed)."""

    def __init__(self, problem: str, *, case: str | None = None, path: str | PathLike | None = None):
        self.problem = problem
        self.case = case
        self.path = None if path is None else str(path)
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.case:
            where.append(f"case {self.case}")
        if self.path:
            where.append(self.path)
        return f"{': '.join(where)}: {self.problem}" if where else self.problem


OS_ERROR_MEANINGS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                     errno.EACCES: "no permission", errno.EPERM: "not permitted", errno.ENOENT: "not found",
                     errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "a part of the path is not a folder",
                     errno.ELOOP: "a symbolic link loop"}
if hasattr(errno, "EDQUOT"):
    OS_ERROR_MEANINGS[errno.EDQUOT] = "the disk quota is exhausted"


def describe_os_error(error: OSError) -> str:
    """'path: what went wrong' for an operating system error (a full disk, a read-only folder, ...)."""
    meaning = OS_ERROR_MEANINGS.get(error.errno, error.strerror or str(error))
    paths = [str(p) for p in (error.filename, error.filename2) if p]
    return f"{' -> '.join(paths)}: {meaning}" if paths else meaning
