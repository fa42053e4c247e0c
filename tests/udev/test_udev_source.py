"""The pyudev adapter against real libudev on a umockdev world: enumeration, hotplug, bursts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from discovery.model import UsbDevice
from discovery.fake.recording import format_recording, parse_recording
from discovery.fake.testbed import Testbed, load_fixture, load_recording, make_fleet, make_ftdi
from discovery.fake.overflow import overflowed_in_place_of
from discovery.sources.base import EventsLostError
from discovery.sources.udev import UdevEvent, UdevSource
from udev_support import drain_until

PCI = "/sys/devices/pci0000:00/0000:00:14.0/usb1"


def summary(dev: UsbDevice) -> dict[str, Any]:
    """The fields a table row states, in plain types."""
    return {
        "sys_name": dev.sys_name,
        "vid_pid": dev.vid_pid,
        "serial": dev.serial,
        "manufacturer": dev.manufacturer,
        "product": dev.product,
        "bus_dev": (dev.busnum, dev.devnum),
        "port_path": dev.port_path,
        "class": dev.device_class,
        "usb": (dev.usb_version, dev.speed_mbps),
        "node": dev.device_node,
        "driver": dev.driver,
        "interfaces": [(i.number, i.interface_class, i.interface_subclass, i.interface_protocol, i.driver)
                       for i in dev.interfaces],
        "children": [(c.subsystem, c.device_node, c.interface_number, c.driver) for c in dev.children],
    }


def row(sys_name: str, vid_pid: str, serial: str | None, manufacturer: str | None, product: str | None,
        devnum: int, usb: tuple[str, float], interfaces: list, children: list, cls: int = 0) -> dict[str, Any]:
    port = sys_name.split("-", 1)[1]
    return {
        "sys_name": sys_name, "vid_pid": vid_pid, "serial": serial, "manufacturer": manufacturer,
        "product": product, "bus_dev": (1, devnum), "port_path": f"pci-0000:00:14.0-usb-0:{port}",
        "class": cls, "usb": usb, "node": f"/dev/bus/usb/001/{devnum:03d}", "driver": "usb",
        "interfaces": interfaces, "children": children,
    }


CH340 = [(0, 0xFF, 0x01, 0x02, "ch341")]
EXPECTED = {
    "pixel7-adb": [row("1-1", "18d1:4ee7", "29011FDH2000XY", "Google", "Pixel 7", 5, ("2.10", 480.0),
                       [(0, 0xFF, 0x42, 0x01, None)], [])],
    "ftdi-ft232r": [row("1-2", "0403:6001", "A50285BI", "FTDI", "FT232R USB UART", 6, ("2.00", 12.0),
                        [(0, 0xFF, 0xFF, 0xFF, "ftdi_sio")], [("tty", "/dev/ttyUSB0", 0, "ftdi_sio")])],
    "arduino-uno": [row("1-3", "2341:0043", "85736323838351F0E1D1", "Arduino (www.arduino.cc)", None, 7,
                        ("1.10", 12.0), [(0, 2, 2, 1, "cdc_acm"), (1, 0x0A, 0, 0, "cdc_acm")],
                        [("tty", "/dev/ttyACM0", 0, "cdc_acm")], cls=2)],
    "cp2102": [row("1-4", "10c4:ea60", "0001", "Silicon Labs", "CP2102 USB to UART Bridge Controller", 8,
                   ("1.10", 12.0), [(0, 0xFF, 0, 0, "cp210x")], [("tty", "/dev/ttyUSB1", 0, "cp210x")])],
    "yubikey5": [row("1-6", "1050:0407", None, "Yubico", "YubiKey OTP+FIDO+CCID", 12, ("2.00", 12.0),
                     [(0, 3, 1, 1, "usbhid"), (1, 3, 0, 0, "usbhid"), (2, 0x0B, 0, 0, None)],
                     [("hidraw", "/dev/hidraw0", 0, "hid-generic"), ("hidraw", "/dev/hidraw1", 1, "hid-generic")])],
    "keyboard-no-serial": [row("1-9", "046d:c31c", None, "Logitech", "USB Keyboard", 15, ("1.10", 1.5),
                               [(0, 3, 1, 1, "usbhid"), (1, 3, 0, 0, "usbhid")],
                               [("hidraw", "/dev/hidraw2", 0, "hid-generic"),
                                ("hidraw", "/dev/hidraw3", 1, "hid-generic")])],
    "hub-ch340-stlink": [
        # the hub's children are its own only: the boards behind it are separate devices
        row("1-5", "05e3:0610", None, "GenesysLogic", "USB2.1 Hub", 9, ("2.10", 480.0),
            [(0, 9, 0, 2, "hub")], [], cls=9),
        row("1-5.1", "1a86:7523", None, None, "USB Serial", 10, ("1.10", 12.0), CH340,
            [("tty", "/dev/ttyUSB2", 0, "ch341")], cls=0xFF),
        row("1-5.2", "0483:374b", "0671FF485550755187121139", "STMicroelectronics", "STM32 STLink", 11,
            ("2.00", 12.0),
            [(0, 0xFF, 0xFF, 0xFF, None), (1, 8, 6, 0x50, "usb-storage"), (2, 2, 2, 1, "cdc_acm"),
             (3, 0x0A, 0, 0, "cdc_acm")],
            [("tty", "/dev/ttyACM1", 2, "cdc_acm")], cls=0xEF),
    ],
    "two-ch340-boards": [
        row("1-7", "1a86:7523", None, None, "USB Serial", 13, ("1.10", 12.0), CH340,
            [("tty", "/dev/ttyUSB3", 0, "ch341")], cls=0xFF),
        row("1-8", "1a86:7523", None, None, "USB Serial", 14, ("1.10", 12.0), CH340,
            [("tty", "/dev/ttyUSB4", 0, "ch341")], cls=0xFF),
    ],
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_udev_source_enumerates_fixture_into_usb_devices(testbed: Testbed, fixture: str) -> None:
    """Each fixture becomes UsbDevices with the ids, strings, place, interfaces and children it has."""
    testbed.plug(load_fixture(fixture))
    devices = UdevSource().enumerate()
    assert [summary(d) for d in devices] == EXPECTED[fixture]


def test_usb_device_carries_udev_properties_and_attributes(testbed: Testbed) -> None:
    """properties holds udev's ID_*; attributes the sysfs values; children their devlinks."""
    testbed.plug(load_fixture("ftdi-ft232r"))
    (dev,) = UdevSource().enumerate()
    assert dev.properties["ID_SERIAL"] == "FTDI_FT232R_USB_UART_A50285BI"
    assert dev.properties["ID_VENDOR_FROM_DATABASE"] == "Future Technology Devices International, Ltd"
    assert dev.attributes["bNumInterfaces"] == "1"
    assert dev.attributes["bcdDevice"] == "0600"
    assert dev.sys_path == f"{PCI}/1-2"
    (tty,) = dev.children
    assert tty.devlinks == ("/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0",
                            "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0")
    assert tty.properties["ID_USB_INTERFACE_NUM"] == "00"
    assert (tty.sys_name, tty.sys_path) == ("ttyUSB0", f"{PCI}/1-2/1-2:1.0/ttyUSB0/tty/ttyUSB0")


