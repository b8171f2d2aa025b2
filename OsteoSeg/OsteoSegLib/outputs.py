"""An output folder OsteoSeg writes into: one run at a time, a manifest of what OsteoSeg wrote there,
and nothing else ever touched.

- A lock (`.osteoseg.lock`, an OS file lock released even when the process is killed) refuses a
  second run into the same folder while one is running.
- The manifest (`.osteoseg-manifest.json`) lists the entries (files and folders, relative to the
  folder) that OsteoSeg wrote. `--force` removes only those; a folder that also holds anything else
  is refused, so an output folder typed wrong never costs the user a file.
- An output folder that equals or contains one of the run's inputs is refused before anything is
  written.
- Temporaries left by a killed run (`atomic`'s `.*.partial*` names) are removed when the next run
  takes the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .atomic import write_text
from .errors import OsteoSegError

MANIFEST_FILE, LOCK_FILE = ".osteoseg-manifest.json", ".osteoseg.lock"
MANIFEST_FORMAT = "osteoseg-outputs"
PARTIAL_MARK = ".partial"


def check_not_over_inputs(out: str | os.PathLike, inputs) -> None:
    """Refuse an output folder that is one of the inputs or holds one (writing or clearing it could
    destroy them)."""
    out = Path(out).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == out or out in source.parents:
            raise OsteoSegError(f"the output folder {'is' if source == out else 'holds'} an input of this run "
                                f"({source}); choose another output folder", path=out)


def refuse_existing_file(path: str | os.PathLike, force: bool, inputs=()) -> Path:
    """An output file named by the user: refused when it exists (unless `force`) or is an input."""
    path = Path(path)
    for given in inputs:
        if given is not None and Path(given).resolve() == path.resolve():
            raise OsteoSegError("the output file is an input of this run; choose another name", path=path)
    if path.is_dir():
        raise OsteoSegError("this is a folder; give a file name", path=path)
    if path.exists() and not force:
        raise OsteoSegError("the file exists; choose another name or pass --force to replace it", path=path)
    check_writable(path)
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output (a file, or a folder) where the folder that would hold it, or
    the nearest one that exists, cannot be written: a read-only share, no write permission."""
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OsteoSegError(f"{folder} is not a folder, so nothing can be written here", path=path)
    if os.access(folder, os.W_OK):
        return
    read_only = hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY
    raise OsteoSegError(f"cannot write here: {'the file system is read-only' if read_only else 'no permission'} "
                        f"({folder})", path=path)


