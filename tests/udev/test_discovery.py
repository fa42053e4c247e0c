"""udev tier: the Discovery loop with the real pyudev monitor in a umockdev world, rules from real files."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discovery.fake import usb_devices
from discovery.fake.overflow import overflowed_in_place_of
from discovery.rules.loader import load_rules
from discovery.rules.ruleset import RuleSet
from discovery.state.snapshot import Snapshot
from discovery.fake.testbed import Testbed
from discovery.sources.udev import UdevSource
from discovery.loop.watcher import Discovery

WAIT_S = 10.0

RULES = """\
rules:
  - name: hubs
    match: {device_class: 0x09}
    ignore: true
  - name: ftdi
    match: {vendor_id: "0403"}
    group: {vendor: ftdi, type: serial, name: ft232r}
    children: [tty]
  - name: ch340
    match: {vendor_id: 1a86}
    group: {vendor: wch, type: serial, name: ch340}
  - name: uno
    match: {vendor_id: 2341}
    group: {vendor: arduino, type: board, name: uno}
"""


def wait_until(discovery: Discovery, predicate: Callable[[Snapshot], bool], timeout: float = WAIT_S) -> Snapshot:
    """Read snapshots as they are published until one satisfies ``predicate``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    snapshot = discovery.current()
    while not predicate(snapshot):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"condition not met within {timeout}s; last snapshot v{snapshot.version}: "
                        f"{sorted(snapshot.devices)}")
        snapshot = discovery.wait_newer(snapshot.version, left)
    return snapshot


def healthy_ids(snapshot: Snapshot) -> set[str]:
    return {i for i, s in snapshot.devices.items() if s.healthy}


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def start_discovery(rules_file: Path, **options: object) -> Discovery:
    def load() -> RuleSet:
        return load_rules(rules_file)

    discovery = Discovery(UdevSource(), load, rules_file=str(rules_file), **options)  # type: ignore[arg-type]
    discovery.start()
    return discovery


@pytest.fixture
def discovery(testbed: Testbed, rules_file: Path) -> Iterator[Discovery]:
    d = start_discovery(rules_file, debounce=0.05, unplugged_grace=60.0)
    yield d
    d.stop()


def test_discovery_enumerates_at_start(testbed: Testbed, rules_file: Path) -> None:
    """Devices present before start are in the first snapshot, grouped by their rule."""
    testbed.plug(usb_devices.make_ftdi())
    testbed.plug(usb_devices.make_arduino_uno())
    d = start_discovery(rules_file)
    try:
        groups = {"/".join(g.key): g.device_ids for g in d.current().groups}
        assert groups == {
            "ftdi/serial/ft232r": ("usb-0403-6001-A50285BI",),
            "arduino/board/uno": ("usb-2341-0043-85736323838351F0E1D1",),
        }
    finally:
        d.stop()


def test_discovery_ids_stable_across_restart(testbed: Testbed, rules_file: Path) -> None:
    """Two serial-less identical boards get port IDs, the same after a restart of discovery."""
    testbed.plug(usb_devices.make_ch340(port="1-7", devnum=13, tty=3))
    testbed.plug(usb_devices.make_ch340(port="1-8", devnum=14, tty=4))
    first = start_discovery(rules_file)
    ids_before = set(first.current().devices)
    first.stop()
    second = start_discovery(rules_file)
    try:
        assert set(second.current().devices) == ids_before
        assert len(ids_before) == 2 and all("-port-" in i for i in ids_before)
    finally:
        second.stop()


def test_discovery_hub_burst_coalesces_without_losing_devices(discovery: Discovery, testbed: Testbed) -> None:
    """A hub with 20 boards behind it arrives as one or a few snapshots, with every board in it."""
    start_version = discovery.current().version
    hub = usb_devices.make_hub(port="1-9", devnum=30)
    testbed.plug(hub)
    for n in range(20):
        testbed.plug(usb_devices.make_ftdi(port=f"1-9.{n + 1}", devnum=31 + n, tty=10 + n, serial=f"FT{n:06d}"))
    snapshot = wait_until(discovery, lambda s: len(healthy_ids(s)) == 20)
    assert snapshot.version - start_version <= 3
    assert all(s.group == ("ftdi", "serial", "ft232r") for s in snapshot.devices.values())


