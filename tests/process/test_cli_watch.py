"""`watch`: the real executable in a testbed world prints one line per hotplug event and stops cleanly on SIGINT."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, RULES, CliProcess

from discovery.fake.testbed import Testbed, load_fixture

LINE = re.compile(
    r"^(?P<time>\d\d:\d\d:\d\d\.\d{3})  (?P<action>\S+)\s+  (?P<id>\S+)  (?P<vid_pid>[0-9a-f?]{4}:[0-9a-f?]{4})  "
    r"(?P<what>.+?)  -> (?P<result>.+)$"
)


@pytest.fixture
def watch(testbed: Testbed) -> Iterator[CliProcess]:
    """`nomad-device-usb watch --rules tests/golden/rules.yaml` running in the test's world, ready for events."""
    testbed.plug(load_fixture("cp2102"))
    proc = CliProcess(["watch", "--rules", RULES], {**os.environ, **testbed.env()})
    try:
        proc.wait_err("press Ctrl-C to stop")  # the monitor is bound from here on
        yield proc
    finally:
        proc.kill()


def _parse(line: str) -> dict[str, str]:
    found = LINE.match(line)
    assert found, line
    return found.groupdict()


def _until_all(proc: CliProcess, *needles: str) -> list[str]:
    """stdout lines until each of ``needles`` has appeared in one."""
    missing = set(needles)
    seen: list[str] = []

    def done(line: str) -> bool:
        missing.difference_update({n for n in needles if n in line})
        return not missing

    seen.extend(proc.wait_out(done))
    return seen


def test_watch_reports_plug_and_unplug_with_match(watch: CliProcess, testbed: Testbed) -> None:
    """Plugging an FTDI prints an add line with its ID, VID:PID and group; unplugging prints what it was."""
    assert "watching 1 attached USB device (rules: tests/golden/rules.yaml)" in watch.err_lines[-1]
    handle = testbed.plug(load_fixture("ftdi-ft232r"))
    added = [_parse(line) for line in watch.wait_out(lambda line: "tty /dev/ttyUSB0" in line)]
    first = added[0]
    assert (first["action"], first["id"], first["vid_pid"], first["what"]) == (
        "add", "usb-0403-6001-A50285BI", "0403:6001", "device")
    assert added[-1]["result"] == 'ftdi/serial/ft232r by rules[2] "ftdi"'
    testbed.unplug(handle)
    removed = [_parse(line) for line in watch.wait_out(lambda line: " device  -> was " in line)]
    assert removed[-1]["action"] == "remove" and removed[-1]["id"] == "usb-0403-6001-A50285BI"
    assert removed[-1]["result"] == 'was ftdi/serial/ft232r by rules[2] "ftdi"'
    assert watch.stop(signal.SIGINT) == 0
    assert watch.wait_err("stopped")


def test_watch_shows_ignored_no_rule_and_driver_changes(watch: CliProcess, testbed: Testbed) -> None:
    """A hub is ignored, the ST-Link behind it has no rule; an unbind shows the device turning unhealthy."""
    testbed.plug(load_fixture("hub-ch340-stlink"))
    lines = [_parse(line) for line in _until_all(watch, "tty /dev/ttyACM1", "tty /dev/ttyUSB2")]
    results = {(p["vid_pid"], p["what"]): p["result"] for p in lines}
    assert results[("05e3:0610", "device")] == 'ignored by rules[0] "hubs"'
    assert results[("0483:374b", "tty /dev/ttyACM1")] == "no rule"
    assert results[("1a86:7523", "tty /dev/ttyUSB2")] == 'wch/serial/ch340-1-5.1 by rules[5] "ch340 boards by port"'
    ftdi = testbed.plug(load_fixture("ftdi-ft232r"))
    watch.wait_out(lambda line: "tty /dev/ttyUSB0" in line)
    testbed.unbind(ftdi, 0)
    unbound = _parse(watch.wait_out(lambda line: " unbind " in line)[-1])
    assert unbound["what"] == "interface 1-2:1.0"
    assert unbound["result"] == 'ftdi/serial/ft232r by rules[2] "ftdi" (unhealthy: no driver bound)'
    assert watch.stop(signal.SIGINT) == 0


def test_watch_replug_gets_the_same_id(watch: CliProcess, testbed: Testbed) -> None:
    """A device unplugged and plugged again is reported under the same stable ID."""
    # Each plug is judged on the line of its last event, the tty's `add`: the testbed writes nothing
    # more of that device after it, so the watch has read all of it. The device's own `add` comes
    # while the interface and tty are still being written (the test once failed under load).
    records = load_fixture("ftdi-ft232r")
    handle = testbed.plug(records)
    first = _parse(watch.wait_out(lambda line: "tty /dev/ttyUSB0" in line)[-1])
    testbed.unplug(handle)
    watch.wait_out(lambda line: " device  -> was " in line)
    testbed.plug(records)
    again = _parse(watch.wait_out(lambda line: "tty /dev/ttyUSB0" in line)[-1])
    assert (first["action"], again["action"]) == ("add", "add")
    assert again["id"] == first["id"] == "usb-0403-6001-A50285BI"
    assert watch.stop(signal.SIGINT) == 0


def test_watch_json_lines(testbed: Testbed) -> None:
    """--json prints one JSON object per event with action, ID, state and match; SIGTERM also ends with 0."""
    proc = CliProcess(["watch", "--json", "--rules", RULES], {**os.environ, **testbed.env()})
    try:
        proc.wait_err("press Ctrl-C to stop")
        testbed.plug(load_fixture("yubikey5"))
        events = [json.loads(line) for line in proc.wait_out(lambda line: "hidraw1" in line)]
        device = events[0]
        assert (device["action"], device["what"], device["state"]) == ("add", "device", "present")
        assert device["id"] == "usb-1050-0407-port-00:14.0-6"
        assert events[-1]["match"]["group"] == "yubico/security-key/yubikey-5"
        assert events[-1]["what"] == "hidraw /dev/hidraw1"
        assert proc.stop(signal.SIGTERM) == 0
    finally:
        proc.kill()


