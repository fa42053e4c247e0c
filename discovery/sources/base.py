"""What every device source offers the event loop and the CLI: the DeviceSource interface and SourceError.

``drain()`` may raise :class:`EventsLostError` (events were lost: list everything again) and any
source call may raise another :class:`SourceError` or ``OSError`` when the machine says no; those
are expected conditions for the event loop, not bugs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from discovery.model import UsbDevice


class SourceError(Exception):
    """A device source failed: it cannot list devices on this machine, or cannot read or reset one.

    The one base of every source's errors, so callers (the CLI's inventory, Reserve) handle a source
    failure without knowing which library (pyudev, pyusb) is behind it.
    """


class EventsLostError(SourceError):
    """The source's event queue overflowed and some events were lost (udev: ENOBUFS on the monitor).

    Not a failure of the source: it still works, but which devices changed is unknown, so the caller
    lists every device again.
    """


class SourceEvent(Protocol):
    """What the loop reads from an event (``discovery.sources.udev.UdevEvent`` has it)."""

    @property
    def action(self) -> str: ...
    @property
    def sys_path(self) -> str: ...
    @property
    def devtype(self) -> str | None: ...
    @property
    def usb_sys_path(self) -> str | None: ...


class DeviceSource(Protocol):
    """Where devices come from: udev (events) or the pyusb fallback (fileno() is None: rescan).

    ``devices_at`` is ``device_at`` for each path, in order; a source may read a burst in one pass.
    """

    name: str

    def start(self) -> None: ...
    def enumerate(self) -> list[UsbDevice]: ...
    def device_at(self, sys_path: str) -> UsbDevice | None: ...
    def devices_at(self, sys_paths: Sequence[str]) -> list[UsbDevice | None]: ...
    def fileno(self) -> int | None: ...
    def drain(self) -> Sequence[SourceEvent]: ...
    def close(self) -> None: ...
