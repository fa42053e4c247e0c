"""The event loop's timing with an injected clock and an in-memory source: debounce, its cap, unplug grace.

Time moves only when a test says so. The loop still runs on its own thread and wakes on the
source's descriptor, as it does on udev's; ``settle`` rings the source twice and waits until the
loop has emptied it both times, so the step that saw the new time has finished and a test can say
"no snapshot yet" without sleeping.
"""

from __future__ import annotations

import dataclasses

import errno
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rules_factories import make_device

from discovery.fake.memory_source import MemoryEvent, MemorySource
from discovery.state.idmemory import IdMemory
from discovery.state.idstore import IdStore
from discovery.model import UsbDevice
from discovery.checks.readings import Reading
from discovery.rules.loader import parse_rules
from discovery.rules.ruleset import RuleSet
from discovery.state.snapshot import Snapshot
from discovery.sources.base import EventsLostError
from discovery.loop.watcher import MAX_DEBOUNCE_FACTOR, RETRY_SOURCE_S, Discovery, next_in_phase

DEBOUNCE = 1.0
GRACE = 60.0
DEADLINE_S = 5.0  # real seconds: how long a test waits for the loop before it fails
RULES = parse_rules("rules:\n  - match: {vendor_id: 18d1}\n    group: {vendor: google, type: phone, name: pixel}\n")


class FakeTime:
    """A monotonic and a wall clock that move together, and only when ``advance`` is called."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return 5_000.0 + self._now

    def wall(self) -> float:
        with self._lock:
            return 1_700_000_000.0 + self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class FaultySource(MemorySource):
    """The in-memory source, failing the way a real one does when told to: an overflow on the next drain,
    an OSError from the next listings or reads of a device."""

    def __init__(self, devices: list[UsbDevice]) -> None:
        super().__init__(devices)
        self.overflows = 0
        self.failing_listings = 0
        self.failing_reads = 0

    def attach_silently(self, device: UsbDevice) -> None:
        """Attach ``device`` with its event lost, as in a storm that overflowed the queue."""
        with self._cond:
            self._devices[device.sys_path] = device

    def drain(self) -> list[MemoryEvent]:
        events = super().drain()
        if self.overflows:
            self.overflows -= 1
            raise EventsLostError("udev monitor overflowed (ENOBUFS): the kernel dropped events")
        return events

    def enumerate(self) -> list[UsbDevice]:
        if self.failing_listings:
            self.failing_listings -= 1
            raise OSError(errno.EIO, "Input/output error", "/sys/bus/usb/devices")
        return super().enumerate()

    def device_at(self, sys_path: str) -> UsbDevice | None:
        if self.failing_reads:
            self.failing_reads -= 1
            raise OSError(errno.EIO, "Input/output error", sys_path)
        return super().device_at(sys_path)


class Loop:
    """A started Discovery over a FaultySource (which fails only when told to), with the time it reads."""

    def __init__(self, devices: list[UsbDevice], rules: RuleSet = RULES, id_store: IdStore | None = None) -> None:
        self.time = FakeTime()
        self.source = FaultySource(devices)
        self.discovery = Discovery(
            self.source, lambda: rules, debounce=DEBOUNCE, unplugged_grace=GRACE,
            clock=self.time.monotonic, wall=self.time.wall, id_store=id_store,
        )
        self.first = self.discovery.start()

    def settle(self) -> Snapshot:
        """Let the loop handle everything so far at the current time; the snapshot it left."""
        for _ in range(2):  # the second drain starts only after the step of the first has ended
            drained = self.source.drained
            self.source.ring()
            assert self.source.wait_drained(drained + 1, DEADLINE_S), "the discovery loop did not go round"
        return self.discovery.current()

    def after(self, seconds: float) -> Snapshot:
        """Move time on and let the loop see it."""
        self.time.advance(seconds)
        return self.settle()

    def plug(self, device: UsbDevice) -> Snapshot:
        """Plug ``device`` now; the loop has seen its event before time moves on."""
        self.source.plug(device)
        return self.settle()

    def unplug(self, device: UsbDevice) -> Snapshot:
        self.source.unplug(device.sys_path)
        return self.settle()


def phone(n: int) -> UsbDevice:
    return make_device(sys_path=f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-{n}", sys_name=f"1-{n}",
                       devnum=n, serial=f"PHONE{n}", device_node=None)


def ids(snapshot: Snapshot) -> set[str]:
    return set(snapshot.devices)


@pytest.fixture
def loop() -> Iterator[Loop]:
    w = Loop([])
    try:
        yield w
    finally:
        w.discovery.stop()


def test_watcher_publishes_a_burst_once_when_the_window_closes(loop: Loop) -> None:
    """Events within the debounce window become one snapshot, published when the window closes."""
    assert loop.plug(phone(1)).version == loop.first.version
    loop.time.advance(0.5)
    assert loop.plug(phone(2)).version == loop.first.version  # the window now ends 1.5 s after the first event
    assert loop.after(0.9).version == loop.first.version
    published = loop.after(0.2)
    assert published.version == loop.first.version + 1
    assert ids(published) == {"usb-18d1-4ee7-PHONE1", "usb-18d1-4ee7-PHONE2"}


def test_watcher_window_is_capped_under_a_steady_trickle(loop: Loop) -> None:
    """Events that keep coming still publish MAX_DEBOUNCE_FACTOR windows after the first one."""
    cap = DEBOUNCE * MAX_DEBOUNCE_FACTOR
    step = DEBOUNCE / 2  # each event comes before the last one's window would close
    elapsed = 0.0
    plugged = 0
    while True:
        plugged += 1
        assert loop.plug(phone(plugged)).version == loop.first.version, f"published early, at {elapsed} s"
        if elapsed + step >= cap:
            break  # without the cap, this last event would hold the snapshot back past it
        assert loop.after(step).version == loop.first.version, f"published early, at {elapsed + step} s"
        elapsed += step
    published = loop.after(cap - elapsed)
    assert published.version == loop.first.version + 1
    assert len(published.devices) == plugged


def test_watcher_keeps_an_unplugged_device_for_the_grace_period(loop: Loop) -> None:
    """An unplugged device stays, unhealthy ("unplugged"), until the grace period ends; then it is dropped."""
    loop.plug(phone(1))
    (device_id,) = ids(loop.after(DEBOUNCE))
    loop.unplug(phone(1))
    gone = loop.after(DEBOUNCE)
    state = gone.devices[device_id]
    assert (state.present, state.healthy, state.reason) == (False, False, "unplugged")
    assert loop.after(GRACE - 1.0).version == gone.version
    dropped = loop.after(1.0)
    assert dropped.version == gone.version + 1 and ids(dropped) == set()


def test_watcher_replug_within_grace_keeps_the_id(loop: Loop) -> None:
    """A device back before its grace period ends is the same device: same ID, healthy, one replug."""
    loop.plug(phone(1))
    (device_id,) = ids(loop.after(DEBOUNCE))
    loop.unplug(phone(1))
    loop.after(DEBOUNCE)
    loop.time.advance(GRACE / 2)
    loop.plug(phone(1))
    back = loop.after(DEBOUNCE).devices[device_id]
    assert (back.present, back.healthy, back.replug_count) == (True, True, 1)



class StoreSeeingPublished(IdStore):
    """The real store (files in a temporary directory), noting at each save which IDs the loop had already published."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.discovery: Discovery | None = None
        self.published_at_save: list[set[str]] = []

    def save(self, memory: IdMemory) -> bool:
        if self.discovery is not None:
            self.published_at_save.append(ids(self.discovery.current()))
        return super().save(memory)


