"""Process tier, fault injection: the real plugin rides out source failures, a vanishing rules file, hanging
health checks, 50 dropped streams and a SIGKILL mid-Reserve, with the stream up, no device lost, no traceback.

Each test prints one ``FAULTS`` line with what it injected (``pytest -s -k faults`` shows them; the
README's reliability section quotes them).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from discovery.fake import usb_devices
from discovery.fake.faults import FAULT_RATE_ENV, FAULT_SEED_ENV
from discovery.fake.testbed import Plugged, Testbed
from plugin.config import encode_config
from plugin.host import FingerprintStream, PluginProcess, RpcError
from process_support import pids_with_argument, wait_until
from proto import device_pb2

WAIT_S = 15.0  # a step here takes well under a second; retries after injected faults add at most 1 + 2 s
TESTS = Path(__file__).resolve().parent
FAULTY_ARGV = [sys.executable, str(TESTS / "plugin_with_faults.py")]
# `sleep 3600 0.000<pid>1`: a hanging check this run can find in /proc. The pytest process's PID makes it
# this run's own, so a check of another run on the machine (or one an interrupted run left) is not counted.
HANG_MARKER = f"0.000{os.getpid()}1"

RULES = """\
rules:
  - name: ftdi
    match: {vendor_id: "0403"}
    group: {vendor: ftdi, type: serial, name: ft232r}
    children: [tty]
  - name: uno
    match: {vendor_id: 2341}
    group: {vendor: arduino, type: board, name: uno}
    children: [tty]
  - name: pixel
    match: {vendor_id: 18d1}
    group: {vendor: google, type: phone, name: pixel-7}
  - name: ch340
    match: {vendor_id: 1a86}
    group: {vendor: wch, type: serial, name: ch340}
"""

# The devices the tests plug, with the IDs they must keep.
DEVICES: dict[str, tuple[Callable[[], usb_devices.FakeUsbDevice], str]] = {
    "ftdi": (usb_devices.make_ftdi, "usb-0403-6001-A50285BI"),
    "uno": (usb_devices.make_arduino_uno, "usb-2341-0043-85736323838351F0E1D1"),
    "pixel": (usb_devices.make_pixel7, "usb-18d1-4ee7-29011FDH2000XY"),
    "ch340": (usb_devices.make_ch340, "usb-1a86-7523-port-00:14.0-7"),
}


def healthy_ids(message: device_pb2.FingerprintResponse) -> set[str]:
    return {d.ID for g in message.device_group for d in g.devices if d.healthy}


def _devices(messages: list[device_pb2.FingerprintResponse]) -> list[device_pb2.DetectedDevice]:
    return [d for m in messages for g in m.device_group for d in g.devices]


def all_ids(message: device_pb2.FingerprintResponse) -> set[str]:
    return {d.ID for g in message.device_group for d in g.devices}


def tracebacks(plugin: PluginProcess) -> list[dict[str, Any]]:
    """Log entries carrying a traceback, and any stderr line that is not hclog JSON (a bare traceback)."""
    return [e for e in plugin.entries if "traceback" in e] + [{"raw": line} for line in plugin.bad_stderr_lines]


@dataclass
class World:
    testbed: Testbed
    rules_file: Path
    plugged: dict[str, Plugged] = field(default_factory=dict)
    running: list[PluginProcess] = field(default_factory=list)

    def start(self, argv: list[str] | None = None, rules: str | None = None, **env: str) -> PluginProcess:
        if rules is not None:
            self.rules_file.write_text(rules)
        plugin = PluginProcess.start(argv, env_extra={**self.testbed.env(), **env})
        self.running.append(plugin)
        plugin.set_config(encode_config({"rules_file": str(self.rules_file), "debounce": "50ms"}))
        return plugin

    def plug(self, name: str) -> None:
        self.plugged[name] = self.testbed.plug(DEVICES[name][0]())

    def unplug(self, name: str) -> None:
        self.testbed.unplug(self.plugged.pop(name))

    def expected(self) -> set[str]:
        return {DEVICES[name][1] for name in self.plugged}


@pytest.fixture
def world(testbed: Testbed, tmp_path: Path) -> Iterator[World]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    w = World(testbed, rules_file)
    try:
        yield w
    finally:
        for plugin in w.running:
            plugin.__exit__(None, None, None)


def wait_healthy(stream: FingerprintStream, expected: set[str], what: str) -> device_pb2.FingerprintResponse:
    seen: list[device_pb2.FingerprintResponse] = []
    message = stream.wait_for(lambda m: seen.append(m) is None and healthy_ids(m) == expected, WAIT_S)
    assert message is not None, (f"{what}: the stream never showed {sorted(expected)} healthy; last: "
                                 f"{[(d.ID, d.healthy, d.health_description) for d in _devices(seen[-1:])]}")
    return message


def stop(plugin: PluginProcess) -> None:
    assert plugin.shutdown() == 0


def test_faults_source_failing_at_random_points(world: World) -> None:
    """A quarter of the source's calls fail through 30 plugs and unplugs: every change still reaches the open stream."""
    plugin = world.start(FAULTY_ARGV, **{FAULT_RATE_ENV: "0.25", FAULT_SEED_ENV: "14"})
    stream = plugin.fingerprint()
    wait_healthy(stream, set(), "start")
    steps = random.Random(14)
    for step in range(30):
        name = steps.choice(sorted(DEVICES))
        if name in world.plugged:
            world.unplug(name)
        else:
            world.plug(name)
        wait_healthy(stream, world.expected(), f"step {step} ({name})")
    assert stream.error is None and not stream.ended
    injected = sum(1 for e in plugin.entries if e.get("@message") == "fault injected")
    assert injected > 0, "no fault was injected: the test proved nothing"
    assert tracebacks(plugin) == []
    assert not [e for e in plugin.entries if e["@level"] == "error"]
    stop(plugin)
    print(f"\nFAULTS source: {injected} faults injected over 30 plugs/unplugs, devices lost 0, tracebacks 0")