def test_watch_reloads_rules_and_shows_every_device_again(testbed: Testbed, tmp_path: Path) -> None:
    """Saving the rules file re-matches every attached device; a broken save keeps the old rules."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    testbed.plug(load_fixture("cp2102"))
    proc = CliProcess(["watch", "--rules", str(rules)], {**os.environ, **testbed.env()})
    try:
        proc.wait_err("press Ctrl-C to stop")
        rules.write_text(
            "rules:\n  - match: {vendor_id: 10c4}\n    group: {vendor: silabs, type: serial, name: cp2102}\n"
        )
        proc.wait_err("rules reloaded")
        line = _parse(proc.wait_out(lambda text: " rules " in text)[-1])
        assert (line["vid_pid"], line["result"]) == ("10c4:ea60", "silabs/serial/cp2102 by rules[0]")
        rules.write_text("rules:\n  - match: {vendor_id: zz}\n")
        assert "keeping the previous rules" in proc.wait_err("rules file rejected")
        assert proc.stop(signal.SIGINT) == 0
    finally:
        proc.kill()


def test_watch_rejects_bad_rules_before_starting(testbed: Testbed) -> None:
    """A rules file that does not load: one line, exit 1, no watching."""
    proc = CliProcess(["watch", "--rules", str(ROOT / "no-such.yaml")], {**os.environ, **testbed.env()})
    try:
        assert proc.proc.wait(timeout=20) == 1
        assert proc.wait_err("error:").endswith("no-such.yaml: no such file")
    finally:
        proc.kill()


def test_watch_stops_on_sigint_even_when_started_with_it_ignored(testbed: Testbed) -> None:
    """Started from a script in the background (SIGINT inherited as ignored), Ctrl-C still ends the watch."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = CliProcess(["watch", "--rules", RULES], {**os.environ, **testbed.env()})
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        proc.wait_err("press Ctrl-C to stop")
        assert proc.stop(signal.SIGINT, timeout=10.0) == 0
    finally:
        proc.kill()


def test_watch_all_shows_node_devices_outside_usb(testbed: Testbed) -> None:
    """--all: a PCI serial card's ports are printed as they come and go, by ID and label; USB lines stay as they were."""
    testbed.plug(load_fixture("raspberry-pi-hat"))
    proc = CliProcess(["watch", "--all", "--json", "--rules", RULES], {**os.environ, **testbed.env()})
    try:
        ready = proc.wait_err("press Ctrl-C to stop")
        assert "watching 0 attached USB devices and 4 other devices with a node" in ready
        card = testbed.plug(load_fixture("pcie-serial-card"))
        added = [json.loads(line) for line in _until_all(proc, "ttyS4", "ttyS5")]
        assert [(e["action"], e["id"], e["kind"], e["what"], e["state"]) for e in added] == [
            ("add", "tty-pci-03_00.0-ttyS4", "udev", "node /dev/ttyS4", "present"),
            ("add", "tty-pci-03_00.0-ttyS5", "udev", "node /dev/ttyS5", "present"),
        ]
        assert added[0]["vid_pid"] is None and added[0]["match"]["status"] == "unmatched"
        testbed.unplug(card)
        removed = [json.loads(line) for line in _until_all(proc, '"remove"')]
        assert (removed[-1]["action"], removed[-1]["state"]) == ("remove", "removed")
        assert removed[-1]["id"] in ("tty-pci-03_00.0-ttyS4", "tty-pci-03_00.0-ttyS5")
        testbed.plug(load_fixture("ftdi-ft232r"))
        usb = [json.loads(line) for line in proc.wait_out(lambda line: "ttyUSB0" in line)]
        assert (usb[-1]["kind"], usb[-1]["vid_pid"], usb[-1]["id"]) == ("usb", "0403:6001", "usb-0403-6001-A50285BI")
        assert proc.stop(signal.SIGTERM) == 0
    finally:
        proc.kill()


def test_watch_shows_the_node_devices_its_udev_rules_name(testbed: Testbed, tmp_path: Path) -> None:
    """Without --all: the devices outside USB of the subsystems the kind: udev rules name, as the plugin sees
    them; a PCI card's tty ports come and are matched, the Pi HAT's GPIO chip (no rule names gpio) stays out."""
    testbed.plug(load_fixture("raspberry-pi-hat"))
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: card ports\n    kind: udev\n    match: {subsystem: tty}\n"
                     "    group: {vendor: oxford, type: serial, name: port}\n")
    proc = CliProcess(["watch", "--json", "--rules", str(rules)], {**os.environ, **testbed.env()})
    try:
        ready = proc.wait_err("press Ctrl-C to stop")
        assert "watching 0 attached USB devices and 1 other device with a node" in ready  # ttyAMA0 only
        testbed.plug(load_fixture("pcie-serial-card"))
        added = [json.loads(line) for line in _until_all(proc, "ttyS4", "ttyS5")]
        assert [(e["id"], e["match"]["status"], e["match"]["group"]) for e in added] == [
            ("tty-pci-03_00.0-ttyS4", "matched", "oxford/serial/port"),
            ("tty-pci-03_00.0-ttyS5", "matched", "oxford/serial/port"),
        ]
        assert proc.stop(signal.SIGTERM) == 0
    finally:
        proc.kill()
