"""Process tier: the real plugin executable in a umockdev world, driven over gRPC as a Nomad client does."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import Testbed
from plugin.config import encode_config
from plugin.host import FingerprintStream, PluginProcess
from proto import device_pb2

WAIT_S = 15.0

RULES = """\
rules:
  - name: hubs
    match: {device_class: 0x09}
    ignore: true
  - name: pixel
    match: {vendor_id: 18d1, product_id: 4ee7}
    group: {vendor: google, type: phone, name: pixel-7}
    attributes: {adb: true, ram: {value: 8, unit: GiB}}
    env: {ANDROID_SERIAL: "{serial}"}
  - name: ftdi
    match: {vendor_id: "0403", product_id: "6001"}
    group: {vendor: ftdi, type: serial, name: ft232r}
    children: [tty]
    permissions: rwm
    mounts: [{host_path: /dev/serial/by-id, task_path: /dev/serial/by-id, read_only: true}]
  - name: uno
    match: {vendor_id: 2341}
    group: {vendor: arduino, type: board, name: uno}
    children: [tty]
    env: {ARDUINO_PORT: "{port}"}
  - name: cp210x
    match: {vendor_id: 10c4}
    group: {vendor: silabs, type: serial, name: cp210x}
  - name: ch340
    match: {vendor_id: 1a86}
    group: {vendor: wch, type: serial, name: ch340}
    children: [tty]
  - name: stlink
    match: {vendor_id: "0483", product_id: 374b}
    group: {vendor: st, type: debugger, name: stlink-v2-1}
  - name: yubikey
    match: {vendor_id: "1050"}
    group: {vendor: yubico, type: key, name: yubikey-5}
    children: [hidraw]
    permissions: r