def test_discovery_unplug_then_grace_expiry(testbed: Testbed, rules_file: Path) -> None:
    """An unplugged device stays listed as unhealthy ("unplugged") for the grace period, then is dropped."""
    d = start_discovery(rules_file, debounce=0.02, unplugged_grace=0.5)
    try:
        handle = testbed.plug(usb_devices.make_ftdi())
        wait_until(d, lambda s: len(healthy_ids(s)) == 1)
        testbed.unplug(handle)
        gone = wait_until(d, lambda s: any(not st.present for st in s.devices.values()))
        (state,) = gone.devices.values()
        assert state.reason == "unplugged" and not state.healthy
        wait_until(d, lambda s: not s.devices)
    finally:
        d.stop()


def test_discovery_replug_counts_and_returns_healthy(discovery: Discovery, testbed: Testbed) -> None:
    """Replugging (new devnum) returns the same ID to healthy and counts the replug."""
    handle = testbed.plug(usb_devices.make_ftdi())
    wait_until(discovery, lambda s: len(healthy_ids(s)) == 1)
    testbed.unplug(handle)
    wait_until(discovery, lambda s: not healthy_ids(s))
    testbed.plug(usb_devices.make_ftdi(devnum=77))
    snapshot = wait_until(discovery, lambda s: len(healthy_ids(s)) == 1)
    (state,) = snapshot.devices.values()
    assert state.id == "usb-0403-6001-A50285BI"
    assert state.replug_count == 1 and state.device.devnum == 77


def test_discovery_child_node_arriving_late_is_picked_up(discovery: Discovery, testbed: Testbed) -> None:
    """A tty that appears after its device (driver bound later) shows up in the device's children."""
    handle = testbed.plug(usb_devices.make_ftdi())
    wait_until(discovery, lambda s: len(healthy_ids(s)) == 1)
    testbed.unbind(handle, 0)
    wait_until(discovery, lambda s: all(not st.device.children for st in s.devices.values()))
    testbed.bind(handle, 0)
    snapshot = wait_until(discovery, lambda s: any(st.device.children for st in s.devices.values()))
    (state,) = snapshot.devices.values()
    assert [c.device_node for c in state.device.children] == ["/dev/ttyUSB0"]


def test_discovery_hot_reload_and_broken_file_keeps_last_good(
    discovery: Discovery, testbed: Testbed, rules_file: Path
) -> None:
    """An edit regroups devices; a broken edit is reported with its line and changes nothing."""
    testbed.plug(usb_devices.make_ftdi())
    wait_until(discovery, lambda s: len(s.devices) == 1)
    rules_file.write_text(RULES.replace("name: ft232r", "name: renamed"))
    wait_until(discovery, lambda s: any(g.name == "renamed" for g in s.groups))
    rules_file.write_text(RULES + "  - match: {vendor_id: nothex}\n    group: {vendor: a, type: b, name: c}\n")
    broken = wait_until(discovery, lambda s: s.rules_error is not None)
    assert "rules.yaml:15:" in broken.rules_error and "vendor_id" in broken.rules_error
    assert [g.name for g in broken.groups] == ["renamed"]
    # An event while the bad file is in force is not lost.
    testbed.plug(usb_devices.make_arduino_uno())
    wait_until(discovery, lambda s: len(s.devices) == 2 and s.rules_error is not None)
    rules_file.write_text(RULES)
    fixed = wait_until(discovery, lambda s: s.rules_error is None)
    assert {g.name for g in fixed.groups} == {"ft232r", "uno"}


