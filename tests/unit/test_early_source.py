"""Devices listed ahead of time (plugin.early_source, Runtime.prepare): used once, listed again when stale, closed when unused."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_factories import ft232r, pixel_7

from discovery.fake.memory_source import MemorySource
from discovery.model import UsbDevice
from discovery.snapshot import Snapshot
from discovery.sources.base import SourceError
from plugin.early_source import start_early
from plugin.runtime import Runtime


class CountingSource(MemorySource):
    """A MemorySource that counts its listings and can be told to fail them."""

    def __init__(self, devices: list[UsbDevice], *, fail_listing: bool = False) -> None:
        super().__init__(devices)
        self.listings = 0
        self.fail_listing = fail_listing
        self.closed = False

    def enumerate(self) -> list[UsbDevice]:
        self.listings += 1
        if self.fail_listing:
            raise SourceError("cannot list devices")
        return super().enumerate()

    def close(self) -> None:
        self.closed = True
        super().close()


class NoEventsSource(CountingSource):
    """Like the pyusb fallback: no descriptor to wait on, so nothing would correct an early listing."""

    def fileno(self) -> None:  # type: ignore[override]
        return None


def test_early_source_first_listing_is_the_one_made_ahead_of_time() -> None:
    """Discovery's first enumerate() costs no second listing; later ones list again."""
    source = CountingSource([pixel_7()])
    early = start_early(lambda: source)
    assert early is not None and source.listings == 1
    assert [d.sys_path for d in early.enumerate()] == [pixel_7().sys_path]
    assert source.listings == 1
    early.enumerate()
    assert source.listings == 2
    early.close()
    assert source.closed


def test_early_source_lists_again_when_events_are_waiting() -> None:
    """A device plugged after the early listing is in discovery's first listing, not only after the debounce."""
    source = CountingSource([pixel_7()])
    early = start_early(lambda: source)
    assert early is not None
    adapter = ft232r()  # on port 1-3, beside the phone on 1-2
    source.plug(adapter)
    assert {d.sys_path for d in early.enumerate()} == {pixel_7().sys_path, adapter.sys_path}
    assert source.listings == 2
    early.close()


def test_start_early_skips_a_source_without_events() -> None:
    source = NoEventsSource([pixel_7()])
    assert start_early(lambda: source) is None
    assert source.closed and source.listings == 0


def test_start_early_closes_the_source_when_listing_fails() -> None:
    source = CountingSource([pixel_7()], fail_listing=True)
    assert start_early(lambda: source) is None
    assert source.closed


def listed(snapshot: Snapshot) -> list[str]:
    """Where the snapshot's devices are, matched by a rule or not (these tests give no rules)."""
    return sorted([state.device.sys_path for state in snapshot.devices.values()]
                  + [device.sys_path for _, device in snapshot.unmatched])


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOMAD_DEVICE_USB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_runtime_discovery_starts_from_the_prepared_listing(state_dir: Path) -> None:
    """After prepare(), discovery takes that source and its listing: one source made, one listing."""
    sources: list[CountingSource] = []

    def make() -> CountingSource:
        sources.append(CountingSource([pixel_7()]))
        return sources[-1]

    runtime = Runtime(make)
    runtime.prepare()
    try:
        assert listed(runtime.discovery().current()) == [pixel_7().sys_path]
        assert len(sources) == 1 and sources[0].listings == 1
    finally:
        runtime.stop()
    assert sources[0].closed


def test_runtime_stop_closes_a_prepared_source_never_used(state_dir: Path) -> None:
    source = CountingSource([pixel_7()])
    runtime = Runtime(lambda: source)
    runtime.prepare()
    runtime.stop()
    assert source.closed


def test_runtime_without_prepare_makes_its_own_source(state_dir: Path) -> None:
    sources: list[CountingSource] = []

    def make() -> CountingSource:
        sources.append(CountingSource([pixel_7()]))
        return sources[-1]

    runtime = Runtime(make)
    try:
        assert listed(runtime.discovery().current()) == [pixel_7().sys_path]
        runtime.prepare()  # too late: discovery has its source, none is made ahead of time any more
        assert len(sources) == 1
    finally:
        runtime.stop()