"""


@dataclass
class World:
    testbed: Testbed
    plugin: PluginProcess
    rules_file: Path

    def open_fingerprint(self) -> tuple[FingerprintStream, device_pb2.FingerprintResponse]:
        """Open the stream and read its first message; later plugs arrive as later messages."""
        stream = self.plugin.fingerprint()
        first = stream.next_message(WAIT_S)
        assert first is not None, "no first Fingerprint message"
        return stream, first


def groups_of(message: device_pb2.FingerprintResponse) -> dict[str, dict[str, bool]]:
    """{"vendor/type/name": {id: healthy}} of a fingerprint message."""
    return {
        f"{g.vendor}/{g.device_type}/{g.device_name}": {d.ID: d.healthy for d in g.devices}
        for g in message.device_group
    }


def has_group(name: str, count: int, healthy: int | None = None) -> Callable[[device_pb2.FingerprintResponse], bool]:
    def check(message: device_pb2.FingerprintResponse) -> bool:
        devices = groups_of(message).get(name, {})
        return len(devices) == count and (healthy is None or sum(devices.values()) == healthy)

    return check


def start_plugin(testbed: Testbed, rules_file: Path, **config: object) -> PluginProcess:
    plugin = PluginProcess.start(env_extra=testbed.env())
    plugin.set_config(encode_config({"rules_file": str(rules_file), "debounce": "50ms", **config}))
    return plugin


@pytest.fixture
def world(testbed: Testbed, tmp_path: Path) -> Iterator[World]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    with start_plugin(testbed, rules_file) as plugin:
        yield World(testbed, plugin, rules_file)
        if plugin.proc.poll() is None:
            assert plugin.shutdown() == 0
        assert not plugin.bad_stderr_lines, plugin.bad_stderr_lines


def test_fingerprint_first_message_is_immediate_and_empty_without_devices(world: World) -> None:
    """The first message comes at once, with zero groups when nothing matches."""
    stream = world.plugin.fingerprint()
    opened = time.monotonic()
    first = stream.next_timed(WAIT_S)
    assert first is not None
    arrived, message = first
    assert list(message.device_group) == []
    assert arrived - opened < 1.0  # contract: Nomad's client start waits for this message


def test_fingerprint_reports_hotplug_add_and_remove(world: World) -> None:
    """A plug adds a healthy device; an unplug keeps it listed but unhealthy, saying why."""
    stream, _ = world.open_fingerprint()
    handle = world.testbed.plug(usb_devices.make_ftdi())
    added = stream.wait_for(has_group("ftdi/serial/ft232r", 1, 1), WAIT_S)
    assert added is not None
    group = added.device_group[0]
    assert group.attributes["vendor_id"].int_val == 0x0403
    assert group.attributes["product_id"].int_val == 0x6001
    assert group.attributes["product"].string_val == "FT232R USB UART"
    world.testbed.unplug(handle)
    removed = stream.wait_for(has_group("ftdi/serial/ft232r", 1, 0), WAIT_S)
    assert removed is not None
    assert removed.device_group[0].devices[0].health_description == "unplugged"


def test_fingerprint_sends_nothing_when_nothing_changed(world: World) -> None:
    """A change event that alters nothing Nomad sees produces no new message."""
    stream, _ = world.open_fingerprint()
    handle = world.testbed.plug(usb_devices.make_ftdi())
    assert stream.wait_for(has_group("ftdi/serial/ft232r", 1, 1), WAIT_S) is not None
    world.testbed.change(handle, {"SOME_UNRELATED_PROPERTY": "1"})
    # A later, visible change proves the stream is live; nothing may come in between.
    world.testbed.plug(usb_devices.make_pixel7())
    nxt = stream.next_message(WAIT_S)
    assert nxt is not None and has_group("google/phone/pixel-7", 1)(nxt)


def test_fingerprint_replug_keeps_id_with_new_devnum(world: World) -> None:
    """The same board replugged on another port with a new device number keeps its ID and turns healthy."""
    stream, _ = world.open_fingerprint()
    handle = world.testbed.plug(usb_devices.make_arduino_uno())
    first = stream.wait_for(has_group("arduino/board/uno", 1, 1), WAIT_S)
    assert first is not None
    (dev_id,) = groups_of(first)["arduino/board/uno"]
    world.testbed.unplug(handle)
    assert stream.wait_for(has_group("arduino/board/uno", 1, 0), WAIT_S) is not None
    world.testbed.plug(usb_devices.make_arduino_uno(port="1-6", devnum=42))
    again = stream.wait_for(has_group("arduino/board/uno", 1, 1), WAIT_S)
    assert again is not None
    assert list(groups_of(again)["arduino/board/uno"]) == [dev_id]


def test_fingerprint_survives_a_device_with_garbage_sysfs(world: World) -> None:
    """A device whose data cannot be read is skipped; the stream stays open and later devices still arrive."""
    stream, _ = world.open_fingerprint()
    world.testbed.plug(usb_devices.make_ftdi(attributes={"idVendor": "zz!!", "busnum": "x"}))
    world.testbed.plug(usb_devices.make_pixel7())
    assert stream.wait_for(has_group("google/phone/pixel-7", 1, 1), WAIT_S) is not None
    assert stream.error is None and not stream.ended


def test_fingerprint_group_attributes_typed_for_constraints(world: World) -> None:
    """Rule attributes keep their types and units; numbers are numbers."""
    stream, _ = world.open_fingerprint()
    world.testbed.plug(usb_devices.make_pixel7())
    message = stream.wait_for(has_group("google/phone/pixel-7", 1), WAIT_S)
    assert message is not None
    attrs = message.device_group[0].attributes
    assert attrs["adb"].WhichOneof("value") == "bool_val" and attrs["adb"].bool_val is True
    assert attrs["ram"].int_val == 8 and attrs["ram"].unit == "GiB"
    assert attrs["speed_mbps"].int_val == 480


FIXTURE_RESERVATIONS = [
    pytest.param(usb_devices.make_pixel7, "google/phone/pixel-7", "rw", [], id="pixel7"),
    pytest.param(usb_devices.make_ftdi, "ftdi/serial/ft232r", "rwm", ["/dev/ttyUSB0"], id="ftdi"),
    pytest.param(usb_devices.make_arduino_uno, "arduino/board/uno", "rw", ["/dev/ttyACM0"], id="arduino"),
    pytest.param(usb_devices.make_cp210x, "silabs/serial/cp210x", "rw", ["/dev/ttyUSB1"], id="cp210x"),
    pytest.param(usb_devices.make_ch340, "wch/serial/ch340", "rw", ["/dev/ttyUSB3"], id="ch340"),
    pytest.param(usb_devices.make_stlink, "st/debugger/stlink-v2-1", "rw", ["/dev/ttyACM1"], id="stlink"),
    pytest.param(usb_devices.make_yubikey, "yubico/key/yubikey-5", "r", ["/dev/hidraw0", "/dev/hidraw1"], id="yubikey"),
]


@pytest.mark.parametrize(("make", "group", "perms", "children"), FIXTURE_RESERVATIONS)
def test_reserve_hands_over_usb_node_and_children(
    world: World, make: Callable[[], usb_devices.FakeUsbDevice], group: str, perms: str, children: list[str]
) -> None:
    """Reserve returns the USB node plus the rule's child nodes, which exist as device nodes in /dev."""
    stream, _ = world.open_fingerprint()
    fake = make()
    world.testbed.plug(fake)
    message = stream.wait_for(has_group(group, 1, 1), WAIT_S)
    assert message is not None
    (dev_id,) = groups_of(message)[group]
    res = world.plugin.reserve([dev_id]).container_res
    usb_node = f"/dev/bus/usb/{fake.busnum:03d}/{fake.devnum:03d}"
    assert [d.host_path for d in res.devices] == [usb_node, *children]
    for spec in res.devices:
        assert spec.task_path == spec.host_path
        assert spec.permissions == perms
        node = world.testbed.root / spec.host_path.lstrip("/")
        assert stat.S_ISCHR(os.stat(node).st_mode) or node.exists()
    assert res.envs["USB_DEVICE_IDS"] == dev_id
    assert res.envs["USB_DEVICE_0_ID"] == dev_id
    assert res.envs["USB_DEVICE_0_BUS_NODE"] == usb_node
    assert res.envs["USB_DEVICE_0_NODE"] == (children[0] if children else usb_node)
    assert res.envs["USB_DEVICE_0_SERIAL"] == (fake.serial or "")


