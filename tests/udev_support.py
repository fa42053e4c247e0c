"""Helpers for udev-tier tests: reading a source's events until what a test waits for has come."""

from __future__ import annotations

import select
import time
from collections.abc import Callable

from discovery.sources.udev import UdevEvent, UdevSource


def drain_until(source: UdevSource, done: Callable[[list[UdevEvent]], bool], timeout: float = 10.0) -> list[UdevEvent]:
    """Events until ``done(events)`` holds or the deadline passes (never sleeps blindly)."""
    events: list[UdevEvent] = []
    poller = select.poll()
    poller.register(source.fileno(), select.POLLIN)
    deadline = time.monotonic() + timeout
    while not done(events):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if poller.poll(min(left, 1.0) * 1000):
            events.extend(source.drain())
    return events
