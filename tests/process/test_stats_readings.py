"""Process tier: a rule's stats command turns into per-device readings on the real plugin's Stats stream.

Each device's command is a small script; the misbehaving ones hang, fail, print garbage or print
without end, and the stream must go on at its interval with every device in it all the same.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import PluginProcess
from process_support import pids_with_argument, wait_until
from proto import device_pb2, stats_pb2

WAIT_S = 20.0
HANG_TIMEOUT_S = 3.0  # the hanging command's timeout: long enough to see many Stats messages meanwhile

SCRIPTS = {
    "phone": 'import json, sys; print(json.dumps({"battery_level": {"value": 87, "unit": "%"}, '
             '"battery_temperature": {"value": 31.2, "unit": "celsius"}, "serial_seen": len(sys.argv[1])}))',
    "hangs": "import time; time.sleep(3600)",
    "fails": 'import sys; print("adb: device offline", file=sys.stderr); sys.exit(1)',
    "garbage": 'print("level: 87\\ntemperature: 312")',
    "floods": 'import sys\nwhile True: sys.stdout.write("x" * 65536)',
    "half": 'print(\'{"vbus": {"value": 5.02, "unit": "V"}, "temp": "hot"}\')',
}

RULES = """\
rules:
  - name: phone
    match: {{vendor_id: 18d1}}
    group: {{vendor: google, type: phone, name: pixel-7}}
    stats: {{command: [{py}, {dir}/phone.py, "{{serial}}"], interval: 1s, timeout: 1s, summary: battery_level}}
  - name: hanging board
    match: {{vendor_id: "0403"}}
    group: {{vendor: ftdi, type: serial, name: ft232r}}
    stats: {{command: [{py}, {dir}/hangs.py], interval: {hang}s, timeout: {hang}s}}
  - name: failing board
    match: {{vendor_id: 2341}}
    group: {{vendor: arduino, type: board, name: uno}}
    stats: {{command: [{py}, {dir}/fails.py], interval: 1s, timeout: 1s}}
  - name: garbage board
    match: {{vendor_id: 10c4}}
    group: {{vendor: silabs, type: serial, name: cp210x}}
    stats: {{command: [{py}, {dir}/garbage.py], interval: 1s, timeout: 1s}}
  - name: flooding board
    match: {{vendor_id: 1a86}}
    group: {{vendor: wch, type: serial, name: ch340}}
    stats: {{command: [{py}, {dir}/floods.py], interval: 1s, timeout: 1s}}
  - name: half good board
    match: {{vendor_id: "0483"}}
    group: {{vendor: st, type: debugger, name: stlink}}
    stats: {{command: [{py}, {dir}/half.py], interval: 1s, timeout: 1s}}
"""


@pytest.fixture
def plugin(testbed: Testbed, tmp_path: Path) -> Iterator[PluginProcess]:
    for name, code in SCRIPTS.items():
        (tmp_path / f"{name}.py").write_text(code + "\n")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES.format(py=sys.executable, dir=tmp_path, hang=HANG_TIMEOUT_S))
    with PluginProcess.start(env_extra=testbed.env()) as proc:
        proc.set_config(encode_config({"rules_file": str(rules_file), "debounce": "50ms"}))
        yield proc
        assert proc.shutdown() == 0
        assert not proc.bad_stderr_lines, proc.bad_stderr_lines
    # A stopped plugin kills its running commands' process groups.
    assert wait_until(lambda: commands_running(tmp_path) == [], 5.0), "stats commands outlived the plugin"


def commands_running(scripts: Path) -> list[int]:
    """PIDs of processes running one of this test's scripts."""
    prefix = str(scripts).encode() + b"/"
    return pids_with_argument(lambda arg: arg.startswith(prefix))


def value(stat: stats_pb2.StatValue) -> Any:
    for member in ("int_numerator_val", "float_numerator_val", "bool_val", "string_val"):
        if stat.HasField(member):
            return getattr(stat, member).value
    return None


def by_group(message: device_pb2.StatsResponse) -> dict[str, device_pb2.DeviceStats]:
    """"vendor/type/name" -> the stats of its one device."""
    return {f"{g.vendor}/{g.type}/{g.name}": next(iter(g.instance_stats.values())) for g in message.groups}


def readings(stats: device_pb2.DeviceStats) -> dict[str, tuple[Any, str]]:
    return {name: (value(v), v.unit) for name, v in stats.stats.nested["readings"].attributes.items()}