def test_reserve_two_devices_env_is_deterministic(world: World) -> None:
    """With two devices, IDs are listed in sorted order and the rule's env values joined the same way."""
    stream, _ = world.open_fingerprint()
    world.testbed.plug(usb_devices.make_arduino_uno(port="1-3", devnum=7, serial="B0000000001"))
    world.testbed.plug(usb_devices.make_arduino_uno(port="1-4", devnum=8, serial="A0000000002", tty=1))
    message = stream.wait_for(has_group("arduino/board/uno", 2, 2), WAIT_S)
    assert message is not None
    ids = sorted(groups_of(message)["arduino/board/uno"])
    res_a = world.plugin.reserve(ids).container_res
    res_b = world.plugin.reserve(list(reversed(ids))).container_res
    assert dict(res_a.envs) == dict(res_b.envs)
    assert res_a.envs["USB_DEVICE_IDS"] == ",".join(ids)
    assert res_a.envs["USB_DEVICE_0_ID"] == ids[0] and res_a.envs["USB_DEVICE_1_ID"] == ids[1]
    assert len(res_a.envs["ARDUINO_PORT"].split(",")) == 2


def test_reserve_mounts_resolved_under_dev(world: World) -> None:
    """The rule's mount is passed on with its read-only flag."""
    os.makedirs(world.testbed.root / "dev/serial/by-id", exist_ok=True)
    stream, _ = world.open_fingerprint()
    world.testbed.plug(usb_devices.make_ftdi())
    message = stream.wait_for(has_group("ftdi/serial/ft232r", 1, 1), WAIT_S)
    assert message is not None
    res = world.plugin.reserve(list(groups_of(message)["ftdi/serial/ft232r"])).container_res
    assert [(m.host_path, m.task_path, m.read_only) for m in res.mounts] == [
        ("/dev/serial/by-id", "/dev/serial/by-id", True)
    ]


