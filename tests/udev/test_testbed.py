"""The fake udev world itself: recording format, sysfs/dev layout, and uevents as libudev sees them."""

from __future__ import annotations

import dataclasses
import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pyudev
import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.fake.recording import (
    RecordingError,
    escape_attribute,
    format_recording,
    parse_recording,
    unescape_attribute,
)
from discovery.fake.testbed import (
    FAKE_MINOR_OFFSET,
    FIXTURES_DIR,
    Testbed,
    TestbedError,
    list_fixtures,
    load_fixture,
    load_recording,
    make_ftdi,
    make_pixel7,
    renumber,
)

# Shaped like umockdev-record output: the device first, then its parents; power/ attributes,
# L: links, a binary H: attribute, octal escapes for UTF-8, an attribute without newline.
RECORDING = r"""P: /devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1:1.0/tty/ttyACM4
N: ttyACM4
S: serial/by-id/usb-Caf\xc3\xa9_Board_X1-if00
E: DEVNAME=/dev/ttyACM4
E: MAJOR=166
E: MINOR=4
E: SUBSYSTEM=tty
E: DEVLINKS=/dev/serial/by-id/usb-Caf\xc3\xa9_Board_X1-if00
A: dev=166:4\n
L: device=../../../3-1:1.0
A: power/control=auto\n

P: /devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1:1.0
E: DEVTYPE=usb_interface
E: DRIVER=cdc_acm
E: SUBSYSTEM=usb
A: bInterfaceClass=02\n
A: bInterfaceNumber=00\n
L: driver=../../../../../../bus/usb/drivers/cdc_acm

P: /devices/pci0000:00/0000:00:14.0/usb3/3-1
N: bus/usb/003/009=1201000200000040
E: DEVNAME=/dev/bus/usb/003/009
E: DEVTYPE=usb_device
E: DRIVER=usb
E: BUSNUM=003
E: DEVNUM=009
E: MAJOR=189
E: MINOR=264
E: SUBSYSTEM=usb
E: ID_VENDOR_ID=1209
E: ID_MODEL_ID=0001
A: busnum=3\n
A: configuration=
H: descriptors=1201000200000040
A: dev=189:264\n
A: devnum=9\n
A: idProduct=0001\n
A: idVendor=1209\n
A: manufacturer=Caf\303\251\n
A: product=Board \"X1\"\n
A: serial=X1\n
"""


def test_recording_parse_reads_every_line_type() -> None:
    """P, N (with hex contents), S, E, A (escaped), H and L lines land in the right record fields."""
    tty, iface, dev = parse_recording(RECORDING)
    assert tty.devpath.endswith("/3-1:1.0/tty/ttyACM4")
    assert (tty.node, tty.symlinks) == ("ttyACM4", (r"serial/by-id/usb-Caf\xc3\xa9_Board_X1-if00",))
    assert tty.links == {"device": "../../../3-1:1.0"}
    assert tty.attributes["power/control"] == b"auto\n"
    assert (tty.subsystem, tty.majmin) == ("tty", (166, 4))
    assert (iface.devtype, iface.driver) == ("usb_interface", "cdc_acm")
    assert dev.node == "bus/usb/003/009" and dev.node_contents == bytes.fromhex("1201000200000040")
    assert dev.attributes["descriptors"] == bytes.fromhex("1201000200000040")
    assert dev.attributes["manufacturer"] == "Café\n".encode()
    assert dev.attributes["product"] == b'Board "X1"\n'
    assert dev.attributes["configuration"] == b""