def count(plugin: PluginProcess, message: str) -> int:
    return sum(1 for e in plugin.entries if e.get("@message") == message)


REJECTED = "rules file rejected; the last good rules stay in force"


def test_faults_rules_file_vanishing_and_returning(world: World) -> None:
    """The rules file deleted and put back: an error, the last good rules and devices stay, the return is read."""
    plugin = world.start()
    stream = plugin.fingerprint()
    for name in DEVICES:
        world.plug(name)
    wait_healthy(stream, world.expected(), "plugged")
    content = world.rules_file.read_text()
    for vanished, put_back in enumerate(("write", "rename"), start=1):
        world.rules_file.unlink()
        plugin.wait_for_entry(lambda e, n=vanished: count(plugin, REJECTED) >= n, WAIT_S)
        refused = [e for e in plugin.entries if e.get("@message") == REJECTED][-1]
        assert refused["@level"] == "error" and "no such file" in refused["errors"]
        world.unplug("pixel")  # the stream is live and the last good rules still group the devices
        wait_healthy(stream, world.expected(), f"pixel unplugged while the file is gone ({put_back})")
        world.plug("pixel")
        wait_healthy(stream, world.expected(), f"pixel back while the file is gone ({put_back})")
        if put_back == "write":
            world.rules_file.write_text(content)
        else:
            aside = world.rules_file.with_name("rules.yaml.new")
            aside.write_text(content)
            aside.rename(world.rules_file)
        plugin.wait_for_entry(lambda e, n=vanished: count(plugin, "rules reloaded") >= n, WAIT_S)
    world.unplug("uno")  # the rules read back are in force: a change after them is reported
    wait_healthy(stream, world.expected(), "uno unplugged after the file came back")
    assert stream.error is None and not stream.ended
    assert tracebacks(plugin) == []
    stop(plugin)
    print("\nFAULTS rules file: vanished 2 times (back by write, by rename), devices lost 0, tracebacks 0")


def hanging_checks() -> list[int]:
    """PIDs of the health checks these tests started that are still running (found by their marker)."""
    return pids_with_argument(lambda arg: arg == HANG_MARKER.encode())


HANGING_RULES = RULES.replace(
    "    children: [tty]\n",
    "    children: [tty]\n"
    f'    health: {{command: ["/bin/sleep", "3600", "{HANG_MARKER}"], interval: 2s, timeout: 1s}}\n',
)


