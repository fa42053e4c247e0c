"""Helpers for process-tier tests that look at what the plugin left running: /proc scans and polled waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path


def pids_with_argument(wanted: Callable[[bytes], bool]) -> list[int]:
    """PIDs of the processes that have an argument for which ``wanted`` is true (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if any(wanted(arg) for arg in argv):
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.05)  # polling /proc: nothing to wait on
    return True