def test_watcher_saves_a_new_id_before_publishing_it(tmp_path: Path) -> None:
    """A new ID is on disk before a client can see (and reserve) it, so a kill right after cannot lose it."""
    store = StoreSeeingPublished(str(tmp_path))
    w = Loop([], id_store=store)
    store.discovery = w.discovery
    try:
        w.plug(phone(1))
        (device_id,) = ids(w.after(DEBOUNCE))
        assert store.published_at_save == [set()], "the ID was published before it was saved"
        assert IdStore(str(tmp_path)).peek().recall(phone(1)) == device_id
    finally:
        w.discovery.stop()


STATS_INTERVAL = 30.0


def counting_rules(counter: str) -> RuleSet:
    """Phones whose stats command counts its runs in ``counter`` and prints the count as a reading."""
    code = (f"import json, os; p = {counter!r} + '.' + os.sys.argv[1]; "
            "n = int(open(p).read()) + 1 if os.path.exists(p) else 1; open(p, 'w').write(str(n)); "
            "print(json.dumps(dict(runs=n)))")
    return parse_rules(
        "rules:\n  - match: {vendor_id: 18d1}\n    group: {vendor: google, type: phone, name: pixel}\n"
        f"    stats: {{command: [{sys.executable!r}, -c, {code!r}, '{{serial}}'], interval: 30s, timeout: 10s}}\n"
    )