def test_udev_source_enumerates_all_fixtures_together_once_each(testbed: Testbed) -> None:
    """With every fixture plugged, each device is listed exactly once, sorted by sys_path."""
    for name in EXPECTED:
        testbed.plug(load_fixture(name))
    names = [d.sys_name for d in UdevSource().enumerate()]
    assert names == ["1-1", "1-2", "1-3", "1-4", "1-5", "1-5.1", "1-5.2", "1-6", "1-7", "1-8", "1-9"]


def _drain_until(source: UdevSource, count: int, timeout: float = 10.0) -> list[UdevEvent]:
    """Events until ``count`` arrived or the deadline passed."""
    return drain_until(source, lambda events: len(events) >= count, timeout)


def _actions(events: list[UdevEvent]) -> list[tuple[str, str, str]]:
    return [(e.action, e.subsystem, e.sys_path.rsplit("/", 1)[-1]) for e in events]


def test_udev_source_receives_add_and_remove_in_kernel_order(testbed: Testbed, udev_source: UdevSource) -> None:
    """Plug: device, interface, tty add; unplug: tty, interface, device remove; all for one usb_device."""
    handle = testbed.plug(make_ftdi())
    added = _drain_until(udev_source, 3)
    assert _actions(added) == [("add", "usb", "1-2"), ("add", "usb", "1-2:1.0"), ("add", "tty", "ttyUSB0")]
    assert [e.devtype for e in added] == ["usb_device", "usb_interface", None]
    assert {e.usb_sys_path for e in added} == {handle.sys_path}
    assert [e.seqnum for e in added] == sorted(e.seqnum for e in added)
    testbed.unplug(handle)
    removed = _drain_until(udev_source, 3)
    assert _actions(removed) == [("remove", "tty", "ttyUSB0"), ("remove", "usb", "1-2:1.0"), ("remove", "usb", "1-2")]
    # the files are gone, but the events still say which nodes went away
    assert [e.device_node for e in removed] == ["/dev/ttyUSB0", None, "/dev/bus/usb/001/006"]
    assert udev_source.device_at(handle.sys_path) is None
    assert udev_source.enumerate() == []