def next_where(call: Any, predicate: Any, seen: list[device_pb2.StatsResponse]) -> device_pb2.StatsResponse:
    """Read Stats messages (each kept in ``seen``) until one satisfies ``predicate``."""
    for message in call:
        seen.append(message)
        if predicate(message):
            return message
    raise AssertionError("the Stats stream ended")


def test_stats_stream_carries_readings_with_units_and_the_summary(plugin: PluginProcess, testbed: Testbed) -> None:
    """The phone's readings arrive with Nomad's units, ints as ints, and battery_level as its summary."""
    testbed.plug(usb_devices.make_pixel7())
    stream = plugin.fingerprint()
    assert stream.wait_for(lambda m: len(m.device_group) == 1, WAIT_S) is not None
    call = plugin.stats(0.2)
    try:
        message = next_where(call, lambda m: "readings" in by_group(m).get("google/phone/pixel-7",
                                                                           device_pb2.DeviceStats()).stats.nested, [])
    finally:
        call.cancel()
    phone = by_group(message)["google/phone/pixel-7"]
    assert readings(phone) == {
        "battery_level": (87, "%"),
        "battery_temperature": (31.2, "C"),
        "serial_seen": (len(usb_devices.make_pixel7().serial or ""), ""),
    }
    assert phone.stats.nested["readings"].attributes["battery_level"].HasField("int_numerator_val")
    assert (value(phone.summary), phone.summary.unit) == (87, "%")
    assert "readings_error" not in phone.stats.attributes


def test_misbehaving_stats_commands_never_end_or_stall_the_stream(
    plugin: PluginProcess, testbed: Testbed, tmp_path: Path
) -> None:
    """While one command hangs, others fail, print garbage or flood, every message still comes with every device;
    a command still hanging when the plugin stops is killed with it (checked after the fixture's Shutdown)."""
    for make in (usb_devices.make_pixel7, usb_devices.make_ftdi, usb_devices.make_arduino_uno,
                 usb_devices.make_cp210x, usb_devices.make_ch340, usb_devices.make_stlink):
        testbed.plug(make())
    stream = plugin.fingerprint()
    assert stream.wait_for(lambda m: len(m.device_group) == 6, WAIT_S) is not None
    call = plugin.stats(0.2)
    seen: list[device_pb2.StatsResponse] = []
    try:
        def timed_out(message: device_pb2.StatsResponse) -> bool:
            error = by_group(message)["ftdi/serial/ft232r"].stats.attributes.get("readings_error")
            return error is not None and "timed out" in value(error)

        last = next_where(call, timed_out, seen)
        # The hanging command held a worker for its whole timeout; the stream went on meanwhile.
        assert len(seen) >= 5, f"only {len(seen)} Stats messages while the command hung for {HANG_TIMEOUT_S} s"
        assert all(len(m.groups) == 6 for m in seen)
        later = next_where(call, lambda m: True, seen)
    finally:
        call.cancel()
    assert stream.error is None and not stream.ended
    groups = by_group(last)
    errors = {name: value(s.stats.attributes["readings_error"]) for name, s in groups.items()
              if "readings_error" in s.stats.attributes}
    assert errors == {
        "ftdi/serial/ft232r": f"stats command timed out after {HANG_TIMEOUT_S:g}s",
        "arduino/board/uno": "stats command failed: exit 1: adb: device offline",
        "silabs/serial/cp210x": errors["silabs/serial/cp210x"],
        "wch/serial/ch340": "stats command printed more than 65536 bytes; killed",
    }
    assert errors["silabs/serial/cp210x"].startswith("stats command output is not JSON")
    assert readings(groups["st/debugger/stlink"]) == {"vbus": (5.02, "V")}  # "temp": "hot" left out, not guessed
    assert readings(groups["google/phone/pixel-7"])["battery_level"] == (87, "%")
    assert later.groups and plugin.proc.poll() is None
    warned = [e for e in plugin.entries if e.get("@message", "").startswith("stats command problem")]
    for text in ('reading "temp": text is not a number; left out', "exit 1: adb: device offline"):
        assert sum(text in str(e.get("problem")) for e in warned) == 1, (text, warned)  # once per device
    hanging = tmp_path / "hangs.py"
    assert wait_until(lambda: bool(pids_with_argument(lambda arg: arg == str(hanging).encode())), 2 * HANG_TIMEOUT_S), (
        "no stats command was hanging at Shutdown: the teardown check would prove nothing")
