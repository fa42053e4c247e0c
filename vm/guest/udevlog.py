"""Guest side: records every kernel and udev event with its arrival time, and answers "wait for X".

Two plain pyudev netlink monitors run for the life of the agent: ``kernel`` (the raw uevent, as the
kernel sends it) and ``udev`` (after udevd has run its rules and made the /dev links). Their arrival
times, relative to a mark the host sets just before it plugs something, are the hotplug latencies
the tier reports.
"""

from __future__ import annotations

import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyudev


@dataclass(frozen=True)
class Event:
    """One uevent as a monitor received it."""

    t: float  # time.monotonic() when the monitor returned it
    source: str  # "kernel" or "udev"
    action: str
    subsystem: str
    devtype: str | None
    sys_name: str
    devpath: str
    device_node: str | None
    properties: Mapping[str, str] = field(default_factory=dict)

    def matches(self, query: Mapping[str, Any]) -> bool:
        """True when every given field equals (properties: every given property equals).

        ``devpath_prefix`` matches a device's descendants (its interfaces and their tty, hidraw or
        block children) by their sysfs path.
        """
        for key in ("source", "action", "subsystem", "devtype", "sys_name", "devpath"):
            if key in query and query[key] != getattr(self, key):
                return False
        if "devpath_prefix" in query and not self.devpath.startswith(query["devpath_prefix"]):
            return False
        wanted = query.get("properties") or {}
        return all(self.properties.get(k) == v for k, v in wanted.items())

    def to_json(self, since: float) -> dict[str, Any]:
        """Wire form; ``dt`` is seconds since ``since`` (the host's mark)."""
        return {
            "dt": round(self.t - since, 6),
            "source": self.source,
            "action": self.action,
            "subsystem": self.subsystem,
            "devtype": self.devtype,
            "sys_name": self.sys_name,
            "devpath": self.devpath,
            "device_node": self.device_node,
            "properties": dict(self.properties),
        }


class EventLog:
    """Everything both monitors saw since the agent started, with a condition to wait on."""

    def __init__(self) -> None:
        self._context = pyudev.Context()
        self._events: list[Event] = []
        self._changed = threading.Condition()
        self._mark_index = 0
        self._mark_time = time.monotonic()

    def start(self) -> None:
        """Bind both monitors now (events before this are lost), then read them in a daemon thread.

        One thread polls both sockets, so the two sources' arrival times are taken the same way and
        a kernel event is never timed later than its udev twin because of thread scheduling.
        """
        monitors = {}
        for source in ("kernel", "udev"):
            monitor = pyudev.Monitor.from_netlink(self._context, source=source)
            monitor.set_receive_buffer_size(16 * 1024 * 1024)
            monitor.start()
            monitors[monitor.fileno()] = (monitor, source)
        threading.Thread(target=self._read, args=(monitors,), daemon=True, name="uevents").start()

    def _read(self, monitors: dict[int, tuple[pyudev.Monitor, str]]) -> None:
        poller = select.poll()
        for fd in monitors:
            poller.register(fd, select.POLLIN)
        while True:
            ready = poller.poll()
            # One event per ready socket, kernel first, then poll again: draining one socket would
            # leave the other's events waiting and time them late. Each event is timed on receipt.
            for fd in sorted((fd for fd, _ in ready), key=lambda fd: monitors[fd][1] != "kernel"):
                monitor, source = monitors[fd]
                device = monitor.poll(timeout=0)
                if device is not None:
                    self._append(self._event(device, source, time.monotonic()))

    @staticmethod
    def _event(device: pyudev.Device, source: str, now: float) -> Event:
        return Event(
            t=now,
            source=source,
            action=device.action or "",
            subsystem=device.subsystem or "",
            devtype=device.device_type,
            sys_name=device.sys_name,
            devpath=device.properties.get("DEVPATH", ""),
            device_node=device.device_node,
            properties=dict(device.properties),
        )

    def _append(self, event: Event) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def mark(self) -> float:
        """Start a new measurement: later waits only see events after this, timed from now."""
        with self._changed:
            self._mark_index = len(self._events)
            self._mark_time = time.monotonic()
            return self._mark_time

    @property
    def mark_time(self) -> float:
        """time.monotonic() of the last mark."""
        return self._mark_time

    def wait(self, query: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """The first event since the mark that matches ``query``; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        index = self._mark_index
        with self._changed:
            while True:
                while index < len(self._events):
                    event = self._events[index]
                    index += 1
                    # Received before the mark but appended just after it: not caused by the plug.
                    if event.t >= self._mark_time and event.matches(query):
                        return event.to_json(self._mark_time)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{e.source}:{e.action}:{e.subsystem}:{e.sys_name}" for e in self._events[self._mark_index:]]
                    raise TimeoutError(f"no event matching {dict(query)} within {timeout} s; since the mark: {seen}")
                self._changed.wait(remaining)

    def since_mark(self) -> list[dict[str, Any]]:
        """Every event since the mark (for diagnostics)."""
        with self._changed:
            return [e.to_json(self._mark_time) for e in self._events[self._mark_index:]]