def test_udev_source_overflow_is_events_lost_once_then_reading_goes_on(
    testbed: Testbed, udev_source: UdevSource
) -> None:
    """A real ENOBUFS on the monitor is EventsLostError once, then drains read on (unread, it failed every poll)."""
    with overflowed_in_place_of(udev_source.fileno()):
        with pytest.raises(EventsLostError, match="ENOBUFS"):
            udev_source.drain()
        assert udev_source.drain() == []  # cleared; what is left in the queue is not udev's and is dropped
    testbed.plug(make_ftdi())
    assert len(_drain_until(udev_source, 3)) == 3


def test_udev_source_drain_is_empty_without_events(udev_source: UdevSource) -> None:
    """drain() returns at once with nothing when nothing happened."""
    assert udev_source.drain() == []


def test_udev_source_change_event_and_reread(testbed: Testbed, udev_source: UdevSource) -> None:
    """A change event arrives and device_at() reads the changed properties."""
    handle = testbed.plug(make_ftdi())
    _drain_until(udev_source, 3)
    testbed.change(handle, {"ID_MODEL": "Flashed_Firmware"})
    (event,) = _drain_until(udev_source, 1)
    assert (event.action, event.sys_path, event.devtype) == ("change", handle.sys_path, "usb_device")
    device = udev_source.device_at(handle.sys_path)
    assert device is not None and device.properties["ID_MODEL"] == "Flashed_Firmware"


def test_udev_source_sees_children_that_appear_after_the_parent(testbed: Testbed, udev_source: UdevSource) -> None:
    """The tty comes after the usb_device add; its event names the parent, and a re-read shows it."""
    records = make_ftdi().records()  # usb_device, interface, usb-serial port, tty
    handle = testbed.plug(records[:2])
    _drain_until(udev_source, 2)
    before = udev_source.device_at(handle.sys_path)
    assert before is not None and before.children == ()
    testbed.plug(records[2:])
    (event,) = _drain_until(udev_source, 1)  # the usb-serial port is not a monitored subsystem
    assert (event.action, event.subsystem, event.usb_sys_path) == ("add", "tty", handle.sys_path)
    after = udev_source.device_at(handle.sys_path)
    assert after is not None and [c.device_node for c in after.children] == ["/dev/ttyUSB0"]