def test_reserve_errors_name_the_device(world: World) -> None:
    """Unknown ID: NOT_FOUND; unplugged: FAILED_PRECONDITION with the reason; empty: INVALID_ARGUMENT."""
    stream, _ = world.open_fingerprint()
    handle = world.testbed.plug(usb_devices.make_ftdi())
    message = stream.wait_for(has_group("ftdi/serial/ft232r", 1, 1), WAIT_S)
    assert message is not None
    (dev_id,) = groups_of(message)["ftdi/serial/ft232r"]

    with pytest.raises(grpc.RpcError) as unknown:
        world.plugin.reserve(["usb-dead-beef-nothing"])
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "usb-dead-beef-nothing" in (unknown.value.details() or "")

    with pytest.raises(grpc.RpcError) as empty:
        world.plugin.reserve([])
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    world.testbed.unplug(handle)
    assert stream.wait_for(has_group("ftdi/serial/ft232r", 1, 0), WAIT_S) is not None
    with pytest.raises(grpc.RpcError) as gone:
        world.plugin.reserve([dev_id])
    assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dev_id in (gone.value.details() or "") and "unplugged" in (gone.value.details() or "")


def test_stats_stream_reports_every_device_with_timestamp(world: World) -> None:
    """Each interval brings one message; every device has a timestamp, stats and a summary."""
    stream, _ = world.open_fingerprint()
    world.testbed.plug(usb_devices.make_ftdi())
    world.testbed.plug(usb_devices.make_pixel7())
    assert stream.wait_for(lambda m: len(m.device_group) == 2, WAIT_S) is not None
    call = world.plugin.stats(0.2)
    try:
        first, second = next(call), next(call)
    finally:
        call.cancel()
    for message in (first, second):
        assert {(g.vendor, g.type, g.name) for g in message.groups} == {
            ("ftdi", "serial", "ft232r"),
            ("google", "phone", "pixel-7"),
        }
        for group in message.groups:
            for dev in group.instance_stats.values():
                assert dev.HasField("timestamp") and dev.HasField("stats")
                assert dev.summary.string_val.value == "connected"
                assert dev.stats.attributes["connected"].bool_val.value is True
                assert dev.stats.attributes["replug_count"].int_numerator_val.value == 0
                assert dev.stats.nested["group"].attributes["devices"].int_numerator_val.value == 1
    ts1 = first.groups[0].instance_stats
    ts2 = second.groups[0].instance_stats
    key = next(iter(ts1))
    assert ts2[key].timestamp.ToNanoseconds() > ts1[key].timestamp.ToNanoseconds()


def test_rules_file_edit_takes_effect_without_restart(world: World) -> None:
    """Editing the rules file regroups devices; a broken edit keeps the last good rules."""
    stream, _ = world.open_fingerprint()
    world.testbed.plug(usb_devices.make_ftdi())
    assert stream.wait_for(has_group("ftdi/serial/ft232r", 1, 1), WAIT_S) is not None
    world.rules_file.write_text(RULES.replace("name: ft232r", "name: renamed-adapter"))
    assert stream.wait_for(has_group("ftdi/serial/renamed-adapter", 1, 1), WAIT_S) is not None
    world.rules_file.write_text("rules:\n  - match: {vendor_id: zz}\n    group: {vendor: x}\n")
    entry = world.plugin.wait_for_entry(lambda e: "rules" in e.get("@message", "") and e["@level"] == "error", WAIT_S)
    assert entry is not None and "line" not in entry["@message"]
    assert "rules.yaml:2" in str(entry.get("errors"))
    world.testbed.plug(usb_devices.make_pixel7())
    latest = stream.wait_for(has_group("google/phone/pixel-7", 1, 1), WAIT_S)
    assert latest is not None and has_group("ftdi/serial/renamed-adapter", 1, 1)(latest)


def test_shutdown_during_open_streams_exits_quickly(world: World) -> None:
    """Shutdown while Fingerprint and Stats are open: the process is gone within Nomad's 2 s."""
    stream, _ = world.open_fingerprint()
    call = world.plugin.stats(1.0)
    next(call)
    started = time.monotonic()
    assert world.plugin.shutdown() == 0
    assert time.monotonic() - started < 2.0
    assert not world.plugin.socket_path.exists()
    del stream