def runs_of(discovery: Discovery, device_id: str, runs: int) -> bool:
    """Wait until the device's latest readings say ``runs``; False when they do not within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = discovery.readings().get(device_id)
        if result is not None and result.readings.get("runs") == Reading(runs):
            return True
        time.sleep(0.02)
    return False


def test_watcher_runs_stats_commands_on_their_interval_and_forgets_departed_devices(tmp_path: Path) -> None:
    """The command runs at start, again only once its interval has passed, and an unplug forgets its readings."""
    loop = Loop([phone(1)], counting_rules(str(tmp_path / "runs")))
    discovery, time_ = loop.discovery, loop.time
    try:
        (device_id,) = ids(loop.first)
        assert runs_of(discovery, device_id, 1)  # at once: the first readings come without waiting
        assert discovery.readings()[device_id].taken_at == time_.wall()
        second = next_in_phase(time_.monotonic(), STATS_INTERVAL, device_id) - time_.monotonic()
        loop.after(second - 1.0)
        assert discovery.readings()[device_id].readings["runs"] == Reading(1)  # not due yet
        loop.after(1.0)
        assert runs_of(discovery, device_id, 2)
        loop.after(STATS_INTERVAL - 1.0)
        assert discovery.readings()[device_id].readings["runs"] == Reading(2)
        loop.after(1.0)
        assert runs_of(discovery, device_id, 3)  # from then on, one interval apart
        assert ids(discovery.current()) == {device_id} and discovery.current().version == loop.first.version
        loop.unplug(phone(1))
        loop.after(DEBOUNCE)
        assert device_id not in discovery.readings()
    finally:
        discovery.stop()


def test_next_in_phase_spreads_devices_over_the_interval() -> None:
    """Runs land at least half an interval ahead, one interval apart per device, and 200 devices fill the interval."""
    interval = 5.0
    for key in ("usb-0403-6001-A1", "usb-18d1-4ee7-PHONE7"):
        first = next_in_phase(1000.0, interval, key)
        assert 1000.0 + interval / 2 <= first < 1000.0 + 1.5 * interval
        assert next_in_phase(first, interval, key) == pytest.approx(first + interval)
    phases = sorted(next_in_phase(0.0, interval, f"usb-0403-6001-FT{n:04d}") % interval for n in range(200))
    gaps = [b - a for a, b in zip(phases, phases[1:], strict=False)]
    assert max(gaps) < interval / 20  # no stretch of the interval without runs; no burst of all 200 at once


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, bool]]:
    """(level, message, has a traceback) of what discovery logged at warning or above."""
    return [(r.levelname, r.getMessage(), r.exc_info is not None)
            for r in caplog.records if r.levelno >= logging.WARNING]


def test_watcher_overflow_is_one_warning_and_a_rescan_finds_what_was_lost(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    """Overflows in one window: one warning, no traceback, and a rescan that finds the device whose event was lost."""
    loop.plug(phone(1))
    loop.after(DEBOUNCE)
    loop.source.attach_silently(phone(2))
    loop.source.overflows = 3
    for _ in range(3):
        loop.settle()  # three overflows within one window
    found = loop.after(DEBOUNCE)
    assert ids(found) == {"usb-18d1-4ee7-PHONE1", "usb-18d1-4ee7-PHONE2"}
    assert _records(caplog) == [
        ("WARNING", "device events overflowed and some were lost; every device is listed again", False)
    ]


def test_watcher_failed_listing_keeps_devices_and_retries(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    """A failed listing loses no device, warns once, and is tried again after 1 s, then 2 s, until it works."""
    loop.plug(phone(1))
    before = loop.after(DEBOUNCE)
    loop.source.attach_silently(phone(2))
    loop.source.overflows = 1
    loop.source.failing_listings = 2
    loop.settle()
    kept = loop.after(DEBOUNCE)
    assert kept.devices == before.devices  # still present and healthy: a failed listing is not an unplug
    loop.after(RETRY_SOURCE_S)  # the retry opens a window ...
    assert ids(loop.after(DEBOUNCE)) == ids(before)  # ... whose listing fails too
    loop.after(2 * RETRY_SOURCE_S)  # so the next try waits twice as long
    found = loop.after(DEBOUNCE)
    assert ids(found) == {"usb-18d1-4ee7-PHONE1", "usb-18d1-4ee7-PHONE2"}
    assert [m for _, m, _ in _records(caplog)] == [
        "device events overflowed and some were lost; every device is listed again",
        "listing devices failed; the devices stay as they were and it is tried again",
    ]
    assert not any(tb for _, _, tb in _records(caplog))


def test_watcher_failed_read_of_a_device_keeps_it_and_reads_again(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    """An event whose device cannot be read now: the device stays as it was, and is read again later."""
    loop.plug(phone(1))
    before = loop.after(DEBOUNCE)
    loop.source.failing_reads = 1
    loop.source.plug(make_device(**{**_fields(phone(1)), "product": "Pixel 7 Pro"}))
    loop.settle()
    assert loop.after(DEBOUNCE).devices == before.devices
    loop.after(RETRY_SOURCE_S)
    changed = loop.after(DEBOUNCE)
    assert changed.devices["usb-18d1-4ee7-PHONE1"].device.product == "Pixel 7 Pro"
    assert [(lvl, tb) for lvl, _, tb in _records(caplog)] == [("WARNING", False)]


def _fields(device: UsbDevice) -> dict[str, object]:
    return {f.name: getattr(device, f.name) for f in dataclasses.fields(device)}