def test_udev_source_replug_gets_new_devnum_same_port(testbed: Testbed, udev_source: UdevSource) -> None:
    """plug, unplug, plug again with devnum+1: same sys_path and port_path, new devnum and node."""
    dev = make_ftdi()
    testbed.unplug(testbed.plug(dev))
    handle = testbed.plug(dataclasses.replace(dev, devnum=dev.devnum + 1))
    events = _drain_until(udev_source, 9)
    assert [e.action for e in events] == ["add"] * 3 + ["remove"] * 3 + ["add"] * 3
    again = udev_source.device_at(handle.sys_path)
    assert again is not None
    assert (again.devnum, again.device_node) == (7, "/dev/bus/usb/001/007")
    assert (again.port_path, again.serial) == ("pci-0000:00:14.0-usb-0:2", "A50285BI")


def test_udev_source_replug_of_a_fixture_with_renumber(testbed: Testbed, udev_source: UdevSource) -> None:
    """A recorded device plugged again under a new devnum is read with that devnum."""
    from discovery.fake.testbed import renumber

    records = load_fixture("arduino-uno")
    testbed.unplug(testbed.plug(records))
    testbed.plug(renumber(records, 42))
    (dev,) = udev_source.enumerate()
    assert (dev.devnum, dev.device_node, dev.serial) == (42, "/dev/bus/usb/001/042", "85736323838351F0E1D1")


def test_udev_source_burst_of_1000_events_all_delivered(testbed: Testbed) -> None:
    """1,000 events sent while nobody reads all arrive once reading starts (count only)."""
    source = UdevSource(subsystems=None)  # also the usb-serial ports: 4 events per adapter
    source.start()
    try:
        for device in make_fleet(250):
            testbed.plug(device)
        events = _drain_until(source, 1000, timeout=20)  # about 0.3 s
        assert len(events) == 1000
        assert len({e.seqnum for e in events}) == 1000
    finally:
        source.close()


def test_udev_source_device_at_ignores_what_is_not_a_usb_device(testbed: Testbed, udev_source: UdevSource) -> None:
    """device_at() of an interface, a tty or a missing path is None."""
    handle = testbed.plug(make_ftdi())
    assert udev_source.device_at(handle.sys_path + "/1-2:1.0") is None
    assert udev_source.device_at(handle.sys_path + "/1-2:1.0/ttyUSB0/tty/ttyUSB0") is None
    assert udev_source.device_at(f"{PCI}/1-9") is None


def test_udev_source_closed_monitor_does_not_block_the_testbed(testbed: Testbed) -> None:
    """After close() nothing holds events back: plugging many devices neither blocks nor fails."""
    source = UdevSource()
    source.start()
    source.close()
    for device in make_fleet(20):
        testbed.plug(device)
    testbed.flush(timeout=5)


# A recording as umockdev-record writes it for a board behind a hub, parents included (the pci
# controller and the hub), device before parents.
HUB_RECORDING = """P: /devices/pci0000:00/0000:00:14.0/usb3/3-2/3-2.4/3-2.4:1.0/tty/ttyACM0
N: ttyACM0
E: DEVNAME=/dev/ttyACM0
E: MAJOR=166
E: MINOR=0
E: SUBSYSTEM=tty
E: ID_SERIAL=Raspberry_Pi_Pico_E6614103E7452D2F
E: DEVLINKS=/dev/serial/by-id/usb-Raspberry_Pi_Pico_E6614103E7452D2F-if00
A: dev=166:0\\n
L: device=../../../3-2.4:1.0

P: /devices/pci0000:00/0000:00:14.0/usb3/3-2/3-2.4/3-2.4:1.0
E: DEVTYPE=usb_interface
E: DRIVER=cdc_acm
E: SUBSYSTEM=usb
A: bInterfaceClass=02\\n
A: bInterfaceNumber=00\\n
A: bInterfaceProtocol=00\\n
A: bInterfaceSubClass=02\\n
L: driver=../../../../../../../bus/usb/drivers/cdc_acm

P: /devices/pci0000:00/0000:00:14.0/usb3/3-2/3-2.4
N: bus/usb/003/017=12010002EF020140
E: DEVNAME=/dev/bus/usb/003/017
E: DEVTYPE=usb_device
E: DRIVER=usb
E: BUSNUM=003
E: DEVNUM=017
E: MAJOR=189
E: MINOR=272
E: SUBSYSTEM=usb
E: ID_PATH=pci-0000:00:14.0-usb-0:2.4
E: ID_SERIAL_SHORT=E6614103E7452D2F
A: bDeviceClass=ef\\n
A: busnum=3\\n
A: dev=189:272\\n
A: devnum=17\\n
A: idProduct=000a\\n
A: idVendor=2e8a\\n
A: manufacturer=Raspberry Pi\\n
A: product=Pico\\n
A: serial=E6614103E7452D2F\\n
A: speed=12\\n
A: version= 2.00\\n
L: driver=../../../../../bus/usb/drivers/usb

P: /devices/pci0000:00/0000:00:14.0/usb3/3-2
N: bus/usb/003/002
E: DEVNAME=/dev/bus/usb/003/002
E: DEVTYPE=usb_device
E: DRIVER=usb
E: MAJOR=189
E: MINOR=257
E: SUBSYSTEM=usb
A: bDeviceClass=09\\n
A: busnum=3\\n
A: dev=189:257\\n
A: devnum=2\\n
A: idProduct=5411\\n
A: idVendor=0bda\\n
A: product=4-Port USB 2.0 Hub\\n
A: speed=480\\n
A: version= 2.10\\n

P: /devices/pci0000:00/0000:00:14.0
E: DRIVER=xhci_hcd
E: PCI_CLASS=C0330
E: SUBSYSTEM=pci
A: class=0x0c0330\\n
A: vendor=0x8086\\n
"""


