"""An in-memory DeviceSource for unit tests: device records plugged by the caller, a pipe as the doorbell.

The event loop only needs a readable descriptor and, when it is readable, a list of events naming
the usb_device to read again (``discovery.sources.base``). Here the descriptor is a pipe: ``plug``
and ``unplug`` change the device list, queue an event and write one byte, exactly like a udev
monitor becoming readable. ``ring`` writes a byte with no event, to wake the loop; ``drained`` counts
how often the loop has emptied the source, so a test can tell that the loop went round.
Non-USB devices (``NodeDevice``) are listed only for the subsystems the loop asked for, as udev's are.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from discovery.model import Device, NodeDevice
from discovery.sources.base import NodeSubsystems, to_node_subsystems, wants_subsystem


@dataclass(frozen=True)
class MemoryEvent:
    """What a udev event tells the loop: an action on one device (a usb_device, or a node device)."""

    action: str
    sys_path: str
    devtype: str | None = "usb_device"

    @property
    def usb_sys_path(self) -> str | None:
        return self.sys_path if self.devtype == "usb_device" else None

    @property
    def device_sys_path(self) -> str | None:
        return self.sys_path


class MemorySource:
    """Devices held in a dict; every change is an event on a pipe the loop selects on."""

    name = "memory"

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._devices = {d.sys_path: d for d in devices}
        self._node_subsystems: NodeSubsystems = None
        self.node_subsystems_asked: list[NodeSubsystems] = []  # every set_node_subsystems call, in order
        self._events: list[MemoryEvent] = []
        self._cond = threading.Condition()
        self._drained = 0
        self._read_fd: int | None = None
        self._write_fd: int | None = None

    # -- DeviceSource -----------------------------------------------------------------------
    def start(self) -> None:
        if self._read_fd is None:
            self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def enumerate(self) -> list[Device]:
        with self._cond:
            return sorted((d for d in self._devices.values() if self._listed(d)), key=lambda d: d.sys_path)

    def device_at(self, sys_path: str) -> Device | None:
        with self._cond:
            device = self._devices.get(sys_path)
            return device if device is not None and self._listed(device) else None

    def _listed(self, device: Device) -> bool:
        return not isinstance(device, NodeDevice) or wants_subsystem(self._node_subsystems, device.subsystem)

    def set_node_subsystems(self, wanted: NodeSubsystems) -> bool:
        with self._cond:
            wanted = to_node_subsystems(wanted)
            self.node_subsystems_asked.append(wanted)
            changed, self._node_subsystems = wanted != self._node_subsystems, wanted
            return changed

    def devices_at(self, sys_paths: Sequence[str]) -> list[Device | None]:
        return [self.device_at(path) for path in sys_paths]  # one by one: a subclass may fail any of them

    def fileno(self) -> int:
        if self._read_fd is None:
            raise RuntimeError("MemorySource.start() first")
        return self._read_fd

    def drain(self) -> list[MemoryEvent]:
        with self._cond:
            try:
                while os.read(self.fileno(), 4096):
                    pass
            except BlockingIOError:
                pass
            events, self._events = self._events, []
            self._drained += 1
            self._cond.notify_all()
            return events

    def close(self) -> None:
        with self._cond:
            for fd in (self._read_fd, self._write_fd):
                if fd is not None:
                    os.close(fd)
            self._read_fd = self._write_fd = None

    # -- the caller's side ------------------------------------------------------------------
    def plug(self, device: Device) -> None:
        """Attach ``device`` (or change it, if its sys_path is attached) and ring."""
        with self._cond:
            action = "change" if device.sys_path in self._devices else "add"
            self._devices[device.sys_path] = device
            devtype = "usb_device" if device.kind == "usb" else None
            self._events.append(MemoryEvent(action, device.sys_path, devtype))
        self.ring()

    def unplug(self, sys_path: str) -> None:
        """Detach the device at ``sys_path`` and ring."""
        with self._cond:
            device = self._devices.pop(sys_path)
            self._events.append(MemoryEvent("remove", sys_path, "usb_device" if device.kind == "usb" else None))
        self.ring()

    def ring(self) -> None:
        """Make the descriptor readable, with or without events queued."""
        with self._cond:
            if self._write_fd is None:
                raise RuntimeError("MemorySource.start() first")
            os.write(self._write_fd, b"x")

    @property
    def drained(self) -> int:
        """How many times the loop has emptied this source."""
        with self._cond:
            return self._drained

    def wait_drained(self, count: int, timeout: float) -> bool:
        """Wait until the loop has emptied the source ``count`` times in all; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._drained >= count, timeout)
