"""Starting and stopping the segmentation worker on each operating system.

Inside Slicer the worker runs in `PythonSlicer`, found on the PATH that Slicer's launcher sets up
(`slicerHome/bin/PythonSlicer` exists in an installed Slicer but not in a build tree, and is
`PythonSlicer.exe` on Windows). PythonSlicer is itself a launcher that starts the real Python as a
child, so Cancel must end the whole process tree: a process group on POSIX, `taskkill /T` on Windows
(killing only the launcher leaves the real Python computing). On Windows the console window that a
console program opens is hidden, as `slicer.util.launchConsoleProcess` does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import OsteoSegError

PYTHON_SLICER = "PythonSlicer"


def find_python_slicer(slicer_home: str | None = None, *, which=shutil.which, executable: str = sys.executable) -> str:
    """PythonSlicer on the PATH (installed and build trees), else beside this Python, else in
    `slicer_home/bin`; an error naming where it looked when none exists."""
    suffix = ".exe" if os.name == "nt" else ""
    candidates = [Path(executable).parent / f"{PYTHON_SLICER}{suffix}"]
    if slicer_home:
        candidates.append(Path(slicer_home) / "bin" / f"{PYTHON_SLICER}{suffix}")
    found = which(PYTHON_SLICER)
    if found:
        return found
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise OsteoSegError(f"cannot find {PYTHON_SLICER} to run the segmentation in (looked on the PATH and in "
                        f"{', '.join(str(c.parent) for c in candidates)})")


def launch_options(os_name: str = os.name) -> dict:
    """Keyword arguments for subprocess.Popen: a process group of its own on POSIX (so that Cancel
    reaches every child), a hidden console window on Windows."""
    if os_name == "nt":
        startup = subprocess.STARTUPINFO() if hasattr(subprocess, "STARTUPINFO") else None
        if startup is not None:
            startup.dwFlags |= 1          # STARTF_USESHOWWINDOW
            startup.wShowWindow = 0       # SW_HIDE
        return {"startupinfo": startup, "creationflags": 0x00000200}   # CREATE_NEW_PROCESS_GROUP
    return {"start_new_session": True}


def kill_tree(process: subprocess.Popen, os_name: str = os.name, *, run=subprocess.run) -> None:
    """End the process and every process it started."""
    if process.poll() is not None:
        return
    if os_name == "nt":
        # /T: the whole tree (the launcher's python-real included), /F: without asking it first
        run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:   # ended on its own meanwhile
            pass