def test_recording_of_a_real_device_loads_and_enumerates(testbed: Testbed, tmp_path: Path) -> None:
    """A umockdev-record file with parents plugs as is; the board and the hub it hangs off are read."""
    file = tmp_path / "pico.umockdev"
    file.write_text(HUB_RECORDING)
    testbed.plug(load_recording(file))
    hub, pico = UdevSource().enumerate()
    assert (hub.sys_name, hub.vid_pid, hub.children, hub.port_path) == ("3-2", "0bda:5411", (), "3-2")
    assert summary(pico) == {
        "sys_name": "3-2.4", "vid_pid": "2e8a:000a", "serial": "E6614103E7452D2F",
        "manufacturer": "Raspberry Pi", "product": "Pico", "bus_dev": (3, 17),
        "port_path": "pci-0000:00:14.0-usb-0:2.4", "class": 0xEF, "usb": ("2.00", 12.0),
        "node": "/dev/bus/usb/003/017", "driver": "usb", "interfaces": [(0, 2, 2, 0, "cdc_acm")],
        "children": [("tty", "/dev/ttyACM0", 0, "cdc_acm")],
    }
    assert pico.children[0].devlinks == ("/dev/serial/by-id/usb-Raspberry_Pi_Pico_E6614103E7452D2F-if00",)


def test_recording_round_trips_through_load_and_format(tmp_path: Path) -> None:
    """Loading (reordered, minors unshifted) and formatting again gives the same records."""
    file = tmp_path / "pico.umockdev"
    file.write_text(HUB_RECORDING)
    loaded = load_recording(file, minor_offset=0)
    again = parse_recording(format_recording(loaded))
    assert again == loaded
    assert sorted(r.devpath for r in again) == sorted(r.devpath for r in parse_recording(HUB_RECORDING))


def test_udev_source_lists_root_hubs_like_any_usb_device(testbed: Testbed) -> None:
    """A root hub (usbN, 1d6b:0002) is a usb_device too; devices below it are not its children."""
    from discovery.fake.testbed import make_root_hub

    testbed.plug(make_root_hub(1))
    testbed.plug(make_ftdi())
    root, ftdi = UdevSource().enumerate()
    assert (root.sys_name, root.vid_pid, root.devnum, root.port_path) == ("usb1", "1d6b:0002", 1, "pci-0000:00:14.0")
    assert root.children == () and [i.driver for i in root.interfaces] == ["hub"]
    assert ftdi.sys_path == f"{PCI}/1-2"