def test_discovery_rules_replaced_by_rename(discovery: Discovery, testbed: Testbed, rules_file: Path) -> None:
    """Editors that write a new file and rename it over the old one are noticed too."""
    testbed.plug(usb_devices.make_ftdi())
    wait_until(discovery, lambda s: len(s.devices) == 1)
    tmp = rules_file.with_suffix(".tmp")
    tmp.write_text(RULES.replace("name: ft232r", "name: via-rename"))
    os.replace(tmp, rules_file)
    wait_until(discovery, lambda s: any(g.name == "via-rename" for g in s.groups))


HEALTH_SCRIPT = """\
import sys, time
mode = open(sys.argv[1]).read().strip()
if mode == "fail":
    sys.stderr.write("board not responding\\n")
    sys.exit(3)
if mode == "hang":
    time.sleep(30)
"""


def test_discovery_health_check_real_subprocess(testbed: Testbed, tmp_path: Path) -> None:
    """A failing check makes the device unhealthy with exit code and stderr; a hanging one times out."""
    script = tmp_path / "check.py"
    script.write_text(HEALTH_SCRIPT)
    mode = tmp_path / "mode"
    mode.write_text("ok")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - match: {vendor_id: '0403'}\n"
        "    group: {vendor: ftdi, type: serial, name: ft232r}\n"
        f"    health: {{command: [{sys.executable!r}, {str(script)!r}, {str(mode)!r}], interval: 1s, timeout: 1s}}\n"
    )
    d = start_discovery(rules, debounce=0.02)
    try:
        testbed.plug(usb_devices.make_ftdi())
        ok = wait_until(d, lambda s: any(st.health is not None for st in s.devices.values()))
        (state,) = ok.devices.values()
        assert state.healthy and state.health is not None and state.health.ok
        mode.write_text("fail")
        bad = wait_until(d, lambda s: not healthy_ids(s) and bool(s.devices))
        (state,) = bad.devices.values()
        assert state.reason == "health check failed: exit 3: board not responding"
        mode.write_text("hang")
        hung = wait_until(d, lambda s: any("timed out" in st.reason for st in s.devices.values()))
        (state,) = hung.devices.values()
        assert state.reason == "health check timed out after 1s"
        mode.write_text("ok")
        wait_until(d, lambda s: len(healthy_ids(s)) == 1)
    finally:
        d.stop()


def test_discovery_stop_ends_waiters(discovery: Discovery) -> None:
    """stop() releases anyone waiting for a newer snapshot."""
    version = discovery.current().version
    discovery.stop()
    assert discovery.wait_newer(version, 5.0).version == version
    assert discovery.stopped


def test_discovery_change_event_regroups_by_property(testbed: Testbed, tmp_path: Path) -> None:
    """A udev 'change' that alters a property the rules look at moves the device to another group."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - match: {vendor_id: '0403', properties: {LAB_ROLE: 'flasher'}}\n"
        "    group: {vendor: lab, type: serial, name: flasher}\n"
        "  - match: {vendor_id: '0403'}\n"
        "    group: {vendor: ftdi, type: serial, name: ft232r}\n"
    )
    d = start_discovery(rules, debounce=0.02)
    try:
        handle = testbed.plug(usb_devices.make_ftdi())
        wait_until(d, lambda s: [g.name for g in s.groups] == ["ft232r"])
        testbed.change(handle, {"LAB_ROLE": "flasher"})
        moved = wait_until(d, lambda s: [g.name for g in s.groups] == ["flasher"])
        assert list(moved.devices) == ["usb-0403-6001-A50285BI"]
    finally:
        d.stop()


def test_discovery_checks_health_of_devices_present_at_start(testbed: Testbed, tmp_path: Path) -> None:
    """A device already attached when discovery starts gets its health check without any other event."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - match: {vendor_id: '0403'}\n"
        "    group: {vendor: ftdi, type: serial, name: ft232r}\n"
        f"    health: {{command: [{sys.executable!r}, '-c', 'raise SystemExit(2)'], interval: 1s, timeout: 1s}}\n"
    )
    testbed.plug(usb_devices.make_ftdi())
    d = start_discovery(rules, debounce=0.02)
    try:
        snapshot = wait_until(d, lambda s: any(not st.healthy for st in s.devices.values()))
        (state,) = snapshot.devices.values()
        assert state.reason == "health check failed: exit 2"
    finally:
        d.stop()


