"""The fake udev world itself: sysfs/dev layout and uevents as libudev sees them."""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
import time

import pyudev
import pytest

from discovery.fake.testbed import (
    FAKE_MINOR_OFFSET,
    Testbed,
    TestbedError,
    load_fixture,
    make_ftdi,
    make_pixel7,
)


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
    deadline = time.monotonic() + 10  # 30 events take milliseconds
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
                         env=env, capture_output=True, text=True, timeout=20, check=True)
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
