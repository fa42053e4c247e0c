"""The latest readings of every device with a stats command, shared between discovery and the Stats stream.

Discovery's thread records each run's result; Stats streams read a copy at every interval, so a
slow command never holds a stream up. Each kind of problem (a timeout, a reading that does not
parse, the summary reading missing) is logged once per device at ``warn`` and at ``debug`` after
that, so 200 phones on a 5 s interval cannot flood the agent's log; a device that leaves, or a
rules reload, starts its count again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from discovery.checks.readings import Problem, ReadingsResult

log = logging.getLogger(__name__)


class ReadingsBook:
    """Device ID -> its latest ReadingsResult, thread-safe; logs problems once per device."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, ReadingsResult] = {}
        self._logged: dict[str, set[str]] = {}  # device ID -> kinds of problem already logged

    def record(self, device_id: str, result: ReadingsResult, summary: str | None = None) -> None:
        """Keep ``result`` as the device's latest, and log what is new about its problems."""
        problems = [result.error] if result.error is not None else list(result.problems)
        if result.error is None and summary is not None and summary not in result.readings:
            problems.append(Problem("summary", f"the summary reading {summary!r} is not in the output"))
        with self._lock:
            self._latest[device_id] = result
            logged = self._logged.setdefault(device_id, set())
            fresh = [p for p in problems if p.kind not in logged]
            logged.update(p.kind for p in fresh)
        for problem in fresh:
            log.warning("stats command problem; logged once per device", extra={
                "device_id": device_id, "problem": problem.message})  # fmt: skip
        for problem in problems:
            if problem not in fresh:
                log.debug("stats command problem", extra={"device_id": device_id, "problem": problem.message})

    def keep_only(self, device_ids: Iterable[str]) -> None:
        """Forget the devices not listed (unplugged, or their rule has no stats command any more)."""
        wanted = set(device_ids)
        with self._lock:
            for device_id in [i for i in self._latest if i not in wanted]:
                del self._latest[device_id]
            for device_id in [i for i in self._logged if i not in wanted]:
                del self._logged[device_id]

    def reset_logging(self) -> None:
        """After a rules reload every problem is news again."""
        with self._lock:
            self._logged.clear()

    def latest(self) -> Mapping[str, ReadingsResult]:
        """A read-only copy of the latest result of every device."""
        with self._lock:
            return MappingProxyType(dict(self._latest))
