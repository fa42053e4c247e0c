"""How the pyudev adapter reads a device: one pass for all, one subtree for one, descriptors with a fallback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyudev
import pytest

from discovery.fake import usb_devices
from discovery.fake.testbed import FIXTURES_DIR, Plugged, Testbed, list_fixtures, load_fixture, load_recording
from discovery.model import UsbDevice
from discovery.rules.loader import parse_rules
from discovery.sources.udev import DEVICE_ATTRIBUTES, UdevSource
from discovery.sources.udevdb import device_properties


def everything(device: UsbDevice) -> tuple[Any, ...]:
    """A device with the mappings the record's equality leaves out: properties, attributes, children's properties."""
    return (device, dict(device.properties), dict(device.attributes),
            [(c, dict(c.properties)) for c in device.children])


def sysfs_file(testbed: Testbed, sys_path: str, name: str) -> Path:
    return Path(str(testbed.root) + sys_path) / name


EXTRA_FAKES = [
    usb_devices.make_root_hub(1),
    usb_devices.make_hub(port="1-11", devnum=30),
    usb_devices.make_pixel7(port="1-11.1", devnum=31, serial="TETHERED",
                            interfaces=(usb_devices.FakeInterface(0, 0xE0, 1, 3, "rndis_host",
                                                                  (usb_devices.net_interface("usb0"),)),)),
    usb_devices.make_yubikey(port="1-11.2", devnum=32, hidraw_index=7),
]


def plug_everything(testbed: Testbed) -> None:
    for name in list_fixtures():
        testbed.plug(load_fixture(name))
    for fake in EXTRA_FAKES:
        testbed.plug(fake)


def test_enumerate_and_device_at_read_every_device_the_same(testbed: Testbed) -> None:
    """The one-pass enumeration and the one-device re-read of a hotplug event give identical records."""
    plug_everything(testbed)
    source = UdevSource()
    devices = source.enumerate()
    assert len(devices) == 11 + len(EXTRA_FAKES)
    for device in devices:
        again = source.device_at(device.sys_path)
        assert again is not None
        assert everything(again) == everything(device)
    tethered = next(d for d in devices if d.serial == "TETHERED")
    assert [(c.subsystem, c.sys_name, c.device_node, c.driver) for c in tethered.children] == [
        ("net", "usb0", None, "rndis_host")]
    hub = next(d for d in devices if d.sys_name == "1-11")
    assert hub.children == ()  # the tethered phone and the key behind it have their own


def test_properties_read_once_equal_pyudevs_for_every_device_in_the_world(testbed: Testbed) -> None:
    """For every device of every kind (usb_device, interface, usb-serial port, hid, tty, hidraw, net),
    one read of its uevent file and database entry gives exactly pyudev's properties."""
    plug_everything(testbed)
    context = pyudev.Context()
    checked = 0
    for folder, _, files in os.walk(str(testbed.root) + "/sys/devices"):
        if "uevent" not in files:
            continue
        path = folder.removeprefix(str(testbed.root))
        expected = dict(pyudev.Devices.from_sys_path(context, path).properties)
        assert device_properties(path) == expected, path
        checked += 1
    assert checked > 60


@pytest.mark.parametrize("name", list_fixtures())
def test_attributes_equal_the_sysfs_files(testbed: Testbed, name: str) -> None:
    """Each DEVICE_ATTRIBUTES value, from the descriptors or read on demand, is the file's text; absent ones are absent."""
    testbed.plug(load_fixture(name))
    for device in UdevSource().enumerate():
        files = {}
        for attr in DEVICE_ATTRIBUTES:
            file = sysfs_file(testbed, device.sys_path, attr)
            if file.exists():
                files[attr] = file.read_bytes().decode("utf-8", errors="replace").strip()
        assert dict(device.attributes) == files


KERNEL_RECORDINGS = sorted((FIXTURES_DIR / "kernel").glob("*.umockdev"))
KERNEL_USB_RECORDINGS = [f for f in KERNEL_RECORDINGS if "E: DEVTYPE=usb_device" in f.read_text(encoding="utf-8")]


@pytest.mark.parametrize("file", KERNEL_USB_RECORDINGS, ids=[f.stem for f in KERNEL_USB_RECORDINGS])
def test_attributes_equal_the_files_of_a_real_kernel_recording(testbed: Testbed, file: Path) -> None:
    """A device recorded from a real kernel reads with the attribute values that kernel showed."""
    testbed.plug(load_recording(file))
    (device,) = UdevSource().enumerate()
    files = {}
    for attr in DEVICE_ATTRIBUTES:
        path = sysfs_file(testbed, device.sys_path, attr)
        if path.exists():
            files[attr] = path.read_bytes().decode("utf-8", errors="replace").strip()
    assert dict(device.attributes) == files
    assert [i.number for i in device.interfaces] == list(range(int(files["bNumInterfaces"])))


