"""The three things measured, behind one interface: our plugin over gRPC, and the two baselines over a pipe.

Each subject is a separate process in a :class:`~benchmarks.world.World` and fills a
:class:`ReportLog`: one :class:`Report` per message it sends (a Fingerprint message for the plugin,
a JSON line for a baseline), stamped with ``time.monotonic()`` when it arrived here. Latencies are
always "arrival at the benchmark" minus "when the benchmark caused the change", so the plugin's
numbers include the gRPC wire and the baselines' include their pipe.
"""

from __future__ import annotations

import abc
import bisect
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from benchmarks.numbers import cpu_seconds, memory_mb
from benchmarks.world import World
from plugin.config import encode_config
from plugin.host import PluginProcess
from proto import device_pb2

FIRST_REPORT_DEADLINE_S = 60.0


class BenchError(RuntimeError):
    """A subject misbehaved (died, never answered); the message says what was seen."""


@dataclass(frozen=True)
class Report:
    at: float  # monotonic arrival time at the benchmark
    usable: frozenset[str]  # device IDs offered as usable (plugin: healthy; baselines: tty present)
    listed: int  # devices in the message, usable or not
    groups: frozenset[str]  # "vendor/type/name" of every group in the message


Predicate = Callable[[Report], bool]


class ReportLog:
    """Reports in arrival order; readers wait on a condition with deadlines."""

    def __init__(self) -> None:
        self._reports: list[Report] = []
        self._times: list[float] = []
        self._cond = threading.Condition()
        self.ended = False

    def append(self, report: Report) -> None:
        with self._cond:
            self._reports.append(report)
            self._times.append(report.at)
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._reports)

    def latest(self) -> Report | None:
        with self._cond:
            return self._reports[-1] if self._reports else None

    def reports(self) -> list[Report]:
        with self._cond:
            return list(self._reports)

    def wait_for(self, predicate: Predicate, timeout: float, start: int = 0) -> tuple[int, Report] | None:
        """The first report at index >= ``start`` that satisfies ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self._reports):
                    if predicate(self._reports[index]):
                        return index, self._reports[index]
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    return None
                self._cond.wait(left)

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Return once no report has arrived for ``quiet`` seconds (or after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.ended:
                last = self._times[-1] if self._times else 0.0
                now = time.monotonic()
                wait = min(last + quiet - now, deadline - now)
                if wait <= 0:
                    return
                self._cond.wait(wait)

    def first_after(self, t: float, predicate: Predicate) -> Report | None:
        """The first report that arrived at or after ``t`` and satisfies ``predicate`` (no waiting)."""
        with self._cond:
            index = bisect.bisect_left(self._times, t)
            for report in self._reports[index:]:
                if predicate(report):
                    return report
        return None


class Subject(abc.ABC):
    """What the sections need of any subject."""

    name: str
    started: float  # monotonic time just before the process was spawned
    log: ReportLog

    @property
    @abc.abstractmethod
    def pid(self) -> int: ...

    def wait_first(self, timeout: float = FIRST_REPORT_DEADLINE_S) -> Report:
        found = self.log.wait_for(lambda _r: True, timeout)
        if found is None:
            raise BenchError(f"{self.name}: no first report within {timeout} s{self.diagnostics()}")
        return found[1]

    def wait_usable(self, ids: set[str] | frozenset[str], timeout: float, start: int = 0) -> Report:
        found = self.log.wait_for(lambda r: ids <= r.usable, timeout, start)
        if found is None:
            latest = self.log.latest()
            have = len(ids & latest.usable) if latest else 0
            raise BenchError(f"{self.name}: only {have} of {len(ids)} devices usable after {timeout} s"
                             f"{self.diagnostics()}")
        return found[1]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def diagnostics(self) -> str:
        return ""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def report_from_fingerprint(at: float, message: device_pb2.FingerprintResponse) -> Report:
    usable: list[str] = []
    listed = 0
    groups: list[str] = []
    for group in message.device_group:
        groups.append(f"{group.vendor}/{group.device_type}/{group.device_name}")
        listed += len(group.devices)
        usable.extend(d.ID for d in group.devices if d.healthy)
    return Report(at, frozenset(usable), listed, frozenset(groups))


class Ours(Subject):
    """The real plugin: spawned with go-plugin's env, then the calls an agent makes, in its order.

    PluginInfo, ConfigSchema, SetConfig (msgpack as Nomad encodes it), then the Fingerprint stream.
    """

    def __init__(self, world: World, debounce: str, name: str = "ours") -> None:
        self.name = name
        self.log = ReportLog()
        self.plugin = PluginProcess.start(env_extra=world.env())
        self.started = self.plugin.started
        try:
            self.plugin.plugin_info()
            self.plugin.config_schema()
            self.plugin.set_config(encode_config({"rules_file": str(world.rules_file), "debounce": debounce,
                                                  "state_dir": str(world.dir / "state")}))
            self.fingerprint_called = time.monotonic()
            self.stream = self.plugin.fingerprint()
        except BaseException:
            self.plugin.kill()
            raise
        self._reader = threading.Thread(target=self._convert, name=f"{name}-reports", daemon=True)
        self._reader.start()

    @property
    def handshake_seconds(self) -> float:
        assert self.plugin.handshake_seconds is not None
        return self.plugin.handshake_seconds

    @property
    def pid(self) -> int:
        return self.plugin.proc.pid

    def _convert(self) -> None:
        while True:
            timed = self.stream.next_timed(3600.0)
            if timed is None:
                if self.stream.ended:
                    break
                continue
            self.log.append(report_from_fingerprint(*timed))
        self.log.end()

    def diagnostics(self) -> str:
        code = self.plugin.proc.poll()
        tail = self.plugin.stderr_text()[-2000:]
        return f" (plugin exit code {code}; stream error {self.stream.error}; stderr tail: {tail!r})"

    def close(self) -> None:
        try:
            if self.plugin.proc.poll() is None:
                self.stream.cancel()
                self.plugin.shutdown()
        except Exception as exc:  # a clean stop failed: note it and make sure the process is gone
            print(f"[bench] {self.name}: shutdown failed ({exc}); killing pid {self.pid}", file=sys.stderr)
        finally:
            self.plugin.kill()
            for pipe in (self.plugin.proc.stdout, self.plugin.proc.stderr):
                if pipe is not None:
                    pipe.close()


class Baseline(Subject):
    """A baseline process (benchmarks.baselines) whose JSON lines become reports."""

    def __init__(self, world: World, mode: str, interval: float = 5.0, name: str | None = None) -> None:
        self.name = name or mode
        self.log = ReportLog()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baselines", mode, "--interval", str(interval)],
            env={**os.environ, **world.env()},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stderr = bytearray()
        self._threads = [
            threading.Thread(target=self._read, name=f"{self.name}-reports", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"{self.name}-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at = time.monotonic()
            data = json.loads(line)
            self.log.append(Report(at, frozenset(data["usable"]), data["listed"], frozenset(data["groups"])))
        self.log.end()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr += line

    def diagnostics(self) -> str:
        return f" (exit code {self.proc.poll()}; stderr tail: {bytes(self._stderr[-2000:])!r})"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        for thread in self._threads:  # they reach EOF now that the process is gone
            thread.join(5.0)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