@pytest.mark.parametrize(("text", "line"), [
    pytest.param("E: SUBSYSTEM=usb\n", 1, id="no-P-line"),
    pytest.param("P: /sys/devices/x\nE: SUBSYSTEM=usb\n", 1, id="path-not-under-devices"),
    pytest.param("P: /devices/x\nA: idVendor=1\n", 1, id="no-subsystem"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nH: descriptors=1F0\n", 3, id="odd-hex"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nQ: what=ever\n", 3, id="unknown-tag"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nE: NOEQUALS\n", 3, id="property-without-value"),
    pytest.param("P: /devices/x\nE: SUBSYSTEM=usb\nP: /devices/y\n", 3, id="missing-blank-line"),
])
def test_recording_parse_rejects_malformed_input(text: str, line: int) -> None:
    """A broken recording raises RecordingError naming the offending line."""
    with pytest.raises(RecordingError) as err:
        parse_recording(text, source="bad.umockdev")
    assert err.value.line == line
    assert str(err.value).startswith(f"bad.umockdev:{line}:")


@given(st.binary(max_size=64))
def test_attribute_escape_round_trips_any_bytes(value: bytes) -> None:
    """escape_attribute and unescape_attribute are inverse for every byte string."""
    assert unescape_attribute(escape_attribute(value)) == value


@pytest.mark.parametrize("name", list_fixtures())
def test_fixture_files_parse_and_round_trip_losslessly(name: str) -> None:
    """Every fixture parses, and formatting its records gives text that parses to the same records."""
    records = parse_recording((FIXTURES_DIR / f"{name}.umockdev").read_text(), name)
    assert records
    assert parse_recording(format_recording(records)) == records


def test_format_recording_writes_our_fixtures_byte_for_byte() -> None:
    """The writer reproduces a generated fixture exactly (line order and escapes as umockdev's)."""
    text = (FIXTURES_DIR / "hub-ch340-stlink.umockdev").read_text()
    assert format_recording(parse_recording(text)) == text


def test_fixtures_cover_the_documented_devices() -> None:
    """The fixture set named in fixtures/README.md is present."""
    assert set(list_fixtures()) >= {"pixel7-adb", "ftdi-ft232r", "arduino-uno", "cp2102", "yubikey5",
                                    "hub-ch340-stlink", "keyboard-no-serial", "two-ch340-boards"}


def test_load_recording_puts_parents_first_and_moves_minors(tmp_path: Path) -> None:
    """Recorded children-first order becomes kernel order; node minors leave the real range."""
    file = tmp_path / "board.umockdev"
    file.write_text(RECORDING)
    records = load_recording(file)
    assert [r.sys_name for r in records] == ["3-1", "3-1:1.0", "ttyACM4"]
    assert records[0].majmin == (189, 264 + FAKE_MINOR_OFFSET)
    assert records[0].properties["MINOR"] == str(264 + FAKE_MINOR_OFFSET)
    assert records[2].attributes["dev"] == f"166:{4 + FAKE_MINOR_OFFSET}\n".encode()


def test_renumber_changes_only_the_devnum_fields() -> None:
    """renumber() gives the records of the same device on a new devnum, rest untouched."""
    records = make_ftdi(devnum=6).records()
    again = renumber(records, 7)
    dev = again[0]
    assert dev.attributes["devnum"] == b"7\n"
    assert dev.properties["DEVNUM"] == "007"
    assert dev.properties["DEVNAME"] == "/dev/bus/usb/001/007"
    assert dev.node == "bus/usb/001/007"
    assert dev.majmin == (189, records[0].majmin[1] + 1)
    assert again[1:] == records[1:]
    assert dev.attributes["serial"] == records[0].attributes["serial"]


def test_load_fixture_unknown_name_lists_the_known_ones() -> None:
    """A typo in a fixture name says which fixtures exist."""
    with pytest.raises(TestbedError, match="ftdi-ft232r"):
        load_fixture("no-such-device")


# ---- the world as the preloaded process sees it -------------------------------------------------

def test_testbed_is_what_sys_and_dev_show(testbed: Testbed) -> None:
    """Plugged devices appear under /sys and /dev of this process, nothing of the host does."""
    testbed.plug(load_fixture("ftdi-ft232r"))
    assert not os.path.exists("/sys/kernel")
    assert sorted(os.listdir("/sys/bus/usb/devices")) == ["1-2", "1-2:1.0"]
    assert os.listdir("/sys/class/tty") == ["ttyUSB0"]
    with open("/sys/bus/usb/devices/1-2/idVendor") as f:
        assert f.read() == "0403\n"
    with open("/sys/class/tty/ttyUSB0/uevent") as f:
        assert "DEVNAME=ttyUSB0\n" in f.read()  # the kernel writes it without /dev/


@pytest.mark.parametrize("path", ["/dev/ttyUSB0", "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"])
def test_testbed_nodes_stat_as_char_devices(testbed: Testbed, path: str) -> None:
    """A node and its by-id link stat as the character device with the fake major:minor."""
    testbed.plug(make_ftdi())
    st_ = os.stat(path)
    assert stat.S_ISCHR(st_.st_mode)
    assert (os.major(st_.st_rdev), os.minor(st_.st_rdev)) == (188, FAKE_MINOR_OFFSET)


def test_testbed_refuses_a_second_device_with_the_same_name(testbed: Testbed) -> None:
    """Plugging a devpath or node name that exists raises instead of corrupting the first device."""
    testbed.plug(make_ftdi())
    with pytest.raises(TestbedError, match="already plugged"):
        testbed.plug(make_ftdi())
    with pytest.raises(TestbedError, match="ttyUSB0 already belongs"):
        testbed.plug(make_ftdi(port="1-3", devnum=7, serial="OTHER"))
    assert os.listdir("/sys/bus/usb/devices").count("1-3") == 0


def test_testbed_unplug_removes_every_trace(testbed: Testbed) -> None:
    """After unplug the device dir, bus/class links, nodes, by-id links and .node entries are gone."""
    handle = testbed.plug(make_ftdi())
    testbed.unplug(handle)
    assert os.listdir("/sys/bus/usb/devices") == []
    assert os.listdir("/sys/class/tty") == []
    assert not os.path.exists(handle.sys_path)
    assert not os.path.lexists("/dev/ttyUSB0")
    assert os.listdir(testbed.root / "dev" / "serial" / "by-id") == []
    assert os.listdir(testbed.root / "dev" / ".node") == []
    with pytest.raises(TestbedError, match="not plugged"):
        testbed.unplug(handle)


def test_testbed_shared_by_id_link_moves_to_the_surviving_twin(testbed: Testbed) -> None:
    """Two serial-less CH340s claim one by-id link; unplugging the newer hands it to the other."""
    records = load_fixture("two-ch340-boards")
    first = testbed.plug([r for r in records if "/1-7" in r.devpath])
    second = testbed.plug([r for r in records if "/1-8" in r.devpath])
    link = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
    assert os.path.realpath(testbed.root / link.lstrip("/")).endswith("/dev/ttyUSB4")
    testbed.unplug(second)
    assert os.path.realpath(testbed.root / link.lstrip("/")).endswith("/dev/ttyUSB3")
    assert os.minor(os.stat(link).st_rdev) == 3 + FAKE_MINOR_OFFSET
    testbed.unplug(first)
    assert not os.path.lexists(link)


def _monitor(*filters: tuple[str, str | None], tags: tuple[str, ...] = ()) -> pyudev.Monitor:
    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    for subsystem, devtype in filters:
        monitor.filter_by(subsystem, devtype)
    for tag in tags:
        monitor.filter_by_tag(tag)
    monitor.start()
    return monitor


def _received(monitor: pyudev.Monitor) -> list[tuple[str, str]]:
    out = []
    poller = select.poll()
    poller.register(monitor.fileno(), select.POLLIN)
    while poller.poll(0):
        device = monitor.poll(timeout=0)
        if device is not None:
            out.append((device.action, device.sys_name))
    return out


def test_testbed_events_pass_libudev_subsystem_devtype_and_tag_filters(testbed: Testbed) -> None:
    """The header hashes and tag bloom are right: libudev's in-kernel filters select exactly the match."""
    by_devtype = _monitor(("usb", "usb_interface"))
    by_subsystem = _monitor(("tty", None))
    by_tag = _monitor(tags=("systemd",))
    testbed.plug(make_ftdi())
    assert _received(by_devtype) == [("add", "1-2:1.0")]
    assert _received(by_subsystem) == [("add", "ttyUSB0")]
    assert _received(by_tag) == [("add", "ttyUSB0")]  # only the tty has TAGS=:systemd:


def test_testbed_event_carries_udev_properties(testbed: Testbed) -> None:
    """An add event has ACTION, SEQNUM, DEVNAME with /dev/ and the ID_* properties, like udevd's."""
    monitor = _monitor(("usb", "usb_device"))
    testbed.plug(make_pixel7())
    device = monitor.poll(timeout=5)
    assert device is not None
    assert (device.action, device.device_node, device.sequence_number) == ("add", "/dev/bus/usb/001/005", 1)
    assert device.properties.get("ID_SERIAL") == "Google_Pixel_7_29011FDH2000XY"
    assert device.properties.get("ID_USB_INTERFACES") == ":ff4201:"


def test_testbed_change_rewrites_uevent_and_sends_change(testbed: Testbed) -> None:
    """change() updates what enumeration reads and sends a change event with the new values."""
    handle = testbed.plug(make_ftdi())
    monitor = _monitor(("usb", "usb_device"))
    testbed.change(handle, {"ID_MODEL": "Renamed", "ID_VENDOR_FROM_DATABASE": None}, attributes={"product": "X\n"})
    device = monitor.poll(timeout=5)
    assert device is not None and device.action == "change"
    assert device.properties.get("ID_MODEL") == "Renamed"
    assert "ID_VENDOR_FROM_DATABASE" not in device.properties
    fresh = pyudev.Devices.from_sys_path(pyudev.Context(), handle.sys_path)
    assert fresh.properties.get("ID_MODEL") == "Renamed"
    assert fresh.attributes.asstring("product") == "X"


def test_testbed_unbind_and_bind_take_and_restore_the_tty(testbed: Testbed) -> None:
    """unbind removes the interface's tty then sends unbind; bind sends bind then re-adds the tty."""
    handle = testbed.plug(make_ftdi())
    monitor = _monitor(("usb", "usb_interface"), ("tty", None))
    testbed.unbind(handle, 0)
    assert _received(monitor) == [("remove", "ttyUSB0"), ("unbind", "1-2:1.0")]
    assert not os.path.lexists("/sys/bus/usb/devices/1-2:1.0/driver")
    assert not os.path.exists("/dev/ttyUSB0")
    testbed.bind(handle, 0)
    assert _received(monitor) == [("bind", "1-2:1.0"), ("add", "ttyUSB0")]
    assert os.readlink("/sys/bus/usb/devices/1-2:1.0/driver").endswith("/bus/usb/drivers/ftdi_sio")


def test_testbed_queues_a_burst_for_a_monitor_nobody_reads_yet(testbed: Testbed) -> None:
    """More events than the socket queue holds (10) are delivered later, in order, none dropped."""
    monitor = _monitor(("usb", "usb_device"))
    for i in range(30):
        testbed.plug(make_ftdi(port=f"2-{i + 1}", devnum=i + 2, tty=10 + i, serial=f"S{i}"))
    received: list[tuple[str, str]] = []
    deadline = time.monotonic() + 30
    while len(received) < 30 and time.monotonic() < deadline:
        device = monitor.poll(timeout=1)
        if device is not None:
            received.append((device.action, device.sys_name))
    assert received == [("add", f"2-{i + 1}") for i in range(30)]


def test_testbed_stalled_monitor_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitor that never reads makes the testbed raise instead of hanging the test."""
    with Testbed(stall_timeout=0.2) as bed:
        monkeypatch.setenv("UMOCKDEV_DIR", str(bed.root))
        monitor = _monitor()
        for i in range(5):
            bed.plug(make_ftdi(port=f"2-{i + 1}", devnum=i + 2, tty=10 + i, serial=f"S{i}"))
        with pytest.raises(TestbedError, match="read nothing"):
            bed.flush(timeout=10)
        del monitor


def test_testbed_skips_closed_monitors(testbed: Testbed) -> None:
    """A monitor that was closed leaves a socket file behind; plugging afterwards still works."""
    monitor = _monitor()
    del monitor  # closes the socket; the file event<fd> stays
    assert [p.name for p in testbed.root.iterdir() if p.name.startswith("event")]
    for i in range(20):
        testbed.plug(make_ftdi(port=f"2-{i + 1}", devnum=i + 2, tty=10 + i, serial=f"S{i}"))
    testbed.flush(timeout=5)


def test_testbed_leaks_no_file_descriptors(testbed: Testbed) -> None:
    """Writing a world through the preload does not leak descriptors (its /dev/ open hook would)."""
    before = len(os.listdir("/proc/self/fd"))
    for i in range(50):
        testbed.unplug(testbed.plug(make_ftdi(port=f"2-{i + 1}", devnum=i + 2, serial=f"S{i}")))
    assert len(os.listdir("/proc/self/fd")) == before


def test_testbed_env_puts_a_subprocess_in_the_same_world(testbed: Testbed) -> None:
    """A child started with env() sees the devices of the test's testbed."""
    testbed.plug(make_pixel7())
    env = {k: v for k, v in os.environ.items() if k not in ("UMOCKDEV_DIR", "LD_PRELOAD")}
    env.update(testbed.env())
    out = subprocess.run([sys.executable, "-c", "import os; print(open('/sys/bus/usb/devices/1-1/product').read())"],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "Pixel 7"


def test_testbed_close_removes_the_tree() -> None:
    """close() deletes the directory and its /tmp alias; a closed testbed refuses work."""
    bed = Testbed()
    root, alias = bed.root, bed._alias
    bed.plug(make_ftdi())
    bed.close()
    assert not root.exists()
    assert alias is None or not os.path.lexists(alias)
    with pytest.raises(TestbedError, match="closed"):
        bed.plug(make_ftdi())


def test_fake_device_replace_is_a_replug() -> None:
    """dataclasses.replace(dev, devnum=...) keeps the port path and moves the node."""
    dev = make_ftdi()
    again = dataclasses.replace(dev, devnum=dev.devnum + 1)
    assert again.devpath == dev.devpath and again.id_path == dev.id_path
    assert again.records()[0].node == "bus/usb/001/007"