def test_real_kernel_pci_serial_card_is_no_usb_device(testbed: Testbed) -> None:
    """QEMU's two-port PCI serial card as a real kernel showed it: two ttys below a PCI function, no USB device."""
    testbed.plug(load_recording(FIXTURES_DIR / "kernel" / "qemu-pci-serial-2x.umockdev"))
    assert UdevSource().enumerate() == []
    context = pyudev.Context()
    ttys = [pyudev.Devices.from_sys_path(context, f"/sys/devices/pci0000:00/0000:00:10.0/tty/{name}")
            for name in ("ttyS1", "ttyS2")]
    for tty in ttys:
        card = tty.find_parent("pci")
        assert card is not None and card.sys_name == "0000:00:10.0"
        assert (card.attributes.asstring("vendor"), card.attributes.asstring("device")) == ("0x1b36", "0x0003")
        assert card.driver == "serial"
        # udev's rules give a PCI tty no ID_PATH of its own (path_id runs for ttyUSB/ttyACM only): its card has it
        assert "ID_PATH" not in tty.properties and card.properties.get("ID_PATH") == "pci-0000:00:10.0"
    assert [tty.device_node for tty in ttys] == ["/dev/ttyS1", "/dev/ttyS2"]


def _with_descriptors(testbed: Testbed, handle: Plugged, content: bytes | None) -> None:
    file = sysfs_file(testbed, handle.sys_path, "descriptors")
    if content is None:
        file.unlink()
    else:
        file.write_bytes(content)


@pytest.mark.parametrize("make", [usb_devices.make_ftdi, usb_devices.make_stlink, usb_devices.make_yubikey],
                         ids=["ftdi", "stlink", "yubikey"])
@pytest.mark.parametrize("cut", ["missing", "empty", "10 bytes", "device only", "config cut short", "garbage"])
def test_descriptors_missing_or_truncated_falls_back_to_attribute_files(
        testbed: Testbed, make: Any, cut: str) -> None:
    """Without a whole descriptors file the device reads the same, from its attribute files."""
    fake = make()
    handle = testbed.plug(fake)
    expected = everything(UdevSource().enumerate()[0])
    blob = fake.descriptors()
    content = {"missing": None, "empty": b"", "10 bytes": blob[:10], "device only": blob[:18],
               "config cut short": blob[:-3], "garbage": b"\xff" * 40}[cut]
    _with_descriptors(testbed, handle, content)
    (device,) = UdevSource().enumerate()
    assert everything(device) == expected
    assert everything(UdevSource().device_at(handle.sys_path)) == expected  # type: ignore[arg-type]


def test_an_attribute_only_a_template_names_is_read_when_asked(testbed: Testbed) -> None:
    """A group name built from {urbnum} sees it; a device without it goes on to the next rule."""
    rules = parse_rules("""
rules:
  - match: {vendor_id: "0403"}
    group: {vendor: ftdi, type: serial, name: "urb-{urbnum}"}
  - match: {vendor_id: "0403"}
    group: {vendor: ftdi, type: serial, name: plain}
""")
    testbed.plug(usb_devices.make_ftdi(attributes={"urbnum": "17\n"}))
    testbed.plug(usb_devices.make_ftdi(port="1-3", devnum=9, tty=5, serial="OTHER"))
    with_urbnum, without = UdevSource().enumerate()
    assert [rules.match(d).group.name for d in (with_urbnum, without)] == ["urb-17", "plain"]  # type: ignore[union-attr]



def test_devices_at_a_burst_reads_as_device_at_one_by_one(testbed: Testbed) -> None:
    """A burst read in one pass (paths of devices, of an interface, of a device gone) equals device_at per path."""
    plug_everything(testbed)
    source = UdevSource()
    gone = testbed.plug(usb_devices.make_ftdi(port="1-12", devnum=40, tty=40, serial="GONE"))
    testbed.unplug(gone)
    paths = sorted(d.sys_path for d in source.enumerate()) + [gone.sys_path, EXTRA_FAKES[1].sys_path + "/1-11:1.0"]
    together = source.devices_at(paths)
    alone = [source.device_at(path) for path in paths]
    assert [None if d is None else everything(d) for d in together] == [None if d is None else everything(d)
                                                                        for d in alone]
    assert together[-2:] == [None, None] and all(d is not None for d in together[:-2])