def test_discovery_dropping_a_health_check_forgets_its_verdict(testbed: Testbed, tmp_path: Path) -> None:
    """When the rule loses its failing health check, the device is healthy again without a replug."""
    rules = tmp_path / "rules.yaml"
    base = "rules:\n  - match: {vendor_id: '0403'}\n    group: {vendor: ftdi, type: serial, name: ft232r}\n"
    rules.write_text(base + f"    health: {{command: [{sys.executable!r}, '-c', 'raise SystemExit(1)']}}\n")
    testbed.plug(usb_devices.make_ftdi())
    d = start_discovery(rules, debounce=0.02)
    try:
        wait_until(d, lambda s: any(not st.healthy for st in s.devices.values()))
        rules.write_text(base)
        wait_until(d, lambda s: len(healthy_ids(s)) == 1)
    finally:
        d.stop()


def test_udev_source_skips_device_with_non_utf8_properties(testbed: Testbed) -> None:
    """A device whose udev data is not UTF-8 is left out; every other device is still found."""
    handle = testbed.plug(usb_devices.make_ftdi())
    testbed.plug(usb_devices.make_pixel7())
    uevent = Path(str(testbed.root) + handle.sys_path) / "uevent"
    uevent.write_bytes(uevent.read_bytes() + b"ID_WEIRD=caf\xe9\n")
    source = UdevSource()
    assert {d.vendor_id for d in source.enumerate()} == {0x18D1}
    assert source.device_at(handle.sys_path) is None


def test_discovery_follows_edits_through_a_symlinked_rules_file(testbed: Testbed, tmp_path: Path) -> None:
    """A rules file that is a symlink to a file elsewhere is reloaded when the target is edited."""
    real_dir = tmp_path / "managed"
    real_dir.mkdir()
    target = real_dir / "usb-rules.yaml"
    target.write_text(RULES)
    link = tmp_path / "rules.yaml"
    link.symlink_to(target)
    d = start_discovery(link, debounce=0.02)
    try:
        testbed.plug(usb_devices.make_ftdi())
        wait_until(d, lambda s: [g.name for g in s.groups] == ["ft232r"])
        target.write_text(RULES.replace("name: ft232r", "name: via-link"))
        wait_until(d, lambda s: [g.name for g in s.groups] == ["via-link"])
    finally:
        d.stop()


def test_discovery_overflow_is_one_warning_and_a_rescan_finds_the_lost_device(
    testbed: Testbed, rules_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real ENOBUFS on the monitor: one warning, no traceback, a rescan that finds the lost device, then events."""
    source = UdevSource()
    discovery = Discovery(source, lambda: load_rules(rules_file), rules_file=str(rules_file), debounce=0.05)
    discovery.start()
    try:
        with overflowed_in_place_of(source.fileno()):
            handle = testbed.plug(usb_devices.make_ftdi())  # its events wait in the monitor's own socket
            found = wait_until(discovery, lambda s: healthy_ids(s) == {"usb-0403-6001-A50285BI"})
        assert found.devices["usb-0403-6001-A50285BI"].present
        warnings = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings == [
            ("WARNING", "device events overflowed and some were lost; every device is listed again", None)
        ]
        discovery.reload_rules()  # wakes the loop, which waited on the stand-in socket
        testbed.unplug(handle)
        gone = wait_until(discovery, lambda s: not s.devices["usb-0403-6001-A50285BI"].present)
        assert gone.devices["usb-0403-6001-A50285BI"].reason == "unplugged"
    finally:
        discovery.stop()
