"""The one exception type users see: it names the case, the file and what is wrong."""

from __future__ import annotations

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
