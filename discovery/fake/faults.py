"""A device source that fails at random points the way real ones do, for the fault-injection tests.

:class:`FaultySource` wraps a real source (udev in a umockdev world) and, on a share of the calls
the event loop makes, fails as a real machine can: ``drain`` really empties the monitor and then
reports the events lost (an overflow), ``enumerate`` and ``device_at`` raise ``OSError(EIO)`` (sysfs
reads fail while a device goes away or a hub resets). These are the expected conditions the loop
must ride out: no device lost, no traceback, the stream up. A fault never comes more than
``max_streak`` times in a row, which bounds the retries a test waits for. Every fault is logged
(``fault injected``, at info) so a test can count them.

Only tests start the plugin with it (``plugin.plugin_mode.run(source_factory=...)``).
"""

from __future__ import annotations

import errno
import logging
import random
from collections.abc import Sequence

from discovery.model import Device
from discovery.sources.base import DeviceSource, EventsLostError, NodeSubsystems, SourceEvent

log = logging.getLogger(__name__)

FAULT_RATE_ENV = "NDU_FAULT_RATE"
FAULT_SEED_ENV = "NDU_FAULT_SEED"


class FaultySource:
    """``inner`` with a share ``rate`` of its calls failing (after the first listing, which starts the plugin)."""

    def __init__(self, inner: DeviceSource, *, rate: float, seed: int = 0, max_streak: int = 2) -> None:
        self._inner = inner
        self._rate = rate
        self._random = random.Random(seed)
        self._max_streak = max_streak
        self._streak = 0
        self._armed = False  # the start's own listing works: a failed start is a different test
        self.name = inner.name
        self.injected = 0

    def _fails(self, call: str) -> bool:
        if not self._armed or self._streak >= self._max_streak or self._random.random() >= self._rate:
            self._streak = 0
            return False
        self._streak += 1
        self.injected += 1
        log.info("fault injected", extra={"call": call, "injected": self.injected})
        return True

    def start(self) -> None:
        self._inner.start()

    def enumerate(self) -> list[Device]:
        if self._fails("enumerate"):
            raise OSError(errno.EIO, "Input/output error (injected)", "/sys/bus/usb/devices")
        devices = self._inner.enumerate()
        self._armed = True
        return devices

    def device_at(self, sys_path: str) -> Device | None:
        if self._fails("device_at"):
            raise OSError(errno.EIO, "Input/output error (injected)", sys_path)
        return self._inner.device_at(sys_path)

    def devices_at(self, sys_paths: Sequence[str]) -> list[Device | None]:
        if sys_paths and self._fails("devices_at"):
            raise OSError(errno.EIO, "Input/output error (injected)", sys_paths[0])
        return self._inner.devices_at(sys_paths)

    def set_node_subsystems(self, wanted: NodeSubsystems) -> bool:
        return self._inner.set_node_subsystems(wanted)

    def fileno(self) -> int | None:
        return self._inner.fileno()

    def drain(self) -> Sequence[SourceEvent]:
        events = self._inner.drain()
        if events and self._fails("drain"):
            raise EventsLostError(f"injected overflow: {len(events)} events dropped")
        return events

    def close(self) -> None:
        self._inner.close()
