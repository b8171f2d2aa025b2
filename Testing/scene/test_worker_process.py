"""Starting and stopping the worker on each system: where PythonSlicer is found, how the process is
launched, and that Cancel ends the launcher and the real Python it started."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.scene.worker_process import find_python_slicer, kill_tree, launch_options


def test_pythonslicer_is_taken_from_the_path_first_then_beside_python_then_slicer_home(tmp_path):
    assert find_python_slicer(which=lambda name: "/opt/slicer/bin/PythonSlicer") == "/opt/slicer/bin/PythonSlicer"
    beside = tmp_path / "python-install" / "bin"
    beside.mkdir(parents=True)
    (beside / "PythonSlicer").write_text("")
    assert find_python_slicer(which=lambda name: None, executable=str(beside / "python-real")) == str(
        beside / "PythonSlicer")
    home = tmp_path / "Slicer-5.10"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "PythonSlicer").write_text("")
    assert find_python_slicer(str(home), which=lambda name: None, executable=str(tmp_path / "python")) == str(
        home / "bin" / "PythonSlicer")
    with pytest.raises(OsteoSegError, match=r"cannot find PythonSlicer .*\(looked on the PATH"):
        find_python_slicer(str(tmp_path / "nowhere"), which=lambda name: None, executable=str(tmp_path / "py"))


def test_windows_hides_the_console_and_posix_gets_a_process_group():
    assert launch_options("posix") == {"start_new_session": True}
    windows = launch_options("nt")
    assert windows["creationflags"] == 0x200
    if windows["startupinfo"] is not None:          # STARTUPINFO exists on Windows only
        assert windows["startupinfo"].wShowWindow == 0


class Finished:
    pid = 4242

    def poll(self):
        return None


def test_windows_cancel_kills_the_whole_tree():
    commands = []
    kill_tree(Finished(), "nt", run=lambda command, **_: commands.append(command))
    assert commands == [["taskkill", "/F", "/T", "/PID", "4242"]]


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_ends_the_launcher_and_the_python_it_started(tmp_path):
    """Like PythonSlicer: a launcher process that starts the real Python as its child and waits."""
    child_pid = tmp_path / "child.pid"
    launcher = ("import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', "
                "'import time; time.sleep(120)']); open(sys.argv[1], 'w').write(str(child.pid)); child.wait()")
    process = subprocess.Popen([sys.executable, "-c", launcher, str(child_pid)], **launch_options())
    for _ in range(200):
        if child_pid.exists() and child_pid.read_text():
            break
        time.sleep(0.05)
    child = int(child_pid.read_text())
    kill_tree(process)
    process.wait(timeout=10)
    for _ in range(100):                                  # the child is reaped by init shortly after
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        pytest.fail("the real Python kept running after Cancel")