def test_faults_hanging_health_checks(world: World) -> None:
    """Checks that never end are killed at their timeout, a plug meanwhile is reported, none outlives the plugin."""
    plugin = world.start(rules=HANGING_RULES)
    stream = plugin.fingerprint()
    for name in ("ftdi", "uno"):
        world.plug(name)
    timed_out = stream.wait_for(
        lambda m: all_ids(m) == world.expected() and all(
            d.health_description == "health check timed out after 1s" for g in m.device_group for d in g.devices),
        WAIT_S)
    assert timed_out is not None and healthy_ids(timed_out) == set()
    world.plug("pixel")  # no health check: healthy at once, hanging checks or not
    assert stream.wait_for(lambda m: DEVICES["pixel"][1] in healthy_ids(m), WAIT_S) is not None
    checks = sum(1 for e in plugin.entries if e.get("reason") == "health check timed out after 1s")
    assert wait_until(lambda: bool(hanging_checks()), WAIT_S), "no check ever hung: the test proved nothing"
    assert stream.error is None and not stream.ended
    assert tracebacks(plugin) == []
    stop(plugin)
    assert wait_until(lambda: not hanging_checks(), WAIT_S), f"checks left running: {hanging_checks()}"
    print(f"\nFAULTS health: 2 devices with checks that never end, {checks} timeouts logged, the plug meanwhile "
          "reported, 0 checks left running, tracebacks 0")


def test_faults_fifty_fingerprint_streams_opened_and_dropped(world: World) -> None:
    """50 Fingerprint streams opened and dropped: the agent's stream stays current, every server worker comes back."""
    plugin = world.start()
    agent = plugin.fingerprint()
    world.plug("ftdi")
    wait_healthy(agent, world.expected(), "ftdi plugged")
    dropped = [plugin.fingerprint() for _ in range(50)]
    assert dropped[0].next_message(WAIT_S) is not None  # they are being served
    for extra in dropped:
        extra.cancel()
    world.plug("uno")
    wait_healthy(agent, world.expected(), "uno plugged after the drop")
    again = [plugin.fingerprint() for _ in range(30)]
    firsts = [stream.next_message(WAIT_S) for stream in again]
    assert all(m is not None and healthy_ids(m) == world.expected() for m in firsts), "a worker did not come back"
    for stream in again:
        stream.cancel()
    reservation = plugin.reserve([DEVICES["ftdi"][1]])
    assert reservation.container_res.envs["USB_DEVICE_IDS"] == DEVICES["ftdi"][1]
    assert agent.error is None and not agent.ended
    assert tracebacks(plugin) == []
    stop(plugin)
    print("\nFAULTS streams: 50 Fingerprint streams opened and dropped, then 30 more served, the agent's stream up, "
          "devices lost 0, tracebacks 0")


def test_faults_sigkill_mid_reserve_then_a_new_instance_serves(world: World) -> None:
    """SIGKILL while Reserve calls run: a new instance serves every device under its ID, twins included."""
    plugin = world.start()
    stream = plugin.fingerprint()
    wait_healthy(stream, set(), "start")
    world.plug("ftdi")
    wait_healthy(stream, {DEVICES["ftdi"][1]}, "the first unit")  # seen first: it holds the serial ID
    world.testbed.plug(usb_devices.make_ftdi(tty=1, port="1-5", devnum=30))  # same serial, so a port ID
    world.plug("pixel")
    twins = ["usb-0403-6001-A50285BI", "usb-0403-6001-port-00:14.0-5"]  # one group: reserved together
    every_id = {*twins, DEVICES["pixel"][1]}
    wait_healthy(stream, every_id, "plugged")
    done: list[int] = []
    failures: list[str] = []
    def hammer() -> None:  # Reserve calls back to back, so the kill lands in or between two of them
        while True:
            try:
                plugin.reserve(twins)
            except RpcError as exc:
                failures.append(exc.code().name)
                return
            done.append(1)

    worker = threading.Thread(target=hammer)
    worker.start()
    assert wait_until(lambda: len(done) >= 20, WAIT_S), f"Reserve did not answer: {failures}"
    plugin.send_signal(signal.SIGKILL)
    worker.join(WAIT_S)
    assert failures and failures[0] in ("UNAVAILABLE", "CANCELLED"), failures
    assert plugin.wait() == -signal.SIGKILL

    relaunched = world.start()
    first = relaunched.fingerprint().next_message(WAIT_S)
    assert first is not None and healthy_ids(first) == every_id  # the same IDs: none lost, none renamed
    reservation = relaunched.reserve(twins)
    assert reservation.container_res.envs["USB_DEVICE_IDS"] == ",".join(sorted(twins))
    assert relaunched.reserve([DEVICES["pixel"][1]]).container_res.envs["USB_DEVICE_0_SERIAL"] == "29011FDH2000XY"
    assert tracebacks(relaunched) == []
    assert not [e for e in relaunched.entries if e["@level"] in ("warn", "error")]  # the state file was whole
    stop(relaunched)
    print(f"\nFAULTS sigkill: SIGKILL while Reserve calls ran back to back ({len(done)} answered, the next failed "
          f"with {failures[0]}); the new instance served all 3 devices under their IDs, devices lost 0, tracebacks 0")
