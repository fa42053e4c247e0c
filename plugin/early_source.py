"""A device source started and listed while the agent is still at PluginInfo, ConfigSchema and SetConfig.

Listing the devices needs no config, so the plugin does it right after its handshake line, and the
first Fingerprint finds the list ready instead of reading udev itself. That listing stays right
however long it waits, for the same reason the event loop's first listing is right: the source's
monitor was bound before it listed, so every change since is an event waiting in its queue, read by
the loop as a doorbell like any other. The listing is dropped (and made again) when events are
already waiting as discovery starts, so the first Fingerprint is never older than it used to be, and
it is never made for a source without events (the pyusb fallback), which nothing would correct.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from discovery.model import UsbDevice
    from discovery.sources.base import DeviceSource, SourceEvent

log = logging.getLogger(__name__)


class EarlySource:
    """Delegates to a started source; its first ``enumerate()`` returns the listing made ahead of time."""

    def __init__(self, source: DeviceSource, devices: list[UsbDevice]) -> None:
        self._source = source
        self._devices: list[UsbDevice] | None = devices
        self.name = source.name

    def start(self) -> None:
        """Started already, with its monitor bound before the listing was made."""

    def enumerate(self) -> list[UsbDevice]:
        devices, self._devices = self._devices, None
        if devices is None or _events_waiting(self._source):
            return self._source.enumerate()
        return devices

    def device_at(self, sys_path: str) -> UsbDevice | None:
        return self._source.device_at(sys_path)

    def devices_at(self, sys_paths: Sequence[str]) -> list[UsbDevice | None]:
        return self._source.devices_at(sys_paths)

    def fileno(self) -> int | None:
        return self._source.fileno()

    def drain(self) -> Sequence[SourceEvent]:
        return self._source.drain()

    def close(self) -> None:
        self._devices = None
        self._source.close()


def _events_waiting(source: DeviceSource) -> bool:
    fd = source.fileno()
    if fd is None:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))  # readable, or an error such as an overflow: list anew either way


def start_early(make_source: Callable[[], DeviceSource]) -> EarlySource | None:
    """Make, start and list a source now; None (and nothing left open) if that fails or it has no events.

    A failure here is not reported: discovery makes its own source at first use, as it did before,
    and that attempt reports what goes wrong.
    """
    source = make_source()
    try:
        source.start()
        if source.fileno() is None:
            source.close()
            return None
        devices = source.enumerate()
    except Exception:  # discovery's own start meets the same trouble and logs it properly
        log.debug("listing devices ahead of time failed; discovery lists them at first use", exc_info=True)
        source.close()
        return None
    return EarlySource(source, devices)
