"""A segmentation worker process seen from the GUI: start it, poll its events without blocking (a
reader thread fills a queue), cancel it (the whole process tree is killed; the scene is untouched
because nodes are only added from a finished result)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path

from .worker_process import kill_tree, launch_options

LIBRARY_FOLDER = Path(__file__).resolve().parents[2]   # the folder holding OsteoSegLib


class SegmentationJob:
    """One running worker. `poll()` returns the events that arrived since the last call."""

    def __init__(self, python: str, arguments: list[str]):
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(LIBRARY_FOLDER), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen([python, "-m", "OsteoSegLib.scene.worker", *arguments],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=environment, **launch_options())
        self.events: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.cancelled = False
        self._readers = [threading.Thread(target=self._read, args=(stream, is_events), daemon=True)
                         for stream, is_events in ((self.process.stdout, True), (self.process.stderr, False))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, events: bool) -> None:
        for line in stream:
            if not events:
                self.errors.append(line.rstrip())
                continue
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                self.events.put({"event": "message", "text": line.rstrip()})

    def poll(self) -> list[dict]:
        arrived = []
        while True:
            try:
                arrived.append(self.events.get_nowait())
            except queue.Empty:
                return arrived

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def cancel(self) -> None:
        """Stop the worker and everything it started."""
        self.cancelled = True
        kill_tree(self.process)
        self.process.wait()

    def wait(self, timeout: float | None = None) -> list[dict]:
        """Block until the worker ends (scripts and tests); returns all its events."""
        self.process.wait(timeout)
        for reader in self._readers:   # the pipes are drained once the readers end
            reader.join(timeout)
        return self.poll()