class OutputFolder:
    """Use as a context manager around everything a run writes into `path`."""

    def __init__(self, path: str | os.PathLike, *, inputs=(), command: str = ""):
        self.path = Path(path).resolve()
        self.inputs, self.command = tuple(inputs), command
        self._lock = None
        self._created = False
        self.entries: set[str] = set()

    # -- lifetime
    def __enter__(self) -> OutputFolder:
        check_not_over_inputs(self.path, self.inputs)
        if self.path.exists() and not self.path.is_dir():
            raise OsteoSegError("the output exists and is not a folder", path=self.path)
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = acquire_lock(self.path / LOCK_FILE, self.command)
        self.entries = set(self._read_manifest())
        self.remove_partials()
        return self

    def __exit__(self, *_) -> None:
        # A run that left nothing (refused, or failed before its first output) leaves no trace: its
        # manifest and lock file go (the lock while still held), and the folder when this run made it.
        untouched = not any((self.path / entry).exists() for entry in self.entries)
        if untouched:
            (self.path / MANIFEST_FILE).unlink(missing_ok=True)
            (self.path / LOCK_FILE).unlink(missing_ok=True)
        release_lock(self._lock)
        self._lock = None
        if untouched and self._created and not self.contents():
            try:
                self.path.rmdir()
            except OSError:
                pass

    # -- what is here
    def _read_manifest(self) -> list[str]:
        manifest = self.path / MANIFEST_FILE
        if not manifest.is_file():
            return []
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
            return [str(entry) for entry in document["entries"]]
        except (ValueError, KeyError, TypeError):
            raise OsteoSegError("OsteoSeg's list of what it wrote here is damaged; remove this folder's "
                                "contents yourself or choose another folder", path=manifest) from None

    def contents(self) -> list[str]:
        """Top-level entries of the folder, without OsteoSeg's own bookkeeping files."""
        return sorted(p.name for p in self.path.iterdir() if p.name not in (MANIFEST_FILE, LOCK_FILE))

    def foreign(self) -> list[str]:
        """Top-level entries that OsteoSeg did not write."""
        owned = {entry.split("/")[0] for entry in self.entries}
        return [name for name in self.contents() if name not in owned]

    def owns(self, relative: str) -> bool:
        return relative in self.entries or relative.split("/")[0] in self.entries

    # -- changes
    def record(self, *paths: str | os.PathLike) -> None:
        """Note that OsteoSeg wrote these (paths inside the folder, or relative to it)."""
        for path in paths:
            path = Path(path)
            relative = (path.resolve().relative_to(self.path) if path.is_absolute() else path).as_posix()
            self.entries.add(relative)
        self._save()

    def forget(self, relative: str) -> None:
        self.entries.discard(relative)
        self._save()

    def _save(self) -> None:
        document = {"format": MANIFEST_FORMAT, "format_version": 1, "command": self.command,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "entries": sorted(self.entries)}
        write_text(self.path / MANIFEST_FILE, json.dumps(document, indent=1) + "\n")

    def remove(self, relative: str) -> None:
        """Remove one entry OsteoSeg wrote (refused for anything else)."""
        if not self.owns(relative):
            raise OsteoSegError("was not written by OsteoSeg, so it is left alone; remove it yourself or "
                                "choose another output folder", path=self.path / relative)
        target = self.path / relative
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        self.forget(relative)

    def earlier_result(self, names, force: bool, what: str, elsewhere: str = "another folder") -> list[str]:
        """The files among `names` already here (an earlier result), refused before any work is done:
        without `force`, or when OsteoSeg did not write one of them (`--force` would leave it)."""
        earlier = [name for name in names if (self.path / name).exists()]
        if earlier and not force:
            raise OsteoSegError(f"an earlier {what} is there ({', '.join(earlier)}); choose {elsewhere}, or pass "
                                "--force to replace it", path=self.path)
        foreign = [name for name in earlier if not self.owns(name)]
        if foreign:
            raise OsteoSegError(f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} in the way and not "
                                f"written by OsteoSeg, so --force leaves it alone; choose {elsewhere}", path=self.path)
        return earlier

    def clear(self) -> None:
        """--force: remove everything OsteoSeg wrote here; refused (nothing removed) when the folder
        also holds other files."""
        foreign = self.foreign()
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise OsteoSegError(f"--force only removes what OsteoSeg wrote, and this folder also holds {shown}; "
                                "choose another output folder or remove them yourself", path=self.path)
        for relative in sorted(self.entries, key=lambda e: e.count("/"), reverse=True):
            if (self.path / relative).exists() or (self.path / relative).is_symlink():
                self.remove(relative)
        self.entries.clear()
        self._save()

    def refuse_foreign(self, what: str = "output folder") -> None:
        """Refuse a folder holding anything OsteoSeg did not write."""
        foreign = self.foreign()
        if foreign:
            raise OsteoSegError(f"the {what} holds files OsteoSeg did not write ({', '.join(foreign[:5])}); "
                                "choose an empty or new folder", path=self.path)

    def remove_partials(self) -> None:
        """Temporaries of an earlier, killed run (only ever OsteoSeg's, and nobody else writes here now)."""
        for partial in self.path.rglob(f".*{PARTIAL_MARK}*"):
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)


def acquire_lock(path: Path, command: str):
    """An exclusive, non-blocking OS lock on `path`; an error naming the holder when another run has it."""
    handle = open(path, "a+", encoding="utf-8")
    try:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OsteoSegError(f"another OsteoSeg run is writing into this folder ({holder}); wait for it to finish "
                            "or choose another output folder", path=path.parent) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, {command or 'osteoseg'}, since {time.strftime('%H:%M:%S')}")
    handle.flush()
    return handle


def release_lock(handle) -> None:
    if handle is None:
        return
    try:
        if os.name != "nt":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
